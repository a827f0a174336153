// The kernel's UDP conntrack table behind a two-method interface; ExecConntrackTable drives the
// conntrack CLI (conntrack-tools 1.4.x), FakeConntrackTable (fake.ts) holds entries in memory.
import { FerryError, isFerryError } from '../../errors/errors.js'
import { spawnExec, type Exec, type ExecResult } from '../../exec/exec.js'
import type { IPFamily } from '../../net/ip.js'
import { parseConntrackList, type ConntrackEntry } from './parse.js'
import type { DeleteSelector } from './plan.js'

export interface ConntrackTable {
  /** Every UDP entry of `family`. */
  listUDP: (family: IPFamily) => Promise<ConntrackEntry[]>
  /** Deletes the UDP entries of `family` that match `sel`; resolves to how many went (0 is fine). */
  deleteUDP: (family: IPFamily, sel: DeleteSelector) => Promise<number>
}

const FAMILY_ARG: Record<IPFamily, string> = { IPv4: 'ipv4', IPv6: 'ipv6' }

/** `conntrack -D` and `-L` report on stderr: "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted." */
const DELETED = /(\d+) flow entries have been deleted/
// spawn's ENOENT, `ip netns exec` ('exec of "conntrack" failed: No such file or directory'), a shell's 127.
const MISSING = /exec of "[^"]*" failed|No such file or directory|command not found/

/** The conntrack CLI through an Exec (wrap it in netnsExec to work inside a namespace). */
export class ExecConntrackTable implements ConntrackTable {
  constructor (private readonly exec: Exec = spawnExec, private readonly cmd = 'conntrack') {}

  async listUDP (family: IPFamily): Promise<ConntrackEntry[]> {
    const argv = [this.cmd, '-L', '-p', 'udp', '-f', FAMILY_ARG[family]]
    const r = await this.run(argv)
    if (r.code !== 0) throw failure(argv, r)
    return parseConntrackList(r.stdout)
  }

  async deleteUDP (family: IPFamily, sel: DeleteSelector): Promise<number> {
    const argv = [this.cmd, '-D', '-p', 'udp', '-f', FAMILY_ARG[family],
      '--orig-dst', sel.origDst, '--orig-port-dst', String(sel.origDport), '--reply-src', sel.replySrc]
    const r = await this.run(argv)
    const counted = DELETED.exec(r.stderr)
    // Exit 1 with "0 flow entries have been deleted" only means the entry was already gone.
    if (r.code === 0 || (r.code === 1 && counted?.[1] === '0')) {
      return counted !== null ? Number(counted[1]) : r.stdout.split('\n').filter(l => l.trim() !== '').length
    }
    throw failure(argv, r)
  }

  private async run (argv: readonly string[]): Promise<ExecResult> {
    try {
      return await this.exec(argv)
    } catch (e) {
      const cause = (e as { cause?: { code?: unknown } }).cause
      if (cause?.code === 'ENOENT') throw missing(argv, e)
      throw e
    }
  }
}

/** True when `e` says the conntrack program is not installed (as opposed to failing). */
export function isConntrackMissing (e: unknown): boolean {
  return isFerryError(e, 'FERRY_ERR_EXEC') && e.details.missing === true
}

function failure (argv: readonly string[], r: ExecResult): FerryError {
  const text = r.stderr.trim() !== '' ? r.stderr.trim() : r.stdout.trim()
  if (r.code === 127 || MISSING.test(text)) return missing(argv)
  return new FerryError('FERRY_ERR_EXEC', `${argv.join(' ')}: exit ${r.code}: ${text}`, { argv, code: r.code })
}

function missing (argv: readonly string[], cause?: unknown): FerryError {
  return new FerryError('FERRY_ERR_EXEC', `cannot run ${argv[0] ?? 'conntrack'}: not installed (conntrack-tools)`, { argv, missing: true },
    cause !== undefined ? { cause } : undefined)
}
