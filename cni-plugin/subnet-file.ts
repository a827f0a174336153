// The node file ferryd writes (issue 12 §3, like flannel's subnet.env): the node's pod subnet per family,
// the cluster network, the MTU and whether ferryd masquerades. ferry-cni only reads it.
import { FerryError } from '../pkg/errors/errors.js'
import { parseCIDR, parseIP, type IPFamily } from '../pkg/net/ip.js'

export interface SubnetFile {
  /** Cluster network, e.g. 10.244.0.0/16. */
  readonly network: string
  /** This node's gateway/prefix, e.g. 10.244.1.1/24. */
  readonly subnet: string
  readonly mtu: number
  /** true: ferryd masquerades traffic leaving the cluster network, so ferry-cni need not. */
  readonly ipMasq: boolean
  readonly networkIPv6?: string
  readonly subnetIPv6?: string
}

/** One family of the node file, resolved: what the bridge, IPAM and routes need. */
export interface NodeFamily {
  readonly family: IPFamily
  readonly network: string
  /** The node subnet's network form, e.g. 10.244.1.0/24. */
  readonly subnet: string
  readonly gateway: string
  readonly prefix: number
}

const KEYS = ['FERRY_NETWORK', 'FERRY_SUBNET', 'FERRY_MTU', 'FERRY_IPMASQ', 'FERRY_NETWORK_IPV6', 'FERRY_SUBNET_IPV6']

function bad (msg: string): FerryError {
  return new FerryError('FERRY_ERR_CONFIG', `subnet file: ${msg}`)
}

/** Parses KEY=VALUE lines (blank lines and # comments allowed); throws FERRY_ERR_CONFIG naming the key. */
export function parseSubnetFile (text: string): SubnetFile {
  const kv = new Map<string, string>()
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq <= 0) throw bad(`malformed line ${JSON.stringify(line)}`)
    const key = line.slice(0, eq).trim()
    if (!KEYS.includes(key)) throw bad(`unknown key ${key}`)
    kv.set(key, line.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'))
  }
  const need = (k: string): string => {
    const v = kv.get(k)
    if (v === undefined || v === '') throw bad(`missing ${k}`)
    return v
  }
  const network = cidrOf('FERRY_NETWORK', need('FERRY_NETWORK'), 'IPv4')
  const subnet = gatewayOf('FERRY_SUBNET', need('FERRY_SUBNET'), 'IPv4')
  const mtuText = need('FERRY_MTU')
  const mtu = Number(mtuText)
  if (!/^\d+$/.test(mtuText) || mtu < 68 || mtu > 65535) throw bad(`FERRY_MTU ${JSON.stringify(mtuText)} is not an MTU (68..65535)`)
  const masq = need('FERRY_IPMASQ')
  if (masq !== 'true' && masq !== 'false') throw bad(`FERRY_IPMASQ ${JSON.stringify(masq)} is not true or false`)
  const out: { -readonly [K in keyof SubnetFile]: SubnetFile[K] } = { network, subnet, mtu, ipMasq: masq === 'true' }
  const n6 = kv.get('FERRY_NETWORK_IPV6')
  const s6 = kv.get('FERRY_SUBNET_IPV6')
  if ((n6 === undefined) !== (s6 === undefined)) throw bad(`missing ${n6 === undefined ? 'FERRY_NETWORK_IPV6' : 'FERRY_SUBNET_IPV6'} (dual-stack needs both)`)
  if (n6 !== undefined && s6 !== undefined) {
    out.networkIPv6 = cidrOf('FERRY_NETWORK_IPV6', n6, 'IPv6')
    out.subnetIPv6 = gatewayOf('FERRY_SUBNET_IPV6', s6, 'IPv6')
  }
  return Object.freeze(out)
}

function cidrOf (key: string, text: string, family: IPFamily): string {
  const c = parseCIDR(text)
  if (c === null || c.family !== family) throw bad(`${key} ${JSON.stringify(text)} is not an ${family} CIDR`)
  return c.text
}

function gatewayOf (key: string, text: string, family: IPFamily): string {
  const c = parseCIDR(text)
  const ip = parseIP(text.slice(0, text.indexOf('/')))
  if (c === null || ip === null || c.family !== family) throw bad(`${key} ${JSON.stringify(text)} is not an ${family} gateway/prefix`)
  if (ip.ip === c.ip) throw bad(`${key} ${JSON.stringify(text)} names the network address, not the gateway`)
  return `${ip.ip}/${c.prefix}`
}

/** The node's families in order (IPv4 first). */
export function nodeFamilies (f: SubnetFile): NodeFamily[] {
  const out: NodeFamily[] = [resolve('IPv4', f.network, f.subnet)]
  if (f.networkIPv6 !== undefined && f.subnetIPv6 !== undefined) out.push(resolve('IPv6', f.networkIPv6, f.subnetIPv6))
  return out
}

function resolve (family: IPFamily, network: string, gwPrefix: string): NodeFamily {
  const slash = gwPrefix.indexOf('/')
  const c = parseCIDR(gwPrefix)
  if (c === null) throw bad(`${gwPrefix} is not a CIDR`)
  return { family, network, subnet: c.text, gateway: gwPrefix.slice(0, slash), prefix: c.prefix }
}
