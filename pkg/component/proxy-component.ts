// The Service proxy as a component: one Proxier per IP family, each followed after every sync by its
// conntrack cleaner and its health-check-NodePort listeners (PROXY.md §4), with /debug/trace.
import type { FastifyPluginAsync } from 'fastify'
import type { Registry } from 'prom-client'
import type { ClusterStore } from '../cache/store.js'
import type { Config } from '../config/config.js'
import type { Logger } from '../log/log.js'
import { cidrContains, parseCIDR, parseIP, type IPFamily } from '../net/ip.js'
import { ConntrackCleaner } from '../proxy/conntrack/cleanup.js'
import { createConntrackMetrics } from '../proxy/conntrack/metrics.js'
import { ProxyHealth } from '../proxy/health.js'
import { HealthCheckServer } from '../proxy/healthcheck/server.js'
import { createProxyMetrics, type ProxyMetrics } from '../proxy/metrics.js'
import type { ProxyOptions } from '../proxy/options.js'
import { Proxier } from '../proxy/proxier.js'
import { parseTraceQuery } from '../proxy/trace.js'
import type { Backend } from '../proxy/types.js'
import type { Component, Readiness } from './component.js'

export interface ProxyComponentOptions {
  readonly config: Pick<Config, 'nodeName' | 'ipFamilies' | 'minSyncPeriodMs' | 'syncPeriodMs' | 'nodePortAddresses'>
  /** One backend per family, made for the chosen mode. */
  readonly backends: ReadonlyMap<IPFamily, { readonly backend: Backend, readonly options: ProxyOptions }>
  /** The mode in use and why, for /debug/state. */
  readonly mode: { readonly mode: string, readonly reason: string }
  readonly store: ClusterStore
  readonly registry: Registry
  readonly log: Logger
  /** This host's addresses, read when needed (interfaces come and go). */
  readonly localAddresses: () => string[]
}

export class ProxyComponent implements Component {
  readonly name = 'proxy'
  /** /healthz and /livez (kube-proxy's) report this. */
  readonly health: ProxyHealth
  readonly metrics: ProxyMetrics
  readonly proxiers: readonly Proxier[]
  private readonly healthChecks: HealthCheckServer[] = []

  /** Subscribes to the store: build it before the source starts, so no change is missed. */
  constructor (private readonly o: ProxyComponentOptions) {
    // The kernel reads for the first sync run while the source loads.
    for (const b of o.backends.values()) b.backend.prepare?.()
    this.metrics = createProxyMetrics(o.registry)
    this.health = new ProxyHealth(2 * o.config.syncPeriodMs)
    const conntrackMetrics = createConntrackMetrics(o.registry)
    this.proxiers = [...o.backends].map(([family, { backend, options }]) => {
      const log = o.log.child(family)
      // After the new rules are live (PROXY.md §4): stale UDP flows, then health-check listeners.
      const conntrack = new ConntrackCleaner({ family, log, metrics: conntrackMetrics })
      const healthCheck = new HealthCheckServer({
        family, addresses: this.nodePortIPs(family), proxyHealthy: () => this.health.report().healthy, log: o.log.child(`healthcheck.${family}`),
      })
      this.healthChecks.push(healthCheck)
      return new Proxier({
        family, nodeName: o.config.nodeName, backend, options, store: o.store, metrics: this.metrics, health: this.health,
        minSyncPeriodMs: o.config.minSyncPeriodMs, syncPeriodMs: o.config.syncPeriodMs, log,
        afterSync: [conntrack.afterSync, healthCheck.afterSync],
      })
    })
  }

  /** Resolves once every family's first rules are in the kernel. */
  async start (): Promise<void> {
    for (const p of this.proxiers) p.start()
    await Promise.all(this.proxiers.map(async p => { await p.whenSynced() }))
  }

  /** Rules stay in the kernel: established flows keep working across a restart. */
  async stop (): Promise<void> {
    await Promise.all(this.proxiers.map(async p => { await p.stop() }))
    for (const h of this.healthChecks) await h.close()
  }

  ready (): Readiness {
    // health knows which families synced; status() would count every endpoint on each probe.
    const pending = [...this.o.backends.keys()].filter(f => !this.health.hasSynced(f))
    return pending.length === 0 ? { ready: true, reason: '' } : { ready: false, reason: `no rules applied yet for ${pending.join(', ')}` }
  }

  /** GET /debug/trace?src=&dst=&port=&protocol=: a new connection through the plan of dst's family. */
  readonly debugRoutes: FastifyPluginAsync = async app => {
    app.get('/trace', async (req, reply) => {
      const pkt = parseTraceQuery(req.query as Record<string, string | undefined>)
      if (typeof pkt === 'string') return await reply.code(400).send({ error: pkt })
      const family = parseIP(pkt.dst)?.family
      const proxier = this.proxiers.find(p => p.family === family)
      if (proxier === undefined) return await reply.code(400).send({ error: `this ferryd proxies ${this.o.config.ipFamilies.join(', ')} only` })
      const body = { family, packet: pkt, ...proxier.trace(pkt, { localAddresses: this.o.localAddresses() }) }
      return await reply.type('application/json').send(JSON.stringify(body, null, 2))
    })
  }

  /** The keys /debug/state has always had for the proxy. */
  debugState (): Readonly<Record<string, unknown>> {
    return {
      proxyMode: this.o.mode,
      proxiers: this.proxiers.map(p => ({ ...p.status(), servicePorts: p.desiredState() })),
      healthCheckNodePorts: this.healthChecks.map(h => h.ports()),
    }
  }

  /** Local addresses in --nodeport-addresses for this family; empty means every address. */
  private nodePortIPs (family: IPFamily): string[] {
    const cidrs = this.o.config.nodePortAddresses.map(c => parseCIDR(c)).filter((c): c is NonNullable<typeof c> => c !== null && c.family === family)
    return cidrs.length === 0 ? [] : this.o.localAddresses().filter(ip => cidrs.some(c => cidrContains(c, ip)))
  }
}
