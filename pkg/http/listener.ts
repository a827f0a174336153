// The operations port, opened at once with node:http alone. Until the fastify app (server.ts, ~0.25 s of
// module loading and set-up) is attached, it answers the probes itself (probes.ts: the same bytes; /readyz
// stays 503 until the app is attached) and 503 for /metrics and /debug/*. ferryd attaches the app once the first sync is under way (its modules
// then load while iptables-restore or nft works), or after a grace period while the source still waits,
// so the probes answer from the first moments without fastify's start-up in front of the source.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { healthAnswer, readyAnswer, type ProbeAnswer, type ProbeDeps } from './probes.js'

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

export class OperationsListener {
  readonly server: Server
  private app: RequestHandler | undefined

  constructor (private readonly probes: ProbeDeps) {
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
  attach (app: RequestHandler): void { this.app = app }

  get attached (): boolean { return this.app !== undefined }

  async close (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>(resolve => { this.server.close(() => { resolve() }) })
  }

  private route (req: IncomingMessage, res: ServerResponse): void {
    if (this.app !== undefined) { this.app(req, res); return }
    const path = (req.url ?? '/').split('?')[0]
    let a: ProbeAnswer
    if (req.method !== 'GET' && req.method !== 'HEAD') a = plain(404, 'not found\n')
    else if (path === '/readyz') {
      // Ready means every endpoint serves: a client that saw 200 may scrape /metrics next.
      a = readyAnswer(this.probes)
      if (a.code === 200) a = plain(503, 'not ready: the operations server is loading\n')
    }
    else if (path === '/healthz') a = healthAnswer(this.probes, true)
    else if (path === '/livez') a = healthAnswer(this.probes, false)
    else a = plain(503, 'starting: only the probes answer until the operations server has loaded\n')
    const body = Buffer.from(a.body)
    res.writeHead(a.code, { ...a.headers, 'Content-Length': String(body.length) })
    res.end(req.method === 'HEAD' ? undefined : body)
  }
}

function plain (code: number, body: string): ProbeAnswer { return { code, headers: { 'Content-Type': 'text/plain' }, body } }
