// What the cache keeps and for how long (DNS.md §4.5–4.6, CoreDNS `response.Typify` and
// `dnsutil.MinimalTTL`): positive answers in the success cache, NXDOMAIN/NODATA with an SOA and upstream
// SERVFAIL in the denial cache; TC, REFUSED, FORMERR and NXDOMAIN without SOA are not kept.
import { RCODE } from '../message.js'
import type { RawInfo } from '../wire/raw.js'

export type CacheType = 'success' | 'denial'

export interface TtlLimits {
  /** Seconds; every bound applies to the message TTL (the smallest RR TTL). */
  readonly minTtl: number
  readonly successMaxTtl: number
  readonly denialMaxTtl: number
  /** How long an upstream SERVFAIL is kept; 0 keeps none. */
  readonly servfailTtl: number
}

export const DEFAULT_LIMITS: TtlLimits = { minTtl: 5, successMaxTtl: 3600, denialMaxTtl: 1800, servfailTtl: 5 }

/** CoreDNS's TTL for messages with no records (and its floor). */
const MINIMAL_TTL = 5

export interface CacheDecision {
  readonly type: CacheType
  /** Seconds, already clamped; every RR is served with this minus the elapsed time. */
  readonly ttl: number
}

/** Whether and how long to keep a reply; undefined means pass it on uncached. */
export function cacheDecision (v: RawInfo, limits: TtlLimits): CacheDecision | undefined {
  if (v.tc || !v.qr || v.qdcount !== 1) return undefined
  // RFC 2308 §5: a negative answer lives no longer than its SOA's TTL and MINIMUM.
  const soaTtl = v.soa === null ? -1 : Math.min(v.soa.ttl, v.soa.minimum)
  const soa = soaTtl >= 0
  if (v.rcode === RCODE.SERVFAIL || v.rcode === RCODE.NOTIMP) {
    return limits.servfailTtl > 0 ? { type: 'denial', ttl: limits.servfailTtl } : undefined
  }
  let type: CacheType
  if (v.rcode === RCODE.NOERROR) type = v.ancount === 0 && soa ? 'denial' : 'success'
  else if (v.rcode === RCODE.NXDOMAIN && soa) type = 'denial'
  else return undefined
  let ttl = v.minTtl ?? MINIMAL_TTL
  if (type === 'denial' && soa && soaTtl < ttl) ttl = soaTtl
  const max = type === 'success' ? limits.successMaxTtl : limits.denialMaxTtl
  const min = Math.min(limits.minTtl, max)
  ttl = Math.max(min, Math.min(max, ttl))
  return ttl > 0 ? { type, ttl } : undefined
}
