// The node file as ferry-cni uses it: one entry per family with the bridge gateway, the pod subnet and the
// cluster network. The file itself is parsed by pkg/overlay/subnet-file.ts (ferryd writes it with the same
// module), whose imports are light enough for ferry-cni's start-up.
import { FerryError } from '../pkg/errors/errors.js'
import type { SubnetFile } from '../pkg/overlay/subnet-file.js'
import { parseCIDR, parseIP, type IPFamily } from '../pkg/net/ip.js'

/** One family of the node file, resolved: what the bridge, IPAM and routes need. */
export interface NodeFamily {
  readonly family: IPFamily
  readonly network: string
  /** The node subnet's network form, e.g. 10.244.1.0/24. */
  readonly subnet: string
  readonly gateway: string
  readonly prefix: number
}

/** The node's families in order (IPv4 first), every address in canonical text. */
export function nodeFamilies (f: SubnetFile): NodeFamily[] {
  const out: NodeFamily[] = [resolve('IPv4', f.network, f.subnet)]
  if (f.networkIPv6 !== undefined && f.subnetIPv6 !== undefined) out.push(resolve('IPv6', f.networkIPv6, f.subnetIPv6))
  return out
}

function resolve (family: IPFamily, network: string, gwPrefix: string): NodeFamily {
  const net = parseCIDR(network)
  const c = parseCIDR(gwPrefix)
  const gw = parseIP(gwPrefix.slice(0, gwPrefix.indexOf('/')))
  // parseSubnetFile has checked both; this only guards a SubnetFile built by hand.
  if (net === null || c === null || gw === null) throw new FerryError('FERRY_ERR_CONFIG', `subnet file: ${network}, ${gwPrefix}: not a network and a gateway/prefix`)
  return { family, network: net.text, subnet: c.text, gateway: gw.ip, prefix: c.prefix }
}
