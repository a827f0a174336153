// The cache's metrics under CoreDNS's names and labels (DNS.md §6, §6.3). Each cache binds its own
// server/zones/view labels; the metric objects are registered once per registry. The per-query counters
// are plain increments handed to prom-client at scrape time (its `collect` hook): prom-client hashes the
// label set on every inc, even through a bound child, ~1-2 µs per query on the cache's hit path.
import type { Registry } from 'prom-client'
import { Counter, Gauge } from '../../metrics/prom.js'
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
  /** Counts not yet handed to prom-client, of every cache bound to this registry. */
  readonly pending: Array<{ readonly child: { inc: (n: number) => void }, n: number }>
}

const byRegistry = new WeakMap<Registry, Families>()

function families (registry: Registry): Families {
  const known = byRegistry.get(registry)
  if (known !== undefined) return known
  const registers = [registry]
  const typed = ['server', 'type', 'zones', 'view'] as const
  const plain = ['server', 'zones', 'view'] as const
  const pending: Families['pending'] = []
  const collect = (): void => { for (const p of pending) if (p.n > 0) { p.child.inc(p.n); p.n = 0 } }
  const f: Families = {
    entries: new Gauge({ name: 'coredns_cache_entries', help: 'The number of elements in the cache.', labelNames: typed, registers }),
    hits: new Counter({ name: 'coredns_cache_hits_total', help: 'The count of cache hits.', labelNames: typed, registers, collect }),
    evictions: new Counter({ name: 'coredns_cache_evictions_total', help: 'The count of cache evictions.', labelNames: typed, registers, collect }),
    misses: new Counter({ name: 'coredns_cache_misses_total', help: 'The count of cache misses. Deprecated, derive misses from cache hits/requests counters.', labelNames: plain, registers, collect }),
    requests: new Counter({ name: 'coredns_cache_requests_total', help: 'The count of cache requests.', labelNames: plain, registers, collect }),
    pending,
  }
  byRegistry.set(registry, f)
  return f
}

export function cacheMetrics (registry: Registry, labels: CacheLabels): CacheMetrics {
  const f = families(registry)
  const base = { server: labels.server, zones: labels.zones, view: labels.view }
  // Label sets are bound once (in CoreDNS's order), so the hit path builds no label objects.
  const typed = (type: CacheType): { server: string, type: string, zones: string, view: string } => ({ server: labels.server, type, zones: labels.zones, view: labels.view })
  const deferred = (child: { inc: (n: number) => void }): { n: number } => { const p = { child, n: 0 }; f.pending.push(p); return p }
  const hits = { success: deferred(f.hits.labels(typed('success'))), denial: deferred(f.hits.labels(typed('denial'))) }
  const entries = { success: f.entries.labels(typed('success')), denial: f.entries.labels(typed('denial')) }
  const evictions = { success: deferred(f.evictions.labels(typed('success'))), denial: deferred(f.evictions.labels(typed('denial'))) }
  const misses = deferred(f.misses.labels(base))
  const requests = deferred(f.requests.labels(base))
  entries.success.set(0)
  entries.denial.set(0)
  return {
    request () { requests.n++ },
    hit (type) { hits[type].n++ },
    miss () { misses.n++ },
    entries (type, n) { entries[type].set(n) },
    eviction (type) { evictions[type].n++ },
  }
}
