// A stateful fake of the `nft` binary for the Exec seam: `nft -f -` applies its stdin to an NftModel as
// one transaction (exit 1 and nft's stderr on a refusal), `-c` checks without committing, and the few
// one-shot commands a backend runs (list tables / table, delete / flush table, flush ruleset) answer as
// nft 1.0.6 does. Tests inject one-shot failures; other programs go to an optional fallback Exec.
import { FerryError } from '../../errors/errors.js'
import { stdinText, type Exec, type ExecResult } from '../../exec/exec.js'
import { decodeBatches, type EncodedBatch } from './element-wire.js'
import type { ElementLoader } from './element-load.js'
import { NftError, NftModel, type NftFamily } from './model.js'
import { familyWords } from './names.js'

export interface FakeNftCall { readonly argv: readonly string[], readonly stdin: string }

interface Failure { readonly match: string, readonly stderr: string }

const ok = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '' })
const fail = (stderr: string): ExecResult => ({ code: 1, stdout: '', stderr })
const FAMILIES: ReadonlySet<string> = new Set(['ip', 'ip6', 'inet'])

export class FakeNft {
  readonly model = new NftModel()
  /** Every nft run, with its stdin, in order. */
  readonly calls: FakeNftCall[] = []
  private readonly failures: Failure[] = []

  constructor (private readonly fallback?: Exec) {}

  /**
   * Makes the next nft run whose argv or stdin contains `match` ('' = any run) fail with exit 1 and
   * `stderr`, changing nothing. Queued failures fire once each, in order.
   */
  failNext (match = '', stderr = 'Error: Could not process rule: Cannot allocate memory\n'): void {
    this.failures.push({ match, stderr })
  }

  /** Element batches received through the netlink seam (loadElements), in order. */
  readonly elementBatches: EncodedBatch[] = []
  private elementFailures = 0

  /** Makes the next element batch loaded through loadElements fail (ENOMEM), changing nothing. */
  failElementsNext (): void { this.elementFailures++ }

  /**
   * The netlink element seam over the same model: each batch is decoded and applied as one transaction,
   * as the kernel does (a refused batch changes nothing and fails the load).
   */
  readonly loadElements: ElementLoader = async (family, batches) => {
    const obj = familyWords(family).obj
    for (const b of batches) {
      this.elementBatches.push(b)
      const decoded = decodeBatches([b.bytes], family)
      if (this.elementFailures > 0) {
        this.elementFailures--
        throw new FerryError('FERRY_ERR_APPLY', `nf_tables refused elements of ${decoded[0]?.map ?? '?'}: errno 12`, { errno: 12 })
      }
      try {
        this.model.apply(decoded.map(d => `add element ${obj} ${d.map} { ${d.elements.join(', ')} }`).join('\n'))
      } catch (e) {
        if (e instanceof NftError) throw new FerryError('FERRY_ERR_APPLY', `nf_tables refused elements: ${e.reason}`, { errno: 22 })
        throw e
      }
    }
  }

  readonly exec: Exec = async (argv, stdin): Promise<ExecResult> => {
    if (argv[0] !== 'nft') {
      if (this.fallback !== undefined) return await this.fallback(argv, stdin)
      return { code: 127, stdout: '', stderr: `${argv[0] ?? ''}: not found in the fake` }
    }
    const input = stdinText(stdin)
    this.calls.push({ argv, stdin: input })
    const i = this.failures.findIndex(f => argv.join(' ').includes(f.match) || input.includes(f.match))
    if (i >= 0) {
      const [f] = this.failures.splice(i, 1)
      return fail(f?.stderr ?? '')
    }
    return this.run(argv.slice(1), input)
  }

  private run (args: readonly string[], input: string): ExecResult {
    let check = false
    const rest: string[] = []
    for (let i = 0; i < args.length; i++) {
      const a = args[i] as string
      if (a === '-c' || a === '--check') check = true
      else if (a === '-f' || a === '--file') {
        const file = args[++i]
        if (file !== '-' && file !== '/dev/stdin') return fail(`Error: the fake reads only stdin, not ${file ?? '(none)'}\n`)
        return this.transaction(input, check)
      } else if (a === '-v' || a === '--version') return ok('nftables v1.0.6 (Lester Gooch #5)\n')
      else if (a === '-n' || a === '-s' || a === '-a') continue
      else rest.push(a)
    }
    if (rest[0] === 'list') return this.list(rest.slice(1))
    // A command on the command line is a one-line transaction.
    return this.transaction(rest.join(' '), check)
  }

  private transaction (text: string, check: boolean): ExecResult {
    try {
      if (check) this.model.check(text)
      else this.model.apply(text)
      return ok('')
    } catch (e) {
      if (e instanceof NftError) return fail(e.stderr())
      throw e
    }
  }

  private list (args: readonly string[]): ExecResult {
    const [what, a, b] = args
    if (what === 'tables') {
      const tables = this.model.tables().filter(t => a === undefined || t.family === a)
      return ok(tables.map(t => `table ${t.family} ${t.name}\n`).join(''))
    }
    if (what === 'table' && a !== undefined) {
      const family = FAMILIES.has(a) ? a as NftFamily : 'ip'
      const name = FAMILIES.has(a) ? b : a
      try {
        return ok(this.model.listTable(family, name ?? ''))
      } catch (e) {
        if (e instanceof NftError) return fail(`Error: No such file or directory\nlist table ${family} ${name ?? ''}\n`)
        throw e
      }
    }
    if ((what === 'set' || what === 'map') && a !== undefined && b !== undefined) {
      const [, , , setName] = args
      const family = a as NftFamily
      if (setName === undefined || this.model.set(family, b, setName) === undefined) {
        return fail(`Error: No such file or directory\nlist ${what} ${args.slice(1).join(' ')}\n`)
      }
      return ok(`table ${family} ${b} {\n\t${what} ${setName} {\n\t\telements = { ${this.model.elements(family, b, setName).join(', ')} }\n\t}\n}\n`)
    }
    if (what === 'ruleset') return ok(this.model.tables().map(t => this.model.listTable(t.family, t.name)).join(''))
    return fail(`Error: syntax error, unsupported in the fake: list ${args.join(' ')}\n`)
  }
}
