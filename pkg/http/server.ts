// The operations endpoint: /metrics for Prometheus, /healthz and /livez in kube-proxy's JSON shape,
// /readyz for "first state applied", /debug/state and each component's debug routes for humans
// (loopback clients only, see exposure.ts).
import Fastify, { type FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import type { Component, Readiness } from '../component/component.js'
import type { ProxyHealth } from '../proxy/health.js'
import type { ProxyMetrics } from '../proxy/metrics.js'
import { debugGuard } from './exposure.js'
import { SharedRender } from './metrics-render.js'

export interface HttpDeps {
  registry: Registry
  health: ProxyHealth
  metrics: ProxyMetrics
  /** Node eligibility for /healthz (KEP-3836). */
  nodeEligible: () => boolean
  /** Ready once the source listed and every component serves; when ready, a non-empty reason is a note. */
  ready: () => Readiness
  debugState: () => unknown
  /** Each component's debugRoutes are mounted under /debug/, behind the same guard as /debug/state. */
  components?: readonly Component[]
  /** Serve /debug/* to clients that are not on loopback too (--debug-remote). */
  debugRemote?: boolean
  /** Scrapes within this many ms of a render share it (default 1000; see metrics-render.ts). */
  metricsMaxAgeMs?: number
}

export function buildHttpServer (deps: HttpDeps): FastifyInstance {
  const app = Fastify({ logger: false })

  // Probes and scrapes share one event loop: a burst of scrapes costs one render, so a probe behind it
  // waits only for the requests ahead of it to be read and answered, never for N renders.
  const render = new SharedRender({ render: async () => await deps.registry.metrics(), maxAgeMs: deps.metricsMaxAgeMs ?? 1000 })
  app.get('/metrics', async (_req, reply) => {
    const body = await render.get()
    return await reply.type(deps.registry.contentType).send(body)
  })

  const healthHandler = (withNode: boolean) => async (_req: unknown, reply: import('fastify').FastifyReply) => {
    const r = deps.health.report()
    const eligible = withNode ? deps.nodeEligible() : true
    const ok = r.healthy && eligible
    const code = ok ? 200 : 503
    ;(withNode ? deps.metrics.healthzTotal : deps.metrics.livezTotal).inc({ code: String(code) })
    const body = withNode
      ? { lastUpdated: r.lastUpdated, currentTime: r.currentTime, nodeEligible: eligible, healthy: r.healthy, status: r.status }
      : { lastUpdated: r.lastUpdated, currentTime: r.currentTime, healthy: r.healthy, status: r.status }
    return await reply.code(code).header('X-Content-Type-Options', 'nosniff').header('Content-Type', 'application/json').send(Buffer.from(JSON.stringify(body)))
  }
  app.get('/healthz', healthHandler(true))
  app.get('/livez', healthHandler(false))

  app.get('/readyz', async (_req, reply) => {
    const r = deps.ready()
    const body = r.ready ? (r.reason === '' ? 'ok\n' : `ok (${r.reason})\n`) : `not ready: ${r.reason}\n`
    return await reply.code(r.ready ? 200 : 503).type('text/plain').send(body)
  })

  void app.register(async debug => {
    debug.addHook('onRequest', debugGuard(deps.debugRemote ?? false))
    for (const c of deps.components ?? []) if (c.debugRoutes !== undefined) await debug.register(c.debugRoutes)
    debug.get('/state', async (_req, reply) => {
      return await reply.type('application/json').send(JSON.stringify(deps.debugState(), null, 2))
    })
  }, { prefix: '/debug' })

  return app
}
