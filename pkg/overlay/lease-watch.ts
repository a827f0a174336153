// Watches every node's subnet lease: list at revision R, then watch `subnets/` from R+1. PUT → added or
// changed, DELETE (including an etcd lease expiring) → removed. After a compaction or a broken stream it
// lists again and diffs the *whole* list against what it last reported, so a VtepMAC that changed while
// we were away comes out as "changed" (flannel re-announces only unknown subnets and keeps stale MACs).
import type { Etcd3, IEvent } from 'etcd3'
import { FerryError, errorMessage } from '../errors/errors.js'
import { watchPrefix, type WatchEnd } from '../etcd/watch.js'
import { sameAttrs, subnetsPrefix, type Lease } from './lease-codec.js'
import { listLeases, toLease } from './lease-store.js'

export type LeaseEventType = 'added' | 'changed' | 'removed'
export interface LeaseEvent {
  readonly type: LeaseEventType
  /** For removed: the last lease seen at that key. */
  readonly lease: Lease
  /** For changed: what it replaced. */
  readonly previous?: Lease
}

export interface LeaseHandler {
  event: (ev: LeaseEvent) => void
  /** After each (re)list and its diff: the complete current set, key → lease. */
  synced?: (leases: ReadonlyMap<string, Lease>) => void
  /** A recovered problem: unreadable lease value (last good kept), etcd unreachable (retrying). */
  error?: (err: FerryError) => void
}

export type WatchLog = (level: 'debug' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void

export interface LeaseWatcherOptions {
  client: () => Etcd3
  prefix?: string | undefined
  /** Reconnect delay: starts at initialMs, doubles up to maxMs. Default 100ms → 5s (flannel's). */
  backoff?: { initialMs: number, maxMs: number } | undefined
  log?: WatchLog | undefined
}

export class LeaseWatcher {
  private known = new Map<string, Lease>()
  private stopped = false
  private endWatch: (() => void) | undefined
  private wake: (() => void) | undefined
  private loop: Promise<void> | undefined
  private readonly prefix: string

  constructor (private readonly opts: LeaseWatcherOptions, private readonly h: LeaseHandler) {
    this.prefix = subnetsPrefix(opts.prefix)
  }

  /** The leases as last reported. */
  get leases (): ReadonlyMap<string, Lease> { return this.known }

  /** Resolves after the first list has been reported (or rejects if stopped first). */
  async start (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.loop = this.run(resolve, reject)
    })
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.wake?.()
    this.endWatch?.()
    await this.loop
  }

  private async run (onReady: () => void, onStopped: (e: Error) => void): Promise<void> {
    const b = this.opts.backoff ?? { initialMs: 100, maxMs: 5000 }
    let delay = b.initialMs
    let ready = false
    while (!this.stopped) {
      try {
        const client = this.opts.client()
        const list = await listLeases(client, this.opts.prefix)
        if (this.stopped) break
        for (const e of list.errors) this.h.error?.(e)
        this.resync(list.leases)
        if (!ready) { ready = true; onReady() }
        const end = await this.watch(client, Number(list.revision) + 1, () => { delay = b.initialMs })
        if (end === 'stopped') break
        this.opts.log?.('info', 'lease watch fell behind a compaction; re-listing')
      } catch (e) {
        if (this.stopped) break
        this.h.error?.(new FerryError('FERRY_ERR_SOURCE', `lease watch: ${errorMessage(e)}; retrying in ${delay}ms`))
        await this.sleep(delay)
        delay = Math.min(delay * 2, b.maxMs)
      }
    }
    if (!ready) onStopped(new FerryError('FERRY_ERR_SOURCE', 'lease watch stopped before the first list'))
  }

  /** Diffs a complete list against what was reported, emitting one event per difference. */
  private resync (next: Map<string, Lease>): void {
    for (const [k, old] of this.known) if (!next.has(k)) this.emit({ type: 'removed', lease: old })
    for (const [k, l] of next) {
      const old = this.known.get(k)
      if (old === undefined) this.emit({ type: 'added', lease: l })
      else if (!sameAttrs(old.attrs, l.attrs)) this.emit({ type: 'changed', lease: l, previous: old })
    }
    this.known = next
    try { this.h.synced?.(this.known) } catch (e) { this.opts.log?.('warn', 'lease handler.synced threw', { error: errorMessage(e) }) }
  }

  private emit (ev: LeaseEvent): void {
    try { this.h.event(ev) } catch (e) { this.opts.log?.('warn', 'lease handler.event threw', { error: errorMessage(e) }) }
  }

  private async watch (client: Etcd3, from: number, created: () => void): Promise<WatchEnd> {
    const w = watchPrefix(client, { prefix: this.prefix, fromRevision: from, created, events: evs => { this.apply(evs) } })
    this.endWatch = w.stop
    if (this.stopped) w.stop()
    try { return await w.done } finally { this.endWatch = undefined }
  }

  private apply (events: IEvent[]): void {
    for (const ev of events) {
      const key = ev.kv.key.toString('utf8')
      if (ev.type === 'Put') {
        const l = toLease(key, ev.kv.value, ev.kv.lease, ev.kv.mod_revision, this.opts.prefix)
        if (l instanceof FerryError) { this.h.error?.(l); continue } // keep the last good value
        const old = this.known.get(key)
        this.known.set(key, l)
        if (old === undefined) this.emit({ type: 'added', lease: l })
        else if (!sameAttrs(old.attrs, l.attrs)) this.emit({ type: 'changed', lease: l, previous: old })
      } else {
        const old = this.known.get(key)
        if (old !== undefined) { this.known.delete(key); this.emit({ type: 'removed', lease: old }) }
      }
    }
  }

  private async sleep (ms: number): Promise<void> {
    if (this.stopped) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.wake = undefined; resolve() }, ms)
      this.wake = () => { clearTimeout(timer); this.wake = undefined; resolve() }
    })
  }
}
