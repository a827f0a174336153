// The backend-neutral entry-point plan (PROXY.md §1): for one service port, every way in (ClusterIP,
// externalIPs, LB IPs, the NodePort) and what each does with a packet: forward to an endpoint set, with or
// without masquerade, or refuse it. Decided once here; iptables, IPVS and nftables only render it, and the
// packet-flow tracer (trace.ts) reads the same plan.
import type { Protocol } from '../api/types.js'
import { cidrContains, parseCIDR, type ParsedCIDR } from '../net/ip.js'
import type { ProxyOptions } from './options.js'
import type { DesiredServicePort, EndpointInfo } from './types.js'

export type EntryKind = 'clusterIP' | 'externalIP' | 'loadBalancerIP' | 'nodePort'
/** REJECT: nothing usable anywhere (clients fail at once). DROP: usable endpoints exist, none for this node's Local policy. */
export type Refusal = 'REJECT' | 'DROP'
export type EndpointSet = 'cluster' | 'local'

export interface EntryPoint {
  readonly kind: EntryKind
  /** The VIP; null for a NodePort, which listens on the node's NodePort addresses. */
  readonly address: string | null
  readonly port: number
  readonly protocol: Protocol
}

export interface PortPlan {
  readonly sp: DesiredServicePort
  /** Endpoints of the sets in use (empty when a set is not in use). */
  readonly clusterEndpoints: readonly EndpointInfo[]
  readonly localEndpoints: readonly EndpointInfo[]
  /** Both sets, each ip:port once: every endpoint that may receive traffic. */
  readonly allEndpoints: readonly EndpointInfo[]
  /** Some endpoint is usable somewhere (and planned): external entry points are wired at all. */
  readonly hasAnyEndpoints: boolean
  /** The set that serves ClusterIP traffic (iTP), or null when it is refused. */
  readonly internalSet: EndpointSet | null
  /** Masquerade ClusterIP traffic from outside the pod network (every source with masqueradeAll). */
  readonly clusterMasq: boolean
  readonly externallyAccessible: boolean
  /** The set that serves off-node clients on external entry points (eTP), or null when they are refused. */
  readonly externalSet: EndpointSet | null
  /** eTP=Local with a cluster set: pods (by the detector) and the node itself get the cluster set. */
  readonly shortCircuit: boolean
  /** Refusal for traffic whose set is empty. */
  readonly refusal: Refusal
  /** Normalized loadBalancerSourceRanges of this family. */
  readonly sourceRanges: readonly string[]
  /** A source range holds a node IP, so the LB IPs themselves are allowed as sources. */
  readonly allowFromNode: boolean
  /** LB traffic is filtered by source range (LB IPs, ranges and endpoints somewhere). */
  readonly firewall: boolean
  readonly entryPoints: readonly EntryPoint[]
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

function union (a: readonly EndpointInfo[], b: readonly EndpointInfo[]): readonly EndpointInfo[] {
  if (b.length === 0) return a
  if (a.length === 0) return b
  const seen = new Set<string>()
  const out: EndpointInfo[] = []
  for (const e of a) { seen.add(`${e.ip}|${e.port}`); out.push(e) }
  for (const e of b) if (!seen.has(`${e.ip}|${e.port}`)) { seen.add(`${e.ip}|${e.port}`); out.push(e) }
  return out
}

export function planPort (sp: DesiredServicePort, opts: ProxyOptions): PortPlan {
  const info = sp.info
  const clusterEndpoints = sp.clusterEndpoints ?? []
  const localEndpoints = sp.localEndpoints ?? []
  const allEndpoints = union(clusterEndpoints, localEndpoints)
  const hasAny = sp.hasAnyEndpoints && allEndpoints.length > 0
  const internalSet: EndpointSet | null = info.internalPolicyLocal
    ? (localEndpoints.length > 0 ? 'local' : null)
    : (clusterEndpoints.length > 0 ? 'cluster' : null)
  const externallyAccessible = info.nodePort !== 0 || info.externalIPs.length > 0 || info.loadBalancerIPs.length > 0
  const externalSet: EndpointSet | null = !externallyAccessible
    ? null
    : info.externalPolicyLocal
      ? (localEndpoints.length > 0 ? 'local' : null)
      : (clusterEndpoints.length > 0 ? 'cluster' : null)

  const sourceRanges: string[] = []
  let allowFromNode = false
  for (const r of info.loadBalancerSourceRanges) {
    const c = cidr(r)
    if (c === null || c.family !== opts.family) continue
    sourceRanges.push(c.text)
    if (!allowFromNode) allowFromNode = opts.nodeIPs.some(ip => cidrContains(c, ip))
  }
  const entryPoints: EntryPoint[] = [{ kind: 'clusterIP', address: info.clusterIP, port: info.port, protocol: info.protocol }]
  for (const ip of info.externalIPs) entryPoints.push({ kind: 'externalIP', address: ip, port: info.port, protocol: info.protocol })
  for (const ip of info.loadBalancerIPs) entryPoints.push({ kind: 'loadBalancerIP', address: ip, port: info.port, protocol: info.protocol })
  if (info.nodePort !== 0) entryPoints.push({ kind: 'nodePort', address: null, port: info.nodePort, protocol: info.protocol })
  return {
    sp,
    clusterEndpoints,
    localEndpoints,
    allEndpoints,
    hasAnyEndpoints: hasAny,
    internalSet,
    clusterMasq: internalSet !== null && (opts.masqueradeAll || opts.clusterCIDR !== undefined),
    externallyAccessible,
    externalSet,
    shortCircuit: externallyAccessible && hasAny && info.externalPolicyLocal && clusterEndpoints.length > 0,
    // Without any endpoint anywhere everything is refused; with some, a Local policy that has none here drops.
    refusal: sp.hasAnyEndpoints ? 'DROP' : 'REJECT',
    sourceRanges,
    allowFromNode,
    firewall: externallyAccessible && hasAny && info.loadBalancerIPs.length > 0 && sourceRanges.length > 0,
    entryPoints,
  }
}

/** The endpoints of a set. */
export function endpointsOf (p: PortPlan, set: EndpointSet): readonly EndpointInfo[] {
  return set === 'cluster' ? p.clusterEndpoints : p.localEndpoints
}
