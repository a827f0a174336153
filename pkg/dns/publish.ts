// Publish after programming (issue 11 §3): a Service's name resolves only once the proxy has put its
// rules in the kernel, and stops resolving in the same step as its rules go. Cache changes carry the
// store revision they happened at; each proxier reports through which revision its kernel state is
// programmed, and a change reaches the DNS index only when every proxier has programmed it.
import { lastChangeTriggerTime } from '../api/trigger-time.js'
import type { EndpointSlice, Pod, Service } from '../api/types.js'
import type { ClusterStore } from '../cache/store.js'

/** The DNS index's mutators, fed in cache order. */
export interface PublishSink {
  upsertService (svc: Service): void
  deleteService (namespace: string, name: string): void
  upsertSlice (slice: EndpointSlice): void
  deleteSlice (namespace: string, name: string): void
  upsertPod (pod: Pod): void
  deletePod (namespace: string, name: string): void
}

/** What the proxy tells DNS: how far its kernel state has caught up with the cache. */
export interface ProgrammedGate {
  /** Every cache change up to this store revision is in the kernel (or irrelevant to the proxy). */
  programmedRevision (): number
  /** Called after each successful sync. */
  onProgrammed (fn: () => void): void
  /** The last sync failed: DNS stops waiting for it rather than freeze every name. */
  failed (): boolean
}

type Change =
  | { readonly rev: number, readonly kind: 'Service', readonly prev: Service | undefined, readonly cur: Service | undefined }
  | { readonly rev: number, readonly kind: 'EndpointSlice', readonly prev: EndpointSlice | undefined, readonly cur: EndpointSlice | undefined }

export type PublisherStore = Pick<ClusterStore, 'on' | 'onBatch' | 'list' | 'revision'>

export interface PublisherOptions {
  store: PublisherStore
  sink: PublishSink
  /** One per proxier; none means the proxy is off and DNS reads the cache as it comes. */
  gates: readonly ProgrammedGate[]
  /** Seconds from a slice's last-change-trigger-time to its publication (CoreDNS's programming latency). */
  observeProgramming?: (slice: EndpointSlice, seconds: number) => void
  now?: () => number
}

export class Publisher {
  private readonly queue: Change[] = []
  private head = 0
  private published = 0
  private readonly now: () => number

  constructor (private readonly o: PublisherOptions) {
    this.now = o.now ?? Date.now
    // Listeners are registered after the proxiers' own, so a change is in their trackers before
    // programmedRevision() is asked about it.
    // In batches: a first list queues 20k changes with one flush, not one flush (and gate query) each.
    o.store.onBatch('Service', changes => {
      for (const c of changes) this.queue.push({ rev: c.revision, kind: 'Service', prev: c.prev, cur: c.cur })
      this.flush()
    })
    o.store.onBatch('EndpointSlice', changes => {
      for (const c of changes) this.queue.push({ rev: c.revision, kind: 'EndpointSlice', prev: c.prev, cur: c.cur })
      this.flush()
    })
    // Pod records do not depend on proxy rules.
    o.store.on('Pod', (prev, cur) => {
      if (cur !== undefined) o.sink.upsertPod(cur)
      else if (prev !== undefined) o.sink.deletePod(prev.metadata.namespace, prev.metadata.name)
    })
    for (const g of o.gates) g.onProgrammed(() => { this.flush() })
  }

  /** Loads what the cache holds now, for a start after the source has synced: it was programmed first. */
  loadCurrent (): void {
    for (const p of this.o.store.list('Pod')) this.o.sink.upsertPod(p)
    for (const s of this.o.store.list('Service')) this.o.sink.upsertService(s)
    for (const s of this.o.store.list('EndpointSlice')) this.o.sink.upsertSlice(s)
    this.published = this.o.store.revision
  }

  /** True when DNS is not waiting for the proxy: no proxy, or a proxy whose last sync failed. */
  get fallingBack (): boolean { return this.o.gates.length === 0 || this.o.gates.some(g => g.failed()) }

  /** Changes seen in the cache but not yet served. */
  get pending (): number { return this.queue.length - this.head }

  /** The store revision DNS answers from. */
  get revision (): number { return this.published }

  flush (): void {
    const limit = this.fallingBack ? Infinity : Math.min(...this.o.gates.map(g => g.programmedRevision()))
    while (this.head < this.queue.length) {
      const c = this.queue[this.head] as Change
      if (c.rev > limit) break
      this.head++
      this.apply(c)
      this.published = c.rev
    }
    if (this.head === this.queue.length) { this.queue.length = 0; this.head = 0 } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head)
      this.head = 0
    }
  }

  private apply (c: Change): void {
    const { sink } = this.o
    if (c.kind === 'Service') {
      if (c.cur !== undefined) sink.upsertService(c.cur)
      else if (c.prev !== undefined) sink.deleteService(c.prev.metadata.namespace, c.prev.metadata.name)
      return
    }
    if (c.cur === undefined) {
      if (c.prev !== undefined) sink.deleteSlice(c.prev.metadata.namespace, c.prev.metadata.name)
      return
    }
    sink.upsertSlice(c.cur)
    const at = lastChangeTriggerTime(c.cur.metadata)
    if (this.o.observeProgramming !== undefined && at !== undefined) this.o.observeProgramming(c.cur, Math.max(0, this.now() - at) / 1000)
  }
}
