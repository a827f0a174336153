// Runs manifest decoding in one worker thread. The worker's heap is capped and each file has a deadline:
// a file that exhausts either is rejected, the worker is replaced, the daemon lives. Up to `depth` files
// are queued in the worker, so it decodes the next file while the event loop takes in the last one (the
// start-up pass); they run one at a time, in order. An idle worker is ended so the memory a big file
// needed goes back to the system.
import { Worker } from 'node:worker_threads'
import type { DecodeResult } from '../api/decode.js'
import type { DecodeLimits } from '../api/limits.js'
import type { KObject } from '../api/types.js'
import { FerryError, errorMessage, type ErrorCode } from '../errors/errors.js'

export interface DecodeJob { id: number, path: string, origin: string, limits: DecodeLimits }
export interface WireError { code: ErrorCode, message: string, details: Record<string, unknown> }
/**
 * `objects` is the validated objects' JSON text: JSON.parse of it costs the event loop ~30% less than
 * the structured clone of the same objects (200 files at 10k Services: ~100 ms against ~150 ms).
 */
export interface DecodeReply { id: number, objects: string, errors: WireError[], readFailed?: boolean }
/** Sent when the worker picks a job up: the deadline counts from here, not from the worker's start. */
export interface DecodeStarted { id: number, started: true }

export interface DecodePoolOptions {
  /** Per-file deadline; default 60 s. */
  timeoutMs?: number
  /** Worker heap cap; default 1024 MB. */
  maxHeapMb?: number
  /** End the worker after this long without work; default 10 s. */
  idleMs?: number
  /** Files handed to the worker ahead of the one it decodes; default 4. */
  depth?: number
}

/** A file's result, or `readFailed` when it could not be read at all (vanished, permissions). */
export type PoolResult = DecodeResult & { readFailed: boolean }

interface Job { readonly job: DecodeJob, readonly resolve: (r: PoolResult) => void }

export class DecodePool {
  private worker: Worker | undefined
  /** Not yet handed to the worker. */
  private queue: Job[] = []
  /** Handed to the current worker, in the order it runs them; [0] is the one it decodes (or will). */
  private posted: Job[] = []
  private timer: NodeJS.Timeout | undefined
  private idleTimer: NodeJS.Timeout | undefined
  private nextId = 1
  private closed = false

  constructor (private readonly opts: DecodePoolOptions = {}) {}

  /** Reads and decodes `path` in the worker; never rejects. */
  async decodeFile (path: string, origin: string, limits: DecodeLimits): Promise<PoolResult> {
    const job: DecodeJob = { id: this.nextId++, path, origin, limits }
    if (this.closed) return fail(job, 'FERRY_ERR_SOURCE', 'the manifest source is stopping')
    return await new Promise<PoolResult>(resolve => {
      this.queue.push({ job, resolve })
      this.pump()
    })
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.idleTimer)
    clearTimeout(this.timer)
    const left = [...this.posted, ...this.queue]
    this.posted = []
    this.queue = []
    for (const j of left) j.resolve(fail(j.job, 'FERRY_ERR_SOURCE', 'the manifest source is stopping'))
    await this.endWorker()
  }

  private pump (): void {
    if (this.closed) return
    clearTimeout(this.idleTimer)
    const depth = Math.max(1, this.opts.depth ?? 4)
    while (this.posted.length < depth && this.queue.length > 0) {
      const w = this.spawn()
      const j = this.queue.shift() as Job
      this.posted.push(j)
      w.postMessage(j.job)
      if (this.posted.length === 1) this.arm(this.startGraceMs())
    }
    if (this.posted.length === 0) {
      this.idleTimer = setTimeout(() => { void this.endWorker() }, this.opts.idleMs ?? 10_000)
      this.idleTimer.unref()
    }
  }

  /** A worker that never even starts a job gets a longer grace (start-up, a loaded machine). */
  private startGraceMs (): number { return Math.max(4 * (this.opts.timeoutMs ?? 60_000), 30_000) }

  private arm (ms: number): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { this.expire() }, ms)
  }

  private onMessage (w: Worker, m: DecodeReply | DecodeStarted): void {
    const head = this.posted[0]
    if (w !== this.worker || head === undefined || m.id !== head.job.id) return
    if ('started' in m) { this.arm(this.opts.timeoutMs ?? 60_000); return }
    this.posted.shift()
    clearTimeout(this.timer)
    if (this.posted.length > 0) this.arm(this.startGraceMs())
    let r: PoolResult
    try {
      const objects = JSON.parse(m.objects) as KObject[]
      r = { objects, errors: m.errors.map(e => new FerryError(e.code, e.message, e.details)), readFailed: m.readFailed === true }
    } catch (e) {
      r = fail(head.job, 'FERRY_ERR_PARSE', `decoder reply unreadable: ${errorMessage(e)}`)
    }
    head.resolve(r)
    this.pump()
  }

  /**
   * The worker died or was ended on the job it was decoding: that job fails, the ones queued behind it
   * go to a fresh worker.
   */
  private failHead (code: ErrorCode, why: string): void {
    clearTimeout(this.timer)
    const [head, ...rest] = this.posted
    this.posted = []
    this.queue.unshift(...rest)
    void this.endWorker()
    if (head !== undefined) head.resolve(fail(head.job, code, why))
    this.pump()
  }

  private expire (): void {
    this.failHead('FERRY_ERR_LIMIT', `took longer than ${Math.round((this.opts.timeoutMs ?? 60_000) / 1000)} s to decode; ignored`)
  }

  private spawn (): Worker {
    if (this.worker !== undefined) return this.worker
    // Under the test runner this module is TypeScript; the built tree has .js beside it.
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
    const w = new Worker(new URL(`./decode-worker${ext}`, import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb ?? 1024 },
    })
    w.unref()
    w.on('message', (m: DecodeReply | DecodeStarted) => { this.onMessage(w, m) })
    w.on('error', (e: Error) => {
      if (w !== this.worker) return
      const oom = (e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY'
      this.failHead(oom ? 'FERRY_ERR_LIMIT' : 'FERRY_ERR_PARSE', oom ? `needs more than ${this.opts.maxHeapMb ?? 1024} MB to decode; ignored` : `decoder failed: ${errorMessage(e)}`)
    })
    w.on('exit', () => { if (w === this.worker) this.failHead('FERRY_ERR_PARSE', 'decoder exited') })
    this.worker = w
    return w
  }

  private async endWorker (): Promise<void> {
    const w = this.worker
    this.worker = undefined
    if (w !== undefined) await w.terminate().catch(() => 0)
  }
}

function fail (job: DecodeJob, code: ErrorCode, why: string): PoolResult {
  return { objects: [], errors: [new FerryError(code, `manifests: ${job.path} ${why}`, { path: job.path })], readFailed: false }
}
