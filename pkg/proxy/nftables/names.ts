// Names and words of the nftables layout (/tmp/nft-layout.md, "ferry nftables mode: the layout"): the
// table, the family's address words, the fixed chains, maps and sets, and the names of the shared and
// per-service objects. Everything here is pure and depends only on stable IDs, which is what lets a
// partial sync find the objects a Service owned without listing the kernel.
import { createHash } from 'node:crypto'
import type { IPFamily } from '../../net/ip.js'
import type { EndpointSet } from '../plan.js'

export const TABLE = 'ferry'

export interface FamilyWords {
  readonly family: IPFamily
  /** Table family: `ip` or `ip6`. */
  readonly table: 'ip' | 'ip6'
  /** Address match and dnat family: `ip daddr`, `dnat ip to`. */
  readonly addr: 'ip' | 'ip6'
  readonly type: 'ipv4_addr' | 'ipv6_addr'
  readonly loopback: string
  /** "add ... ip ferry": the prefix of every object command. */
  readonly obj: string
}

const V4: FamilyWords = { family: 'IPv4', table: 'ip', addr: 'ip', type: 'ipv4_addr', loopback: '127.0.0.0/8', obj: `ip ${TABLE}` }
const V6: FamilyWords = { family: 'IPv6', table: 'ip6', addr: 'ip6', type: 'ipv6_addr', loopback: '::1', obj: `ip6 ${TABLE}` }

export function familyWords (family: IPFamily): FamilyWords {
  return family === 'IPv6' ? V6 : V4
}

/** Fixed chains: base chains (hooked) and the regular ones every table has. */
export const Chain = {
  NAT_PREROUTING: 'nat-prerouting',
  NAT_OUTPUT: 'nat-output',
  NAT_POSTROUTING: 'nat-postrouting',
  FILTER_INPUT: 'filter-input',
  FILTER_FORWARD: 'filter-forward',
  FILTER_OUTPUT: 'filter-output',
  SERVICES: 'services',
  MARK_FOR_MASQUERADE: 'mark-for-masquerade',
  MASQUERADING: 'masquerading',
  REJECT: 'reject-chain',
} as const

/** Fixed maps and sets. */
export const MapName = {
  SERVICE_IPS: 'service-ips',
  SERVICE_NODEPORTS: 'service-nodeports',
  NO_ENDPOINT_CLUSTER: 'no-endpoint-cluster',
  NO_ENDPOINT_EXTERNAL: 'no-endpoint-external',
  NO_ENDPOINT_NODEPORTS: 'no-endpoint-nodeports',
  FIREWALL_IPS: 'firewall-ips',
  HAIRPIN: 'hairpin',
  CLUSTER_IPS: 'cluster-ips',
} as const

/** Entry class of a shared endpoint map: keyed by VIP (daddr . proto . port) or by NodePort (proto . port). */
export type EntryClass = 'vip' | 'np'

// Shared object IDs. "vip-cluster-5" names both the map and its pick chain ("pick-vip-cluster-5"); the
// policy chains are named by their ID. The ID alone determines the declaration (shared.ts).
export const pickID = (k: EntryClass, s: EndpointSet, n: number): string => `${k}-${s}-${n}`
export const cipID = (s: EndpointSet, n: number): string => `cip-${s}-${n}`
export const extID = (k: EntryClass, n: number): string => `ext-${k}-${n}`
export const xlID = (k: EntryClass, n: number, m: number): string => `xl-${k}-${n}-${m}`
export const pickChain = (id: string): string => `pick-${id}`

const hashes = new Map<string, string>()

/** A stable short hash of a servicePortKey for per-service object names (48 bits of sha256, hex). */
export function serviceHash (key: string): string {
  let h = hashes.get(key)
  if (h === undefined) {
    if (hashes.size > 100_000) hashes.clear()
    h = createHash('sha256').update(key).digest('hex').slice(0, 12)
    hashes.set(key, h)
  }
  return h
}

/** An endpoint's part of its per-service object names: a hash of its address and port. */
export const endpointTag = (ip: string, port: number): string => serviceHash(`${ip}:${port}`)

/** Per-service object names (only Services with ClientIP affinity or source ranges have them). */
export const PerService = {
  firewall: (h: string): string => `fw-${h}`,
  cluster: (h: string): string => `svc-${h}`,
  external: (h: string): string => `ext-${h}`,
  affinity: (h: string, s: EndpointSet): string => `aff-${h}-${s}`,
  /**
   * The affinity set of one endpoint (`e`: endpointTag) shares this name with its chain's suffix. Named by
   * the endpoint, not its position, so remembered clients stay with their endpoint when others come or go.
   */
  affinitySet: (h: string, s: EndpointSet, e: string): string => `aff-${h}-${s}-${e}`,
  endpoint: (h: string, s: EndpointSet, e: string): string => `ep-${h}-${s}-${e}`,
} as const

/** "0x4000" for bit 14. */
export function markHex (bit: number): string {
  return '0x' + (2 ** bit).toString(16)
}
