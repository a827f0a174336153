// The bare listener ferryd opens before fastify loads: the probes answer with fastify's bytes, /metrics
// and /debug/* say 503 until the app is attached, then the app answers everything on the same port.
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
      if (path === '/readyz' && state.ready) {
        t.same(early, { code: 503, type: 'text/plain', nosniff: null, body: 'not ready: the operations server is loading\n' }, 'not ready before /metrics serves')
        continue
      }
      const inj = await app.inject(path)
      t.same(early, { code: inj.statusCode, type: inj.headers['content-type'] ?? null, nosniff: inj.headers['x-content-type-options'] ?? null, body: inj.body }, `${path} with ${JSON.stringify(state)}`)
    }
  }
  t.equal((await get(base, '/metrics')).code, 503, '/metrics waits for the app')
  t.equal((await get(base, '/debug/state')).code, 503, '/debug/state waits for the app')
  t.notOk(listener.attached)

  await app.ready()
  listener.attach(app.routing)
  const m = await get(base, '/metrics')
  t.equal(m.code, 200)
  t.match(m.body, /kubeproxy_proxy_healthz_total\{code="503"\} [1-9]/, 'probes answered early were counted in the same metrics')
  t.same(JSON.parse((await get(base, '/debug/state')).body), { hello: 'world' })
  t.equal((await get(base, '/readyz')).body, 'ok\n')
})
