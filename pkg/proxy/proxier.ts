// One Proxier per IP family: cache events go to the change trackers, one bounded-frequency runner
// turns them into a backend-neutral desired state and hands it to the backend.
import type { Node } from '../api/types.js'
import { ZONE_LABEL } from '../api/types.js'
import type { Change, ClusterStore } from '../cache/store.js'
import { errorMessage } from '../errors/errors.js'
import type { Logger } from '../log/log.js'
import type { IPFamily } from '../net/ip.js'
import type { ProxyHealth } from './health.js'
import type { ProxyMetrics } from './metrics.js'
import { BoundedFrequencyRunner, realClock, type Clock } from './runner.js'
import { resolveProxyOptions, type ProxyOptions } from './options.js'
import { planPort } from './plan.js'
import { categorizeEndpoints } from './topology.js'
import { tracePlan, type Packet, type TraceEnv, type TraceResult } from './trace.js'
import { EndpointsChangeTracker, ServiceChangeTracker } from './tracker.js'
import type { Backend, DesiredServicePort, DesiredState, EndpointInfo, NodeTopology, ServicePortInfo, SyncResult } from './types.js'

/**
 * A step run after each successful sync with the desired state, the keys that changed (null after a
 * full sync) and every endpoint per service port before policy and topology filtering.
 */
export type AfterSync = (state: DesiredState, changed: ReadonlySet<string> | null, endpoints: ReadonlyMap<string, readonly EndpointInfo[]>) => Promise<void>

/** Like kube-proxy: a full resync at least hourly; syncPeriod is the retry delay and half the health timeout. */
export const FULL_SYNC_PERIOD_MS = 3_600_000
/**
 * Syncs that may run back to back (the burst of 2 of kube-proxy's IPVS mode and its older runner; its
 * newest runner has none, PROXY.md §3): a change that comes soon after an isolated
 * sync (an edit and its revert, a Service and then its slice) is programmed at once, not up to
 * minSyncPeriod later; a steady stream of changes still gets one sync per minSyncPeriod.
 */
export const SYNC_BURST = 2

const NO_ENDPOINTS: readonly EndpointInfo[] = []

export interface ProxierOptions {
  family: IPFamily
  nodeName: string
  backend: Backend
  /** The neutral options the backend plans with: the tracer plans with them too. */
  options?: ProxyOptions
  store: ClusterStore
  minSyncPeriodMs: number
  syncPeriodMs: number
  metrics: ProxyMetrics
  health: ProxyHealth
  log: Logger
  clock?: Clock
  /**
   * Work that must follow the new rules into the kernel (conntrack cleanup, health-check listeners).
   * Failures are logged.
   */
  afterSync?: readonly AfterSync[]
}

export interface ProxierStatus {
  readonly family: IPFamily
  readonly backend: string
  readonly servicePorts: number
  readonly endpoints: number
  readonly syncs: number
  readonly lastSync?: { readonly at: string, readonly kind: string, readonly durationMs: number, readonly summary: Readonly<Record<string, number>> }
  readonly lastError?: string
}

export class Proxier {
  private readonly svcTracker: ServiceChangeTracker
  private readonly epTracker: EndpointsChangeTracker
  private readonly svcMap = new Map<string, ServicePortInfo>()
  private readonly epMap = new Map<string, EndpointInfo[]>()
  private readonly desired = new Map<string, DesiredServicePort>()
  /** Service ports with endpoints but none local under an internal / external Local policy (the gauges). */
  private readonly noLocal = { internal: new Set<string>(), external: new Set<string>() }
  /** The gauge values last set from noLocal. */
  private noLocalSet: { internal: number, external: number } | undefined
  private readonly runner: BoundedFrequencyRunner
  private readonly clock: Clock
  private topology: NodeTopology
  private needFullSync = true
  /** Full syncs asked for (the canary, a zone change): one asked while a sync runs outlives that sync. */
  private fullAsked = 0
  private lastFullSyncAt = -Infinity
  private syncs = 0
  private lastSync: ProxierStatus['lastSync']
  private lastError: string | undefined
  private readonly firstSync: Promise<void>
  private canaryTimer: unknown
  private stopped = false
  /** The store revision whose changes the kernel now holds; what DNS publishes up to. */
  private programmedRev = 0
  private syncing = false
  /**
   * The first sync has started (kube-proxy's "initialized"). Until then changes are not reported to the
   * health tracker: a huge or slow first list would otherwise fail /livez and get ferryd restarted in a
   * loop. /readyz still waits for the first successful sync.
   */
  private initialized = false
  private readonly programmedListeners: Array<() => void> = []
  private resolveFirstSync: () => void = () => {}

  constructor (private readonly o: ProxierOptions) {
    this.clock = o.clock ?? realClock
    this.svcTracker = new ServiceChangeTracker(o.family, () => this.clock.now())
    this.epTracker = new EndpointsChangeTracker(o.family, o.nodeName, () => this.clock.now())
    this.topology = { nodeName: o.nodeName, zone: '' }
    this.firstSync = new Promise(resolve => { this.resolveFirstSync = resolve })
    this.runner = new BoundedFrequencyRunner({
      name: `sync-${o.family}`,
      fn: async () => { await this.sync() },
      minIntervalMs: o.minSyncPeriodMs,
      maxIntervalMs: FULL_SYNC_PERIOD_MS,
      burst: SYNC_BURST,
      clock: this.clock,
      onError: (e) => { o.log.error('sync runner error', { err: e }) },
    })
    o.health.addFamily(o.family)
    // In batches: the first list (20k objects at 10k Services) costs one queue and gauge update, not one each.
    o.store.onBatch('Service', changes => { this.onServices(changes) })
    o.store.onBatch('EndpointSlice', changes => { this.onSlices(changes) })
    o.store.on('Node', (p, c) => { this.onNode((c ?? p) as Node | undefined, c !== undefined) })
  }

  get family (): IPFamily { return this.o.family }

  start (): void {
    this.runner.start()
    this.runner.run()
    this.scheduleCanaryCheck()
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.canaryTimer !== undefined) this.clock.clearTimeout(this.canaryTimer)
    await this.runner.stop()
    this.o.backend.stop?.()
  }

  /** Every syncPeriod, ask the backend whether its rules survived (firewalld reloads, `iptables -F`). */
  private scheduleCanaryCheck (): void {
    const check = this.o.backend.rulesIntact
    if (check === undefined || this.stopped) return
    this.canaryTimer = this.clock.setTimeout(() => {
      void check.call(this.o.backend).then(intact => {
        if (!intact && !this.stopped) {
          this.o.log.warn('rules vanished from the kernel; resyncing everything')
          this.askFullSync()
        }
      }, (e: unknown) => { this.o.log.warn('rule check failed', { err: e }) }).finally(() => { this.scheduleCanaryCheck() })
    }, this.o.syncPeriodMs)
  }

  /**
   * Every cache change up to this store revision is in the kernel, or was nothing to the proxy. DNS
   * publishes a name only up to it, so a name never resolves before its rules route.
   */
  programmedRevision (): number {
    const idle = !this.syncing && !this.needFullSync && this.svcTracker.pendingCount() === 0 && this.epTracker.pendingCount() === 0
    return idle ? this.o.store.revision : this.programmedRev
  }

  /** Called after each successful sync (DNS's publisher flushes then). */
  onProgrammed (fn: () => void): void { this.programmedListeners.push(fn) }

  /** The last sync failed (DNS then stops waiting for the proxy). */
  failed (): boolean { return this.lastError !== undefined }

  /** Resolves after the first successful sync. */
  whenSynced (): Promise<void> { return this.firstSync }

  /** Asks for a sync as soon as the min period allows; tests and the source's first list use it. */
  requestSync (): void { this.runner.run() }

  private onServices (changes: ReadonlyArray<Change<'Service'>>): void {
    this.o.metrics.serviceChangesTotal.inc(changes.length)
    let queued = false
    for (const c of changes) if (this.svcTracker.update(c.prev, c.cur)) queued = true
    if (queued) this.queued()
    this.o.metrics.serviceChangesPending.set(this.svcTracker.pendingCount())
  }

  private onSlices (changes: ReadonlyArray<Change<'EndpointSlice'>>): void {
    this.o.metrics.endpointChangesTotal.inc(changes.length)
    let queued = false
    for (const c of changes) if (this.epTracker.update(c.prev, c.cur)) queued = true
    if (queued) this.queued()
    this.o.metrics.endpointChangesPending.set(this.epTracker.pendingCount())
  }

  private onNode (node: Node | undefined, present: boolean): void {
    if (node?.metadata.name !== this.o.nodeName) return
    const zone = present ? (node.metadata.labels?.[ZONE_LABEL] ?? '') : ''
    if (zone === this.topology.zone) return
    // Topology hints depend on the zone: every service's cluster set may change.
    this.topology = { nodeName: this.o.nodeName, zone }
    this.askFullSync()
  }

  /** The next sync recomputes and programs everything. The canary check runs beside syncs, so this may come mid-sync. */
  private askFullSync (): void {
    this.needFullSync = true
    this.fullAsked++
    this.queued()
  }

  private queued (): void {
    if (this.initialized) this.o.health.queued(this.o.family)
    this.o.metrics.lastQueuedTimestamp.set({ ip_family: this.o.family }, this.clock.now() / 1000)
    this.runner.run()
  }

  /** One sync: apply tracked changes, recategorize what changed, hand the desired state to the backend. */
  async sync (): Promise<void> {
    if (!this.o.store.synced) return // never program a partial initial state
    const start = this.clock.now()
    const revision = this.o.store.revision
    const asked = this.fullAsked
    // Changes queued from here on are not in this sync (the trackers are applied just below).
    this.initialized = true
    this.o.health.syncStarting(this.o.family)
    const pendingSince = [this.svcTracker.firstPendingAt(), this.epTracker.firstPendingAt()].filter((t): t is number => t !== undefined)
    const programmingStarts = this.programmingStarts()
    const full = this.needFullSync || start - this.lastFullSyncAt >= FULL_SYNC_PERIOD_MS
    // A full sync recomputes every key and tells the backend none: the trackers need not compare.
    const changed = this.svcTracker.apply(this.svcMap, !full)
    for (const key of this.epTracker.apply(this.epMap, !full)) changed.add(key)
    this.o.metrics.serviceChangesPending.set(0)
    this.o.metrics.endpointChangesPending.set(0)
    const recompute = full ? this.svcMap.keys() : changed.values()
    for (const key of recompute) {
      const info = this.svcMap.get(key)
      if (info === undefined) { this.desired.delete(key); this.noteNoLocal(key, undefined); continue }
      const c = categorizeEndpoints(this.epMap.get(key) ?? NO_ENDPOINTS, info, this.topology)
      const d: DesiredServicePort = { info, clusterEndpoints: c.clusterEndpoints, localEndpoints: c.localEndpoints, allReachableEndpoints: c.allReachableEndpoints, hasAnyEndpoints: c.hasAnyEndpoints }
      this.desired.set(key, d)
      this.noteNoLocal(key, d)
    }
    if (full) {
      for (const key of [...this.desired.keys()]) if (!this.svcMap.has(key)) { this.desired.delete(key); this.noteNoLocal(key, undefined) }
    }

    const family = this.o.family
    let result: SyncResult
    this.syncing = true
    try {
      result = await this.o.backend.sync({ family, services: this.desired }, full ? null : changed)
    } catch (e) {
      this.syncing = false
      this.o.health.syncFailed(family)
      this.needFullSync = true
      this.lastError = errorMessage(e)
      this.o.log.error('sync failed; the next sync is a full one', { err: e, full })
      this.runner.retryAfter(this.o.syncPeriodMs)
      for (const fn of this.programmedListeners) fn() // DNS falls back to the cache
      return
    }
    const end = this.clock.now()
    this.syncing = false
    this.programmedRev = revision
    this.needFullSync = this.fullAsked !== asked
    if (full) this.lastFullSyncAt = start
    this.lastError = undefined
    this.syncs++
    const seconds = (end - start) / 1000
    this.o.metrics.syncDuration.observe({ ip_family: family }, seconds)
    ;(result.kind === 'full' ? this.o.metrics.syncFullDuration : this.o.metrics.syncPartialDuration).observe({ ip_family: family }, seconds)
    // Clamped: a trigger time ahead of our clock (skew with the controller's) is no negative latency.
    for (const t of programmingStarts) this.o.metrics.networkProgramming.observe({ ip_family: family }, Math.max(0, end - t) / 1000)
    this.o.metrics.lastSyncTimestamp.set({ ip_family: family }, end / 1000)
    this.recordNoLocal()
    this.o.health.updated(family)
    this.lastSync = { at: new Date(end).toISOString(), kind: result.kind, durationMs: end - start, summary: result.summary }
    // queuedMs: from the first change this sync applies to its start (the runner's min-interval gate).
    const queuedMs = pendingSince.length > 0 ? start - Math.min(...pendingSince) : 0
    this.o.log.debug('synced', { kind: result.kind, changed: full ? null : changed.size, durationMs: end - start, queuedMs })
    for (const hook of this.o.afterSync ?? []) {
      try { await hook({ family, services: this.desired }, full ? null : changed, this.epMap) } catch (e) {
        this.o.log.warn('post-sync step failed', { err: e })
      }
    }
    this.resolveFirstSync()
    for (const fn of this.programmedListeners) fn()
  }

  /**
   * Where the programming latency of the pending changes starts. As in kube-proxy, every pending slice
   * update carrying a valid last-change-trigger-time (set after our tracker started) is one observation
   * from that time, superseded updates included. Without one (ferry's file and etcd
   * sources), changes count from receipt as before: one observation from the earliest such slice
   * change, one from the earliest Service change whose Service has no triggered slice change here.
   */
  private programmingStarts (): number[] {
    const ep = this.epTracker.programmingStarts()
    const starts = ep.triggers
    if (ep.firstUntriggeredAt !== undefined) starts.push(ep.firstUntriggeredAt)
    const svcAt = this.svcTracker.firstPendingAt(ep.covered)
    if (svcAt !== undefined) starts.push(svcAt)
    return starts
  }

  /** Keeps the no-local-endpoints sets per recomputed key, so the gauges cost nothing per unchanged service. */
  private noteNoLocal (key: string, d: DesiredServicePort | undefined): void {
    const none = d !== undefined && d.hasAnyEndpoints && d.localEndpoints !== null && d.localEndpoints.length === 0
    if (none && d.info.internalPolicyLocal) this.noLocal.internal.add(key)
    else this.noLocal.internal.delete(key)
    if (none && d.info.externalPolicyLocal) this.noLocal.external.add(key)
    else this.noLocal.external.delete(key)
  }

  private recordNoLocal (): void {
    const { internal, external } = this.noLocal
    // Set when they move: each set hashes its labels, and most syncs change neither.
    if (this.noLocalSet?.internal === internal.size && this.noLocalSet.external === external.size) return
    this.o.metrics.noLocalEndpoints.set({ ip_family: this.o.family, traffic_policy: 'internal' }, internal.size)
    this.o.metrics.noLocalEndpoints.set({ ip_family: this.o.family, traffic_policy: 'external' }, external.size)
    this.noLocalSet = { internal: internal.size, external: external.size }
  }

  status (): ProxierStatus {
    let endpoints = 0
    for (const eps of this.epMap.values()) endpoints += eps.length
    return {
      family: this.o.family,
      backend: this.o.backend.name,
      servicePorts: this.svcMap.size,
      endpoints,
      syncs: this.syncs,
      ...(this.lastSync !== undefined ? { lastSync: this.lastSync } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    }
  }

  /** One new connection through the desired state of the last sync, as the tracer sees it (ferryctl trace). */
  trace (pkt: Packet, env: TraceEnv): TraceResult {
    const opts = this.o.options ?? resolveProxyOptions({ family: this.o.family })
    const plans = []
    for (const sp of this.desired.values()) plans.push(planPort(sp, opts))
    return tracePlan(plans, opts, env, pkt)
  }

  /** The desired state, for /debug/state. */
  desiredState (): Array<{ servicePort: string, clusterIP: string, port: number, protocol: string, nodePort: number, cluster: string[] | null, local: string[] | null, hasAnyEndpoints: boolean }> {
    const ep = (l: readonly EndpointInfo[] | null): string[] | null => l === null ? null : l.map(e => `${e.ip}:${e.port}`)
    return [...this.desired.values()].map(d => ({
      servicePort: d.info.spn, clusterIP: d.info.clusterIP, port: d.info.port, protocol: d.info.protocol, nodePort: d.info.nodePort,
      cluster: ep(d.clusterEndpoints), local: ep(d.localEndpoints), hasAnyEndpoints: d.hasAnyEndpoints,
    }))
  }
}
