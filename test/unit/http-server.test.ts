// The operations endpoint through fastify's inject: kube-proxy's /healthz JSON and headers, /livez
// ignoring the Node, /readyz, /metrics in Prometheus text format.
import t from 'tap'
import { Registry } from 'prom-client'
import { buildHttpServer } from '../../pkg/http/server.js'
import { ProxyHealth, nodeEligible } from '../../pkg/proxy/health.js'
import { createProxyMetrics } from '../../pkg/proxy/metrics.js'
import type { Node } from '../../pkg/api/types.js'
import { probeFixture } from '../helpers/probe-deps.js'

function setup (): { now: { t: number }, health: ProxyHealth, state: { eligible: boolean, ready: boolean }, app: ReturnType<typeof buildHttpServer>, registry: Registry } {
  const { now, registry, health, state, probes } = probeFixture()
  const app = buildHttpServer({ ...probes, registry, ready: () => ({ ready: state.ready, reason: 'waiting for manifests:/x' }), debugState: () => ({ hello: 'world' }) })
  return { now, health, state, app, registry }
}

t.test('/healthz and /livez', async t => {
  const { now, health, state, app } = setup()
  t.teardown(async () => { await app.close() })
  let r = await app.inject('/healthz')
  t.equal(r.statusCode, 200)
  t.equal(r.headers['content-type'], 'application/json')
  t.equal(r.headers['x-content-type-options'], 'nosniff')
  t.same(r.json(), { lastUpdated: '2026-11-25T12:00:00.000Z', currentTime: '2026-11-25T12:00:00.000Z', nodeEligible: true, healthy: true, status: { IPv4: { lastUpdated: '2026-11-25T12:00:00.000Z', healthy: true } } })

  health.queued('IPv4')
  now.t += 61_000
  r = await app.inject('/healthz')
  t.equal(r.statusCode, 503, 'a change waiting over 2 x syncPeriod')
  t.equal(r.json().healthy, false)
  t.equal((await app.inject('/livez')).statusCode, 503, '/livez too')

  health.updated('IPv4')
  state.eligible = false
  r = await app.inject('/healthz')
  t.equal(r.statusCode, 503, 'node not eligible')
  t.same([r.json().healthy, r.json().nodeEligible], [true, false])
  t.equal(r.json().lastUpdated, '2026-11-25T12:01:01.000Z', 'a 503 carries the last sync, not the current time')
  now.t += 5000
  r = await app.inject('/healthz')
  t.equal(r.json().lastUpdated, '2026-11-25T12:01:01.000Z', 'still the last sync, 5 s on')
  t.equal(r.json().currentTime, '2026-11-25T12:01:06.000Z')
  r = await app.inject('/livez')
  t.equal(r.statusCode, 200, '/livez ignores the node')
  t.equal(r.json().nodeEligible, undefined)
  t.equal(r.json().lastUpdated, '2026-11-25T12:01:06.000Z', 'a 200 says now, as kube-proxy does')
})

t.test('/healthz in dual-stack: a 503 names the stuck family\'s last sync', async t => {
  const { now, health, app } = setup()
  t.teardown(async () => { await app.close() })
  health.addFamily('IPv6')
  health.updated('IPv4')
  health.updated('IPv6')
  now.t += 1000
  health.queued('IPv6')
  now.t += 30_000
  health.updated('IPv4')
  now.t += 31_000
  const r = await app.inject('/healthz')
  t.equal(r.statusCode, 503)
  t.equal(r.json().lastUpdated, '2026-11-25T12:00:00.000Z', 'IPv6 last synced at the start; IPv4 is healthy but not the one stuck')
  t.same(r.json().status.IPv6, { lastUpdated: '2026-11-25T12:00:00.000Z', healthy: false })
})

t.test('/readyz, /debug/state and /metrics', async t => {
  const { state, app } = setup()
  t.teardown(async () => { await app.close() })
  let r = await app.inject('/readyz')
  t.equal(r.statusCode, 503)
  t.match(r.body, /not ready: waiting for manifests/)
  state.ready = true
  r = await app.inject('/readyz')
  t.equal(r.statusCode, 200)
  t.same((await app.inject('/debug/state')).json(), { hello: 'world' })
  await app.inject('/healthz')
  r = await app.inject('/metrics')
  t.equal(r.statusCode, 200)
  t.match(r.headers['content-type'], /text\/plain; version=0\.0\.4/)
  t.match(r.body, /# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram/)
  t.match(r.body, /# TYPE kubeproxy_sync_proxy_rules_no_local_endpoints_total gauge/, 'a gauge named _total, as in kube-proxy')
  t.match(r.body, /# TYPE kubeproxy_sync_proxy_rules_no_local_endpoints_total gauge/)
  t.match(r.body, /kubeproxy_proxy_healthz_total\{code="200"\} 1/)
  t.equal((await app.inject('/nope')).statusCode, 404)
})

t.test('node eligibility (KEP-3836)', async t => {
  const node = (extra: Partial<Node['spec']> = {}, deleting = false): Node => ({
    apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', ...(deleting ? { deletionTimestamp: '2026-11-25T00:00:00Z' } : {}) }, spec: extra,
  })
  t.ok(nodeEligible(node(), true))
  t.notOk(nodeEligible(node({}, true), true), 'being deleted')
  t.notOk(nodeEligible(node({ taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] }), true), 'autoscaler taint')
  t.ok(nodeEligible(node({ taints: [{ key: 'other', effect: 'NoSchedule' }] }), true))
  t.notOk(nodeEligible(undefined, true), 'unknown node while the source has Nodes')
  t.ok(nodeEligible(undefined, false), 'a source without any Node objects (standalone manifests)')
})

t.test('/readyz shows a ready note; components\' debug routes sit under /debug/', async t => {
  const registry = new Registry()
  const health = new ProxyHealth(60_000)
  const component = {
    name: 'dns', start: async () => {}, stop: async () => {}, ready: () => ({ ready: true, reason: '' }),
    debugRoutes: async (app: import('fastify').FastifyInstance) => { app.get('/dns', async () => ({ zones: ['cluster.local'] })) },
  }
  const app = buildHttpServer({
    registry, health, metrics: createProxyMetrics(registry), components: [component],
    nodeEligible: () => true, ready: () => ({ ready: true, reason: 'dns: answering from the cache' }), debugState: () => ({}),
  })
  t.teardown(async () => { await app.close() })
  const r = await app.inject('/readyz')
  t.same([r.statusCode, r.body], [200, 'ok (dns: answering from the cache)\n'])
  t.same((await app.inject('/debug/dns')).json(), { zones: ['cluster.local'] })
  t.equal((await app.inject({ url: '/debug/dns', remoteAddress: '192.0.2.7' })).statusCode, 403)
  t.equal((await app.inject('/dns')).statusCode, 404, 'never outside /debug/')
})

t.test('no schema compilers are loaded: a route that declares a schema is refused, plain routes reply JSON', async t => {
  const { app } = setup()
  t.teardown(async () => { await app.close() })
  app.get('/with-schema', { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } } } } }, async () => ({ ok: true }))
  await t.rejects(async () => { await app.ready() }, /ferryd routes declare no schemas/)
  const plain = setup().app
  t.teardown(async () => { await plain.close() })
  plain.get('/plain', async () => ({ ok: true, n: 1 }))
  const r = await plain.inject('/plain')
  t.same([r.statusCode, r.json()], [200, { ok: true, n: 1 }], 'replies still serialize without fast-json-stringify')
})
