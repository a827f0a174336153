// Backend-neutral proxy settings (PROXY.md §1, §2 masquerade and NodePorts, §6 flags): validated once,
// then frozen. Every mode plans from these; each mode adds its own slice (iptables: the mark bit...).
import { FerryError } from '../errors/errors.js'
import { cidrContains, isLoopback, parseCIDR, parseIP, type IPFamily } from '../net/ip.js'

export interface ProxyOptions {
  readonly family: IPFamily
  /** Local-traffic detector: ClusterIP traffic from outside it is masqueraded; pods short-circuit eTP=Local. */
  readonly clusterCIDR?: string
  readonly masqueradeAll: boolean
  /** CIDRs whose local addresses accept NodePorts; undefined means every local address. */
  readonly nodePortAddresses?: readonly string[]
  /** IPv4 only; ferry defaults it off (PROXY.md §8.10). Needs route_localnet=1 on the node. */
  readonly localhostNodePorts: boolean
  /** The node's own addresses of this family (loopback excluded or not: callers pass what the host has). */
  readonly nodeIPs: readonly string[]
  /**
   * Which Service addresses refuse a port (or protocol) no Service defines on them, instead of routing it
   * on: every ClusterIP in the nftables mode, as kube-proxy's; every VIP the node binds (ClusterIPs,
   * externalIPs and LB IPs that are not node IPs) in IPVS mode, where IPVS answers for them. Unset in
   * the iptables mode, which, like kube-proxy's, leaves such traffic alone.
   */
  readonly rejectOtherPorts?: 'clusterIPs' | 'boundVIPs'
}

export type ProxyOptionsInput = Partial<Omit<ProxyOptions, 'family'>> & { readonly family: IPFamily }

function bad (message: string, details: Record<string, unknown>): FerryError {
  return new FerryError('FERRY_ERR_CONFIG', message, details)
}

export function resolveProxyOptions (input: ProxyOptionsInput): ProxyOptions {
  const family = input.family
  let clusterCIDR: string | undefined
  if (input.clusterCIDR !== undefined && input.clusterCIDR !== '') {
    const c = parseCIDR(input.clusterCIDR)
    if (c === null || c.family !== family) throw bad(`clusterCIDR is not an ${family} CIDR`, { clusterCIDR: input.clusterCIDR })
    clusterCIDR = c.text
  }
  let nodePortAddresses: string[] | undefined
  if (input.nodePortAddresses !== undefined) {
    nodePortAddresses = []
    for (const text of input.nodePortAddresses) {
      const c = parseCIDR(text)
      if (c === null) throw bad('nodePortAddresses holds an invalid CIDR', { cidr: text })
      if (c.family === family) nodePortAddresses.push(c.text)
    }
    // As in kube-proxy: a list without a CIDR of this family does not restrict this family's NodePorts
    // (a dual-stack node given only IPv4 CIDRs still serves IPv6 NodePorts on every address).
    if (nodePortAddresses.length === 0) nodePortAddresses = undefined
  }
  const nodeIPs: string[] = []
  for (const text of input.nodeIPs ?? []) {
    const ip = parseIP(text)
    if (ip === null) throw bad('nodeIPs holds an invalid address', { ip: text })
    if (ip.family === family) nodeIPs.push(ip.ip)
  }
  return Object.freeze({
    family,
    ...(clusterCIDR !== undefined ? { clusterCIDR } : {}),
    masqueradeAll: input.masqueradeAll ?? false,
    ...(nodePortAddresses !== undefined ? { nodePortAddresses: Object.freeze(nodePortAddresses) } : {}),
    localhostNodePorts: family === 'IPv4' && (input.localhostNodePorts ?? false),
    nodeIPs: Object.freeze(nodeIPs),
    ...(input.rejectOtherPorts !== undefined ? { rejectOtherPorts: input.rejectOtherPorts } : {}),
  })
}

export { isLoopback } from '../net/ip.js'

/**
 * Whether a local address accepts NodePorts: inside --nodeport-addresses when set (every address
 * otherwise), and loopback only on IPv4 with localhost NodePorts on.
 */
export function acceptsNodePorts (opts: ProxyOptions, localIP: string): boolean {
  if (isLoopback(localIP)) {
    if (opts.family !== 'IPv4' || !opts.localhostNodePorts) return false
  }
  if (opts.nodePortAddresses === undefined) return true
  return opts.nodePortAddresses.some(text => {
    const c = parseCIDR(text)
    return c !== null && cidrContains(c, localIP)
  })
}
