// Pure rendering of DesiredState into one iptables-restore payload (*filter, then *nat), for use with
// `iptables-restore --noflush --counters`. Under --noflush a declared chain (":X - [0:0]") is flushed and
// rewritten, and an undeclared one is left alone. So a full sync declares every chain; a partial sync
// declares the top-level chains (always rewritten) and the per-service chains of changed services only;
// chains of unchanged services are neither declared nor written. Stale per-service chains are declared
// (which flushes them, dropping their references) and deleted with -X at the end of the table.
import type { DesiredState } from '../types.js'
import { Chain, isPerServiceChain } from './names.js'
import { DISCARD, Lines } from './lines.js'
import { OwnedChains } from './owned.js'
import { countPlanRules, planChains, planService, type PlannedEndpoint, type ServicePlan } from './plan.js'
import { masqueradeMark, resolveRenderOptions, type RenderOptions, type RenderOptionsInput } from './options.js'

export interface RuleCounts { readonly filter: number, readonly nat: number }

/** Lines a full sync adds at the end of each table (jumps from built-in chains, the mangle canary). */
export interface TableExtras { readonly filter?: readonly string[], readonly nat?: readonly string[], readonly mangle?: readonly string[] }

export interface Rendered {
  readonly kind: 'full' | 'partial'
  /** The iptables-restore input. */
  readonly payload: string
  /** Per-service nat chains that exist once the payload is applied (skipped services included). */
  readonly ownedChains: OwnedChains
  /** Per-service nat chains the payload flushes and deletes. */
  readonly deletedChains: readonly string[]
  readonly rulesWritten: RuleCounts
  readonly rulesTotal: RuleCounts
}

const FILTER_CHAINS = [Chain.SERVICES, Chain.EXTERNAL_SERVICES, Chain.FORWARD, Chain.NODEPORTS,
  Chain.PROXY_FIREWALL, Chain.FIREWALL, Chain.CANARY] as const
const NAT_CHAINS = [Chain.SERVICES, Chain.NODEPORTS, Chain.POSTROUTING, Chain.MARK_MASQ, Chain.CANARY] as const

const probabilityCache: string[] = []
/** Probability for rule i of n with n - i = remaining: 1/remaining, printed like Go's %0.10f. */
export function probability (remaining: number): string {
  let s = probabilityCache[remaining]
  if (s === undefined) {
    s = (1 / remaining).toFixed(10)
    probabilityCache[remaining] = s
  }
  return s
}

/**
 * Every chain rewritten. Per-service chains in `existingChains` (the previous sync's OwnedChains, or
 * FERRY- chains found by iptables-save) that the new state does not own are deleted.
 */
export function renderFull (state: DesiredState, opts: RenderOptionsInput, existingChains: ReadonlySet<string> = new Set(),
  extras: TableExtras = {}): Rendered {
  return collect(streamFull(state, opts, existingChains, extras))
}

/**
 * Top-level chains plus the per-service chains of `changed` services (servicePortKeys). Chains in
 * `previouslyOwnedChains` that the new state no longer owns are deleted. Pass the previous Rendered's
 * ownedChains: then only the changed services' entries are compared.
 */
export function renderPartial (state: DesiredState, changed: ReadonlySet<string>, previouslyOwnedChains: ReadonlySet<string>,
  opts: RenderOptionsInput): Rendered {
  return collect(streamPartial(state, changed, previouslyOwnedChains, opts))
}

/**
 * A render whose payload comes in pieces, so it can be piped into iptables-restore while the rest is
 * still being rendered. Ownership and the filter table are decided before the first piece; the nat rules
 * (the bulk) are written as `chunks()` is iterated. The pieces joined are exactly renderFull/renderPartial's
 * payload; the rule counts are known once every piece has been taken.
 */
export interface RenderStream {
  readonly kind: 'full' | 'partial'
  readonly ownedChains: OwnedChains
  readonly deletedChains: readonly string[]
  /** The payload in order; iterate once. */
  chunks: () => Generator<string, void, undefined>
  /** Valid after chunks() is exhausted. */
  readonly rulesWritten: RuleCounts
  readonly rulesTotal: RuleCounts
}

/** renderFull as a stream. */
export function streamFull (state: DesiredState, opts: RenderOptionsInput, existingChains: ReadonlySet<string> = new Set(),
  extras: TableExtras = {}): RenderStream {
  return render(state, null, existingChains, opts, extras)
}

/** renderPartial as a stream. */
export function streamPartial (state: DesiredState, changed: ReadonlySet<string>, previouslyOwnedChains: ReadonlySet<string>,
  opts: RenderOptionsInput): RenderStream {
  return render(state, changed, previouslyOwnedChains, opts, {})
}

/** Takes every piece of a stream and joins them into one Rendered. */
export function collect (r: RenderStream): Rendered {
  const parts: string[] = []
  for (const c of r.chunks()) parts.push(c)
  return { kind: r.kind, payload: parts.join(''), ownedChains: r.ownedChains, deletedChains: r.deletedChains, rulesWritten: r.rulesWritten, rulesTotal: r.rulesTotal }
}

type Sink = Pick<Lines, 'push'>

interface Out {
  readonly filterRules: Sink
  /** nat FERRY-SERVICES */
  readonly natServices: Sink
  /** nat FERRY-NODEPORTS */
  readonly natNodePorts: Sink
}

/** One nat chain whose rules pass two writes: a per-service chain of a plan, or a top-level chain. */
interface ChainJob {
  readonly name: string
  readonly plan?: ServicePlan
  readonly kind: 'svc' | 'svl' | 'ext' | 'fw' | 'sep' | 'top'
  readonly ep?: PlannedEndpoint
}

/** The per-service chains of a plan, in planChains() order. */
function chainJobs (p: ServicePlan, into: ChainJob[]): void {
  if (p.usesCluster) into.push({ name: p.names.svc, plan: p, kind: 'svc' })
  if (p.usesLocal) into.push({ name: p.names.svl, plan: p, kind: 'svl' })
  if (p.usesExt) into.push({ name: p.names.ext, plan: p, kind: 'ext' })
  if (p.usesFW) into.push({ name: p.names.fw, plan: p, kind: 'fw' })
  for (const ep of p.allEps) into.push({ name: ep.chain, plan: p, kind: 'sep', ep })
}

function byName (a: ChainJob, b: ChainJob): number { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0 }

function render (state: DesiredState, changed: ReadonlySet<string> | null, previous: ReadonlySet<string>,
  input: RenderOptionsInput, extras: TableExtras): RenderStream {
  const opts = resolveRenderOptions({ ...input, family: state.family })
  const mark = masqueradeMark(opts.masqueradeBit)
  // Pass one (before any output): plans, the filter table, chain declarations and ownership.
  const filterRules = new Lines()
  const pass1: Out = { filterRules, natServices: DISCARD, natNodePorts: DISCARD }
  // Every plan in service order: pass two writes the top-level nat chains from them at their turn.
  const plans: ServicePlan[] = []
  let skippedNatRules = 0
  // The nat chains pass two writes, in name order. libiptc keeps its chains in a sorted list with a coarse
  // index: rules written chain by chain in name order, and chains declared in reverse name order (each new
  // chain then goes to the head of the list, found at once), restore fastest (bench/README.md).
  const jobs: ChainJob[] = []
  let totalEndpoints = 0
  for (const sp of state.services.values()) totalEndpoints += sp.allReachableEndpoints.length
  const comments = totalEndpoints <= opts.largeClusterEndpoints

  // Static rules of the top-level filter chains (the nat ones are written in pass two).
  if (!opts.conntrackTCPBeLiberal) filterRules.push(`-A ${Chain.FORWARD} -m conntrack --ctstate INVALID -j DROP`)
  filterRules.push(`-A ${Chain.FORWARD} -m comment --comment "ferry forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`)
  filterRules.push(`-A ${Chain.FORWARD} -m comment --comment "ferry forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`)
  if (opts.localhostNodePorts) {
    filterRules.push(`-A ${Chain.FIREWALL} -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`)
  }

  // Ownership: a partial sync starting from an OwnedChains updates only the changed services' entries.
  const incremental = changed !== null && previous instanceof OwnedChains
  const byService = new Map<string, readonly string[]>()
  for (const [key, sp] of state.services) {
    if (sp.info.family !== opts.family) continue
    const plan = planService(sp, opts)
    writeTopLevel(plan, pass1)
    plans.push(plan)
    const write = changed === null || changed.has(key)
    if (write || !incremental) byService.set(key, planChains(plan))
    if (write) chainJobs(plan, jobs)
    else skippedNatRules += countPlanRules(plan, opts)
  }
  for (const name of [Chain.MARK_MASQ, Chain.POSTROUTING, Chain.SERVICES, Chain.NODEPORTS]) jobs.push({ name, kind: 'top' })
  jobs.sort(byName)
  const natChains = new Lines()
  for (let i = jobs.length - 1; i >= 0; i--) {
    const j = jobs[i]
    if (j !== undefined && j.kind !== 'top') natChains.push(`:${j.name} - [0:0]`)
  }

  let owned: OwnedChains
  const deleted: string[] = []
  if (incremental) {
    const updates = new Map<string, readonly string[]>()
    for (const key of changed) {
      const now = byService.get(key) ?? []
      updates.set(key, now)
      const before = previous.chainsOf(key)
      if (before !== undefined) for (const c of before) if (!now.includes(c)) deleted.push(c)
    }
    owned = previous.with(updates)
  } else {
    owned = new OwnedChains(byService)
    if (previous instanceof OwnedChains) {
      for (const [key, before] of previous.services()) {
        const now = byService.get(key)
        for (const c of before) if (now === undefined || !now.includes(c)) deleted.push(c)
      }
    } else if (previous.size > 0) {
      for (const c of previous) if (isPerServiceChain(c) && !owned.has(c)) deleted.push(c)
    }
  }

  const head: string[] = ['*filter']
  for (const c of FILTER_CHAINS) head.push(`:${c} - [0:0]`)
  const natHead: string[] = ['COMMIT', '*nat']
  for (const c of NAT_CHAINS) natHead.push(`:${c} - [0:0]`)
  for (const c of deleted) natHead.push(`:${c} - [0:0]`)
  const tail: string[] = []
  for (const c of deleted) tail.push(`-X ${c}`)
  tail.push(...(extras.nat ?? []), 'COMMIT')
  if (extras.mangle !== undefined && extras.mangle.length > 0) tail.push('*mangle', ...extras.mangle, 'COMMIT')
  tail.push('')

  let natRuleCount = -1
  const filterCount = filterRules.count
  const counts = (): { written: RuleCounts, total: RuleCounts } => {
    if (natRuleCount < 0) throw new Error('render stream: rule counts are known only after every chunk was taken')
    return { written: { filter: filterCount, nat: natRuleCount }, total: { filter: filterCount, nat: natRuleCount + skippedNatRules } }
  }

  // Pass two: the nat rules, handed out as they fill.
  function * chunks (): Generator<string, void, undefined> {
    const first: string[] = [head.join('\n')]
    if (filterRules.count > 0) first.push(filterRules.join())
    if (extras.filter !== undefined && extras.filter.length > 0) first.push(extras.filter.join('\n'))
    first.push(natHead.join('\n'))
    if (natChains.count > 0) first.push(natChains.join())
    yield first.join('\n') + '\n'
    const natRules = new Lines()
    for (const job of jobs) {
      if (job.plan !== undefined) writeServiceChain(job, opts, comments, natRules)
      else if (job.name === Chain.MARK_MASQ) natRules.push(`-A ${Chain.MARK_MASQ} -j MARK --or-mark ${mark}`)
      else if (job.name === Chain.POSTROUTING) {
        natRules.push(`-A ${Chain.POSTROUTING} -m mark ! --mark ${mark}/${mark} -j RETURN`)
        // Clear the bit so a packet that re-crosses the stack (after encapsulation) is not masqueraded twice.
        natRules.push(`-A ${Chain.POSTROUTING} -j MARK --xor-mark ${mark}`)
        natRules.push(`-A ${Chain.POSTROUTING} -m comment --comment "ferry service traffic requiring SNAT" -j MASQUERADE --random-fully`)
      } else if (job.name === Chain.SERVICES) {
        const out: Out = { filterRules: DISCARD, natServices: natRules, natNodePorts: DISCARD }
        for (const plan of plans) writeTopLevel(plan, out)
        writeNodePortJumps(opts, natRules)
      } else {
        const out: Out = { filterRules: DISCARD, natServices: DISCARD, natNodePorts: natRules }
        for (const plan of plans) writeTopLevel(plan, out)
      }
      for (const c of natRules.take()) yield c + '\n'
    }
    natRuleCount = natRules.count
    const rest = natRules.join()
    yield (rest === '' ? '' : rest + '\n') + tail.join('\n')
  }

  return {
    kind: changed === null ? 'full' : 'partial',
    ownedChains: owned,
    deletedChains: deleted,
    chunks,
    get rulesWritten () { return counts().written },
    get rulesTotal () { return counts().total },
  }
}

function filterRule (out: Out, line: string): void { out.filterRules.push(line) }

/** Rules of one service in the always-rewritten chains (nat SERVICES/NODEPORTS, every filter chain). */
function writeTopLevel (p: ServicePlan, out: Out): void {
  const info = p.sp.info
  const spn = info.spn
  const pm = `-m ${p.proto} -p ${p.proto}`
  const dport = `--dport ${info.port}`

  if (p.hasInternal) {
    out.natServices.push(`-A ${Chain.SERVICES} -m comment --comment "${spn} cluster IP" ${pm} -d ${info.clusterIP} ${dport} -j ${p.internalChain}`)
  } else {
    filterRule(out, `-A ${Chain.SERVICES} -m comment --comment "${spn} ${p.internalTarget === 'REJECT' ? 'has no endpoints' : 'has no local endpoints'}" ${pm} -d ${info.clusterIP} ${dport} -j ${p.internalTarget}`)
  }
  if (!p.externallyAccessible) return
  const extComment = p.externalTarget === 'REJECT' ? 'has no endpoints' : 'has no local endpoints'

  for (const ip of info.externalIPs) {
    if (p.usesExt) out.natServices.push(`-A ${Chain.SERVICES} -m comment --comment "${spn} external IP" ${pm} -d ${ip} ${dport} -j ${p.names.ext}`)
    if (!p.hasExternal) filterRule(out, `-A ${Chain.EXTERNAL_SERVICES} -m comment --comment "${spn} ${extComment}" ${pm} -d ${ip} ${dport} -j ${p.externalTarget}`)
  }
  for (const ip of info.loadBalancerIPs) {
    if (p.usesExt) out.natServices.push(`-A ${Chain.SERVICES} -m comment --comment "${spn} loadbalancer IP" ${pm} -d ${ip} ${dport} -j ${p.lbChain}`)
    // Traffic the FW chain did not accept is still addressed to the LB IP here (never DNATed): drop it.
    if (p.usesFW) filterRule(out, `-A ${Chain.PROXY_FIREWALL} -m comment --comment "${spn} traffic not accepted by ${p.names.fw}" ${pm} -d ${ip} ${dport} -j DROP`)
    if (!p.hasExternal) filterRule(out, `-A ${Chain.EXTERNAL_SERVICES} -m comment --comment "${spn} ${extComment}" ${pm} -d ${ip} ${dport} -j ${p.externalTarget}`)
  }
  if (info.nodePort !== 0) {
    if (p.usesExt) out.natNodePorts.push(`-A ${Chain.NODEPORTS} -m comment --comment ${spn} ${pm} --dport ${info.nodePort} -j ${p.names.ext}`)
    if (!p.hasExternal) filterRule(out, `-A ${Chain.EXTERNAL_SERVICES} -m comment --comment "${spn} ${extComment}" -m addrtype --dst-type LOCAL ${pm} --dport ${info.nodePort} -j ${p.externalTarget}`)
  }
  if (info.healthCheckNodePort !== 0) {
    filterRule(out, `-A ${Chain.NODEPORTS} -m comment --comment "${spn} health check node port" -m tcp -p tcp --dport ${info.healthCheckNodePort} -j ACCEPT`)
  }
}

/** Rules of one SVC, SVL, EXT, FW or SEP chain of a service (pass one declared it). */
function writeServiceChain (job: ChainJob, opts: RenderOptions, comments: boolean, natRules: Sink): void {
  const p = job.plan as ServicePlan
  const info = p.sp.info
  const spn = info.spn
  const pm = `-m ${p.proto} -p ${p.proto}`
  const sticky = info.stickyMaxAgeSeconds
  const rule = (line: string): void => { natRules.push(line) }
  const epComment = (e: PlannedEndpoint): string => (comments ? ` -m comment --comment "${spn} -> ${dest(e)}"` : '')

  const policyChain = (chain: string, eps: readonly PlannedEndpoint[]): void => {
    if (eps.length === 0) return
    if (p.clusterMasq && p.internalChain === chain) {
      const cc = comments ? ` -m comment --comment "${spn} cluster IP"` : ''
      const src = opts.masqueradeAll ? '' : ` ! -s ${opts.clusterCIDR ?? ''}`
      rule(`-A ${chain}${cc} ${pm} -d ${info.clusterIP} --dport ${info.port}${src} -j ${Chain.MARK_MASQ}`)
    }
    if (sticky > 0) {
      for (const e of eps) rule(`-A ${chain}${epComment(e)} -m recent --name ${e.chain} --rcheck --seconds ${sticky} --reap -j ${e.chain}`)
    }
    const count = eps.length
    for (let i = 0; i < count; i++) {
      const e = eps[i] as PlannedEndpoint
      const stat = i < count - 1 ? ` -m statistic --mode random --probability ${probability(count - i)}` : ''
      rule(`-A ${chain}${epComment(e)}${stat} -j ${e.chain}`)
    }
  }

  switch (job.kind) {
    case 'svc': policyChain(p.names.svc, p.clusterEps); return
    case 'svl': policyChain(p.names.svl, p.localEps); return
    case 'ext': {
      const ext = p.names.ext
      const cm = (text: string): string => (comments ? ` -m comment --comment "${spn} ${text}"` : '')
      if (info.externalPolicyLocal) {
        if (p.usesCluster) {
          // Pods and the node itself reach eTP=Local services as if through the load balancer.
          if (opts.clusterCIDR !== undefined) rule(`-A ${ext}${cm('pod traffic for external destinations')} -s ${opts.clusterCIDR} -j ${p.names.svc}`)
          rule(`-A ${ext}${cm('masquerade LOCAL traffic for external destinations')} -m addrtype --src-type LOCAL -j ${Chain.MARK_MASQ}`)
          rule(`-A ${ext}${cm('route LOCAL traffic for external destinations')} -m addrtype --src-type LOCAL -j ${p.names.svc}`)
        }
        if (p.hasExternal) rule(`-A ${ext} -j ${p.names.svl}`)
      } else {
        rule(`-A ${ext}${cm('masquerade traffic for external destinations')} -j ${Chain.MARK_MASQ}`)
        if (p.hasExternal) rule(`-A ${ext} -j ${p.names.svc}`)
      }
      return
    }
    case 'fw': {
      const fw = p.names.fw
      const cm = comments ? ` -m comment --comment "${spn} loadbalancer IP"` : ''
      for (const r of p.sourceRanges) rule(`-A ${fw}${cm} -s ${r} -j ${p.names.ext}`)
      if (p.allowFromNode) for (const ip of info.loadBalancerIPs) rule(`-A ${fw}${cm} -s ${ip} -j ${p.names.ext}`)
      return
    }
    case 'sep': {
      const e = job.ep as PlannedEndpoint
      const c = comments ? ` -m comment --comment ${spn}` : ''
      // Hairpin: an endpoint reaching itself through the VIP must see the node as the source.
      rule(`-A ${e.chain}${c} -s ${e.ep.ip} -j ${Chain.MARK_MASQ}`)
      rule(`-A ${e.chain}${c}${sticky > 0 ? ` -m recent --name ${e.chain} --set` : ''} ${pm} -j DNAT --to-destination ${dest(e)}`)
      return
    }
    case 'top': return
  }
}

function dest (e: PlannedEndpoint): string {
  return e.ep.ip.includes(':') ? `[${e.ep.ip}]:${e.ep.port}` : `${e.ep.ip}:${e.ep.port}`
}

/** The jump to FERRY-NODEPORTS, last in nat FERRY-SERVICES so VIP rules win. */
function writeNodePortJumps (opts: RenderOptions, natRules: Sink): void {
  const comment = '-m comment --comment "ferry service nodeports; NOTE: this must be the last rule in this chain"'
  const v4 = opts.family === 'IPv4'
  const noLoopback = v4 ? (opts.localhostNodePorts ? '' : ' ! -d 127.0.0.0/8') : ' ! -d ::1/128'
  const all = `-A ${Chain.SERVICES} ${comment} -m addrtype --dst-type LOCAL${noLoopback} -j ${Chain.NODEPORTS}`
  if (opts.nodePortAddresses === undefined) { natRules.push(all); return }
  for (const cidr of opts.nodePortAddresses) {
    if (cidr === '0.0.0.0/0' || cidr === '::/0') { natRules.push(all); return }
  }
  for (const cidr of opts.nodePortAddresses) {
    const loop = v4 ? cidr.startsWith('127.') : cidr === '::1/128'
    if (loop && (!v4 || !opts.localhostNodePorts)) continue
    natRules.push(`-A ${Chain.SERVICES} ${comment} -d ${cidr} -m addrtype --dst-type LOCAL -j ${Chain.NODEPORTS}`)
  }
}
