// Chain names for the iptables backend. Per-service names hash stable IDs the way kube-proxy does, so
// a restarted daemon finds its own chains again, but with a FERRY- prefix so ferry never touches KUBE-.
import { hash } from 'node:crypto'
import type { Protocol } from '../../api/types.js'

/** Top-level chains; each is declared (and so flushed) and rewritten on every sync. */
export const Chain = {
  SERVICES: 'FERRY-SERVICES',
  NODEPORTS: 'FERRY-NODEPORTS',
  POSTROUTING: 'FERRY-POSTROUTING',
  MARK_MASQ: 'FERRY-MARK-MASQ',
  EXTERNAL_SERVICES: 'FERRY-EXTERNAL-SERVICES',
  FORWARD: 'FERRY-FORWARD',
  PROXY_FIREWALL: 'FERRY-PROXY-FIREWALL',
  /** Localhost NodePort guard (CVE-2020-8558); has a rule only when localhost NodePorts are on. */
  FIREWALL: 'FERRY-FIREWALL',
  CANARY: 'FERRY-PROXY-CANARY',
} as const

export const FERRY_PREFIX = 'FERRY-'
export const SVC_PREFIX = 'FERRY-SVC-'
export const SVL_PREFIX = 'FERRY-SVL-'
export const EXT_PREFIX = 'FERRY-EXT-'
export const FW_PREFIX = 'FERRY-FW-'
export const SEP_PREFIX = 'FERRY-SEP-'
export const PER_SERVICE_PREFIXES: readonly string[] = [SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX]

/** iptables rejects chain names longer than this. */
export const MAX_CHAIN_LEN = 28

export function isPerServiceChain (name: string): boolean {
  return name.startsWith(FERRY_PREFIX) && PER_SERVICE_PREFIXES.some(p => name.startsWith(p))
}

const IPTABLES_MODE_CHAINS: ReadonlySet<string> = new Set(Object.values(Chain))

/** A chain of the iptables mode (IPVS mode's companion chains share the FERRY- prefix but not these names). */
export function isFerryChain (name: string): boolean {
  return IPTABLES_MODE_CHAINS.has(name) || isPerServiceChain(name)
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/**
 * RFC 4648 base32 (standard alphabet) of the first `chars` characters only; no padding needed. The
 * digest comes as a 'binary' (latin1) string, one char per byte: no Buffer per name, ~2x faster at 60k names.
 */
function base32Prefix (bytes: string, chars: number): string {
  let out = ''
  let acc = 0
  let bits = 0
  for (let i = 0; i < bytes.length && out.length < chars; i++) {
    acc = ((acc << 8) | bytes.charCodeAt(i)) & 0xffff
    bits += 8
    while (bits >= 5 && out.length < chars) {
      out += B32[(acc >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  return out
}

function hash16 (text: string): string {
  return base32Prefix(hash('sha256', text, 'binary'), 16)
}

// Names depend only on stable IDs, so they are memoised, keyed by strings the caller already holds
// (spn, protocol, endpoint IP): V8 caches a string's hash in the string, so lookups with them are cheap,
// where a freshly concatenated key would be hashed anew on every sync. Bounded: dropping the cache only
// costs rehashing.
const CACHE_LIMIT = 1 << 20
interface PortEntry {
  readonly hash: string
  readonly names: ServiceChainNames
  /** Endpoint IP → last port seen and its SEP hash (endpoints of one port nearly always share a port). */
  readonly eps: Map<string, { port: number, hash: string }>
}
const cache = new Map<string, Map<string, PortEntry>>()
let cached = 0

function entry (spn: string, protocol: string): PortEntry {
  let byProto = cache.get(spn)
  if (byProto === undefined) {
    if (cached >= CACHE_LIMIT) { cache.clear(); cached = 0 }
    byProto = new Map()
    cache.set(spn, byProto)
  }
  let e = byProto.get(protocol)
  if (e === undefined) {
    const h = hash16(spn + protocol.toLowerCase())
    e = { hash: h, names: { svc: SVC_PREFIX + h, svl: SVL_PREFIX + h, ext: EXT_PREFIX + h, fw: FW_PREFIX + h }, eps: new Map() }
    byProto.set(protocol, e)
    cached++
  }
  return e
}

/** `h` of PROXY.md §2: base32(sha256(spn + protocol))[:16], protocol lower case. */
export function servicePortHash (spn: string, protocol: Protocol | string): string {
  return entry(spn, protocol).hash
}

/** "ip:port", with brackets for IPv6 like Go's net.JoinHostPort. */
export function endpointString (ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}

export interface ServiceChainNames {
  readonly svc: string
  readonly svl: string
  readonly ext: string
  readonly fw: string
}

export function serviceChainNames (spn: string, protocol: Protocol | string): ServiceChainNames {
  return entry(spn, protocol).names
}

/** `FERRY-SEP-h'`, h' = base32(sha256(spn + protocol + "ip:port"))[:16]. */
export function endpointChainName (spn: string, protocol: Protocol | string, ip: string, port: number): string {
  const eps = entry(spn, protocol).eps
  let e = eps.get(ip)
  if (e === undefined || e.port !== port) {
    e = { port, hash: SEP_PREFIX + hash16(spn + protocol.toLowerCase() + endpointString(ip, port)) }
    eps.set(ip, e)
    cached++
  }
  return e.hash
}
