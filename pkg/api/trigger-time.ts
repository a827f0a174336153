// The EndpointSlice controller's endpoints.kubernetes.io/last-change-trigger-time: when the Pod or
// Service change that led to a slice's content happened. kube-proxy and CoreDNS measure programming
// latency from it; so do ferry's proxy and DNS, through this one parser.
import type { ObjectMeta } from './types.js'

export const TRIGGER_TIME_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time'

// RFC 3339 close to how Go's time.RFC3339Nano reads it (kube-proxy's and CoreDNS's parser): upper-case T
// and Z, a zone always, at most nanoseconds. Date.parse alone also takes date-only, zone-less (local
// time) and RFC 2822 strings and rolls Feb 30 over; it still rejects offsets out of range.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/** Milliseconds since the epoch for an RFC 3339 timestamp, or undefined if it is not one. */
export function parseRFC3339 (s: string): number | undefined {
  const m = RFC3339.exec(s)
  if (m === null) return undefined
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = month === 2 && leap ? 29 : DAYS[month - 1]
  if (days === undefined || day < 1 || day > days || hour > 23 || minute > 59 || second > 59) return undefined
  const ms = Date.parse(s)
  return Number.isFinite(ms) ? ms : undefined
}

/** The object's last-change-trigger-time in epoch milliseconds; undefined when absent or malformed. */
export function lastChangeTriggerTime (meta: ObjectMeta): number | undefined {
  const v = meta.annotations?.[TRIGGER_TIME_ANNOTATION]
  return v === undefined ? undefined : parseRFC3339(v)
}
