// The forwarder's metrics under CoreDNS 1.12's names (DNS.md §6). The forwarder calls these hooks; the
// prom-client implementation registers on an injected registry, once per registry.
import type { Registry } from 'prom-client'
import { Counter, Histogram, exponentialBuckets } from '../../metrics/prom.js'

export interface ForwardMetrics {
  /** One upstream exchange that got a reply; `to` is "ip:port", `rcode` the reply's rcode name. */
  requestDuration (to: string, rcode: string, seconds: number): void
  healthcheckFailure (to: string): void
  /** Every upstream was down, so one was tried anyway. */
  healthcheckBroken (): void
  maxConcurrentReject (): void
  /** A pooled UDP socket was reused (hit) or a socket or TCP connection was opened (miss). */
  connCache (to: string, proto: 'udp' | 'tcp', hit: boolean): void
}

export const noForwardMetrics: ForwardMetrics = {
  requestDuration () {},
  healthcheckFailure () {},
  healthcheckBroken () {},
  maxConcurrentReject () {},
  connCache () {},
}

/** CoreDNS's time buckets: 0.25 ms × 2^0..15. */
export const TIME_BUCKETS = exponentialBuckets(0.00025, 2, 16)

const PROXY_NAME = 'forward'
const byRegistry = new WeakMap<Registry, ForwardMetrics>()

export function forwardMetrics (registry: Registry): ForwardMetrics {
  const known = byRegistry.get(registry)
  if (known !== undefined) return known
  const registers = [registry]
  const duration = new Histogram({ name: 'coredns_proxy_request_duration_seconds', help: 'Histogram of the time each request took.', labelNames: ['proxy_name', 'to', 'rcode'], buckets: TIME_BUCKETS, registers })
  const hcFailures = new Counter({ name: 'coredns_proxy_healthcheck_failures_total', help: 'Counter of the number of failed healthchecks.', labelNames: ['proxy_name', 'to'], registers })
  const connHits = new Counter({ name: 'coredns_proxy_conn_cache_hits_total', help: 'Counter of connection cache hits per upstream and protocol.', labelNames: ['proxy_name', 'to', 'proto'], registers })
  const connMisses = new Counter({ name: 'coredns_proxy_conn_cache_misses_total', help: 'Counter of connection cache misses per upstream and protocol.', labelNames: ['proxy_name', 'to', 'proto'], registers })
  const broken = new Counter({ name: 'coredns_forward_healthcheck_broken_total', help: 'Counter of the number of complete failures of the healthchecks.', registers })
  const rejects = new Counter({ name: 'coredns_forward_max_concurrent_rejects_total', help: 'Counter of the number of queries rejected because the concurrent queries were at maximum.', registers })
  const m: ForwardMetrics = {
    requestDuration (to, rcode, seconds) { duration.observe({ proxy_name: PROXY_NAME, to, rcode }, seconds) },
    healthcheckFailure (to) { hcFailures.inc({ proxy_name: PROXY_NAME, to }) },
    healthcheckBroken () { broken.inc() },
    maxConcurrentReject () { rejects.inc() },
    connCache (to, proto, hit) { (hit ? connHits : connMisses).inc({ proxy_name: PROXY_NAME, to, proto }) },
  }
  byRegistry.set(registry, m)
  return m
}
