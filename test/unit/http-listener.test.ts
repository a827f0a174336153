// The bare listener ferryd opens before fastify loads: the probes answer with fastify's bytes, /metrics
// and /debug/* say 503 until ready and once ready wait for the app, which then answers everything on the
// same port.
import t from 'tap'
import { OperationsListener } from '../../pkg/http/listener.js'
import { buildHttpServer } from '../../pkg/http/server.js'
import { probeFixture } from '../helpers/probe-deps.js'

interface Got { code: number, type: string | null, nosniff: string | null, body: string }

async function get (base: string, path: string): Promise<Got> {
  const r = await fetch(base + path)
  return { code: r.status, type: r.headers.get('content-type'), nosniff: r.headers.get('x-content-type-options'), body: await r.text() }
}

t.test('probes before the app is attached match the app; the app takes over the port', async t => {
  const { now, registry, health, state, probes } = probeFixture()
  const listener = new OperationsListener(probes)
  const [addr] = await listener.listen('127.0.0.1', 0)
  t.teardown(async () => { await listener.close() })
  const base = `http://127.0.0.1:${addr?.port ?? 0}`
  const app = buildHttpServer({ ...probes, registry, debugState: () => ({ hello: 'world' }) })
  t.teardown(async () => { await app.close() })

  const cases: Array<() => void> = [
    () => {},
    () => { state.eligible = false },
    () => { state.ready = true; state.eligible = true; health.queued('IPv4'); now.t += 61_000 },
  ]
  for (const setState of cases) {
    setState()
    for (const path of ['/readyz', '/healthz', '/livez']) {
      const early = await get(base, path)
      const inj = await app.inject(path)
      t.same(early, { code: inj.statusCode, type: inj.headers['content-type'] ?? null, nosniff: inj.headers['x-content-type-options'] ?? null, body: inj.body }, `${path} with ${JSON.stringify(state)}`)
    }
  }
  state.ready = false
  t.equal((await get(base, '/metrics')).code, 503, 'not ready: /metrics says 503')
  t.equal((await get(base, '/debug/state')).code, 503, 'not ready: /debug/state says 503')
  state.ready = true
  t.equal((await get(base, '/readyz')).code, 200, 'ready before the app is attached')
  let answered = 0
  const metrics = get(base, '/metrics').finally(() => { answered++ })
  const debug = get(base, '/debug/state').finally(() => { answered++ })
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(answered, 0, 'once ready, /metrics and /debug/state wait for the app')
  t.notOk(listener.attached)

  await app.ready()
  listener.attach(app.routing)
  const m = await metrics
  t.equal(m.code, 200)
  t.match(m.body, /kubeproxy_proxy_healthz_total\{code="503"\} [1-9]/, 'probes answered early were counted in the same metrics')
  t.same(JSON.parse((await debug).body), { hello: 'world' })
  t.same(JSON.parse((await get(base, '/debug/state')).body), { hello: 'world' })
  t.equal((await get(base, '/readyz')).body, 'ok\n')
})

t.test('a request held once ready gets a 503 if the app never comes', async t => {
  const { probes, state } = probeFixture()
  state.ready = true
  const listener = new OperationsListener(probes, { holdMs: 50 })
  const [addr] = await listener.listen('127.0.0.1', 0)
  t.teardown(async () => { await listener.close() })
  const r = await get(`http://127.0.0.1:${addr?.port ?? 0}`, '/metrics')
  t.equal(r.code, 503)
  t.equal(r.body, 'the operations server did not load in time\n')
})
