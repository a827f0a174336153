// Packet-flow tracer over the entry-point plan: for one new connection (source, destination, protocol),
// which entry point takes it, and which endpoints can answer, masqueraded or not (PROXY.md §1, §7). It is
// the reference each mode's rendered rules are checked against, and what `ferryctl trace` prints.
import type { Protocol } from '../api/types.js'
import { cidrContains, parseCIDR, parseIP } from '../net/ip.js'
import { acceptsNodePorts, type ProxyOptions } from './options.js'
import { endpointsOf, type EndpointSet, type EntryKind, type PortPlan, type Refusal } from './plan.js'
import type { EndpointInfo } from './types.js'

export interface Packet {
  readonly src: string
  readonly dst: string
  readonly port: number
  readonly protocol: Protocol
}

export interface TraceEnv {
  /** Every address of the node, loopback included: a packet from one is node-originated. */
  readonly localAddresses: readonly string[]
}

export interface TracedEndpoint {
  readonly ip: string
  readonly port: number
  /** The endpoint sees a node address as the source. */
  readonly masquerade: boolean
}

export interface TraceResult {
  /** The entry point that took the packet; null when no rule touches it. */
  readonly entry: { readonly servicePort: string, readonly kind: EntryKind } | null
  readonly verdict: 'forward' | Refusal | 'not-handled'
  /** The candidate endpoints (for 'forward'), sorted by ip then port. */
  readonly endpoints: readonly TracedEndpoint[]
  /** Which set served it and why, for people. */
  readonly reason: string
}

const FIREWALLED = 'source outside loadBalancerSourceRanges'
const NOT_HANDLED: TraceResult = { entry: null, verdict: 'not-handled', endpoints: [], reason: 'no service entry point matches' }
const otherPort = (what: string): TraceResult => ({ entry: null, verdict: 'REJECT', endpoints: [], reason: `${what}, but no Service defines this port and protocol on it` })
const OTHER_CLUSTER_IP_PORT = otherPort('a ClusterIP')
const OTHER_VIP_PORT = otherPort('a Service VIP bound on the node')

function sameIP (a: string, b: string): boolean {
  if (a === b) return true
  const pa = parseIP(a)
  const pb = parseIP(b)
  return pa !== null && pb !== null && pa.ip === pb.ip
}

function inCIDR (text: string | undefined, ip: string): boolean {
  if (text === undefined) return false
  const c = parseCIDR(text)
  return c !== null && cidrContains(c, ip)
}

function forward (p: PortPlan, kind: EntryKind, set: EndpointSet, pkt: Packet, masq: boolean, reason: string): TraceResult {
  const eps: TracedEndpoint[] = endpointsOf(p, set).map((e: EndpointInfo) => ({
    ip: e.ip,
    port: e.port,
    // Hairpin: an endpoint reaching itself through the service must see the node as the source.
    masquerade: masq || sameIP(e.ip, pkt.src),
  }))
  eps.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port))
  return { entry: { servicePort: p.sp.info.spn, kind }, verdict: 'forward', endpoints: eps, reason }
}

function refuse (p: PortPlan, kind: EntryKind, reason: string): TraceResult {
  return { entry: { servicePort: p.sp.info.spn, kind }, verdict: p.refusal, endpoints: [], reason }
}

/** Which entry point of which plan takes the packet: VIPs first, NodePorts last (they match any local address). */
function match (plans: Iterable<PortPlan>, opts: ProxyOptions, dstLocal: boolean, pkt: Packet): { p: PortPlan, kind: EntryKind } | null {
  let nodePort: { p: PortPlan, kind: EntryKind } | null = null
  for (const p of plans) {
    if (p.sp.info.family !== opts.family) continue
    for (const e of p.entryPoints) {
      if (e.protocol !== pkt.protocol || e.port !== pkt.port) continue
      if (e.address !== null) {
        if (sameIP(e.address, pkt.dst)) return { p, kind: e.kind }
      } else if (nodePort === null && dstLocal) nodePort = { p, kind: e.kind }
    }
  }
  return nodePort
}

function isClusterIP (plans: readonly PortPlan[], opts: ProxyOptions, ip: string): boolean {
  for (const p of plans) if (p.sp.info.family === opts.family && sameIP(p.sp.info.clusterIP, ip)) return true
  return false
}

/** An address of some entry point (ClusterIP, externalIP, LB IP) that is not a node IP: IPVS mode binds it. */
function isBoundVIP (plans: readonly PortPlan[], opts: ProxyOptions, ip: string): boolean {
  if (opts.nodeIPs.some(n => sameIP(n, ip))) return false
  for (const p of plans) {
    if (p.sp.info.family !== opts.family) continue
    for (const e of p.entryPoints) if (e.address !== null && sameIP(e.address, ip)) return true
  }
  return false
}

/** What a packet that matched no entry point meets: a refusal where the mode refuses other ports of that address. */
function unmatched (plans: readonly PortPlan[], opts: ProxyOptions, dst: string): TraceResult {
  if (opts.rejectOtherPorts === 'clusterIPs' && isClusterIP(plans, opts, dst)) return OTHER_CLUSTER_IP_PORT
  if (opts.rejectOtherPorts === 'boundVIPs' && isBoundVIP(plans, opts, dst)) return OTHER_VIP_PORT
  return NOT_HANDLED
}

export function tracePlan (plans: readonly PortPlan[], opts: ProxyOptions, env: TraceEnv, pkt: Packet): TraceResult {
  const dstLocal = env.localAddresses.some(a => sameIP(a, pkt.dst))
  const m = match(plans, opts, dstLocal, pkt)
  if (m === null) return unmatched(plans, opts, pkt.dst)
  const fromNode = env.localAddresses.some(a => sameIP(a, pkt.src))
  const r = decide(m.p, m.kind, opts, pkt, fromNode)
  // NodePorts forward only on the NodePort addresses, but a refused NodePort is refused on every local
  // address (kube-proxy's filter rules match --dst-type LOCAL).
  if (m.kind === 'nodePort' && r.verdict === 'forward' && !acceptsNodePorts(opts, pkt.dst)) return NOT_HANDLED
  // Refusals of external VIPs guard traffic arriving at the node (INPUT, FORWARD); the node's own
  // traffic to a remote-looking VIP leaves untouched, as with kube-proxy. The source-range firewall is
  // the exception: it is hooked from OUTPUT too, so it also drops the node's own connections.
  if ((m.kind === 'externalIP' || m.kind === 'loadBalancerIP') && r.verdict !== 'forward' && fromNode && !dstLocal && r.reason !== FIREWALLED) return NOT_HANDLED
  return r
}

function decide (p: PortPlan, kind: EntryKind, opts: ProxyOptions, pkt: Packet, fromNode: boolean): TraceResult {
  const fromPod = inCIDR(opts.clusterCIDR, pkt.src)

  if (kind === 'clusterIP') {
    if (p.internalSet === null) return refuse(p, kind, p.refusal === 'REJECT' ? 'no usable endpoints' : 'internalTrafficPolicy=Local and no local endpoints')
    const masq = p.clusterMasq && (opts.masqueradeAll || !fromPod)
    return forward(p, kind, p.internalSet, pkt, masq, `internalTrafficPolicy=${p.sp.info.internalPolicyLocal ? 'Local' : 'Cluster'}`)
  }
  if (!p.hasAnyEndpoints) return refuse(p, kind, 'no usable endpoints')
  // Source ranges guard LB IPs only; NodePorts ignore them.
  if (kind === 'loadBalancerIP' && p.firewall) {
    const allowed = p.sourceRanges.some(r => inCIDR(r, pkt.src)) ||
      (p.allowFromNode && p.sp.info.loadBalancerIPs.some(ip => sameIP(ip, pkt.src)))
    if (!allowed) return { entry: { servicePort: p.sp.info.spn, kind }, verdict: 'DROP', endpoints: [], reason: FIREWALLED }
  }
  if (!p.sp.info.externalPolicyLocal) {
    if (p.externalSet === null) return refuse(p, kind, 'no usable endpoints')
    return forward(p, kind, p.externalSet, pkt, true, 'externalTrafficPolicy=Cluster: masqueraded')
  }
  if (p.shortCircuit && fromPod) return forward(p, kind, 'cluster', pkt, false, 'externalTrafficPolicy=Local, pod source: as if through the load balancer')
  if (p.shortCircuit && fromNode) return forward(p, kind, 'cluster', pkt, true, 'externalTrafficPolicy=Local, node source: cluster set, masqueraded')
  if (p.externalSet === null) return refuse(p, kind, 'externalTrafficPolicy=Local and no local endpoints')
  return forward(p, kind, p.externalSet, pkt, false, 'externalTrafficPolicy=Local: client IP kept')
}

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP']

/** The packet of a /debug/trace query (src, dst, port, protocol), or what is wrong with it. */
export function parseTraceQuery (q: Readonly<Record<string, string | undefined>>): Packet | string {
  const src = parseIP(q.src ?? '')
  const dst = parseIP(q.dst ?? '')
  if (src === null) return `src must be an IP address, got ${JSON.stringify(q.src ?? '')}`
  if (dst === null) return `dst must be an IP address, got ${JSON.stringify(q.dst ?? '')}`
  if (src.family !== dst.family) return 'src and dst must be of one IP family'
  const port = Number(q.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `port must be 1-65535, got ${JSON.stringify(q.port ?? '')}`
  const protocol = (q.protocol ?? 'TCP').toUpperCase() as Protocol
  if (!PROTOCOLS.includes(protocol)) return `protocol must be TCP, UDP or SCTP, got ${JSON.stringify(q.protocol)}`
  return { src: src.ip, dst: dst.ip, port, protocol }
}
