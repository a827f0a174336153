// CoreDNS's `cache` (DNS.md §4.5–4.6) over raw upstream replies, plus what CoreDNS lacks: identical misses
// in flight share one fetch (§4.8). Structured answers (the cluster zone, ferry's own errors) pass
// through uncached: they are cheap to make again and must not outlive the state that made them.
//
// Every reply this returns is a fresh buffer the caller may patch in place, already carrying the client's
// ID and question case; hits carry AA=1, the upstream's other flags (RA) and TTLs counted down from the
// stored one.
import type { Registry } from 'prom-client'
import { TYPE, type Handler, type Plugin, type Query, type Reply, type Request } from '../message.js'
import { inspectReply, patchId, patchQuestionCase, rewriteTtls, type RawInfo } from '../wire/raw.js'
import { cacheMetrics, noCacheMetrics, type CacheMetrics } from './metrics.js'
import { DEFAULT_LIMITS, cacheDecision, type CacheType, type TtlLimits } from './policy.js'
import { RandomStore } from './store.js'

export interface CacheOptions {
  /** Entries per cache (default 10000 each); 0 turns that cache off. */
  readonly successCapacity?: number
  readonly denialCapacity?: number
  /** `cache N`: the longest TTL kept, for both caches (CoreDNS sets both maxima to N). */
  readonly maxTtl?: number
  /** Finer bounds; defaults 5 s floor, 3600 s success, 1800 s denial, SERVFAIL 5 s. */
  readonly minTtl?: number
  readonly successMaxTtl?: number
  readonly denialMaxTtl?: number
  readonly servfailTtl?: number
  /** Metric labels (DNS.md §6.3): server "dns://:53", zones ".", view "". */
  readonly server?: string
  readonly zones?: string
  readonly view?: string
  readonly metrics?: CacheMetrics
  readonly registry?: Registry
  /** Injectable for tests: a millisecond clock and the eviction's randomness. */
  readonly now?: () => number
  readonly random?: () => number
}

export type CachePlugin = Plugin & {
  size (): { success: number, denial: number }
  clear (): void
}

interface Entry {
  readonly bytes: Buffer
  readonly info: RawInfo
  /** Seconds, clamped. */
  readonly ttl: number
  /** Milliseconds on the cache clock. */
  readonly stored: number
  readonly type: CacheType
}

const AA = 0x04

/** Key: lower-cased name, type, class, DO, CD (DNS.md §4.5). */
export function cacheKey (q: Query): string {
  return `${q.question.lname}\u0000${q.question.type}\u0000${q.question.class}\u0000${q.edns?.do === true ? 1 : 0}${q.cd ? 1 : 0}`
}

/** A private copy for one client: its ID and its question's case. */
function forClient (bytes: Uint8Array, q: Query): Buffer {
  const out = Buffer.allocUnsafe(bytes.length)
  out.set(bytes)
  patchId(out, q.id)
  patchQuestionCase(out, q.question.name)
  return out
}

export function cachePlugin (opts: CacheOptions = {}): CachePlugin {
  const now = opts.now ?? (() => performance.now())
  const random = opts.random ?? Math.random
  const limits: TtlLimits = {
    minTtl: opts.minTtl ?? DEFAULT_LIMITS.minTtl,
    successMaxTtl: opts.successMaxTtl ?? opts.maxTtl ?? DEFAULT_LIMITS.successMaxTtl,
    denialMaxTtl: opts.denialMaxTtl ?? opts.maxTtl ?? DEFAULT_LIMITS.denialMaxTtl,
    servfailTtl: opts.servfailTtl ?? DEFAULT_LIMITS.servfailTtl,
  }
  const metrics = opts.metrics ?? (opts.registry !== undefined
    ? cacheMetrics(opts.registry, { server: opts.server ?? 'dns://:53', zones: opts.zones ?? '.', view: opts.view ?? '' })
    : noCacheMetrics)
  const stores: Record<CacheType, RandomStore<Entry>> = {
    success: new RandomStore<Entry>(opts.successCapacity ?? 10_000, random),
    denial: new RandomStore<Entry>(opts.denialCapacity ?? 10_000, random),
  }
  const inflight = new Map<string, Promise<Reply>>()

  const lookup = (key: string, q: Query): Reply | undefined => {
    let type: CacheType = 'success'
    let e = stores.success.get(key)
    if (e === undefined) { type = 'denial'; e = stores.denial.get(key) }
    if (e === undefined) return undefined
    const left = e.ttl - Math.floor((now() - e.stored) / 1000)
    if (left <= 0) {
      stores[type].delete(key)
      metrics.entries(type, stores[type].size)
      return undefined
    }
    metrics.hit(type)
    const out = forClient(e.bytes, q)
    rewriteTtls(out, e.info.ttlOffsets, left)
    out[2] = (out[2] as number) | AA
    return { kind: 'raw', bytes: out, info: e.info }
  }

  /** The one fetch a key's concurrent misses share: stores what is cacheable, returns the reply to copy. */
  const fetch = async (next: Handler, req: Request, key: string): Promise<Reply> => {
    const reply = await next(req)
    if (reply.kind !== 'raw') return reply
    const view = reply.info ?? inspectReply(reply.bytes)
    if (view === null) return reply
    const decision = cacheDecision(view, limits)
    if (decision === undefined) return reply
    const bytes = Buffer.from(reply.bytes)
    // The first reply shows the stored TTL too, as CoreDNS's does.
    rewriteTtls(bytes, view.ttlOffsets, decision.ttl)
    const store = stores[decision.type]
    // A key lives in one cache only: a success replaces a stale denial and the reverse.
    const other = stores[decision.type === 'success' ? 'denial' : 'success']
    if (other.delete(key)) metrics.entries(decision.type === 'success' ? 'denial' : 'success', other.size)
    if (store.set(key, { bytes, info: view, ttl: decision.ttl, stored: now(), type: decision.type }) > 0) metrics.eviction(decision.type)
    metrics.entries(decision.type, store.size)
    return { kind: 'raw', bytes, info: view }
  }

  const miss = async (next: Handler, req: Request, key: string): Promise<Reply> => {
    metrics.miss()
    let shared = inflight.get(key)
    if (shared === undefined) {
      shared = fetch(next, req, key)
      inflight.set(key, shared)
      const done = (): void => { inflight.delete(key) }
      shared.then(done, done)
    }
    const reply = await shared
    return reply.kind === 'raw' ? { kind: 'raw', bytes: forClient(reply.bytes, req.query), ...(reply.info !== undefined ? { info: reply.info } : {}) } : reply
  }

  // Hits return synchronously: no promise on the hot path.
  const plugin: Plugin = next => req => {
    const q = req.query
    const qt = q.question.type
    if (qt === TYPE.AXFR || qt === TYPE.IXFR) return next(req)
    metrics.request()
    const key = cacheKey(q)
    return lookup(key, q) ?? miss(next, req, key)
  }

  return Object.assign(plugin, {
    size: () => ({ success: stores.success.size, denial: stores.denial.size }),
    clear: (): void => {
      stores.success.clear()
      stores.denial.clear()
      metrics.entries('success', 0)
      metrics.entries('denial', 0)
    },
  })
}
