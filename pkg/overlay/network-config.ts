// The cluster network config stored in etcd at `<prefix>/network/config`, flannel's format:
//
//   {"Network": "10.244.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472},
//    "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56", "IPv6SubnetLen": 64}
//
// Parsed once, validated with flannel's defaults and rules (OVERLAY.md §1.2), frozen. Keys match
// case-insensitively ("vni" = "VNI") as in flannel; unknown keys are ignored but reported so the caller
// can warn once. The one deliberate difference: no Backend means vxlan (flannel's default is udp, which
// ferry does not implement).
import { FerryError, errorMessage } from '../errors/errors.js'
import { familyBits, ipToBigInt, makeCidr, parseCidr, subnetCount, type Cidr } from '../net/cidr.js'
import type { IPFamily } from '../net/ip.js'

export type BackendType = 'vxlan' | 'host-gw'
export const BACKEND_TYPES: readonly BackendType[] = ['vxlan', 'host-gw']
export const DEFAULT_VNI = 1
/** The kernel's default VXLAN port (Linux predates IANA's 4789), as flannel leaves it. */
export const DEFAULT_VXLAN_PORT = 8472

export interface BackendConfig {
  readonly type: BackendType
  /** vxlan only; 1 when unset. */
  readonly vni: number
  /** vxlan only; 8472 when unset or 0. */
  readonly port: number
}

/** One family's cluster network and the node subnets leases are carved from. */
export interface FamilyNetwork {
  readonly family: IPFamily
  readonly network: Cidr
  readonly subnetLen: number
  /** First and last subnet that may be leased (network addresses, aligned to subnetLen). */
  readonly subnetMin: Cidr
  readonly subnetMax: Cidr
}

export interface NetworkConfig {
  readonly ipv4?: FamilyNetwork
  readonly ipv6?: FamilyNetwork
  readonly backend: BackendConfig
  /** Top-level and Backend keys ferry does not read, as given (e.g. "EnableNFTables", "Backend.GBP"). */
  readonly ignoredKeys: readonly string[]
}

const TOP_KEYS = ['Network', 'SubnetLen', 'SubnetMin', 'SubnetMax', 'EnableIPv4', 'EnableIPv6', 'IPv6Network',
  'IPv6SubnetLen', 'IPv6SubnetMin', 'IPv6SubnetMax', 'Backend'] as const
const BACKEND_KEYS = ['Type', 'VNI', 'Port'] as const

function fail (field: string, msg: string): never {
  throw new FerryError('FERRY_ERR_CONFIG', `network config: ${field}: ${msg}`, { field })
}

/** Case-insensitive view of a JSON object: canonical key → value, plus the keys nobody asked for. */
function fold<K extends string> (obj: Record<string, unknown>, known: readonly K[], where: string): { get: (k: K) => unknown, ignored: string[] } {
  const byLower = new Map<string, K>(known.map(k => [k.toLowerCase(), k]))
  const values = new Map<K, unknown>()
  const ignored: string[] = []
  for (const [k, v] of Object.entries(obj)) {
    const canon = byLower.get(k.toLowerCase())
    if (canon === undefined) { ignored.push(where === '' ? k : `${where}.${k}`); continue }
    if (values.has(canon)) fail(where === '' ? canon : `${where}.${canon}`, `given twice (keys match case-insensitively: "${k}")`)
    values.set(canon, v)
  }
  return { get: k => values.get(k), ignored }
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function optInt (v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(field, `must be an integer, got ${JSON.stringify(v)}`)
  if (v < min || v > max) fail(field, `must be between ${min} and ${max}, got ${v}`)
  return v
}

function optBool (v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'boolean') fail(field, `must be true or false, got ${JSON.stringify(v)}`)
  return v
}

function optString (v: unknown, field: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined
  if (typeof v !== 'string') fail(field, `must be a string, got ${JSON.stringify(v)}`)
  return v
}

interface FamilyFields { network: unknown, subnetLen: unknown, subnetMin: unknown, subnetMax: unknown }

/** flannel's CheckNetworkConfig for one family; `names` are the JSON field names for messages. */
function familyNetwork (family: IPFamily, f: FamilyFields, names: { network: string, len: string, min: string, max: string }): FamilyNetwork {
  const bits = familyBits(family)
  const text = optString(f.network, names.network)
  if (text === undefined) fail(names.network, 'missing')
  const network = parseCidr(text)
  if (network === null || network.family !== family) fail(names.network, `${JSON.stringify(text)} is not an ${family} CIDR`)
  let subnetLen = optInt(f.subnetLen, names.len, 0, bits)
  if (subnetLen === undefined || subnetLen === 0) {
    // Each node at least a /24 (v6: /64) when the network holds four or more of them, else a quarter of it.
    const wide = family === 'IPv4' ? 24 : 64
    if (network.prefix > bits - 4) fail(names.network, `${network.text} is too small; the narrowest usable network is /${bits - 4}`)
    subnetLen = network.prefix <= wide - 2 ? wide : network.prefix + 2
  } else {
    if (subnetLen > bits - 2) fail(names.len, `${subnetLen} leaves no room for pods; at most ${bits - 2}`)
    if (subnetLen < network.prefix + 2) {
      fail(names.len, `${subnetLen} is too wide for ${network.text}: the network must hold at least four subnets (SubnetLen ≥ ${network.prefix + 2})`)
    }
  }
  const size = 1n << BigInt(bits - subnetLen)
  const last = network.base + (1n << BigInt(bits - network.prefix)) - size
  const bound = (v: unknown, name: string, dflt: bigint): bigint => {
    const t = optString(v, name)
    if (t === undefined) return dflt
    const ip = ipToBigInt(t)
    if (ip === null || ip.family !== family) fail(name, `${JSON.stringify(t)} is not an ${family} address`)
    if (ip.value < network.base || ip.value > last + size - 1n) fail(name, `${t} is not in ${network.text}`)
    if ((ip.value & (size - 1n)) !== 0n) fail(name, `${t} is not on a /${subnetLen} boundary`)
    return ip.value
  }
  // The network's first subnet is never leased (flannel: its .0 would be the network address).
  const min = bound(f.subnetMin, names.min, network.base + size)
  const max = bound(f.subnetMax, names.max, last)
  if (min > max) fail(names.min, `${makeCidr(family, min, subnetLen).text} lies after ${names.max} ${makeCidr(family, max, subnetLen).text}`)
  return Object.freeze({ family, network, subnetLen, subnetMin: makeCidr(family, min, subnetLen), subnetMax: makeCidr(family, max, subnetLen) })
}

function backendConfig (v: unknown, ignored: string[]): BackendConfig {
  if (v === undefined || v === null) return Object.freeze({ type: 'vxlan', vni: DEFAULT_VNI, port: DEFAULT_VXLAN_PORT })
  if (!isObject(v)) fail('Backend', `must be an object, got ${JSON.stringify(v)}`)
  const b = fold(v, BACKEND_KEYS, 'Backend')
  ignored.push(...b.ignored)
  const t = optString(b.get('Type'), 'Backend.Type') ?? 'vxlan'
  const type = BACKEND_TYPES.find(x => x === t.toLowerCase())
  if (type === undefined) fail('Backend.Type', `${JSON.stringify(t)} is not a backend ferry has; use one of ${BACKEND_TYPES.join(', ')}`)
  const vni = optInt(b.get('VNI'), 'Backend.VNI', 0, 0xffffff) ?? 0
  const port = optInt(b.get('Port'), 'Backend.Port', 0, 65535) ?? 0
  return Object.freeze({ type, vni: vni === 0 ? DEFAULT_VNI : vni, port: port === 0 ? DEFAULT_VXLAN_PORT : port })
}

/** Validates a decoded config object; throws FERRY_ERR_CONFIG naming the field. */
export function validateNetworkConfig (raw: unknown): NetworkConfig {
  if (!isObject(raw)) fail('(top level)', `must be a JSON object, got ${Array.isArray(raw) ? 'an array' : JSON.stringify(raw)}`)
  const c = fold(raw, TOP_KEYS, '')
  const ignored = [...c.ignored]
  const v4 = optBool(c.get('EnableIPv4'), 'EnableIPv4') ?? true
  const v6 = optBool(c.get('EnableIPv6'), 'EnableIPv6') ?? false
  if (!v4 && !v6) fail('EnableIPv4', 'false, and EnableIPv6 is not true: no family left to route')
  const ipv4 = v4
    ? familyNetwork('IPv4', { network: c.get('Network'), subnetLen: c.get('SubnetLen'), subnetMin: c.get('SubnetMin'), subnetMax: c.get('SubnetMax') },
      { network: 'Network', len: 'SubnetLen', min: 'SubnetMin', max: 'SubnetMax' })
    : undefined
  const ipv6 = v6
    ? familyNetwork('IPv6', { network: c.get('IPv6Network'), subnetLen: c.get('IPv6SubnetLen'), subnetMin: c.get('IPv6SubnetMin'), subnetMax: c.get('IPv6SubnetMax') },
      { network: 'IPv6Network', len: 'IPv6SubnetLen', min: 'IPv6SubnetMin', max: 'IPv6SubnetMax' })
    : undefined
  const backend = backendConfig(c.get('Backend'), ignored)
  return Object.freeze({
    ...(ipv4 !== undefined ? { ipv4 } : {}),
    ...(ipv6 !== undefined ? { ipv6 } : {}),
    backend,
    ignoredKeys: Object.freeze(ignored),
  })
}

/** JSON text (as stored in etcd) → validated config; FERRY_ERR_PARSE for bad JSON, FERRY_ERR_CONFIG for bad fields. */
export function parseNetworkConfig (text: string | Buffer): NetworkConfig {
  let raw: unknown
  try { raw = JSON.parse(typeof text === 'string' ? text : text.toString('utf8')) } catch (e) {
    throw new FerryError('FERRY_ERR_PARSE', `network config: not valid JSON: ${errorMessage(e)}`)
  }
  return validateNetworkConfig(raw)
}

/**
 * Why a vxlan VNI may split a cluster shared with flannel nodes, or undefined. flannel's lease field is a
 * uint16 on Windows (every release) and was one on Linux before v0.24.0 (uint32 since, flannel-io/flannel
 * 634aeba7): such a node writes its VNI cut to 16 bits and cannot decode a lease naming a VNI above 65535,
 * so it skips ferry's leases and never routes to ferry's nodes. Current Linux flannel takes any VNI and
 * has no range check of its own, so ferry does not refuse: it warns. (Windows also wants VNI ≥ 4096.)
 */
export function flannelVNIWarning (backend: BackendConfig): string | undefined {
  if (backend.type !== 'vxlan' || backend.vni <= 0xffff) return undefined
  return `Backend.VNI ${backend.vni} is above 65535: flannel nodes on Windows or older than v0.24.0 store the VNI as 16 bits, cannot read this node's lease and will not route to it; fine if every node runs ferry or Linux flannel ≥ v0.24.0`
}

/** How many node subnets a family's range holds (SubnetMin..SubnetMax). */
export function leasableSubnets (n: FamilyNetwork): bigint {
  return subnetCount(n.family, n.subnetLen, n.subnetMin.base, n.subnetMax.base)
}

/** The families a config routes, v4 first. */
export function families (cfg: NetworkConfig): FamilyNetwork[] {
  return [cfg.ipv4, cfg.ipv6].filter((f): f is FamilyNetwork => f !== undefined)
}
