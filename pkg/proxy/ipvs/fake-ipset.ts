// An in-memory ipset with the answers of the real tool (ipset 7.x): `ipset restore [-exist]` applied line
// by line and stopping at the first error (earlier lines stay applied, as in the kernel), `list -n`,
// `save`, `destroy`. It also answers `-m set --match-set` for the packet tracers, so the sets a test loads
// are the sets a trace reads. Other programs go to an optional fallback Exec.
import type { Exec, ExecResult } from '../../exec/exec.js'
import { stdinText } from '../../exec/exec.js'
import { cidrContains, parseCIDR, parseIP, type IPFamily } from '../../net/ip.js'
import type { SetDirection, SetMatcher, SetProbe } from '../iptables/trace.js'
import { canonicalEntry, type IpsetType } from './ipset.js'

export interface FakeSet {
  readonly type: IpsetType
  readonly family: IPFamily
  /** Creation parameters that `create -exist` compares (maxelem, or the bitmap range). */
  readonly params: string
  readonly maxelem: number
  readonly entries: Set<string>
}

const TYPES: ReadonlySet<string> = new Set(['hash:ip', 'hash:ip,port', 'hash:ip,port,ip', 'hash:ip,port,net', 'bitmap:port'])

class IpsetError extends Error {}

export class FakeIpset implements SetMatcher {
  readonly sets = new Map<string, FakeSet>()
  /** Every argv run through exec, in order. */
  readonly calls: Array<readonly string[]> = []
  /** Sets that iptables rules refer to: destroying one fails as in the kernel. */
  referenced: (name: string) => boolean = () => false
  /** Makes the next exec of `ipset restore` fail at its first line whose text includes this string. */
  failOn: string | undefined

  constructor (private readonly fallback?: Exec) {}

  /** Applies restore text; throws at the first bad line with its 1-based number (earlier lines stay applied). */
  restore (text: string, exist: boolean): void {
    const lines = text.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = (lines[i] ?? '').trim()
      if (line === '' || line.startsWith('#')) continue
      try {
        if (this.failOn !== undefined && line.includes(this.failOn)) throw new IpsetError('Kernel error received: injected failure')
        this.command(line.split(/\s+/), exist)
      } catch (e) {
        if (e instanceof IpsetError) throw new IpsetError(`Error in line ${i + 1}: ${e.message}`)
        throw e
      }
    }
  }

  /** Members of a set, sorted (for assertions). */
  members (name: string): string[] {
    return [...(this.sets.get(name)?.entries ?? [])].sort()
  }

  readonly exec: Exec = async (argv, stdin): Promise<ExecResult> => {
    if (argv[0] !== 'ipset') {
      if (this.fallback !== undefined) return await this.fallback(argv, stdin)
      return { code: 127, stdout: '', stderr: `${argv[0] ?? ''}: not found in the fake` }
    }
    this.calls.push(argv)
    const args = argv.slice(1)
    const exist = args.includes('-exist')
    const rest = args.filter(a => a !== '-exist')
    try {
      switch (rest[0]) {
        case 'restore': this.restore(stdinText(stdin), exist); return ok('')
        case 'list':
          if (rest[1] === '-n') return ok([...this.sets.keys()].map(n => n + '\n').join(''))
          break
        case 'save': return ok(this.save(rest[1]))
        default: this.command(rest, exist); return ok('')
      }
      throw new IpsetError(`Syntax error: unsupported command ${rest.join(' ')}`)
    } catch (e) {
      if (e instanceof IpsetError) return { code: 1, stdout: '', stderr: `ipset v7.17: ${e.message}\n` }
      throw e
    }
  }

  test (name: string, dirs: readonly SetDirection[], probe: SetProbe): boolean {
    const set = this.sets.get(name)
    if (set === undefined) throw new Error(`fake ipset: rule refers to missing set ${name}`)
    const addr = (d: SetDirection | undefined): string | null => {
      if (d === undefined) return null
      const p = parseIP(d === 'src' ? probe.src : probe.dst)
      return p !== null && p.family === set.family ? p.ip : null
    }
    const port = (d: SetDirection | undefined): number => {
      if (d !== 'dst') throw new Error('fake ipset: only destination ports are known to the tracer')
      return probe.dport
    }
    const proto = probe.protocol.toLowerCase()
    switch (set.type) {
      case 'bitmap:port': return set.entries.has(String(port(dirs[0])))
      case 'hash:ip': { const a = addr(dirs[0]); return a !== null && set.entries.has(a) }
      case 'hash:ip,port': {
        const a = addr(dirs[0])
        return a !== null && set.entries.has(`${a},${proto}:${port(dirs[1])}`)
      }
      case 'hash:ip,port,ip': {
        const a = addr(dirs[0])
        const b = addr(dirs[2])
        return a !== null && b !== null && set.entries.has(`${a},${proto}:${port(dirs[1])},${b}`)
      }
      case 'hash:ip,port,net': {
        const a = addr(dirs[0])
        const b = addr(dirs[2])
        if (a === null || b === null) return false
        const head = `${a},${proto}:${port(dirs[1])},`
        for (const e of set.entries) {
          if (!e.startsWith(head)) continue
          const c = parseCIDR(e.slice(head.length))
          if (c !== null && cidrContains(c, b)) return true
        }
        return false
      }
    }
  }

  private save (name: string | undefined): string {
    const out: string[] = []
    for (const [n, s] of this.sets) {
      if (name !== undefined && n !== name) continue
      out.push(s.type === 'bitmap:port' ? `create ${n} bitmap:port ${s.params}` : `create ${n} ${s.type} family ${s.family === 'IPv4' ? 'inet' : 'inet6'} hashsize 1024 ${s.params}`)
      for (const e of s.entries) out.push(`add ${n} ${e}`)
    }
    return out.map(l => l + '\n').join('')
  }

  private need (name: string | undefined): FakeSet {
    const s = name === undefined ? undefined : this.sets.get(name)
    if (s === undefined) throw new IpsetError('The set with the given name does not exist')
    return s
  }

  private command (t: readonly string[], globalExist: boolean): void {
    const exist = globalExist || t.includes('-exist')
    const a = t.filter(x => x !== '-exist')
    const [cmd, name, arg] = a
    switch (cmd) {
      case 'create': {
        if (name === undefined || arg === undefined || !TYPES.has(arg)) throw new IpsetError(`Syntax error: bad create ${a.join(' ')}`)
        const type = arg as IpsetType
        const opt = (k: string): string | undefined => { const i = a.indexOf(k); return i >= 0 ? a[i + 1] : undefined }
        const family: IPFamily = opt('family') === 'inet6' ? 'IPv6' : 'IPv4'
        const maxelem = Number(opt('maxelem') ?? 65536)
        const params = type === 'bitmap:port' ? `range ${opt('range') ?? ''}` : `maxelem ${maxelem}`
        const old = this.sets.get(name)
        if (old !== undefined) {
          if (exist && old.type === type && old.family === family && old.params === params) return
          throw new IpsetError('Set cannot be created: set with the same name already exists')
        }
        this.sets.set(name, { type, family, params, maxelem: type === 'bitmap:port' ? 65536 : maxelem, entries: new Set() })
        return
      }
      case 'add':
      case 'del': {
        const s = this.need(name)
        const e = arg === undefined ? null : canonicalEntry(s, arg)
        if (e === null) throw new IpsetError(`Syntax error: cannot parse ${arg ?? ''} as an element of ${s.type}`)
        if (cmd === 'add') {
          if (s.entries.has(e)) { if (exist) return; throw new IpsetError("Element cannot be added to the set: it's already added") }
          if (s.entries.size >= s.maxelem) throw new IpsetError('Hash is full, cannot add more elements')
          s.entries.add(e)
        } else {
          if (!s.entries.has(e)) { if (exist) return; throw new IpsetError("Element cannot be deleted from the set: it's not added") }
          s.entries.delete(e)
        }
        return
      }
      case 'flush':
        if (name === undefined) { for (const s of this.sets.values()) s.entries.clear(); return }
        this.need(name).entries.clear()
        return
      case 'swap': {
        const x = this.need(name)
        const y = this.need(arg)
        if (x.type !== y.type || x.family !== y.family) throw new IpsetError('The sets cannot be swapped: their type does not match')
        this.sets.set(name as string, y)
        this.sets.set(arg as string, x)
        return
      }
      case 'rename': {
        const x = this.need(name)
        if (arg === undefined || this.sets.has(arg)) throw new IpsetError('Set cannot be renamed: a set with the new name already exists')
        this.sets.delete(name as string)
        this.sets.set(arg, x)
        return
      }
      case 'destroy': {
        const names = name === undefined ? [...this.sets.keys()] : [name]
        for (const n of names) {
          if (!this.sets.has(n)) { if (exist) continue; throw new IpsetError('The set with the given name does not exist') }
          if (this.referenced(n)) throw new IpsetError('Set cannot be destroyed: it is in use by a kernel component')
          this.sets.delete(n)
        }
        return
      }
      default: throw new IpsetError(`Syntax error: unknown command ${cmd ?? ''}`)
    }
  }
}

function ok (stdout: string): ExecResult {
  return { code: 0, stdout, stderr: '' }
}
