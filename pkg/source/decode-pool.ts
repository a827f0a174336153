// Runs manifest decoding in one worker thread, one file at a time. The worker's heap is capped and each
// file has a deadline: a file that exhausts either is rejected, the worker is replaced, the daemon lives.
// An idle worker is ended so the memory a big file needed goes back to the system.
import { Worker } from 'node:worker_threads'
import { Lane } from '../async/lane.js'
import type { DecodeResult } from '../api/decode.js'
import type { DecodeLimits } from '../api/limits.js'
import type { KObject } from '../api/types.js'
import { FerryError, errorMessage, type ErrorCode } from '../errors/errors.js'

export interface DecodeJob { id: number, path: string, origin: string, limits: DecodeLimits }
export interface WireError { code: ErrorCode, message: string, details: Record<string, unknown> }
export interface DecodeReply { id: number, objects: KObject[], keys: string[], errors: WireError[], readFailed?: boolean }
/** Sent when the worker picks a job up: the deadline counts from here, not from the worker's start. */
export interface DecodeStarted { id: number, started: true }

export interface DecodePoolOptions {
  /** Per-file deadline; default 60 s. */
  timeoutMs?: number
  /** Worker heap cap; default 1024 MB. */
  maxHeapMb?: number
  /** End the worker after this long without work; default 10 s. */
  idleMs?: number
}

/** A file's result, or `readFailed` when it vanished before it could be read (an unreadable file is an error). */
export type PoolResult = DecodeResult & { readFailed: boolean }

export class DecodePool {
  private worker: Worker | undefined
  private readonly lane = new Lane()
  private idleTimer: NodeJS.Timeout | undefined
  private nextId = 1
  private closed = false

  constructor (private readonly opts: DecodePoolOptions = {}) {}

  /** Reads and decodes `path` in the worker; never rejects. */
  async decodeFile (path: string, origin: string, limits: DecodeLimits): Promise<PoolResult> {
    return await this.lane.run(async () => await this.runOne({ id: this.nextId++, path, origin, limits }))
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.idleTimer)
    await this.endWorker()
  }

  private async runOne (job: DecodeJob): Promise<PoolResult> {
    if (this.closed) return fail(job, 'FERRY_ERR_SOURCE', 'the manifest source is stopping')
    clearTimeout(this.idleTimer)
    const w = this.spawn()
    const timeoutMs = this.opts.timeoutMs ?? 60_000
    const result = await new Promise<PoolResult>(resolve => {
      const done = (r: PoolResult): void => {
        clearTimeout(timer)
        w.off('message', onMessage)
        w.off('error', onError)
        w.off('exit', onExit)
        resolve(r)
      }
      const onMessage = (m: DecodeReply | DecodeStarted): void => {
        if (m.id !== job.id) return
        if ('started' in m) { clearTimeout(timer); timer = setTimeout(expire, timeoutMs); return }
        done({ objects: m.objects, keys: m.keys, errors: m.errors.map(e => new FerryError(e.code, e.message, e.details)), readFailed: m.readFailed === true })
      }
      const onError = (e: Error): void => {
        const oom = (e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY'
        this.worker = undefined
        done(oom
          ? fail(job, 'FERRY_ERR_LIMIT', `needs more than ${this.opts.maxHeapMb ?? 1024} MB to decode; ignored`)
          : fail(job, 'FERRY_ERR_PARSE', `decoder failed: ${errorMessage(e)}`))
      }
      const onExit = (): void => { this.worker = undefined; done(fail(job, 'FERRY_ERR_PARSE', 'decoder exited')) }
      const expire = (): void => {
        void this.endWorker()
        done(fail(job, 'FERRY_ERR_LIMIT', `took longer than ${Math.round(timeoutMs / 1000)} s to decode; ignored`))
      }
      // A worker that never even starts the job gets a longer grace (start-up, a loaded machine).
      let timer = setTimeout(expire, Math.max(4 * timeoutMs, 30_000))
      w.on('message', onMessage)
      w.on('error', onError)
      w.on('exit', onExit)
      w.postMessage(job)
    })
    if (!this.closed) {
      this.idleTimer = setTimeout(() => { void this.endWorker() }, this.opts.idleMs ?? 10_000)
      this.idleTimer.unref()
    }
    return result
  }

  private spawn (): Worker {
    if (this.worker !== undefined) return this.worker
    // Under the test runner this module is TypeScript; the built tree has .js beside it.
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
    const w = new Worker(new URL(`./decode-worker${ext}`, import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb ?? 1024 },
    })
    w.unref()
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
  return { objects: [], keys: [], errors: [new FerryError(code, `manifests: ${job.path} ${why}`, { path: job.path })], readFailed: false }
}
