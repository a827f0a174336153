// Render options for the iptables backend: validated once, then frozen (PROXY.md §6 flags).
import { FerryError } from '../../errors/errors.js'
import { parseCIDR, parseIP, type IPFamily } from '../../net/ip.js'

export interface RenderOptions {
  readonly family: IPFamily
  /** Local-traffic detector: ClusterIP traffic from outside it is masqueraded; pods short-circuit eTP=Local. */
  readonly clusterCIDR?: string
  readonly masqueradeAll: boolean
  /** Bit of the packet mark that asks for masquerade; 14 gives 0x4000. */
  readonly masqueradeBit: number
  /** CIDRs whose local addresses accept NodePorts; undefined means every local address. */
  readonly nodePortAddresses?: readonly string[]
  /** IPv4 only; ferry defaults it off (PROXY.md §8.10). Needs route_localnet=1 on the node. */
  readonly localhostNodePorts: boolean
  /** Node addresses, used only to allow the node through loadBalancerSourceRanges. */
  readonly nodeIPs: readonly string[]
  /** Skip the conntrack INVALID drop (`--conntrack-tcp-be-liberal`). */
  readonly conntrackTCPBeLiberal: boolean
  /** Over this many endpoints in total, per-service chains carry no comments (kube-proxy's large-cluster mode). */
  readonly largeClusterEndpoints: number
}

export type RenderOptionsInput = Partial<Omit<RenderOptions, 'family'>> & { readonly family: IPFamily }

export const DEFAULT_MASQUERADE_BIT = 14
export const DEFAULT_LARGE_CLUSTER_ENDPOINTS = 1000

function bad (message: string, details: Record<string, unknown>): FerryError {
  return new FerryError('FERRY_ERR_CONFIG', message, details)
}

export function resolveRenderOptions (input: RenderOptionsInput): RenderOptions {
  const family = input.family
  const bit = input.masqueradeBit ?? DEFAULT_MASQUERADE_BIT
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw bad('masqueradeBit must be an integer in 0..31', { masqueradeBit: bit })
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
  }
  const nodeIPs: string[] = []
  for (const text of input.nodeIPs ?? []) {
    const ip = parseIP(text)
    if (ip === null) throw bad('nodeIPs holds an invalid address', { ip: text })
    if (ip.family === family) nodeIPs.push(ip.ip)
  }
  const out: RenderOptions = {
    family,
    ...(clusterCIDR !== undefined ? { clusterCIDR } : {}),
    masqueradeAll: input.masqueradeAll ?? false,
    masqueradeBit: bit,
    ...(nodePortAddresses !== undefined ? { nodePortAddresses: Object.freeze(nodePortAddresses) } : {}),
    localhostNodePorts: family === 'IPv4' && (input.localhostNodePorts ?? false),
    nodeIPs: Object.freeze(nodeIPs),
    conntrackTCPBeLiberal: input.conntrackTCPBeLiberal ?? false,
    largeClusterEndpoints: input.largeClusterEndpoints ?? DEFAULT_LARGE_CLUSTER_ENDPOINTS,
  }
  return Object.freeze(out)
}

/** "0x4000" for bit 14. */
export function masqueradeMark (bit: number): string {
  return '0x' + (2 ** bit).toString(16)
}
