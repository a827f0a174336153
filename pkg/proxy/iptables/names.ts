// Chain names for the iptables backend. Per-service names hash stable IDs the way kube-proxy does, so
// a restarted daemon finds its own chains again, but with a FERRY- prefix so ferry never touches KUBE-.
import { createHash } from 'node:crypto'
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

export function isFerryChain (name: string): boolean {
  return name.startsWith(FERRY_PREFIX)
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** RFC 4648 base32 (standard alphabet) of the first `chars` characters only; no padding needed. */
function base32Prefix (buf: Uint8Array, chars: number): string {
  let out = ''
  let acc = 0
  let bits = 0
  for (let i = 0; i < buf.length && out.length < chars; i++) {
    acc = ((acc << 8) | (buf[i] ?? 0)) & 0xffff
    bits += 8
    while (bits >= 5 && out.length < chars) {
      out += B32[(acc >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  return out
}

function hash16 (text: string): string {
  return base32Prefix(createHash('sha256').update(text).digest(), 16)
}

// Names depend only on stable IDs, so they are memoised; the caches are bounded so a long-lived daemon
// with churning endpoints does not grow without limit (dropping a cache only costs rehashing).
const CACHE_LIMIT = 1 << 20
const svcHashCache = new Map<string, string>()
const epHashCache = new Map<string, string>()

function memo (cache: Map<string, string>, key: string): string {
  let v = cache.get(key)
  if (v === undefined) {
    if (cache.size >= CACHE_LIMIT) cache.clear()
    v = hash16(key)
    cache.set(key, v)
  }
  return v
}

/** `h` of PROXY.md §2: base32(sha256(spn + protocol))[:16], protocol lower case. */
export function servicePortHash (spn: string, protocol: Protocol | string): string {
  return memo(svcHashCache, spn + protocol.toLowerCase())
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
  const h = servicePortHash(spn, protocol)
  return { svc: SVC_PREFIX + h, svl: SVL_PREFIX + h, ext: EXT_PREFIX + h, fw: FW_PREFIX + h }
}

/** `FERRY-SEP-h'`, h' = base32(sha256(spn + protocol + "ip:port"))[:16]. */
export function endpointChainName (spn: string, protocol: Protocol | string, ip: string, port: number): string {
  return SEP_PREFIX + memo(epHashCache, spn + protocol.toLowerCase() + endpointString(ip, port))
}
