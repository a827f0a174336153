// The operations endpoint: /metrics for Prometheus, /healthz and /livez in kube-proxy's JSON shape,
// /readyz for "first state applied", /debug/state and each component's debug routes for humans
// (loopback clients only, see exposure.ts).
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import type { Registry } from 'prom-client'
import type { Component } from '../component/component.js'
import { debugGuard } from './exposure.js'
import { SharedRender } from './metrics-render.js'
import { healthAnswer, readyAnswer, type ProbeAnswer, type ProbeDeps } from './probes.js'

export interface HttpDeps extends ProbeDeps {
  registry: Registry
  debugState: () => unknown
  /** Each component's debugRoutes are mounted under /debug/, behind the same guard as /debug/state. */
  components?: readonly Component[]
  /** Serve /debug/* to clients that are not on loopback too (--debug-remote). */
  debugRemote?: boolean
  /** Scrapes within this many ms of a render share it (default 1000; see metrics-render.ts). */
  metricsMaxAgeMs?: number
}

/**
 * No route declares a schema, so fastify's default compilers (ajv and fast-json-stringify, ~40-60 ms of
 * CPU to load, on ferryd's start-up path) are never needed: these refuse a schema instead of loading them.
 */
const noSchemas = (): never => { throw new Error('ferryd routes declare no schemas') }
const NO_SCHEMA_COMPILERS = { compilersFactory: { buildValidator: () => noSchemas, buildSerializer: () => noSchemas } }

export function buildHttpServer (deps: HttpDeps): FastifyInstance {
  const app = Fastify({ logger: false, schemaController: NO_SCHEMA_COMPILERS })

  // Probes and scrapes share one event loop: a burst of scrapes costs one render, so a probe behind it
  // waits only for the requests ahead of it to be read and answered, never for N renders.
  const render = new SharedRender({ render: async () => await deps.registry.metrics(), maxAgeMs: deps.metricsMaxAgeMs ?? 1000 })
  app.get('/metrics', async (_req, reply) => {
    const body = await render.get()
    return await reply.type(deps.registry.contentType).send(body)
  })

  const send = async (reply: FastifyReply, a: ProbeAnswer): Promise<FastifyReply> =>
    await reply.code(a.code).headers(a.headers).send(Buffer.from(a.body))
  app.get('/healthz', async (_req, reply) => await send(reply, healthAnswer(deps, true)))
  app.get('/livez', async (_req, reply) => await send(reply, healthAnswer(deps, false)))
  app.get('/readyz', async (_req, reply) => await send(reply, readyAnswer(deps)))

  void app.register(async debug => {
    debug.addHook('onRequest', debugGuard(deps.debugRemote ?? false))
    for (const c of deps.components ?? []) if (c.debugRoutes !== undefined) await debug.register(c.debugRoutes)
    debug.get('/state', async (_req, reply) => {
      return await reply.type('application/json').send(JSON.stringify(deps.debugState(), null, 2))
    })
  }, { prefix: '/debug' })

  return app
}
