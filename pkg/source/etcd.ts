// EtcdSource: list everything under `<prefix>/v1/` at one revision, hand it to `replace`, then watch from
// the next revision and forward PUT → upsert, DELETE → remove. On compaction (the watch's start revision
// is gone) or on reconnect after an outage it lists again and calls `replace`, so nothing is missed.
// The watch is the raw Watch stream (pkg/etcd/watch.ts says why): one stream, one watcher, one loop.
// Lists and watches go through a bare node:http2 client (pkg/etcd/bare-client.ts says why) until it fails
// once; from then on through etcd3, loaded at that point, whose errors and hints are the ones reported.
import type { Etcd3, IEvent } from 'etcd3'
import type { KObject } from '../api/types.js'
import { FerryError, errorMessage, isFerryError } from '../errors/errors.js'
import { combineAccess, describe, hint, type EtcdAccess, type EtcdAuth, type EtcdTLS } from '../etcd/access.js'
import { BareRangeClient } from '../etcd/bare-client.js'
import type { ClientFactory, EtcdConnector } from '../etcd/client.js'
import { decodeValue } from '../etcd/codec.js'
import { objectsPrefix, parseKey, prefixRangeEnd } from '../etcd/keys.js'
import { rangePage, type RangePage, type RangePageRequest } from '../etcd/range.js'
import { watchPrefix, type WatchEnd, type WatchOpener } from '../etcd/watch.js'
import type { Source, SourceHandler } from './source.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export type LogFn = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void

export interface EtcdSourceOptions {
  /** Client URLs, e.g. ["http://127.0.0.1:2379"]; userinfo (user:password@) is used as the login, never shown. */
  endpoints: string[]
  /** CA and client certificate for https:// endpoints. */
  tls?: EtcdTLS | undefined
  /** Username and password login (wins over credentials in the URLs). */
  auth?: EtcdAuth | undefined
  /** Key prefix; default "/ferry". Objects are read from `<prefix>/v1/`. */
  prefix?: string
  log?: LogFn
  /** Retry delay after a failure: starts at initialMs, doubles up to maxMs. Default 200ms → 10s. */
  backoff?: { initialMs: number, maxMs: number }
  /** Builds a client for one connection attempt (a fresh one after every failure). Default createClient. */
  clientFactory?: ClientFactory
  /** Deadline for each range call; default 5000ms. */
  requestTimeoutMs?: number
  /** Keys per range page when listing (all pages read at one revision); default LIST_PAGE_KEYS. */
  pageSize?: number
  /** Longest run of decoding between two turns of the event loop while listing; default DECODE_SLICE_MS. */
  decodeSliceMs?: number
  /**
   * Test seam: awaited after each successful list, before the watch from `fromRevision` is created.
   * Lets a test write and compact while the source is between list and watch.
   */
  beforeWatch?: (fromRevision: number) => void | Promise<void>
}

const COMPACTED = /compacted/i
const ZERO = Buffer.from([0])
/** ~2 MiB replies at 10k Services: 7 round trips instead of 20, each decoded while etcd sends the next. */
const LIST_PAGE_KEYS = 3000
/** Longest run of decoding between two turns of the event loop while listing. */
const DECODE_SLICE_MS = 20

export class EtcdSource implements Source {
  /** "etcd <endpoints>", passwords redacted: shown in /readyz, /debug/state and logs. */
  readonly name: string
  private readonly opts: EtcdSourceOptions
  private readonly access: EtcdAccess
  private conn: EtcdConnector | undefined
  private readonly prefix: string
  private readonly log: LogFn
  private readonly backoff: { initialMs: number, maxMs: number }
  private state = new Map<string, KObject>() // etcd key → last good object
  private client: Etcd3 | undefined
  private started = false
  private stopped = false
  private ready = false
  private wake: (() => void) | undefined
  private endWatch: (() => void) | undefined
  private loop: Promise<void> | undefined
  private failStart: ((e: Error) => void) | undefined
  private lastRevision = 0
  private bare: BareRangeClient | undefined
  private bareFailed = false

  constructor (opts: EtcdSourceOptions) {
    if (opts.endpoints.length === 0) throw new FerryError('FERRY_ERR_CONFIG', 'etcd source: no endpoints given')
    this.opts = opts
    this.access = combineAccess(opts.endpoints, opts.tls, opts.auth) // throws FERRY_ERR_CONFIG on a bad endpoint
    this.name = `etcd ${this.access.shown.join(',')}`
    this.prefix = objectsPrefix(opts.prefix)
    this.log = opts.log ?? (() => {})
    this.backoff = opts.backoff ?? { initialMs: 200, maxMs: 10_000 }
  }

  /** The revision of the last list or watch event seen (0 before the first list). */
  get revision (): number { return this.lastRevision }

  async start (handler: SourceHandler): Promise<void> {
    if (this.started) throw new FerryError('FERRY_ERR_SOURCE', 'etcd source: start() called twice')
    this.started = true
    await new Promise<void>((resolve, reject) => {
      this.failStart = reject
      this.loop = this.run(handler, resolve)
    })
  }

  async stop (): Promise<void> {
    if (!this.stopped) {
      this.stopped = true
      this.wake?.()
      this.endWatch?.()
      this.bare?.close()
      this.dropClient()
      if (!this.ready) this.failStart?.(new FerryError('FERRY_ERR_SOURCE', 'etcd source stopped before the first list completed'))
    }
    await this.loop
  }

  private async run (h: SourceHandler, onReady: () => void): Promise<void> {
    let delay = this.backoff.initialMs
    let outage = false
    let compactions = 0
    while (!this.stopped) {
      let phase = 'list'
      try {
        const revision = await this.list(h)
        if (this.stopped) break
        if (!this.ready) { this.ready = true; onReady() }
        const client: WatchOpener = this.bare ?? this.client ?? await this.connect()
        if (this.stopped) break
        phase = 'watch'
        await this.opts.beforeWatch?.(revision + 1)
        if (this.stopped) break
        const end = await this.watch(client, h, revision + 1, {
          created: () => {
            delay = this.backoff.initialMs
            if (outage) { outage = false; this.log('info', 'etcd reachable again; state re-listed', { endpoints: this.access.shown, revision }) }
          },
          events: () => { compactions = 0 },
        })
        if (end === 'stopped') break
        compactions++
        this.log('warn', 'etcd watch fell behind a compaction; re-listing', { fromRevision: revision + 1 })
        if (compactions > 3) await this.sleep(delay) // never spin if compaction keeps outrunning us
      } catch (e) {
        if (this.stopped) break
        this.dropClient()
        this.dropBare() // a watch through it failed: etcd3 from now on
        if (COMPACTED.test(errorMessage(e))) { // the pinned list revision was compacted mid-list
          this.log('info', 'etcd list revision compacted; listing again', { error: describe(e) })
          if (++compactions > 3) await this.sleep(delay)
          continue
        }
        if (!outage) {
          outage = true
          this.report(h, new FerryError('FERRY_ERR_SOURCE',
            `etcd ${this.access.shown.join(',')}: ${phase} failed: ${describe(e)}${hint(e, this.access)}; keeping the last good state and retrying`,
            { endpoints: this.access.shown, phase }))
        } else this.log('debug', 'etcd still unreachable', { phase, error: describe(e), retryInMs: delay })
        await this.sleep(delay)
        delay = Math.min(delay * 2, this.backoff.maxMs)
      }
    }
    this.dropClient()
  }

  /** The etcd3 client, made (and etcd3 loaded) on first use. */
  private async connect (): Promise<Etcd3> {
    if (this.conn === undefined) {
      const { connector } = await import('../etcd/client.js')
      this.conn = connector(this.opts)
    }
    this.client ??= this.conn.client()
    return this.client
  }

  /** Closes the bare client for good: lists and watches go through etcd3 from here on. */
  private dropBare (): void {
    if (this.bare === undefined) return
    this.bareFailed = true
    this.bare.close()
    this.bare = undefined
  }

  private dropClient (): void {
    const c = this.client
    this.client = undefined
    try { c?.close() } catch {}
  }

  /**
   * Reads every page at one revision, validates, calls replace; returns that revision. The next page is
   * asked for before this one is decoded, so etcd serves it while we parse (decoding is most of a list).
   */
  private async list (h: SourceHandler): Promise<number> {
    if (!this.bareFailed && this.opts.clientFactory === undefined) {
      const bare = this.bare ??= new BareRangeClient({ hosts: this.access.hosts, tls: this.access.tls, auth: this.access.auth, requestTimeoutMs: this.opts.requestTimeoutMs })
      try {
        return await this.listWith(async req => await bare.page(req), h, 'http2')
      } catch (e) {
        if (this.stopped) return 0
        this.dropBare()
        this.log('debug', 'etcd list through the bare http2 client failed; listing through etcd3 from now on', { error: describe(e) })
      }
    }
    const client = this.client ?? await this.connect()
    if (this.stopped) return 0
    return await this.listWith(async req => await rangePage(client, req), h, 'etcd3')
  }

  private async listWith (readPage: (req: RangePageRequest) => Promise<RangePage>, h: SourceHandler, via: string): Promise<number> {
    const rangeEnd = prefixRangeEnd(this.prefix)
    const limit = this.opts.pageSize ?? LIST_PAGE_KEYS
    const sliceMs = this.opts.decodeSliceMs ?? DECODE_SLICE_MS
    const next = new Map<string, KObject>()
    let page = await readPage({ key: Buffer.from(this.prefix), rangeEnd, limit, revision: 0 })
    const revision = page.revision
    for (;;) {
      if (this.stopped) return 0
      const last = page.kvs[page.kvs.length - 1]
      const ahead = page.more && last !== undefined
        ? readPage({ key: Buffer.concat([last.key, ZERO]), rangeEnd, limit, revision })
        : undefined
      ahead?.catch(() => {}) // awaited below; a stop before that must not leave it unhandled
      let sliceStart = performance.now()
      for (const kv of page.kvs) {
        const k = kv.key.toString('utf8')
        const obj = this.decode(h, k, kv.value)
        const keep = obj ?? this.state.get(k)
        if (keep !== undefined) next.set(k, keep)
        // A turn of the event loop now and then: the socket is read meanwhile, so etcd keeps sending
        // the page asked for ahead instead of waiting on full buffers; probes and signals are served.
        if (performance.now() - sliceStart >= sliceMs) {
          await new Promise(resolve => setImmediate(resolve))
          if (this.stopped) return 0
          sliceStart = performance.now()
        }
      }
      if (ahead === undefined) break
      page = await ahead
    }
    this.state = next
    this.lastRevision = revision
    this.log('debug', 'etcd listed', { revision, objects: next.size, via })
    this.call(h, 'replace', () => { h.replace([...next.values()]) })
    return revision
  }

  /** The validated object at `key`, or undefined after reporting why it is unusable. */
  private decode (h: SourceHandler, key: string, value: Buffer): KObject | undefined {
    if (parseKey(key, this.opts.prefix) === null) {
      this.report(h, new FerryError('FERRY_ERR_PARSE', `etcd key ${key}: not in ferry's key layout (${this.prefix}<resource>/[<namespace>/]<name>); ignored`, { origin: key }))
      return undefined
    }
    try {
      return decodeValue(key, value, this.opts.prefix)
    } catch (e) {
      this.report(h, isFerryError(e) ? e : new FerryError('FERRY_ERR_PARSE', `etcd key ${key}: ${errorMessage(e)}`, { origin: key }))
      return undefined
    }
  }

  /** Watches from `from`; resolves on compaction or stop, rejects on any other end of the stream. */
  private async watch (client: WatchOpener, h: SourceHandler, from: number, on: { created: () => void, events: () => void }): Promise<WatchEnd> {
    this.log('debug', 'etcd watching', { fromRevision: from, via: client === this.bare ? 'http2' : 'etcd3' })
    const w = watchPrefix(client, {
      prefix: this.prefix,
      fromRevision: from,
      progressNotify: true,
      created: on.created,
      events: (events, res) => {
        if (events.length > 0) on.events()
        for (const ev of events) this.apply(h, ev)
        const rev = Number(res.header.revision)
        if (events.length === 0 && rev > this.lastRevision) this.lastRevision = rev // progress notify
      },
    })
    this.endWatch = w.stop
    if (this.stopped) w.stop()
    try { return await w.done } finally { this.endWatch = undefined }
  }

  private apply (h: SourceHandler, ev: IEvent): void {
    const key = ev.kv.key.toString('utf8')
    const rev = Number(ev.kv.mod_revision)
    if (rev > this.lastRevision) this.lastRevision = rev
    if (ev.type === 'Put') {
      const obj = this.decode(h, key, ev.kv.value)
      if (obj === undefined) return // keep the last good object, if any
      this.state.set(key, obj)
      this.call(h, 'upsert', () => { h.upsert(obj) })
      return
    }
    const p = parseKey(key, this.opts.prefix)
    if (p !== null && this.state.delete(key)) this.call(h, 'remove', () => { h.remove(p.kind, p.namespace, p.name) })
  }

  /** Errors go to the handler, whose owner logs them once; here only at debug level. */
  private report (h: SourceHandler, err: FerryError): void {
    this.log('debug', err.message, { code: err.code })
    this.call(h, 'error', () => { h.error(err) })
  }

  /** A throwing handler is a bug downstream; log it and keep the source alive. */
  private call (_h: SourceHandler, what: string, fn: () => void): void {
    try { fn() } catch (e) { this.log('error', `etcd source: handler.${what} threw`, { error: errorMessage(e) }) }
  }

  private async sleep (ms: number): Promise<void> {
    if (this.stopped) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.wake = undefined; resolve() }, ms)
      this.wake = () => { clearTimeout(timer); this.wake = undefined; resolve() }
    })
  }
}
