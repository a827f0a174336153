// The ipsets of IPVS mode and their members, from the neutral plans. Each set answers one question the
// fixed rules ask (companion-rules.ts); Services only ever add members, never rules (the eTP=Local
// short-circuit DNAT is the one exception: one rule per entry point, see shortCircuits).
//
// Entry points are keyed like the virtual servers (desired.ts): (address, protocol, port), VIPs before
// NodePorts, the first claim wins. NodePorts are listed on every node address: where a NodePort virtual
// server exists (nodePortIPs) the sets steer it; elsewhere (loopback, addresses outside
// --nodeport-addresses) only its refusal applies, as PROXY.md §1 refuses NodePorts on every local address.
import type { Protocol } from '../../api/types.js'
import { fit } from '../../mem/fit.js'
import type { IPFamily } from '../../net/ip.js'
import { parseIP } from '../../net/ip.js'
import type { EntryKind, PortPlan } from '../plan.js'
import { nodePortIPsOf, type CompanionOptions } from './companion-options.js'
import type { IpsetContent, IpsetSpec, IpsetType } from './ipset.js'

/** What each set holds; the key is the set's name after the family prefix. */
export const SET_KINDS = {
  /** Every ClusterIP entry: masquerade from outside the pod network; a used port of a bound VIP. */
  'CLUSTER-IP': 'hash:ip,port',
  /** Every externalIP and LB IP entry: a used port of a bound VIP. */
  'EXTERNAL-IP': 'hash:ip,port',
  /** eTP=Cluster external entries (VIPs and NodePorts): always masqueraded. */
  'EXTERNAL-MASQ': 'hash:ip,port',
  /** eTP=Local external entries whose pods and node get the cluster set (DNAT to the ClusterIP). */
  'SHORT-CIRCUIT': 'hash:ip,port',
  /** Entries that DROP every new connection (usable endpoints exist, none for this node's Local policy). */
  DROP: 'hash:ip,port',
  /** Entries that DROP off-node clients only: pods and the node short-circuit. */
  'DROP-OFF-NODE': 'hash:ip,port',
  /** NodePorts without endpoints on node addresses that have no NodePort virtual server to refuse them. */
  REJECT: 'hash:ip,port',
  /** LB entries guarded by loadBalancerSourceRanges. */
  'LB-FW': 'hash:ip,port',
  /** LB entry + an allowed source CIDR. */
  'LB-SOURCE-CIDR': 'hash:ip,port,net',
  /** LB entry + an LB IP of the same service, allowed as a source when a range holds a node IP. */
  'LB-SOURCE-IP': 'hash:ip,port,ip',
  /** endpoint,proto:port,endpoint: an endpoint reaching itself through a service (hairpin) is masqueraded. */
  'LOOP-BACK': 'hash:ip,port,ip',
  /** Addresses on ferry-ipvs0: new connections to their unused ports are refused (kubernetes#72236). */
  'BOUND-IPS': 'hash:ip',
  /** healthCheckNodePorts (TCP), accepted on every address. */
  'HC-NODE-PORT': 'bitmap:port',
} as const satisfies Record<string, IpsetType>

export type SetKind = keyof typeof SET_KINDS
export const SET_KIND_LIST = Object.keys(SET_KINDS) as SetKind[]

/** IPv4 sets are FERRY-<kind>, IPv6 ones FERRY6-<kind> (one namespace holds both families' sets). */
export function setName (family: IPFamily, kind: SetKind): string {
  return (family === 'IPv4' ? 'FERRY-' : 'FERRY6-') + kind
}

export function companionSetSpecs (family: IPFamily): IpsetSpec[] {
  return SET_KIND_LIST.map(kind => ({ name: setName(family, kind), type: SET_KINDS[kind], family }))
}

/** One eTP=Local entry point whose pods and node are sent to the ClusterIP virtual server. */
export interface ShortCircuit {
  readonly spn: string
  /** The VIP; null for a NodePort (the set already matched the node address). */
  readonly address: string | null
  readonly protocol: Protocol
  readonly port: number
  readonly clusterIP: string
  readonly clusterPort: number
  /** The ClusterIP virtual server serves the cluster set (false under iTP=Local: see the gap in trace tests). */
  readonly clusterSet: boolean
}

export interface CompanionSets {
  /** Every set of the family, in SET_KIND_LIST order. */
  readonly sets: readonly IpsetContent[]
  readonly shortCircuits: readonly ShortCircuit[]
}

/** What one entry point adds to the sets when it wins its (address, protocol, port). */
interface EntryParts {
  readonly key: string
  readonly members: ReadonlyArray<readonly [SetKind, string]>
  readonly shortCircuit: ShortCircuit | null
}

/** One plan's share of the sets; cached per plan object, so its strings (and their hashes) are reused. */
interface PlanParts {
  readonly vips: readonly EntryParts[]
  readonly nodePorts: readonly EntryParts[]
  readonly always: ReadonlyArray<readonly [SetKind, string]>
  /** Its VIPs that are not node IPs: bound on ferry-ipvs0 unless the caller says otherwise. */
  readonly bound: readonly string[]
}

interface Context {
  readonly served: ReadonlySet<string>
  readonly nodeAddrs: readonly string[]
  readonly nodeIPs: ReadonlySet<string>
}

const LOOPBACK: Record<IPFamily, string> = { IPv4: '127.0.0.1', IPv6: '::1' }
const canon = (ip: string): string => parseIP(ip)?.ip ?? ip
const member = (ip: string, protocol: Protocol, port: number): string => `${ip},${protocol.toLowerCase()}:${port}`

/** Whether a source range covers everything: ipset's net types refuse /0, and such a range guards nothing. */
const everything = (cidr: string): boolean => cidr.endsWith('/0')

/** The members one entry point of `p` brings, as PROXY.md §1 decides it for each kind of source. */
function entryParts (p: PortPlan, kind: EntryKind, address: string, protocol: Protocol, port: number, served: boolean,
  nodePortCircuit: () => ShortCircuit): EntryParts {
  const info = p.sp.info
  const m = member(address, protocol, port)
  const out: Array<readonly [SetKind, string]> = []
  let shortCircuit: ShortCircuit | null = null
  const add = (k: SetKind, v: string): void => { out.push([k, v]) }
  const done = (): EntryParts => ({ key: m, members: fit(out), shortCircuit })
  if (kind === 'clusterIP') {
    add('CLUSTER-IP', m)
    // No internal set: REJECT comes from the virtual server without destinations; DROP needs a rule.
    if (p.internalSet === null && p.refusal === 'DROP') add('DROP', m)
    return done()
  }
  if (kind !== 'nodePort') add('EXTERNAL-IP', m)
  if (!p.hasAnyEndpoints) {
    if (p.refusal === 'DROP') add('DROP', m)
    else if (!served) add('REJECT', m)
    return done()
  }
  if (!served) {
    // A NodePort on an address without its virtual server: only an off-node refusal applies here.
    if (p.externalSet === null) add(p.shortCircuit ? 'DROP-OFF-NODE' : 'DROP', m)
    return done()
  }
  if (kind === 'loadBalancerIP' && p.firewall && !p.sourceRanges.some(everything)) {
    add('LB-FW', m)
    for (const r of p.sourceRanges) add('LB-SOURCE-CIDR', `${m},${r}`)
    if (p.allowFromNode) for (const ip of info.loadBalancerIPs) add('LB-SOURCE-IP', `${m},${canon(ip)}`)
  }
  if (!info.externalPolicyLocal) {
    add('EXTERNAL-MASQ', m)
    if (p.externalSet === null) add('DROP', m)
    return done()
  }
  if (p.shortCircuit) {
    add('SHORT-CIRCUIT', m)
    shortCircuit = kind === 'nodePort'
      ? nodePortCircuit()
      : { spn: info.spn, address, protocol, port, clusterIP: canon(info.clusterIP), clusterPort: info.port, clusterSet: p.internalSet === 'cluster' }
  }
  if (p.externalSet === null) add(p.shortCircuit ? 'DROP-OFF-NODE' : 'DROP', m)
  return done()
}

function planParts (p: PortPlan, ctx: Context): PlanParts {
  const info = p.sp.info
  const vips: EntryParts[] = []
  const nodePorts: EntryParts[] = []
  const bound: string[] = []
  for (const e of p.entryPoints) {
    if (e.address !== null) {
      const a = canon(e.address)
      vips.push(entryParts(p, e.kind, a, e.protocol, e.port, true, () => { throw new Error('unreachable') }))
      if (!ctx.nodeIPs.has(a) && !bound.includes(a)) bound.push(a)
      continue
    }
    let circuit: ShortCircuit | undefined
    const once = (): ShortCircuit => {
      circuit ??= { spn: info.spn, address: null, protocol: e.protocol, port: e.port, clusterIP: canon(info.clusterIP), clusterPort: info.port, clusterSet: p.internalSet === 'cluster' }
      return circuit
    }
    for (const a of ctx.nodeAddrs) nodePorts.push(entryParts(p, e.kind, a, e.protocol, e.port, ctx.served.has(a), once))
  }
  const always: Array<readonly [SetKind, string]> = []
  const proto = info.protocol.toLowerCase()
  // Hairpin needs only this node's endpoints (as kube-proxy's KUBE-LOOP-BACK): another node's pod reaches
  // a VIP through its own node. So a change of remote endpoints leaves every set as it was.
  for (const ep of p.allEndpoints) {
    if (!ep.isLocal) continue
    const ip = canon(ep.ip)
    always.push(['LOOP-BACK', `${ip},${proto}:${ep.port},${ip}`])
  }
  if (info.healthCheckNodePort !== 0) always.push(['HC-NODE-PORT', String(info.healthCheckNodePort)])
  return { vips: fit(vips), nodePorts: fit(nodePorts), always: fit(always), bound: fit(bound) }
}

/** Whether two plans' shares of the sets are equal: the same members, short-circuits and bound VIPs, in order. */
function sameParts (a: PlanParts, b: PlanParts): boolean {
  return sameEntries(a.vips, b.vips) && sameEntries(a.nodePorts, b.nodePorts) && sameMembers(a.always, b.always) &&
    a.bound.length === b.bound.length && a.bound.every((ip, i) => ip === b.bound[i])
}

function sameEntries (a: readonly EntryParts[], b: readonly EntryParts[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as EntryParts
    const y = b[i] as EntryParts
    if (x.key !== y.key || !sameMembers(x.members, y.members) || !sameCircuit(x.shortCircuit, y.shortCircuit)) return false
  }
  return true
}

function sameMembers (a: ReadonlyArray<readonly [SetKind, string]>, b: ReadonlyArray<readonly [SetKind, string]>): boolean {
  return a.length === b.length && a.every(([k, m], i) => k === b[i]?.[0] && m === b[i]?.[1])
}

function sameCircuit (a: ShortCircuit | null, b: ShortCircuit | null): boolean {
  if (a === null || b === null) return a === b
  return a.spn === b.spn && a.address === b.address && a.protocol === b.protocol && a.port === b.port &&
    a.clusterIP === b.clusterIP && a.clusterPort === b.clusterPort && a.clusterSet === b.clusterSet
}

interface Claim {
  /** The service port key of the plan that claims. */
  readonly owner: string
  readonly parts: EntryParts
  /** VIP claims win over NodePort claims; then plan order (seq), then order within the plan (idx). */
  readonly vip: boolean
  readonly seq: number
  readonly idx: number
}

/** Whether claim a wins over b. */
const before = (a: Claim, b: Claim): boolean =>
  a.vip !== b.vip ? a.vip : a.seq !== b.seq ? a.seq < b.seq : a.idx < b.idx

/** A plan the tracker holds: its parts and its place in plan order (kept while its key stays). */
interface Held { readonly plan: PortPlan, readonly parts: PlanParts, readonly seq: number }

export interface SetChange { readonly add: ReadonlySet<string>, readonly del: ReadonlySet<string> }

export interface CompanionSetsUpdate extends CompanionSets {
  /** Members added and removed per set name since the previous update; a set that did not change has no entry. */
  readonly changes: ReadonlyMap<string, SetChange>
  /** The tracker started over (first update, or the addresses changed): `changes` do not remove what was there. */
  readonly reset: boolean
  /** Whether shortCircuits (the only part of the rules that follows the Services) differ from the previous update's. */
  readonly circuitsChanged: boolean
  /** Plans whose parts were (re)built or dropped by this update: what it cost. */
  readonly visited: number
}

/**
 * The sets, kept up to date from one sync to the next, per service port key. An update is told which
 * keys changed, and visits only those: a plan it is not told about costs nothing, not even a lookup, so
 * one endpoint change costs a few set operations at any scale. Entry points are claimed like the virtual
 * servers (desired.ts): by (address, protocol, port), every VIP before any NodePort, then plan order.
 * Plan order is the order of `plans` (a Map): a key keeps its place while it stays, and a new key goes
 * last, as in a Map that the caller updates in place.
 */
export class CompanionSetsTracker {
  private fingerprint: string | undefined
  private held = new Map<string, Held>()
  private nextSeq = 0
  private claimants = new Map<string, Claim[]>()
  private winners = new Map<string, Claim>()
  private counts = new Map<SetKind, Map<string, number>>()
  private contents = new Map<SetKind, Set<string>>()
  private circuits = new Map<ShortCircuit, number>()
  private sortedCircuits: readonly ShortCircuit[] = []
  private bound = new Set<string>()
  /** Every set of the family, as live views of `contents` (made again on reset). */
  private sets: readonly IpsetContent[] = []
  private context: { readonly opts: CompanionOptions, readonly ctx: Context, readonly fingerprint: string } | undefined

  /**
   * The sets for `plans` (keyed by service port; other families are ignored). `changed`: the keys that
   * may differ from the previous update (added, removed or replaced); null visits every key, skipping
   * plans that are the same objects as before. Member sets are live views, valid until the next update.
   */
  update (plans: ReadonlyMap<string, PortPlan>, changed: ReadonlySet<string> | null, opts: CompanionOptions): CompanionSetsUpdate {
    const { ctx, fingerprint } = this.contextOf(opts)
    const explicitBound = opts.boundAddresses !== undefined
    const reset = fingerprint !== this.fingerprint
    if (reset) this.reset(fingerprint, opts.family)
    // Only the sets that change get an entry: most endpoint changes change none.
    const changes = new Map<SetKind, { add: Set<string>, del: Set<string> }>()
    const changeOf = (k: SetKind): { add: Set<string>, del: Set<string> } => {
      let ch = changes.get(k)
      if (ch === undefined) { ch = { add: new Set<string>(), del: new Set<string>() }; changes.set(k, ch) }
      return ch
    }
    const inc = (k: SetKind, m: string): void => {
      const c = this.counts.get(k) as Map<string, number>
      const n = c.get(m) ?? 0
      c.set(m, n + 1)
      if (n > 0) return
      ;(this.contents.get(k) as Set<string>).add(m)
      const ch = changeOf(k)
      if (!ch.del.delete(m)) ch.add.add(m)
    }
    const dec = (k: SetKind, m: string): void => {
      const c = this.counts.get(k) as Map<string, number>
      const n = c.get(m) ?? 0
      if (n > 1) { c.set(m, n - 1); return }
      c.delete(m)
      ;(this.contents.get(k) as Set<string>).delete(m)
      const ch = changeOf(k)
      if (!ch.add.delete(m)) ch.del.add(m)
    }

    const touched = new Set<string>()
    let visited = 0
    const drop = (key: string, h: Held): void => {
      for (const [k, m] of h.parts.always) dec(k, m)
      if (!explicitBound) for (const ip of h.parts.bound) dec('BOUND-IPS', ip)
      for (const e of [...h.parts.vips, ...h.parts.nodePorts]) {
        const list = (this.claimants.get(e.key) ?? []).filter(c => c.owner !== key)
        if (list.length > 0) this.claimants.set(e.key, list)
        else this.claimants.delete(e.key)
        touched.add(e.key)
      }
    }
    const take = (key: string, plan: PortPlan, seq: number, parts = planParts(plan, ctx)): void => {
      this.held.set(key, { plan, parts, seq })
      for (const [k, m] of parts.always) inc(k, m)
      if (!explicitBound) for (const ip of parts.bound) inc('BOUND-IPS', ip)
      const claim = (e: EntryParts, vip: boolean, idx: number): void => {
        const c: Claim = { owner: key, parts: e, vip, seq, idx }
        const list = this.claimants.get(e.key)
        if (list === undefined) this.claimants.set(e.key, [c])
        else list.push(c)
        touched.add(e.key)
      }
      parts.vips.forEach((e, i) => { claim(e, true, i) })
      parts.nodePorts.forEach((e, i) => { claim(e, false, i) })
    }
    const visit = (key: string): void => {
      const p = plans.get(key)
      const plan = p !== undefined && p.sp.info.family === opts.family ? p : undefined
      const h = this.held.get(key)
      if (h?.plan === plan) return
      visited++
      if (h !== undefined && plan !== undefined) {
        // Most changes (a remote endpoint came or went) leave a plan's share of the sets as it was:
        // then the held parts stay, and so do the claims and winners that point at them.
        const parts = planParts(plan, ctx)
        if (sameParts(h.parts, parts)) { this.held.set(key, { plan, parts: h.parts, seq: h.seq }); return }
        drop(key, h)
        // A replaced plan keeps its key's place in plan order.
        take(key, plan, h.seq, parts)
        return
      }
      if (h !== undefined) { drop(key, h); this.held.delete(key); return }
      if (plan !== undefined) take(key, plan, this.nextSeq++)
    }
    if (changed === null) {
      for (const key of [...this.held.keys()]) if (!plans.has(key)) visit(key)
      for (const key of plans.keys()) visit(key)
    } else {
      for (const key of changed) visit(key)
    }

    let circuitsChanged = reset
    const circuitDelta = (sc: ShortCircuit, by: number): void => {
      const n = (this.circuits.get(sc) ?? 0) + by
      if (n > 0) this.circuits.set(sc, n)
      else this.circuits.delete(sc)
      circuitsChanged = true
    }
    for (const key of touched) {
      let best: Claim | undefined
      for (const c of this.claimants.get(key) ?? []) if (best === undefined || before(c, best)) best = c
      const old = this.winners.get(key)
      if (old?.parts === best?.parts) continue
      if (old !== undefined) {
        for (const [k, m] of old.parts.members) dec(k, m)
        if (old.parts.shortCircuit !== null) circuitDelta(old.parts.shortCircuit, -1)
      }
      if (best === undefined) { this.winners.delete(key); continue }
      this.winners.set(key, best)
      for (const [k, m] of best.parts.members) inc(k, m)
      if (best.parts.shortCircuit !== null) circuitDelta(best.parts.shortCircuit, 1)
    }
    if (explicitBound) {
      const want = new Set(opts.boundAddresses)
      for (const ip of this.bound) if (!want.has(ip)) dec('BOUND-IPS', ip)
      for (const ip of want) if (!this.bound.has(ip)) inc('BOUND-IPS', ip)
      this.bound = want
    }

    // VIP rules first (a NodePort rule matches any address the set let through), then a stable order.
    if (circuitsChanged) {
      this.sortedCircuits = [...this.circuits.keys()].sort((a, b) => (a.address === null ? 1 : 0) - (b.address === null ? 1 : 0) ||
        (a.spn < b.spn ? -1 : a.spn > b.spn ? 1 : 0) || (a.address ?? '').localeCompare(b.address ?? '') || a.port - b.port)
    }
    const named = new Map<string, SetChange>()
    for (const [kind, ch] of changes) if (ch.add.size > 0 || ch.del.size > 0) named.set(setName(opts.family, kind), ch)
    return { sets: this.sets, shortCircuits: this.sortedCircuits, changes: named, reset, circuitsChanged, visited }
  }

  /** The node addresses' part of the parts, made once per options object (the caller keeps it while they hold). */
  private contextOf (opts: CompanionOptions): { ctx: Context, fingerprint: string } {
    if (this.context?.opts === opts) return this.context
    const served = nodePortIPsOf(opts)
    const ctx: Context = {
      served: new Set(served),
      nodeAddrs: [...new Set([...served, ...opts.nodeIPs, LOOPBACK[opts.family]])],
      nodeIPs: new Set(opts.nodeIPs),
    }
    const fingerprint = `${opts.family} ${served.join(',')} ${ctx.nodeAddrs.join(',')} ${opts.boundAddresses !== undefined ? 'bound' : 'vips'}`
    this.context = { opts, ctx, fingerprint }
    return this.context
  }

  private reset (fingerprint: string, family: IPFamily): void {
    this.fingerprint = fingerprint
    this.held = new Map()
    this.nextSeq = 0
    this.claimants = new Map()
    this.winners = new Map()
    this.counts = new Map(SET_KIND_LIST.map(k => [k, new Map<string, number>()]))
    this.contents = new Map(SET_KIND_LIST.map(k => [k, new Set<string>()]))
    this.sets = SET_KIND_LIST.map(kind => ({ spec: { name: setName(family, kind), type: SET_KINDS[kind], family }, entries: this.contents.get(kind) as Set<string> }))
    this.circuits = new Map()
    this.sortedCircuits = []
    this.bound = new Set()
  }
}

/** Plans in their order, keyed by position: for callers that hold a list rather than a keyed map. */
export function plansByIndex (plans: Iterable<PortPlan>): Map<string, PortPlan> {
  const out = new Map<string, PortPlan>()
  for (const p of plans) out.set(String(out.size), p)
  return out
}

/** The sets for `plans` from scratch (pure: a fresh tracker). */
export function buildCompanionSets (plans: Iterable<PortPlan>, opts: CompanionOptions): CompanionSets {
  const u = new CompanionSetsTracker().update(plansByIndex(plans), null, opts)
  return { sets: u.sets, shortCircuits: u.shortCircuits }
}
