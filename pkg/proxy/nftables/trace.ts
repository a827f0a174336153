// A packet-flow tracer over an NftModel: it walks a new connection through the base chains of every hook
// the kernel passes (prerouting or output, then input, forward and postrouting), in priority order, and
// follows every branch a random number can take: a `numgen random mod K == v` match splits a branch in two,
// a map key with `numgen random mod N` in it splits into N lookups. Each branch carries its probability,
// so tests can check the spread over endpoints as well as which endpoints are reachable. Its answer means
// what traceIptables' does (../iptables/trace.ts), so the plan, iptables and nftables tracers compare.
import { cidrContains, parseCIDR, parseIP, type IPFamily } from '../../net/ip.js'
import { summarize, type IptablesTrace, type TraceState } from '../iptables/trace.js'
import type { Packet, TraceEnv } from '../trace.js'
import type { NftChain, NftHook, NftModel, NftSet, NftTable } from './model.js'
import type { NftMatch, NftRule, NftSelector, NftStatement, NftVerdict } from './model-rule.js'

export interface NftTrace extends IptablesTrace {
  /** For 'forward': the chance of each endpoint (same order as endpoints), summing to 1. */
  readonly shares: readonly number[]
}

/** One branch of a packet's walk. */
interface Branch extends TraceState {
  /** Destination after DNAT (the original one before). */
  daddr: string
  dport: number
  /** Probability of this branch among all of the packet's branches. */
  p: number
}

interface Ctx {
  readonly tables: readonly NftTable[]
  readonly family: 'ip' | 'ip6'
  readonly pkt: Packet
  readonly src: string
  readonly env: TraceEnv
}

interface Outcome { next: Branch[], ret: Branch[], done: Branch[] }

const canonical = (ip: string): string => parseIP(ip)?.ip ?? ip
const isLocal = (env: TraceEnv, ip: string): boolean => env.localAddresses.some(a => canonical(a) === canonical(ip))

/** The values a selector can yield on this branch, each with its chance; none if it does not apply. */
function values (ctx: Ctx, b: Branch, s: NftSelector): Array<{ v: string, p: number }> {
  switch (s.kind) {
    case 'addr': return s.family === ctx.family ? [{ v: s.dir === 'saddr' ? ctx.src : b.daddr, p: 1 }] : []
    case 'l4proto': return [{ v: ctx.pkt.protocol.toLowerCase(), p: 1 }]
    case 'dport': return s.proto === 'th' || s.proto === ctx.pkt.protocol.toLowerCase() ? [{ v: String(b.dport), p: 1 }] : []
    case 'numgen': return Array.from({ length: s.mod }, (_, i) => ({ v: String(i), p: 1 / s.mod }))
  }
}

/** Every key a concatenation can make on this branch, as element keys are written (`a . b . c`). */
function keys (ctx: Ctx, b: Branch, key: readonly NftSelector[]): Array<{ v: string, p: number }> {
  let out = [{ v: '', p: 1 }]
  for (const s of key) {
    const vs = values(ctx, b, s)
    out = out.flatMap(o => vs.map(x => ({ v: o.v === '' ? x.v : `${o.v} . ${x.v}`, p: o.p * x.p })))
  }
  return out
}

function valueMatches (selector: NftSelector, constant: string, v: string): boolean {
  if (selector.kind === 'addr' && constant.includes('/')) {
    const c = parseCIDR(constant)
    return c !== null && cidrContains(c, v)
  }
  return constant === v
}

function lookupSet (ctx: Ctx, name: string): NftSet {
  for (const t of ctx.tables) {
    const s = t.sets.get(name)
    if (s !== undefined) return s
  }
  throw new Error(`nft trace: no set ${name}`)
}

/** The chance that a match holds on this branch. */
function matchChance (ctx: Ctx, b: Branch, m: NftMatch): number {
  const chance = (alts: Array<{ v: string, p: number }>, test: (v: string) => boolean, negate: boolean): number =>
    alts.reduce((sum, a) => sum + (test(a.v) !== negate ? a.p : 0), 0)
  switch (m.kind) {
    case 'cmp': return chance(values(ctx, b, m.key), v => valueMatches(m.key, m.value, v), m.negate)
    case 'anon-set': return chance(values(ctx, b, m.key), v => m.values.some(c => valueMatches(m.key, c, v)), m.negate)
    case 'lookup': {
      // Dynamic (affinity) sets hold what the ruleset loaded: nothing, so this traces a first connection.
      const s = lookupSet(ctx, m.set)
      return chance(keys(ctx, b, m.key), v => s.elements.has(v), m.negate)
    }
    case 'fib': return isLocal(ctx.env, m.dir === 'saddr' ? ctx.src : b.daddr) !== m.negate ? 1 : 0
    // A new connection: never invalid, established or related.
    case 'ct-state': return m.states.includes('new') !== m.negate ? 1 : 0
    case 'ct-status': return (m.statuses.includes('dnat') && b.dnat !== undefined) !== m.negate ? 1 : 0
    case 'mark': return ((b.mark & m.mask) >>> 0 === m.value) !== m.negate ? 1 : 0
  }
}

const split = (b: Branch, p: number, note?: string): Branch =>
  ({ ...b, p: b.p * p, path: note === undefined ? b.path : [...b.path, note] })

function isMatch (it: NftMatch | NftStatement): it is NftMatch {
  return it.kind === 'cmp' || it.kind === 'anon-set' || it.kind === 'lookup' || it.kind === 'fib' || it.kind === 'ct-state' ||
    it.kind === 'ct-status' || it.kind === 'mark'
}

function applyVerdict (ctx: Ctx, b: Branch, v: NftVerdict, depth: number, out: Outcome): void {
  switch (v.kind) {
    case 'accept': out.done.push({ ...b, verdict: 'ACCEPT' }); return
    case 'drop': out.done.push({ ...b, verdict: 'DROP' }); return
    case 'return': out.ret.push(b); return
    case 'continue': out.next.push(b); return
    case 'jump': case 'goto': {
      const sub = runChain(ctx, v.chain, b, depth + 1)
      // After a jump the caller goes on with its next rule; after a goto, the caller's caller does.
      if (v.kind === 'jump') out.next.push(...sub.cont)
      else out.ret.push(...sub.cont)
      out.done.push(...sub.done)
    }
  }
}

/** Runs one rule on one branch. */
function runRule (ctx: Ctx, chain: string, rule: NftRule, start: Branch, depth: number): Outcome {
  const out: Outcome = { next: [], ret: [], done: [] }
  const here = `${chain}: ${rule.text}`
  let live: Branch[] = [start]
  for (const it of rule.items) {
    const nextLive: Branch[] = []
    for (const b of live) {
      if (isMatch(it)) {
        const p = matchChance(ctx, b, it)
        const random = p > 0 && p < 1
        if (p > 0) nextLive.push(split(b, p, random ? `${here} [random: match]` : undefined))
        if (p < 1) out.next.push(split(b, 1 - p, random ? `${here} [random: no match]` : undefined))
        continue
      }
      switch (it.kind) {
        case 'counter': case 'set-update': nextLive.push(b); break
        case 'mark-set': {
          const mark = it.op === 'or' ? b.mark | it.value : it.op === 'xor' ? b.mark ^ it.value : it.value
          nextLive.push({ ...b, mark: mark >>> 0 })
          break
        }
        case 'masquerade': out.done.push({ ...b, masquerade: true, verdict: 'ACCEPT', path: [...b.path, here] }); break
        case 'reject': out.done.push({ ...b, verdict: 'REJECT', path: [...b.path, here] }); break
        case 'dnat': {
          const port = it.port ?? b.dport
          out.done.push({ ...b, daddr: it.ip, dport: port, dnat: { ip: it.ip, port }, verdict: 'ACCEPT', path: [...b.path, here] })
          break
        }
        case 'dnat-map': {
          const s = lookupSet(ctx, it.map)
          for (const k of keys(ctx, b, it.key)) {
            const v = s.elements.get(k.v)
            const kb = split(b, k.p, `${here} [${k.v}]`)
            // A failed lookup breaks the rule: the chain goes on with its next rule.
            if (v === undefined || v === null || !('data' in v)) { out.next.push(kb); continue }
            const ip = v.data[0] ?? ''
            const port = Number(v.data[1])
            out.done.push({ ...kb, daddr: ip, dport: port, dnat: { ip, port }, verdict: 'ACCEPT' })
          }
          break
        }
        case 'vmap': {
          const s = lookupSet(ctx, it.map)
          for (const k of keys(ctx, b, it.key)) {
            const v = s.elements.get(k.v)
            const kb = split(b, k.p, v === undefined ? undefined : `${here} [${k.v}]`)
            if (v === undefined || v === null || !('verdict' in v)) { out.next.push(kb); continue }
            applyVerdict(ctx, kb, v.verdict, depth, out)
          }
          break
        }
        case 'verdict': applyVerdict(ctx, { ...b, path: [...b.path, here] }, it.verdict, depth, out); break
      }
    }
    live = nextLive
  }
  // Matched to the end without a verdict: the chain continues.
  out.next.push(...live)
  return out
}

function findChain (ctx: Ctx, name: string): NftChain {
  for (const t of ctx.tables) {
    const c = t.chains.get(name)
    if (c !== undefined) return c
  }
  throw new Error(`nft trace: jump to unknown chain ${name}`)
}

/** Runs a chain; returns what fell off its end or returned (for the caller) and what ended. */
function runChain (ctx: Ctx, name: string, b: Branch, depth: number): { cont: Branch[], done: Branch[] } {
  if (depth > 64) throw new Error(`nft trace: jump loop at ${name}`)
  let live = [b]
  const ret: Branch[] = []
  const done: Branch[] = []
  for (const rule of findChain(ctx, name).rules) {
    const next: Branch[] = []
    for (const s of live) {
      const o = runRule(ctx, name, rule, s, depth)
      next.push(...o.next)
      ret.push(...o.ret)
      done.push(...o.done)
    }
    live = next
    if (live.length === 0) break
  }
  return { cont: [...live, ...ret], done }
}

/** Runs every base chain of a hook in priority order; an accept moves on to the next base chain. */
function runHook (ctx: Ctx, hook: NftHook, start: Branch[]): Branch[] {
  const chains = ctx.tables.flatMap(t => [...t.chains.values()].filter(c => c.base?.hook === hook))
    .sort((a, c) => (a.base?.priority ?? 0) - (c.base?.priority ?? 0))
  let live: Branch[] = start.map(b => ({ ...b, verdict: undefined }))
  const ended: Branch[] = []
  for (const c of chains) {
    const next: Branch[] = []
    for (const b of live) {
      const r = runChain(ctx, c.name, b, 0)
      const policy = c.base?.policy === 'drop' ? 'DROP' : 'ACCEPT'
      for (const s of [...r.done, ...r.cont.map(x => ({ ...x, verdict: policy } as const))]) {
        if (s.verdict === 'ACCEPT') next.push({ ...s, verdict: undefined })
        else ended.push(s)
      }
    }
    live = next
  }
  return [...ended, ...live.map(b => ({ ...b, verdict: 'ACCEPT' as const }))]
}

/** The tables a packet of `family` passes: `ip` (or `ip6`) and `inet` ones. */
function tablesFor (model: NftModel, family: IPFamily): NftTable[] {
  const word = family === 'IPv4' ? 'ip' : 'ip6'
  return model.tables().filter(t => t.family === word || t.family === 'inet')
}

export function traceNft (model: NftModel, family: IPFamily, env: TraceEnv, pkt: Packet): NftTrace {
  const ctx: Ctx = { tables: tablesFor(model, family), family: family === 'IPv4' ? 'ip' : 'ip6', pkt, src: canonical(pkt.src), env }
  const fromNode = isLocal(env, pkt.src)
  const start: Branch = { mark: 0, masquerade: false, path: [], daddr: canonical(pkt.dst), dport: pkt.port, p: 1 }
  const finals: Branch[] = []
  const accepted = (bs: Branch[]): Branch[] => bs.filter(b => { if (b.verdict !== 'ACCEPT') finals.push(b); return b.verdict === 'ACCEPT' })
  if (fromNode) {
    // Output, postrouting, then (to a local address, through loopback) input.
    for (const b of accepted(runHook(ctx, 'output', [start]))) {
      for (const p of accepted(runHook(ctx, 'postrouting', [b]))) {
        if (isLocal(env, p.daddr)) finals.push(...runHook(ctx, 'input', [p]))
        else finals.push(p)
      }
    }
  } else {
    for (const b of accepted(runHook(ctx, 'prerouting', [start]))) {
      if (isLocal(env, b.daddr)) { finals.push(...runHook(ctx, 'input', [b])); continue }
      for (const f of accepted(runHook(ctx, 'forward', [b]))) finals.push(...runHook(ctx, 'postrouting', [f]))
    }
  }
  const r = summarize(finals)
  const share = new Map<string, number>()
  let total = 0
  for (const f of finals) {
    if (f.dnat === undefined || f.verdict !== 'ACCEPT') continue
    const k = `${f.dnat.ip}|${f.dnat.port}`
    share.set(k, (share.get(k) ?? 0) + f.p)
    total += f.p
  }
  const shares = r.verdict === 'forward' ? r.endpoints.map(e => (share.get(`${e.ip}|${e.port}`) ?? 0) / total) : []
  return { ...r, shares }
}
