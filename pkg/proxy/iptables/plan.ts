// The neutral entry-point plan mapped onto iptables chains (PROXY.md §2 chain table), shared by the writer
// in render.ts and by the rule counter that accounts for the chains a partial sync skips.
import type { DesiredServicePort, EndpointInfo } from '../types.js'
import { planPort, type PortPlan } from '../plan.js'
import { endpointChainName, serviceChainNames, type ServiceChainNames } from './names.js'
import type { RenderOptions } from './options.js'

export interface PlannedEndpoint {
  readonly ep: EndpointInfo
  readonly chain: string
}

export interface ServicePlan {
  readonly sp: DesiredServicePort
  /** The backend-neutral decisions this plan renders. */
  readonly port: PortPlan
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

function planEndpoints (spn: string, proto: string, eps: readonly EndpointInfo[]): PlannedEndpoint[] {
  const out: PlannedEndpoint[] = new Array<PlannedEndpoint>(eps.length)
  for (let i = 0; i < eps.length; i++) {
    const ep = eps[i] as EndpointInfo
    out[i] = { ep, chain: endpointChainName(spn, proto, ep.ip, ep.port) }
  }
  return out
}

/** The neutral plan (../plan.ts) in chains: which exist, where each entry point jumps. Decides nothing new. */
export function planService (sp: DesiredServicePort, opts: RenderOptions): ServicePlan {
  const port = planPort(sp, opts)
  const info = sp.info
  const names = serviceChainNames(info.spn, info.protocol)
  const clusterEps = planEndpoints(info.spn, info.protocol, port.clusterEndpoints)
  const localEps = planEndpoints(info.spn, info.protocol, port.localEndpoints)
  const allEps = port.allEndpoints === port.clusterEndpoints
    ? clusterEps
    : port.allEndpoints === port.localEndpoints ? localEps : planEndpoints(info.spn, info.protocol, port.allEndpoints)
  const usesExt = port.externallyAccessible && port.hasAnyEndpoints
  return {
    sp,
    port,
    proto: info.protocol.toLowerCase(),
    names,
    clusterEps,
    localEps,
    allEps,
    hasAnyEndpoints: port.hasAnyEndpoints,
    usesCluster: clusterEps.length > 0,
    usesLocal: localEps.length > 0,
    internalChain: info.internalPolicyLocal ? names.svl : names.svc,
    hasInternal: port.internalSet !== null,
    externallyAccessible: port.externallyAccessible,
    hasExternal: port.externalSet !== null,
    usesExt,
    usesFW: port.firewall,
    lbChain: port.firewall ? names.fw : names.ext,
    internalTarget: port.refusal,
    externalTarget: port.refusal,
    sourceRanges: port.sourceRanges,
    allowFromNode: port.allowFromNode,
    clusterMasq: port.clusterMasq,
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
