// The component lifecycle: readiness joined with the component's name, debug state merged, start all at
// once, stop in reverse even past a failure; then the proxy as a component over a fake backend, with
// its /debug/trace mounted by the HTTP server behind the /debug/ guard.
import t from 'tap'
import { Registry } from 'prom-client'
import { ClusterStore } from '../../pkg/cache/store.js'
import { debugStates, readiness, startAll, stopAll, type Component, type Readiness } from '../../pkg/component/component.js'
import { ProxyComponent } from '../../pkg/component/proxy-component.js'
import { buildHttpServer } from '../../pkg/http/server.js'
import { createLogger, silentLogger } from '../../pkg/log/log.js'
import { FakeBackend } from '../../pkg/proxy/fake-backend.js'
import { resolveProxyOptions } from '../../pkg/proxy/options.js'
import { NODE, slice, sliceEp, svc } from '../helpers/fixtures.js'

function fake (name: string, events: string[], r: Readiness = { ready: true, reason: '' }, extra: Partial<Component> = {}): Component {
  return {
    name,
    start: async () => { events.push(`start ${name}`); await Promise.resolve(); events.push(`started ${name}`) },
    stop: async () => { events.push(`stop ${name}`) },
    ready: () => r,
    ...extra,
  }
}

t.test('readiness names every component that is not ready, and keeps notes of ready ones', async t => {
  const ok = { ready: true, reason: '' }
  const cases: Array<{ name: string, states: Array<[string, Readiness]>, want: Readiness }> = [
    { name: 'no components', states: [], want: { ready: true, reason: '' } },
    { name: 'all ready', states: [['proxy', ok], ['dns', ok]], want: { ready: true, reason: '' } },
    { name: 'one waiting', states: [['proxy', { ready: false, reason: 'no rules applied yet for IPv4' }], ['dns', ok]], want: { ready: false, reason: 'proxy: no rules applied yet for IPv4' } },
    {
      name: 'two waiting, a note ignored',
      states: [['proxy', { ready: false, reason: 'a' }], ['x', { ready: true, reason: 'degraded' }], ['dns', { ready: false, reason: 'b' }]],
      want: { ready: false, reason: 'proxy: a; dns: b' },
    },
    { name: 'ready with a note', states: [['proxy', ok], ['dns', { ready: true, reason: 'answering from the cache' }]], want: { ready: true, reason: 'dns: answering from the cache' } },
  ]
  for (const c of cases) t.same(readiness(c.states.map(([n, r]) => fake(n, [], r))), c.want, c.name)
})

t.test('debug state merges each component\'s keys in list order', async t => {
  const cs = [fake('a', [], undefined, { debugState: () => ({ a: 1 }) }), fake('b', []), fake('c', [], undefined, { debugState: () => ({ dns: { zones: 1 } }) })]
  t.same(debugStates(cs), { a: 1, dns: { zones: 1 } })
})

t.test('startAll starts every component at once; stopAll stops in reverse and survives a failure', async t => {
  const events: string[] = []
  const warnings: unknown[] = []
  const log = createLogger({ level: 'warn', write: line => { warnings.push(JSON.parse(line)) } })
  const cs = [fake('proxy', events), fake('dns', events, undefined, { stop: async () => { events.push('stop dns'); throw new Error('socket stuck') } }), fake('overlay', events)]
  await startAll(cs)
  t.same(events.slice(0, 3), ['start proxy', 'start dns', 'start overlay'], 'each start begins before any finishes')
  events.length = 0
  await stopAll(cs, log)
  t.same(events, ['stop overlay', 'stop dns', 'stop proxy'])
  t.match(warnings, [{ msg: 'stop failed', component: 'dns' }])
  await t.rejects(startAll([fake('a', []), fake('b', [], undefined, { start: async () => { throw new Error('bind: EADDRINUSE') } })]), /EADDRINUSE/)
})

t.test('the proxy component: ready after the first sync, its state and /debug/trace through the HTTP server', async t => {
  const store = new ClusterStore()
  const backend = new FakeBackend()
  const registry = new Registry()
  const options = resolveProxyOptions({ family: 'IPv4' })
  const proxy = new ProxyComponent({
    config: { nodeName: NODE, ipFamilies: ['IPv4'], minSyncPeriodMs: 1, syncPeriodMs: 30_000, nodePortAddresses: [] },
    backends: new Map([['IPv4', { backend, options }]]),
    mode: { mode: 'fake', reason: 'test' },
    store, registry, log: silentLogger, localAddresses: () => ['192.168.0.2'],
  })
  t.same(proxy.ready(), { ready: false, reason: 'no rules applied yet for IPv4' })
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  await proxy.start()
  t.same(proxy.ready(), { ready: true, reason: '' })
  t.equal(backend.syncs.length, 1, 'start resolved after the first sync')
  t.ok(proxy.health.hasSynced('IPv4'))
  const state = proxy.debugState()
  t.same(Object.keys(state), ['proxyMode', 'proxiers', 'healthCheckNodePorts'], '/debug/state keeps its keys')
  t.same(state.proxyMode, { mode: 'fake', reason: 'test' })

  const app = buildHttpServer({
    registry, health: proxy.health, metrics: proxy.metrics, components: [proxy],
    nodeEligible: () => true, ready: () => readiness([proxy]), debugState: () => debugStates([proxy]),
  })
  t.teardown(async () => { await app.close() })
  let r = await app.inject('/debug/trace?src=10.0.0.2&dst=172.30.0.41&port=80&protocol=TCP')
  t.equal(r.statusCode, 200)
  t.match(r.json(), { family: 'IPv4', packet: { dst: '172.30.0.41', port: 80 }, verdict: 'forward', endpoints: [{ ip: '10.180.0.1' }] })
  r = await app.inject('/debug/trace?src=10.0.0.2&dst=nope&port=80')
  t.equal(r.statusCode, 400)
  t.match(r.json().error, /dst must be an IP address/)
  r = await app.inject('/debug/trace?src=fd00::2&dst=fd00::1&port=80')
  t.same([r.statusCode, r.json().error], [400, 'this ferryd proxies IPv4 only'])
  r = await app.inject({ url: '/debug/trace?src=10.0.0.2&dst=172.30.0.41&port=80', remoteAddress: '192.0.2.7' })
  t.equal(r.statusCode, 403, 'component routes sit behind the /debug/ guard')
  t.match((await app.inject('/debug/state')).json(), { proxyMode: { mode: 'fake' }, proxiers: [{ family: 'IPv4', backend: 'fake' }] })
  t.equal((await app.inject('/readyz')).body, 'ok\n')

  await proxy.stop()
  store.upsert(svc({ name: 'svc2', clusterIP: '172.30.0.42' }))
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(backend.syncs.length, 1, 'no sync after stop')
})
