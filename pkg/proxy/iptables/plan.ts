// Per-service decisions (PROXY.md §1 table, §2 chain table), made once and shared by the writer in
// render.ts and by the rule counter that accounts for the chains a partial sync skips.
import type { DesiredServicePort, EndpointInfo } from '../types.js'
import { cidrContains, parseCIDR, type ParsedCIDR } from '../../net/ip.js'
import { endpointChainName, serviceChainNames, type ServiceChainNames } from './names.js'
import type { RenderOptions } from './options.js'

export interface PlannedEndpoint {
  readonly ep: EndpointInfo
  readonly chain: string
}

export interface ServicePlan {
  readonly sp: DesiredServicePort
  /** Lower-case protocol for `-m tcp -p tcp`. */
  readonly proto: string
  readonly names: ServiceChainNames
  readonly clusterEps: readonly PlannedEndpoint[]
  readonly localEps: readonly PlannedEndpoint[]
  /** Every endpoint in either set, once: each gets a SEP chain. */
  readonly allEps: readonly PlannedEndpoint[]
  readonly hasAnyEndpoints: boolean
  /** SVC chain present (cluster set in use and non-empty). */
  readonly usesCluster: boolean
  /** SVL chain present (local set in use and non-empty). */
  readonly usesLocal: boolean
  /** Chain ClusterIP traffic jumps to (SVC, or SVL under iTP=Local). */
  readonly internalChain: string
  /** ClusterIP traffic has somewhere to go; otherwise filter REJECT/DROP. */
  readonly hasInternal: boolean
  readonly externallyAccessible: boolean
  /** External traffic has somewhere to go for off-node clients; otherwise filter REJECT/DROP. */
  readonly hasExternal: boolean
  /** EXT chain present (externally accessible and hasAnyEndpoints). */
  readonly usesExt: boolean
  /** FW chain present (LB IPs, source ranges and hasAnyEndpoints). */
  readonly usesFW: boolean
  /** Where LB IP traffic jumps: FW if present, else EXT. */
  readonly lbChain: string
  readonly internalTarget: 'REJECT' | 'DROP'
  readonly externalTarget: 'REJECT' | 'DROP'
  readonly sourceRanges: readonly string[]
  /** A source range holds a node IP, so the LB IPs themselves are allowed as sources. */
  readonly allowFromNode: boolean
  /** ClusterIP masquerade rule in the internal chain. */
  readonly clusterMasq: boolean
}

function planEndpoints (spn: string, proto: string, eps: readonly EndpointInfo[] | null): PlannedEndpoint[] {
  if (eps === null) return []
  const out: PlannedEndpoint[] = new Array<PlannedEndpoint>(eps.length)
  for (let i = 0; i < eps.length; i++) {
    const ep = eps[i] as EndpointInfo
    out[i] = { ep, chain: endpointChainName(spn, proto, ep.ip, ep.port) }
  }
  return out
}

const rangeCache = new Map<string, ParsedCIDR | null>()
function cidr (text: string): ParsedCIDR | null {
  let v = rangeCache.get(text)
  if (v === undefined) {
    if (rangeCache.size > 10000) rangeCache.clear()
    v = parseCIDR(text)
    rangeCache.set(text, v)
  }
  return v
}

export function planService (sp: DesiredServicePort, opts: RenderOptions): ServicePlan {
  const info = sp.info
  const proto = info.protocol.toLowerCase()
  const names = serviceChainNames(info.spn, info.protocol)
  const clusterEps = planEndpoints(info.spn, info.protocol, sp.clusterEndpoints)
  const localEps = planEndpoints(info.spn, info.protocol, sp.localEndpoints)
  let allEps: PlannedEndpoint[]
  if (localEps.length === 0) allEps = clusterEps
  else if (clusterEps.length === 0) allEps = localEps
  else {
    const seen = new Set<string>()
    allEps = []
    for (const e of clusterEps) { seen.add(e.chain); allEps.push(e) }
    for (const e of localEps) if (!seen.has(e.chain)) { seen.add(e.chain); allEps.push(e) }
  }
  const usesCluster = clusterEps.length > 0
  const usesLocal = localEps.length > 0
  const hasAny = sp.hasAnyEndpoints && allEps.length > 0
  const internalChain = info.internalPolicyLocal ? names.svl : names.svc
  const hasInternal = info.internalPolicyLocal ? usesLocal : usesCluster
  const externallyAccessible = info.nodePort !== 0 || info.externalIPs.length > 0 || info.loadBalancerIPs.length > 0
  const hasExternal = externallyAccessible && (info.externalPolicyLocal ? usesLocal : usesCluster)
  const usesExt = externallyAccessible && hasAny

  const sourceRanges: string[] = []
  let allowFromNode = false
  for (const r of info.loadBalancerSourceRanges) {
    const c = cidr(r)
    if (c === null || c.family !== opts.family) continue
    sourceRanges.push(c.text)
    if (!allowFromNode) allowFromNode = opts.nodeIPs.some(ip => cidrContains(c, ip))
  }
  const usesFW = usesExt && info.loadBalancerIPs.length > 0 && sourceRanges.length > 0
  // Without any endpoint anywhere everything is refused; with some, a Local policy that has none here drops.
  const target = sp.hasAnyEndpoints ? 'DROP' : 'REJECT'
  return {
    sp,
    proto,
    names,
    clusterEps,
    localEps,
    allEps,
    hasAnyEndpoints: hasAny,
    usesCluster,
    usesLocal,
    internalChain,
    hasInternal,
    externallyAccessible,
    hasExternal,
    usesExt,
    usesFW,
    lbChain: usesFW ? names.fw : names.ext,
    internalTarget: target,
    externalTarget: target,
    sourceRanges,
    allowFromNode,
    clusterMasq: hasInternal && (opts.masqueradeAll || opts.clusterCIDR !== undefined),
  }
}

/** Per-service nat chains this plan owns. */
export function planChains (p: ServicePlan): string[] {
  const out: string[] = []
  if (p.usesCluster) out.push(p.names.svc)
  if (p.usesLocal) out.push(p.names.svl)
  if (p.usesExt) out.push(p.names.ext)
  if (p.usesFW) out.push(p.names.fw)
  for (const e of p.allEps) out.push(e.chain)
  return out
}

/** Rules in the per-service nat chains of this plan, without writing them (must match render.ts). */
export function countPlanRules (p: ServicePlan, opts: RenderOptions): number {
  const sticky = p.sp.info.stickyMaxAgeSeconds > 0
  let n = 0
  const policyChain = (eps: readonly PlannedEndpoint[], chain: string): number =>
    (eps.length === 0 ? 0 : (sticky ? 2 : 1) * eps.length + (p.clusterMasq && p.internalChain === chain ? 1 : 0))
  n += policyChain(p.clusterEps, p.names.svc)
  n += policyChain(p.localEps, p.names.svl)
  if (p.usesExt) {
    if (p.sp.info.externalPolicyLocal) {
      if (p.usesCluster) n += 2 + (opts.clusterCIDR !== undefined ? 1 : 0)
    } else n += 1
    if (p.hasExternal) n += 1
  }
  if (p.usesFW) n += p.sourceRanges.length + (p.allowFromNode ? p.sp.info.loadBalancerIPs.length : 0)
  n += 2 * p.allEps.length
  return n
}
