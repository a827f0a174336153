// One HTTP listener per healthCheckNodePort, opened and closed as Services come and go. Runs after
// each sync (an AfterSync step), so the answer follows what the rules do.
import { createServer, type Server } from 'node:http'
import type { Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { AfterSync } from '../proxier.js'
import { HealthCheckIndex, healthAnswer, type ServiceHealth } from './report.js'

export interface HealthCheckServerOptions {
  family: IPFamily
  /** Local addresses to listen on; empty means every address of the family. */
  addresses: readonly string[]
  proxyHealthy: () => boolean
  log: Logger
}

interface Listener { port: number, servers: Server[], svc: ServiceHealth }

export class HealthCheckServer {
  private readonly listeners = new Map<string, Listener>()
  private readonly index = new HealthCheckIndex()

  constructor (private readonly o: HealthCheckServerOptions) {}

  readonly afterSync: AfterSync = async (state, changed, endpoints) => {
    const affected = this.index.update(state.services, changed, endpoints)
    // Every close before any open: a port may move from one Service to another in one sync.
    for (const nsn of affected) {
      const l = this.listeners.get(nsn)
      const w = this.index.get(nsn)
      if (l !== undefined && (w === undefined || w.port !== l.port)) { this.listeners.delete(nsn); await closeAll(l.servers) }
    }
    for (const nsn of affected) {
      const svc = this.index.get(nsn)
      if (svc === undefined) continue
      const l = this.listeners.get(nsn)
      if (l !== undefined) { l.svc = svc; continue }
      const listener: Listener = { port: svc.port, servers: [], svc }
      this.listeners.set(nsn, listener)
      listener.servers = await this.listen(listener)
    }
  }

  /** "namespace/name" → port, for /debug/state and tests. */
  ports (): Record<string, number> {
    return Object.fromEntries([...this.listeners].map(([k, l]) => [k, l.port]))
  }

  async close (): Promise<void> {
    for (const l of this.listeners.values()) await closeAll(l.servers)
    this.listeners.clear()
  }

  private async listen (l: Listener): Promise<Server[]> {
    const hosts = this.o.addresses.length > 0 ? this.o.addresses : [this.o.family === 'IPv4' ? '0.0.0.0' : '::']
    const servers: Server[] = []
    for (const host of hosts) {
      const server = createServer((_req, res) => {
        const a = healthAnswer(l.svc, this.o.proxyHealthy())
        res.writeHead(a.status, a.headers).end(a.body)
      })
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen({ host, port: l.port, ipv6Only: this.o.family === 'IPv6' }, () => { server.off('error', reject); resolve() })
        })
        servers.push(server)
      } catch (e) {
        // kube-proxy emits FailedToStartServiceHealthcheck here; the Service still works, only its checks fail.
        this.o.log.warn('cannot listen for a service health check', { service: `${l.svc.namespace}/${l.svc.name}`, host, port: l.port, err: e })
      }
    }
    return servers
  }
}

async function closeAll (servers: Server[]): Promise<void> {
  await Promise.all(servers.map(async s => await new Promise<void>(resolve => { s.close(() => { resolve() }); s.closeAllConnections() })))
}
