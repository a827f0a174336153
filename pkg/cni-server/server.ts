// ferryd's CNI server: bin/ferry-cni hands each verb to ferryd over loopback TCP (protocol.ts) so a call
// costs no node start. Loopback TCP and not a unix socket because bash can open TCP with builtins only;
// and because a loopback connection can only come from this netns, the verb always runs in the caller's
// netns. Any local user can connect, so every request carries the secret token of the server file.
// Bounds: request size, time to send the request, verbs run at once (the rest wait in line).
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import type { Logger } from '../log/log.js'
import { encodeResponse, REFUSED, RequestParser, type CniRequest } from './protocol.js'

export interface RunResult { readonly code: number, readonly stdout: string }
export type RunVerb = (req: CniRequest) => Promise<RunResult>

/** Counts for /metrics; ferryd passes prom-client counters, tests a recorder. */
export interface CniServerMetrics {
  served: (command: string, code: number) => void
  rejected: (reason: 'token' | 'view' | 'malformed' | 'oversized' | 'timeout') => void
}

export interface CniServerOptions {
  readonly host: string
  /** 0: any free port (listen() resolves to the one taken). */
  readonly port: number
  readonly token: string
  readonly run: RunVerb
  /** Why ferryd cannot run this request where the caller stands (null: it can); the front then runs it. */
  readonly precheck?: (req: CniRequest) => string | null
  readonly log: Logger
  readonly metrics?: CniServerMetrics
  /** Verbs running at once; more wait in line (default 8: each ADD spawns two processes, on 2 cores). */
  readonly maxConcurrent?: number
  /** Whole request, stdin included (default 1 MiB). */
  readonly maxRequestBytes?: number
  /** From connect to the request's last byte (default 10 s). */
  readonly readTimeoutMs?: number
  /** Open connections beyond this are closed at once (default 256): the front reports "try again later". */
  readonly maxConnections?: number
  /** A refused token is logged at most once per this window, with the count of the others (default 60 s). */
  readonly refusalLogIntervalMs?: number
  readonly now?: () => number
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** What a queued verb whose front has gone returns instead of running. */
const ABANDONED = { code: 11, stdout: '' }

/** Counting semaphore: run() waits for a free slot. */
class Slots {
  private free: number
  private readonly waiting: Array<() => void> = []
  constructor (n: number) { this.free = n }
  get queued (): number { return this.waiting.length }
  async run<T> (fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--
    else await new Promise<void>(resolve => { this.waiting.push(resolve) })
    try { return await fn() } finally {
      const next = this.waiting.shift()
      if (next !== undefined) next()
      else this.free++
    }
  }
}

export class CniServer {
  private readonly o: CniServerOptions
  private readonly want: Buffer
  private readonly slots: Slots
  private server: Server | undefined
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly sockets = new Set<Socket>()
  private lastRefusalLog = -Infinity
  private refusalsSinceLog = 0
  private running = 0

  constructor (o: CniServerOptions) {
    this.o = o
    this.want = digest(o.token)
    this.slots = new Slots(o.maxConcurrent ?? 8)
  }

  /** Listens; resolves to the address taken. */
  async listen (): Promise<{ host: string, port: number }> {
    const server = createServer(socket => { this.accept(socket) })
    server.maxConnections = this.o.maxConnections ?? 256
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: this.o.host, port: this.o.port, exclusive: true }, () => { server.off('error', reject); resolve() })
    })
    server.on('error', e => { this.o.log.warn('CNI server error', { err: e }) })
    this.server = server
    const a = server.address()
    return { host: this.o.host, port: typeof a === 'object' && a !== null ? a.port : this.o.port }
  }

  /** Verbs running now and waiting for a slot (debug state, tests). */
  stats (): { running: number, queued: number } { return { running: this.running, queued: this.slots.queued } }

  /** Stops accepting; verbs already running finish (their answers still go out) for up to graceMs. */
  async close (graceMs = 5000): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    const closed = new Promise<void>(resolve => { server.close(() => { resolve() }) })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise<void>(resolve => { timer = setTimeout(resolve, graceMs); timer.unref() }),
    ])
    clearTimeout(timer)
    for (const s of this.sockets) s.destroy()
    await closed
  }

  private accept (socket: Socket): void {
    this.sockets.add(socket)
    socket.on('close', () => { this.sockets.delete(socket) })
    socket.on('error', () => { /* the front went away; nothing to answer */ })
    const parser = new RequestParser(this.o.maxRequestBytes ?? 1024 * 1024)
    const timer = setTimeout(() => { this.drop(socket, 'timeout', 'request not complete in time') }, this.o.readTimeoutMs ?? 10_000)
    timer.unref()
    let complete = false
    const onData = (chunk: Buffer): void => {
      const r = parser.push(chunk)
      if (r.kind === 'more') return
      complete = true
      clearTimeout(timer)
      socket.off('data', onData)
      socket.pause()
      if (r.kind === 'oversized') this.drop(socket, 'oversized', 'request too large')
      else if (r.kind === 'malformed') this.drop(socket, 'malformed', r.reason)
      else this.handle(socket, r.request)
    }
    socket.on('data', onData)
    socket.on('end', () => {
      clearTimeout(timer)
      if (!complete) this.drop(socket, 'malformed', 'connection closed mid-request')
    })
  }

  private drop (socket: Socket, reason: 'token' | 'malformed' | 'oversized' | 'timeout', detail: string): void {
    this.o.metrics?.rejected(reason)
    this.o.log.debug('CNI request dropped', { reason: detail })
    socket.destroy()
  }

  private handle (socket: Socket, req: CniRequest): void {
    if (!timingSafeEqual(digest(req.token), this.want)) {
      this.o.metrics?.rejected('token')
      this.logRefusal()
      socket.end(REFUSED)
      return
    }
    const problem = this.o.precheck?.(req) ?? null
    if (problem !== null) {
      this.o.metrics?.rejected('view')
      this.o.log.debug('CNI request left to the front', { reason: problem })
      socket.end(REFUSED)
      return
    }
    const command = req.env.get('CNI_COMMAND') ?? ''
    // A front that gave up waiting (FERRY_CNI_TIMEOUT) has closed: a verb still queued then must not run,
    // since the runtime's cleanup DEL may already have run (a late ADD would leak its IP and chains).
    let gone = false
    socket.once('end', () => { gone = true })
    socket.once('close', () => { gone = true })
    socket.on('data', () => { /* nothing more is expected; reading only to see the end */ })
    socket.resume()
    const work = this.slots.run(async () => {
      if (gone) return ABANDONED
      this.running++
      try { return await this.o.run(req) } finally { this.running-- }
    }).catch((e: unknown): { code: number, stdout: string } => {
      // runPlugin answers every failure as CNI error JSON itself; this is only a bug's last resort.
      this.o.log.error('CNI verb failed outside the plugin', { command, err: e })
      return { code: 1, stdout: JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: `ferryd: ${e instanceof Error ? e.message : String(e)}` }) }
    }).then(r => {
      if (r === ABANDONED) { this.o.log.debug('CNI request dropped: its front gave up before a slot was free', { command, containerID: req.env.get('CNI_CONTAINERID') }); return }
      this.o.metrics?.served(command, r.code)
      this.o.log.debug('CNI request served', { command, containerID: req.env.get('CNI_CONTAINERID'), code: r.code })
      if (!socket.destroyed) socket.end(encodeResponse(r.code, r.stdout))
    })
    this.inFlight.add(work)
    void work.finally(() => { this.inFlight.delete(work) })
  }

  /** Any local user can knock: log the first refusal, then at most one line per window, with a count. */
  private logRefusal (): void {
    const now = (this.o.now ?? Date.now)()
    this.refusalsSinceLog++
    if (now - this.lastRefusalLog < (this.o.refusalLogIntervalMs ?? 60_000)) return
    this.o.log.warn('CNI request with a wrong token refused (a stale server file, or a local process guessing)', { refused: this.refusalsSinceLog })
    this.lastRefusalLog = now
    this.refusalsSinceLog = 0
  }
}
