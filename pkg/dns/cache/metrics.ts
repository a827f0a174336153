// The cache's metrics under CoreDNS's names and labels (DNS.md §6, §6.3). Each cache binds its own
// server/zones/view labels; the metric objects are registered once per registry.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { CacheType } from './policy.js'

export interface CacheMetrics {
  request (): void
  hit (type: CacheType): void
  miss (): void
  entries (type: CacheType, n: number): void
  eviction (type: CacheType): void
}

export const noCacheMetrics: CacheMetrics = { request () {}, hit () {}, miss () {}, entries () {}, eviction () {} }

export interface CacheLabels {
  /** "dns://:53"-style, as CoreDNS names the server block. */
  readonly server: string
  readonly zones: string
  readonly view: string
}

interface Families {
  readonly entries: Gauge<'server' | 'type' | 'zones' | 'view'>
  readonly hits: Counter<'server' | 'type' | 'zones' | 'view'>
  readonly evictions: Counter<'server' | 'type' | 'zones' | 'view'>
  readonly misses: Counter<'server' | 'zones' | 'view'>
  readonly requests: Counter<'server' | 'zones' | 'view'>
}

const byRegistry = new WeakMap<Registry, Families>()

function families (registry: Registry): Families {
  const known = byRegistry.get(registry)
  if (known !== undefined) return known
  const registers = [registry]
  const typed = ['server', 'type', 'zones', 'view'] as const
  const plain = ['server', 'zones', 'view'] as const
  const f: Families = {
    entries: new Gauge({ name: 'coredns_cache_entries', help: 'The number of elements in the cache.', labelNames: typed, registers }),
    hits: new Counter({ name: 'coredns_cache_hits_total', help: 'The count of cache hits.', labelNames: typed, registers }),
    evictions: new Counter({ name: 'coredns_cache_evictions_total', help: 'The count of cache evictions.', labelNames: typed, registers }),
    misses: new Counter({ name: 'coredns_cache_misses_total', help: 'The count of cache misses. Deprecated, derive misses from cache hits/requests counters.', labelNames: plain, registers }),
    requests: new Counter({ name: 'coredns_cache_requests_total', help: 'The count of cache requests.', labelNames: plain, registers }),
  }
  byRegistry.set(registry, f)
  return f
}

export function cacheMetrics (registry: Registry, labels: CacheLabels): CacheMetrics {
  const f = families(registry)
  const base = { server: labels.server, zones: labels.zones, view: labels.view }
  // Label sets are bound once (in CoreDNS's order), so the hit path builds no label objects.
  const typed = (type: CacheType): { server: string, type: string, zones: string, view: string } => ({ server: labels.server, type, zones: labels.zones, view: labels.view })
  const hits = { success: f.hits.labels(typed('success')), denial: f.hits.labels(typed('denial')) }
  const entries = { success: f.entries.labels(typed('success')), denial: f.entries.labels(typed('denial')) }
  const evictions = { success: f.evictions.labels(typed('success')), denial: f.evictions.labels(typed('denial')) }
  const misses = f.misses.labels(base)
  const requests = f.requests.labels(base)
  entries.success.set(0)
  entries.denial.set(0)
  return {
    request () { requests.inc() },
    hit (type) { hits[type].inc() },
    miss () { misses.inc() },
    entries (type, n) { entries[type].set(n) },
    eviction (type) { evictions[type].inc() },
  }
}
