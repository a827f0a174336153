// Subnet lease keys and values in etcd, flannel's layout under ferry's prefix:
//
//   <prefix>/network/config                        the NetworkConfig (network-config.ts)
//   <prefix>/network/subnets/10.244.3.0-24         {"PublicIP":"192.0.2.7","BackendType":"vxlan",
//   <prefix>/network/subnets/fd00:10:244:3::-64      "BackendData":{"VNI":1,"VtepMAC":"c6:d2:…"}}
//
// Dual stack: one key per family (not flannel's combined "…-24&fc00::-64" key), both written in one
// transaction under one etcd lease, both carrying the same value. Each family's routes then follow its own
// key, a v4-only reader ignores v6 keys, and "which node holds fd00:…:3::/64" is one range read.
import { FerryError, errorMessage } from '../errors/errors.js'
import { normalizePrefix } from '../etcd/keys.js'
import { parseCidr, type Cidr } from '../net/cidr.js'
import { parseIP } from '../net/ip.js'
import { parseMAC } from '../net/mac.js'
import { BACKEND_TYPES, type BackendType } from './network-config.js'

/** vxlan BackendData as this node publishes it: always with the configured VNI. */
export interface VxlanData { readonly vni: number, readonly vtepMAC: string }

/**
 * vxlan BackendData as read from any node's lease. The VNI may be absent (flannel's older form, a value
 * written by hand): flannel routes to a peer by its VtepMAC and PublicIP alone, every vxlan device using
 * the network's configured VNI, so the peer's VNI is informational and only the VtepMAC is required.
 */
export interface StoredVxlanData { readonly vni?: number | undefined, readonly vtepMAC: string }

interface Attrs<D> {
  readonly publicIP: string
  readonly publicIPv6?: string | undefined
  readonly backendType: BackendType
  /** vxlan: the VNI and the device's MAC; host-gw: none. */
  readonly backendData?: D | undefined
}

/** What a node publishes with its subnet: a vxlan node's own lease always names its VNI. */
export type LeaseAttrs = Attrs<VxlanData>

/** What a lease read from etcd holds: a peer's vxlan VNI may be missing. */
export type StoredAttrs = Attrs<StoredVxlanData>

export interface Lease {
  readonly key: string
  readonly subnet: Cidr
  readonly attrs: StoredAttrs
  /** etcd lease ID (decimal text); "0" marks a reservation: a key written by hand with no TTL. */
  readonly leaseId: string
  readonly modRevision: string
}

export function networkPrefix (prefix?: string): string {
  return `${normalizePrefix(prefix)}/network/`
}

export function configKey (prefix?: string): string {
  return `${networkPrefix(prefix)}config`
}

export function subnetsPrefix (prefix?: string): string {
  return `${networkPrefix(prefix)}subnets/`
}

/** 10.244.3.0/24 → `<prefix>/network/subnets/10.244.3.0-24`. */
export function leaseKey (subnet: Cidr, prefix?: string): string {
  return `${subnetsPrefix(prefix)}${subnet.text.replace('/', '-')}`
}

/** The subnet a key names, or null when the key is not a canonical lease key under `prefix`. */
export function parseLeaseKey (key: string, prefix?: string): Cidr | null {
  const base = subnetsPrefix(prefix)
  if (!key.startsWith(base)) return null
  const rest = key.slice(base.length)
  const dash = rest.lastIndexOf('-')
  if (dash < 0) return null
  const c = parseCidr(`${rest.slice(0, dash)}/${rest.slice(dash + 1)}`, { strict: true })
  return c !== null && leaseKey(c, prefix) === key ? c : null
}

export function encodeAttrs (a: StoredAttrs): string {
  const v: Record<string, unknown> = { PublicIP: a.publicIP }
  if (a.publicIPv6 !== undefined) v.PublicIPv6 = a.publicIPv6
  v.BackendType = a.backendType
  const d = a.backendData
  if (d !== undefined) v.BackendData = d.vni !== undefined ? { VNI: d.vni, VtepMAC: d.vtepMAC } : { VtepMAC: d.vtepMAC }
  return JSON.stringify(v)
}

function bad (key: string, msg: string): never {
  throw new FerryError('FERRY_ERR_PARSE', `etcd key ${key}: ${msg}`, { origin: key })
}

/** The stored value as a JSON object, or why it is not one. */
function parseObject (value: Buffer | string): object | string {
  let raw: unknown
  try { raw = JSON.parse(typeof value === 'string' ? value : value.toString('utf8')) } catch (e) {
    return `value is not valid JSON: ${errorMessage(e)}`
  }
  return typeof raw !== 'object' || raw === null || Array.isArray(raw) ? 'value must be a JSON object' : raw
}

/** A field by name, case-insensitively as in flannel. */
function get (o: object, k: string): unknown {
  return Object.entries(o).find(([n]) => n.toLowerCase() === k.toLowerCase())?.[1]
}

/**
 * The value's IPv4 PublicIP alone, undefined if it has none. flannel knows its own lease or reservation by
 * PublicIP only, so a node must find its key even when the rest does not decode (a vxlan value without
 * a VtepMAC, a reservation written by hand, another backend's data): it rewrites the whole value anyway.
 */
export function decodePublicIP (value: Buffer | string): string | undefined {
  const raw = parseObject(value)
  return typeof raw === 'string' ? undefined : publicIPv4(raw)
}

/** The object's PublicIP when it is an IPv4 address, in canonical form. */
function publicIPv4 (raw: object): string | undefined {
  const ip = get(raw, 'PublicIP')
  const p = typeof ip === 'string' ? parseIP(ip) : null
  return p?.family === 'IPv4' ? p.ip : undefined
}

/**
 * Stored JSON → attributes; keys case-insensitive as in flannel. Throws FERRY_ERR_PARSE naming the key.
 * vxlan needs a VtepMAC; a VNI is optional (absent or null), but one that is there must be a valid VNI:
 * flannel's typed decoding skips such a peer too.
 */
export function decodeAttrs (key: string, value: Buffer | string): StoredAttrs {
  const raw = parseObject(value)
  if (typeof raw === 'string') return bad(key, raw)
  const publicIP = publicIPv4(raw)
  if (publicIP === undefined) bad(key, `PublicIP: want an IPv4 address, got ${JSON.stringify(get(raw, 'PublicIP'))}`)
  const ip6 = get(raw, 'PublicIPv6')
  let publicIPv6: string | undefined
  if (ip6 !== undefined && ip6 !== null && ip6 !== '') {
    const p6 = typeof ip6 === 'string' ? parseIP(ip6) : null
    if (p6 === null || p6.family !== 'IPv6') bad(key, `PublicIPv6: want an IPv6 address, got ${JSON.stringify(ip6)}`)
    publicIPv6 = p6.ip
  }
  const t = get(raw, 'BackendType')
  const backendType = BACKEND_TYPES.find(b => b === t)
  if (backendType === undefined) bad(key, `BackendType: want one of ${BACKEND_TYPES.join(', ')}, got ${JSON.stringify(t)}`)
  let backendData: StoredVxlanData | undefined
  const d = get(raw, 'BackendData')
  if (backendType === 'vxlan') {
    if (typeof d !== 'object' || d === null) bad(key, 'BackendData: vxlan leases carry {"VtepMAC"} (and "VNI")')
    // Any notation flannel's Go decoding takes (aa-bb-…, aabb.ccdd.eeff), stored as the kernel prints it.
    const given = get(d, 'VtepMAC')
    const mac = typeof given === 'string' ? parseMAC(given) : null
    if (mac === null) bad(key, `BackendData.VtepMAC: want a MAC address, got ${JSON.stringify(given)}`)
    const vni = get(d, 'VNI')
    if (vni === undefined || vni === null) backendData = { vtepMAC: mac }
    else if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > 0xffffff) bad(key, `BackendData.VNI: want 0..16777215 or none, got ${JSON.stringify(vni)}`)
    else backendData = { vni, vtepMAC: mac }
  }
  return { publicIP, ...(publicIPv6 !== undefined ? { publicIPv6 } : {}), backendType, ...(backendData !== undefined ? { backendData } : {}) }
}

/** Same node, same backend data: what decides "changed" in the watch. */
export function sameAttrs (a: StoredAttrs, b: StoredAttrs): boolean {
  return encodeAttrs(a) === encodeAttrs(b)
}
