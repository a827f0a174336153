// The operations port, opened at once with node:http alone. Until the fastify app (server.ts, ~0.1-0.25 s
// of module loading and set-up) is attached, it answers the probes itself (probes.ts: the same bytes).
// /metrics and /debug/* say 503 until ferryd is ready; once ready, they wait for the app (attached just
// after the first sync), so a client that saw /readyz 200 can scrape at once and readiness does not wait
// for fastify's start-up. ferryd also attaches the app after a grace period while the source still waits.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { healthAnswer, readyAnswer, type ProbeAnswer, type ProbeDeps } from './probes.js'

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

/** How long a request that came once ready waits for the app before it gets a 503. */
const DEFAULT_HOLD_MS = 10_000

export class OperationsListener {
  readonly server: Server
  private app: RequestHandler | undefined
  /** Requests that came once ready, before the app was attached. */
  private held: Array<{ req: IncomingMessage, res: ServerResponse, timer: NodeJS.Timeout }> = []

  private readonly holdMs: number

  constructor (private readonly probes: ProbeDeps, opts: { holdMs?: number } = {}) {
    this.holdMs = opts.holdMs ?? DEFAULT_HOLD_MS
    this.server = createServer((req, res) => { this.route(req, res) })
  }

  async listen (host: string, port: number): Promise<AddressInfo[]> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen({ host, port }, () => { this.server.off('error', reject); resolve() })
    })
    const a = this.server.address()
    return a === null || typeof a === 'string' ? [] : [a]
  }

  /** From now on `app` (fastify's routing) answers every request. */
  attach (app: RequestHandler): void {
    this.app = app
    const held = this.held
    this.held = []
    for (const h of held) { clearTimeout(h.timer); app(h.req, h.res) }
  }

  get attached (): boolean { return this.app !== undefined }

  async close (): Promise<void> {
    for (const h of this.held) clearTimeout(h.timer)
    this.held = []
    this.server.closeAllConnections()
    await new Promise<void>(resolve => { this.server.close(() => { resolve() }) })
  }

  private route (req: IncomingMessage, res: ServerResponse): void {
    if (this.app !== undefined) { this.app(req, res); return }
    const path = (req.url ?? '/').split('?')[0]
    let a: ProbeAnswer
    if (req.method !== 'GET' && req.method !== 'HEAD') a = plain(404, 'not found\n')
    else if (path === '/readyz') a = readyAnswer(this.probes)
    else if (path === '/healthz') a = healthAnswer(this.probes, true)
    else if (path === '/livez') a = healthAnswer(this.probes, false)
    else if (this.probes.ready().ready) { this.hold(req, res); return }
    else a = plain(503, 'starting: only the probes answer until the operations server has loaded\n')
    answer(req, res, a)
  }

  private hold (req: IncomingMessage, res: ServerResponse): void {
    const timer = setTimeout(() => {
      this.held = this.held.filter(h => h.res !== res)
      answer(req, res, plain(503, 'the operations server did not load in time\n'))
    }, this.holdMs)
    this.held.push({ req, res, timer })
    res.on('close', () => { clearTimeout(timer); this.held = this.held.filter(h => h.res !== res) })
  }
}

function answer (req: IncomingMessage, res: ServerResponse, a: ProbeAnswer): void {
  const body = Buffer.from(a.body)
  res.writeHead(a.code, { ...a.headers, 'Content-Length': String(body.length) })
  res.end(req.method === 'HEAD' ? undefined : body)
}

function plain (code: number, body: string): ProbeAnswer { return { code, headers: { 'Content-Type': 'text/plain' }, body } }
