// Scrapes share one render: a render in flight is joined, a fresh one reused, a failed one retried.
// Then the real thing: a burst of concurrent scrapes over real sockets against the ops server,
// with a registry as costly to render as ferryd's, and a /healthz probe issued behind the burst.
import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { SharedRender } from '../../pkg/http/metrics-render.js'
import { buildHttpServer } from '../../pkg/http/server.js'
import { ProxyHealth } from '../../pkg/proxy/health.js'
import { createProxyMetrics } from '../../pkg/proxy/metrics.js'
import { iptablesMetrics } from '../../pkg/proxy/iptables/metrics.js'

/** A render that resolves when told to, with the text it was told. */
function manualRender (): { render: () => Promise<string>, calls: () => number, finish: (text: string) => void, fail: (e: Error) => void } {
  let calls = 0
  let settle: { resolve: (s: string) => void, reject: (e: Error) => void } | null = null
  return {
    render: async () => { calls++; return await new Promise<string>((resolve, reject) => { settle = { resolve, reject } }) },
    calls: () => calls,
    finish: (text) => { settle?.resolve(text) },
    fail: (e) => { settle?.reject(e) },
  }
}

t.test('scrapes join a render in flight', async t => {
  const m = manualRender()
  const now = { t: 0 }
  const shared = new SharedRender({ render: m.render, maxAgeMs: 1000, now: () => now.t })
  const waiting = Array.from({ length: 50 }, async () => await shared.get())
  t.equal(m.calls(), 1, '50 concurrent scrapes, one render')
  m.finish('a 1\n')
  const bodies = await Promise.all(waiting)
  t.ok(bodies.every(b => b.toString() === 'a 1\n'), 'every scrape gets the body')
  t.equal(new Set(bodies).size, 1, 'the very same buffer: encoded once')
  t.equal(shared.renders, 1)
})

t.test('a finished render is reused for maxAgeMs from its start, then renders again', async t => {
  const m = manualRender()
  const now = { t: 0 }
  const shared = new SharedRender({ render: m.render, maxAgeMs: 1000, now: () => now.t })
  const first = shared.get()
  now.t = 300 // the render took 300 ms
  m.finish('v 1\n')
  t.equal((await first).toString(), 'v 1\n')
  now.t = 999
  t.equal((await shared.get()).toString(), 'v 1\n', 'within 1 s of the render start: reused')
  t.equal(m.calls(), 1)
  now.t = 1000
  const second = shared.get()
  t.equal(m.calls(), 2, 'a second old: a new render')
  m.finish('v 2\n')
  t.equal((await second).toString(), 'v 2\n')
})

t.test('maxAgeMs 0 only joins a render in flight', async t => {
  const m = manualRender()
  const shared = new SharedRender({ render: m.render, maxAgeMs: 0, now: () => 5 })
  const a = shared.get()
  const b = shared.get()
  m.finish('x 1\n')
  await Promise.all([a, b])
  const c = shared.get()
  t.equal(m.calls(), 2, 'a scrape after the render finished renders again')
  m.finish('x 2\n')
  t.equal((await c).toString(), 'x 2\n')
})

t.test('a failed render reaches its waiters and is not kept', async t => {
  const m = manualRender()
  const shared = new SharedRender({ render: m.render, maxAgeMs: 1000, now: () => 0 })
  const a = shared.get()
  const b = shared.get()
  m.fail(new Error('collector broke'))
  await t.rejects(a, /collector broke/)
  await t.rejects(b, /collector broke/)
  const c = shared.get()
  t.equal(m.calls(), 2, 'the next scrape tries again')
  m.finish('ok 1\n')
  t.equal((await c).toString(), 'ok 1\n')
})

/** ferryd's registry (default + proxy metrics, both families) plus a collector that costs `costMs` per render. */
function costlyRegistry (costMs: number): { registry: Registry, renders: number[] } {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const metrics = createProxyMetrics(registry)
  for (const f of ['IPv4', 'IPv6']) {
    for (let i = 0; i < 50; i++) metrics.syncDuration.observe({ ip_family: f }, i / 1000)
    for (const table of ['nat', 'filter', 'mangle']) iptablesMetrics(registry).rulesTotal.set({ ip_family: f, table }, 1000)
  }
  // Stands in for a large registry: rendering is synchronous work on the event loop.
  const renders: number[] = []
  new Gauge({
    name: 'test_render_cost', help: 'burns costMs per render', registers: [registry],
    collect () {
      renders.push(Date.now())
      const end = performance.now() + costMs
      while (performance.now() < end) { /* busy */ }
      this.set(costMs)
    },
  })
  return { registry, renders }
}

t.test('a burst of concurrent scrapes renders once and does not queue /healthz behind N renders', async t => {
  const N = 200
  const { registry, renders } = costlyRegistry(5)
  const health = new ProxyHealth(60_000)
  health.addFamily('IPv4')
  const app = buildHttpServer({
    registry, health, metrics: createProxyMetrics(new Registry()),
    nodeEligible: () => true, ready: () => ({ ready: true, reason: '' }), debugState: () => ({}),
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const agent = new http.Agent({ keepAlive: false, maxSockets: N + 10 })
  t.teardown(async () => { agent.destroy(); await app.close() })
  const { port } = app.server.address() as AddressInfo
  const get = async (path: string): Promise<{ status: number, bytes: number }> => await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent }, res => {
      let bytes = 0
      res.on('data', (b: Buffer) => { bytes += b.length })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, bytes }) })
    }).on('error', reject)
  })

  const burst = Array.from({ length: N }, async () => await get('/metrics'))
  let rendersBeforeProbe = -1
  const probe = get('/healthz').then(r => { rendersBeforeProbe = renders.length; return r })
  const [results, hz] = await Promise.all([Promise.all(burst), probe])
  t.equal(hz.status, 200, '/healthz answered')
  t.ok(results.every(r => r.status === 200 && r.bytes > 1000), `all ${N} scrapes got the full exposition`)
  // Before the fix each scrape rendered on its own: N renders, and the probe waited behind all of them.
  // Shared, a render is reused for 1 s: more than a handful would take a burst of many seconds.
  t.ok(renders.length >= 1 && renders.length <= 10, `${N} concurrent scrapes rendered ${renders.length} time(s), not ${N}`)
  t.ok(rendersBeforeProbe >= 1 && rendersBeforeProbe <= 10, `the probe waited behind ${rendersBeforeProbe} render(s), not ${N}`)
})
