// A packet-flow tracer over rendered iptables-restore text: it walks a new connection through nat
// (PREROUTING or OUTPUT, then POSTROUTING) and filter (INPUT, FORWARD or OUTPUT) the way the kernel would,
// following every branch a `-m statistic` rule can take. Tests check the renderer against the plan
// tracer (../trace.ts) with it: rule order and jumps decide the result, not the text of single rules.
// `-m set --match-set` needs the sets' contents: callers that use ipsets (IPVS mode) pass a SetMatcher.
import { cidrContains, parseCIDR, parseIP, type IPFamily } from '../../net/ip.js'
import type { Packet, TraceEnv, TracedEndpoint } from '../trace.js'

interface Rule { readonly args: readonly string[] }
/** table → chain → rules, in kernel order. */
export type RuleTables = Map<string, Map<string, Rule[]>>

export interface IptablesTrace {
  readonly verdict: 'forward' | 'REJECT' | 'DROP' | 'not-handled' | 'mixed'
  readonly endpoints: readonly TracedEndpoint[]
  /** One line per branch, for failure messages. */
  readonly paths: readonly string[]
}

function tokenize (line: string): string[] {
  const out: string[] = []
  let i = 0
  while (i < line.length) {
    if (line[i] === ' ') { i++; continue }
    if (line[i] === '"') {
      const end = line.indexOf('"', i + 1)
      out.push(line.slice(i + 1, end < 0 ? undefined : end))
      i = end < 0 ? line.length : end + 1
    } else {
      const end = line.indexOf(' ', i)
      out.push(line.slice(i, end < 0 ? undefined : end))
      i = end < 0 ? line.length : end
    }
  }
  return out
}

/** Applies restore payloads in order (as `--noflush` would) to a rule set. */
export function loadRestore (payloads: readonly string[], into: RuleTables = new Map()): RuleTables {
  for (const payload of payloads) {
    let table: Map<string, Rule[]> | undefined
    for (const line of payload.split('\n')) {
      if (line.startsWith('*')) {
        const name = line.slice(1)
        table = into.get(name) ?? new Map<string, Rule[]>()
        into.set(name, table)
      } else if (table === undefined || line === 'COMMIT' || line === '' || line.startsWith('#')) continue
      else if (line.startsWith(':')) table.set(line.slice(1, line.indexOf(' ')), [])
      else {
        const t = tokenize(line)
        const chain = t[1] ?? ''
        const rules = table.get(chain) ?? []
        table.set(chain, rules)
        if (t[0] === '-A') rules.push({ args: t.slice(2) })
        else if (t[0] === '-I') rules.splice(Number(t[2]) - 1, 0, { args: t.slice(3) })
        else if (t[0] === '-X') table.delete(chain)
      }
    }
  }
  return into
}

/** One branch of a packet's walk: its mark, its destination after DNAT, and how its table ended. */
export interface TraceState {
  mark: number
  dnat?: { ip: string, port: number }
  masquerade: boolean
  verdict?: 'ACCEPT' | 'DROP' | 'REJECT'
  path: string[]
}
type State = TraceState

export type SetDirection = 'src' | 'dst'

/** What `-m set --match-set NAME dirs` sees of a packet: addresses and the destination port after DNAT. */
export interface SetProbe {
  readonly src: string
  readonly dst: string
  readonly dport: number
  readonly protocol: Packet['protocol']
}

/** Set contents for `-m set`: whether the packet, read in the given directions, is a member of set `name`. */
export interface SetMatcher {
  test: (name: string, dirs: readonly SetDirection[], probe: SetProbe) => boolean
}

interface Ctx {
  readonly tables: RuleTables
  readonly table: string
  readonly pkt: Packet
  readonly family: IPFamily
  readonly env: TraceEnv
  readonly sets?: SetMatcher
}

const BUILTIN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'])

function sameIP (a: string, b: string): boolean {
  const pa = parseIP(a)
  const pb = parseIP(b)
  return pa !== null && pb !== null && pa.ip === pb.ip
}

function addrMatches (spec: string, ip: string): boolean {
  if (spec.includes('/')) {
    const c = parseCIDR(spec)
    return c !== null && cidrContains(c, ip)
  }
  return sameIP(spec, ip)
}

const isLocal = (env: TraceEnv, ip: string): boolean => env.localAddresses.some(a => sameIP(a, ip))

function parseMark (text: string): { value: number, mask: number } {
  const [v, m] = text.split('/')
  return { value: Number(v), mask: m === undefined ? 0xffffffff : Number(m) }
}

/**
 * Evaluates one rule's matches. Returns the branches: [true] or [false] for deterministic matches, and
 * both for a random statistic (the kernel may take either). `--rcheck` never matches: a new client has
 * no affinity entry yet.
 */
function matches (ctx: Ctx, st: State, args: readonly string[]): { ok: boolean[], target: number } {
  const dst = st.dnat?.ip ?? ctx.pkt.dst
  const dport = st.dnat?.port ?? ctx.pkt.port
  let random = false
  let neg = false
  let i = 0
  const fail = { ok: [false], target: -1 }
  for (; i < args.length; i++) {
    const a = args[i] as string
    const v = args[i + 1] ?? ''
    if (a === '-j') break
    if (a === '!') { neg = true; continue }
    let r: boolean | undefined
    switch (a) {
      case '-m': i++; continue
      case '--comment': case '--mode': case '--name': case '--seconds': i++; continue
      case '--reap': case '--set': continue
      case '--rcheck': r = false; break
      case '-p': i++; r = v.toLowerCase() === ctx.pkt.protocol.toLowerCase(); break
      case '-s': i++; r = addrMatches(v, ctx.pkt.src); break
      case '-d': i++; r = addrMatches(v, dst); break
      case '--dport': i++; r = Number(v) === dport; break
      case '--dst-type': i++; r = v === 'LOCAL' && isLocal(ctx.env, dst); break
      case '--src-type': i++; r = v === 'LOCAL' && isLocal(ctx.env, ctx.pkt.src); break
      case '--mark': { i++; const m = parseMark(v); r = (st.mark & m.mask) === (m.value & m.mask); break }
      case '--ctstate': {
        i++
        const states = v.split(',')
        r = states.includes('NEW') || (states.includes('DNAT') && st.dnat !== undefined)
        break
      }
      case '--probability': i++; random = true; continue
      case '--match-set': {
        const dirs = (args[i + 2] ?? '').split(',') as SetDirection[]
        if (ctx.sets === undefined) throw new Error(`iptables trace: --match-set ${v} without set contents`)
        if (dirs.some(d => d !== 'src' && d !== 'dst')) throw new Error(`iptables trace: bad set directions in: ${args.join(' ')}`)
        i += 2
        r = ctx.sets.test(v, dirs, { src: ctx.pkt.src, dst, dport, protocol: ctx.pkt.protocol })
        break
      }
      default: throw new Error(`iptables trace: unsupported match ${a} in: ${args.join(' ')}`)
    }
    if (neg) { r = !r; neg = false }
    if (!r) return fail
  }
  return { ok: random ? [true, false] : [true], target: i }
}

/** Runs `chain`; returns the branches that fell off its end or RETURNed (to continue in the caller) and those that ended. */
function runChain (ctx: Ctx, chain: string, st: State, depth: number): { cont: State[], done: State[] } {
  if (depth > 32) throw new Error(`iptables trace: jump loop at ${chain}`)
  const rules = ctx.tables.get(ctx.table)?.get(chain) ?? []
  let live: State[] = [st]
  const done: State[] = []
  const returned: State[] = []
  for (const rule of rules) {
    const next: State[] = []
    for (const s of live) {
      const m = matches(ctx, s, rule.args)
      for (const ok of m.ok) {
        if (!ok) { next.push(m.ok.length > 1 ? { ...s, path: [...s.path, `${chain}: random skip`] } : s); continue }
        const t = rule.args.slice(m.target + 1)
        const target = t[0] ?? ''
        const b: State = { ...s, path: [...s.path, `${chain} -j ${t.join(' ')}`] }
        switch (target) {
          case 'RETURN': returned.push(b); break
          case 'ACCEPT': case 'DROP': case 'REJECT': done.push({ ...b, verdict: target }); break
          case 'MARK': {
            const op = t[1]
            const val = Number(t[2])
            // iptables-save prints --or-mark X as --set-xmark X/X and --xor-mark X as --set-xmark X/0x0.
            const xm = op === '--set-xmark' ? parseMark(t[2] ?? '') : undefined
            const mark = op === '--or-mark' ? (b.mark | val) : op === '--xor-mark' ? (b.mark ^ val)
              : xm !== undefined ? ((b.mark & ~xm.mask) ^ xm.value) : NaN
            if (Number.isNaN(mark)) throw new Error(`iptables trace: unsupported MARK ${t.join(' ')}`)
            next.push({ ...b, mark: mark >>> 0 })
            break
          }
          case 'DNAT': {
            const to = t[t.indexOf('--to-destination') + 1] ?? ''
            const m6 = /^\[(.+)\]:(\d+)$/.exec(to)
            const idx = to.lastIndexOf(':')
            const dnat = m6 !== null ? { ip: m6[1] ?? '', port: Number(m6[2]) } : { ip: to.slice(0, idx), port: Number(to.slice(idx + 1)) }
            done.push({ ...b, dnat, verdict: 'ACCEPT' })
            break
          }
          case 'MASQUERADE': done.push({ ...b, masquerade: true, verdict: 'ACCEPT' }); break
          default: {
            if (!(ctx.tables.get(ctx.table)?.has(target) ?? false)) throw new Error(`iptables trace: jump to unknown chain ${target}`)
            const sub = runChain(ctx, target, b, depth + 1)
            next.push(...sub.cont)
            done.push(...sub.done)
          }
        }
      }
    }
    live = next
    if (live.length === 0) break
  }
  // A built-in chain's policy (ACCEPT here) ends the table for what falls off its end.
  if (BUILTIN.has(chain)) return { cont: [], done: [...done, ...[...live, ...returned].map(s => ({ ...s, verdict: 'ACCEPT' as const }))] }
  return { cont: [...live, ...returned], done }
}

/**
 * Runs built-in `chain` of `table` for one branch; returns every branch with its verdict (a chain that
 * does not exist accepts). The building block for tracers that add stages of their own (IPVS).
 */
export function runHook (tables: RuleTables, table: string, chain: string, pkt: Packet, family: IPFamily, env: TraceEnv, st: TraceState,
  sets?: SetMatcher): TraceState[] {
  const ctx: Ctx = { tables, table, pkt, family, env, ...(sets !== undefined ? { sets } : {}) }
  const r = runChain(ctx, chain, { ...st, verdict: undefined }, 0)
  return r.done
}

export function traceIptables (tables: RuleTables, family: IPFamily, env: TraceEnv, pkt: Packet, sets?: SetMatcher): IptablesTrace {
  const fromNode = isLocal(env, pkt.src)
  const start: State = { mark: 0, masquerade: false, path: [] }
  const finals: State[] = []
  for (const n of runHook(tables, 'nat', fromNode ? 'OUTPUT' : 'PREROUTING', pkt, family, env, start, sets)) {
    const dst = n.dnat?.ip ?? pkt.dst
    const hook = isLocal(env, dst) ? 'INPUT' : fromNode ? 'OUTPUT' : 'FORWARD'
    for (const f of runHook(tables, 'filter', hook, pkt, family, env, n, sets)) {
      if (f.verdict !== 'ACCEPT') { finals.push(f); continue }
      for (const p of runHook(tables, 'nat', 'POSTROUTING', pkt, family, env, { ...f, masquerade: false }, sets)) finals.push({ ...f, masquerade: p.masquerade })
    }
  }
  return summarize(finals)
}

/**
 * Folds the final branches into one answer: every branch forwarded (DNAT and ACCEPT) gives the endpoints;
 * every branch dropped or rejected alike gives that verdict; every branch accepted untouched is 'not-handled';
 * anything else is 'mixed'.
 */
export function summarize (finals: readonly TraceState[]): IptablesTrace {
  const paths = finals.map(f => `${f.path.join(' | ')} => ${f.verdict ?? '?'}${f.dnat !== undefined ? ` ${f.dnat.ip}:${f.dnat.port}` : ''}${f.masquerade ? ' masq' : ''}`)
  const forwarded = finals.filter(f => f.dnat !== undefined && f.verdict === 'ACCEPT')
  if (forwarded.length === finals.length && forwarded.length > 0) {
    const byEp = new Map<string, TracedEndpoint>()
    let mixed = false
    for (const f of forwarded) {
      const d = f.dnat as { ip: string, port: number }
      const k = `${d.ip}|${d.port}`
      const prev = byEp.get(k)
      if (prev !== undefined && prev.masquerade !== f.masquerade) mixed = true
      byEp.set(k, { ip: d.ip, port: d.port, masquerade: f.masquerade })
    }
    const endpoints = [...byEp.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port))
    return { verdict: mixed ? 'mixed' : 'forward', endpoints, paths }
  }
  if (forwarded.length > 0) return { verdict: 'mixed', endpoints: [], paths }
  const verdicts = new Set(finals.map(f => f.verdict))
  if (verdicts.size === 1 && (verdicts.has('DROP') || verdicts.has('REJECT'))) return { verdict: [...verdicts][0] as 'DROP' | 'REJECT', endpoints: [], paths }
  if (verdicts.size === 1 && verdicts.has('ACCEPT')) return { verdict: 'not-handled', endpoints: [], paths }
  return { verdict: 'mixed', endpoints: [], paths }
}
