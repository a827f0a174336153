// The proxier's glue, with a fake backend and a fake clock: what gets synced, when, and how failures
// and health are handled.
import t from 'tap'
import { Registry } from 'prom-client'
import { ClusterStore } from '../../pkg/cache/store.js'
import { silentLogger } from '../../pkg/log/log.js'
import { FakeBackend } from '../../pkg/proxy/fake-backend.js'
import { FakeClock } from '../../pkg/proxy/fake-clock.js'
import { ProxyHealth } from '../../pkg/proxy/health.js'
import { createProxyMetrics } from '../../pkg/proxy/metrics.js'
import { Proxier } from '../../pkg/proxy/proxier.js'
import { TRIGGER_TIME_ANNOTATION } from '../../pkg/api/trigger-time.js'
import type { EndpointSlice, Node } from '../../pkg/api/types.js'
import { NODE, slice, sliceEp, svc } from '../helpers/fixtures.js'

const KEY = 'ns1/svc1:p80/tcp'

/**
 * Holds the backend's next sync until release(), then lets it apply. Later syncs apply too, or with
 * `laterFail` are refused.
 */
function holdNextSync (backend: FakeBackend, laterFail = false): { release: () => void, held: () => boolean } {
  const sync = backend.sync.bind(backend)
  let release: () => void = () => {}
  let held = false
  backend.sync = async (state, changed) => {
    if (held && laterFail) throw new Error('apply failure')
    if (!held) { held = true; await new Promise<void>(resolve => { release = resolve }) }
    return await sync(state, changed)
  }
  return { release: () => { release() }, held: () => held }
}

/** Every sync of the backend takes `ms` of the fake clock, so latencies measured from receipt are not 0. */
function slowSyncs (backend: FakeBackend, clock: FakeClock, ms: number): void {
  const sync = backend.sync.bind(backend)
  backend.sync = async (state, changed) => {
    await new Promise<void>(resolve => { clock.setTimeout(resolve, ms) })
    return await sync(state, changed)
  }
}

function setup (): { clock: FakeClock, store: ClusterStore, backend: FakeBackend, proxier: Proxier, health: ProxyHealth, registry: Registry } {
  const clock = new FakeClock(1_000_000)
  const store = new ClusterStore()
  const backend = new FakeBackend()
  const registry = new Registry()
  const health = new ProxyHealth(60_000, () => clock.now())
  const proxier = new Proxier({
    family: 'IPv4', nodeName: NODE, backend, store, minSyncPeriodMs: 1000, syncPeriodMs: 30_000,
    metrics: createProxyMetrics(registry), health, log: silentLogger, clock,
  })
  return { clock, store, backend, proxier, health, registry }
}

const metric = async (r: Registry, name: string): Promise<string> =>
  (await r.metrics()).split('\n').filter(l => l.startsWith(name)).join('\n')

t.test('nothing is programmed before the source has listed; then one full sync', async t => {
  const { clock, store, backend, proxier } = setup()
  proxier.start()
  await clock.advance(5000)
  t.same(backend.syncs, [], 'no partial initial state')
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1', { node: true }), sliceEp('10.180.0.2', { node: false })] })])
  proxier.requestSync()
  await clock.advance(1000)
  t.same(backend.syncs, [{ changed: null, keys: [KEY] }])
  t.same(backend.programmed.get(KEY)?.clusterEndpoints?.map(e => e.ip), ['10.180.0.1', '10.180.0.2'])
  await proxier.stop()
})

t.test('changes are partial syncs naming only what changed; no-op updates sync nothing new', async t => {
  const { clock, store, backend, proxier } = setup()
  store.replace([svc(), svc({ name: 'svc2', clusterIP: '172.30.0.42' }), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(1000)
  t.equal(backend.syncs.length, 1)
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.1'), sliceEp('10.180.0.3')] }))
  store.upsert(svc({ name: 'svc2', clusterIP: '172.30.0.42' })) // identical: dropped by the cache
  await clock.advance(1000)
  t.same(backend.syncs[1], { changed: [KEY], keys: [KEY, 'ns1/svc2:p80/tcp'] })
  store.remove('Service', 'ns1', 'svc2')
  await clock.advance(1000)
  t.same(backend.syncs[2], { changed: ['ns1/svc2:p80/tcp'], keys: [KEY] })
  const before = backend.syncs.length
  await clock.advance(3_600_000)
  t.equal(backend.syncs.length, before + 1, 'the hourly sync runs without any change')
  t.same(backend.syncs.at(-1)?.changed, null, 'and it is a full one')
  await proxier.stop()
})

t.test('a failed sync makes the next one full and is reported', async t => {
  const { clock, store, backend, proxier, registry } = setup()
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(1000)
  backend.failNext = 1
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.9')] }))
  await clock.advance(1000)
  t.same(backend.syncs[1]?.changed, [KEY], 'the partial attempt')
  t.match(proxier.status().lastError, /fake apply failure/, 'the failure shows in the status (each mode counts its own failures)')
  t.equal(await metric(registry, 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total'), '', 'the neutral proxier registers no iptables metric')
  await clock.advance(28_000)
  t.equal(backend.syncs.length, 2, 'no retry before syncPeriod')
  await clock.advance(2000)
  t.same(backend.syncs[2]?.changed, null, 'retried as a full sync after syncPeriod')
  t.same(backend.programmed.get(KEY)?.clusterEndpoints?.map(e => e.ip), ['10.180.0.9'], 'nothing lost')
  await proxier.stop()
})

t.test('health: a change left unapplied for 2 x syncPeriod is unhealthy', async t => {
  const { clock, store, backend, proxier, health } = setup()
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(1000)
  t.ok(health.report().healthy)
  backend.failNext = 1000
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.2')] }))
  await clock.advance(59_000)
  t.ok(health.report().healthy, 'still within the timeout')
  await clock.advance(2_000)
  t.notOk(health.report().healthy, 'past 2 x syncPeriod')
  t.equal(health.report().status.IPv4?.healthy, false)
  backend.failNext = 0
  await clock.advance(30_000)
  t.ok(health.report().healthy, 'a successful sync heals it')
  await proxier.stop()
})

t.test('health: a change that arrives while a sync runs stays queued after that sync succeeds', async t => {
  const { clock, store, backend, proxier, health } = setup()
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(1000)
  // The first sync from here is held, then lands; every later one fails, so the second change never lands.
  const hold = holdNextSync(backend, true)
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.2')] }))
  await clock.advance(1000)
  t.equal(hold.held(), true, 'the sync carrying the first change is in flight')
  await clock.advance(5000)
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.3')] })) // not in the sync that is running
  hold.release()
  await clock.advance(1000)
  t.equal(backend.programmed.get(KEY)?.clusterEndpoints?.[0]?.ip, '10.180.0.2', 'the held sync landed, the second change did not')
  t.ok(health.report().healthy, 'the second change has waited only briefly')
  await clock.advance(61_000)
  t.notOk(health.report().healthy, 'the second change has waited over 2 x syncPeriod')
  await proxier.stop()
})

t.test('health: changes before the first sync do not count (kube-proxy counts them once initialized)', async t => {
  const { clock, store, backend, proxier, health } = setup()
  proxier.start()
  // A huge or slow first list: its changes arrive long before the store is synced and the first sync runs.
  store.upsert(svc())
  await clock.advance(60_000)
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.1')] }))
  await clock.advance(61_000)
  t.same(backend.syncs, [], 'nothing programmed yet')
  t.ok(health.report().healthy, '/healthz and /livez stay 200 while the first list is pending')
  t.notOk(health.hasSynced('IPv4'), 'but the family has not synced: /readyz stays 503')
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.requestSync()
  await clock.advance(1000)
  t.equal(backend.syncs.length, 1, 'the first sync')
  t.ok(health.hasSynced('IPv4'))
  t.ok(health.report().healthy)
  await proxier.stop()
})

t.test('health: once the first sync has started, a change counts even if that sync fails', async t => {
  const { clock, store, backend, proxier, health } = setup()
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  backend.failNext = 1000
  proxier.start()
  await clock.advance(1000)
  t.equal(backend.syncs.length, 1, 'the first sync ran and failed')
  t.ok(health.report().healthy, 'the first list alone never makes it unhealthy')
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.2')] }))
  await clock.advance(61_000)
  t.notOk(health.report().healthy, 'a change after the first sync started waits past 2 x syncPeriod: unhealthy')
  t.notOk(health.hasSynced('IPv4'))
  backend.failNext = 0
  await clock.advance(30_000)
  t.ok(health.report().healthy, 'a successful sync heals it')
  await proxier.stop()
})

t.test('a zone label on our Node changes topology and forces a full sync', async t => {
  const { clock, store, backend, proxier } = setup()
  const node = (zone?: string): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, ...(zone !== undefined ? { labels: { 'topology.kubernetes.io/zone': zone } } : {}) }, spec: {} })
  store.replace([node(), svc(), slice({ endpoints: [sliceEp('10.180.0.3', { forZones: ['zone-a'] }), sliceEp('10.180.0.4', { forZones: ['zone-b'] })] })])
  proxier.start()
  await clock.advance(1000)
  t.same(backend.programmed.get(KEY)?.clusterEndpoints?.map(e => e.ip), ['10.180.0.3', '10.180.0.4'], 'no zone label: no filtering')
  store.upsert(node('zone-a'))
  await clock.advance(1000)
  t.same(backend.syncs.at(-1)?.changed, null)
  t.same(backend.programmed.get(KEY)?.clusterEndpoints?.map(e => e.ip), ['10.180.0.3'], 'hints for zone-a only')
  await proxier.stop()
})

t.test('no-local-endpoints gauges and sync metrics', async t => {
  const { clock, store, proxier, registry } = setup()
  store.replace([
    svc({ iTP: 'Local' }), slice({ endpoints: [sliceEp('10.180.1.3', { node: false })] }),
    svc({ name: 'lb', type: 'LoadBalancer', eTP: 'Local', clusterIP: '172.30.0.50', lbIngress: ['5.6.7.8'], ports: [{ name: 'p80', port: 80, nodePort: 3002 }] }),
    slice({ service: 'lb', endpoints: [sliceEp('10.180.1.2', { node: false })] }),
  ])
  proxier.start()
  await clock.advance(1000)
  const gauges = await metric(registry, 'kubeproxy_sync_proxy_rules_no_local_endpoints_total')
  t.match(gauges, /ip_family="IPv4",traffic_policy="internal"} 1/)
  t.match(gauges, /ip_family="IPv4",traffic_policy="external"} 1/)
  t.match(await metric(registry, 'kubeproxy_sync_proxy_rules_duration_seconds_count'), /ip_family="IPv4"} 1/)
  t.match(await metric(registry, 'kubeproxy_sync_full_proxy_rules_duration_seconds_count'), /ip_family="IPv4"} 1/)
  t.match(await metric(registry, 'kubeproxy_network_programming_duration_seconds_count'), /ip_family="IPv4"} 2/)
  t.match(await metric(registry, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds'), /ip_family="IPv4"} 1000$/)
  t.same(proxier.status().lastSync?.summary, { services: 2 }, "the backend's own summary of the last sync")
  t.same(proxier.status().servicePorts, 2)
  await proxier.stop()
})

t.test('rules flushed behind our back are restored by a full sync within syncPeriod', async t => {
  const { clock, store, backend, proxier } = setup()
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(1000)
  backend.flush()
  t.equal(backend.programmed.size, 0)
  await clock.advance(30_000)
  await clock.advance(1000)
  t.same(backend.syncs.at(-1)?.changed, null, 'a full sync')
  t.equal(backend.programmed.size, 1, 'everything is back')
  const n = backend.syncs.length
  await clock.advance(30_000)
  t.equal(backend.syncs.length, n, 'an intact kernel costs no sync')
  await proxier.stop()
})

t.test('a flush found while a sync runs still makes the next sync full', async t => {
  const { clock, store, backend, proxier } = setup()
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(1000)
  const hold = holdNextSync(backend)
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.1'), sliceEp('10.180.0.2')] }))
  await clock.advance(1000)
  t.equal(hold.held(), true, 'the partial sync is in flight')
  backend.flush()
  await clock.advance(28_000) // the canary check (every syncPeriod) runs while that sync is held
  hold.release()
  await clock.advance(1000)
  await clock.advance(1000)
  t.same(backend.syncs.map(s => s.changed), [null, [KEY], null], 'the held partial sync, then a full one')
  t.equal(backend.programmed.size, 1, 'everything is back')
  await proxier.stop()
})

t.test('programmedRevision: a change counts as programmed only after the sync that carried it', async t => {
  const { clock, store, backend, proxier } = setup()
  let told = 0
  proxier.onProgrammed(() => { told++ })
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  t.equal(proxier.programmedRevision(), 0, 'nothing before the first sync')
  proxier.start()
  await clock.advance(1000)
  t.equal(proxier.programmedRevision(), store.revision, 'the first sync programs everything listed')
  t.equal(told, 1)
  store.upsert(slice({ endpoints: [sliceEp('10.180.0.2')] }))
  const rev = store.revision
  t.equal(proxier.programmedRevision(), rev - 1, 'a pending change is not programmed yet')
  store.upsert({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns1' }, spec: {} })
  t.equal(proxier.programmedRevision(), rev - 1, 'a later unrelated change waits behind it')
  backend.failNext = 1
  await clock.advance(1000)
  t.equal(proxier.failed(), true, 'a failed sync is reported')
  t.equal(told, 2, 'listeners hear of the failure too')
  await clock.advance(30_000)
  t.equal(proxier.failed(), false)
  t.equal(proxier.programmedRevision(), store.revision, 'programmed once the retry lands')
  store.upsert({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'q', namespace: 'ns1' }, spec: {} })
  t.equal(proxier.programmedRevision(), store.revision, 'a change the proxy ignores is programmed at once')
  await proxier.stop()
})

const PROGRAMMING = 'kubeproxy_network_programming_duration_seconds'

/** The programming-latency histogram's observation count and sum (seconds, to the millisecond). */
async function programming (r: Registry): Promise<{ count: number, sum: number }> {
  const value = async (suffix: string): Promise<number> =>
    Number(/ip_family="IPv4"} (\S+)$/.exec(await metric(r, `${PROGRAMMING}_${suffix}`))?.[1] ?? 0)
  return { count: await value('count'), sum: Math.round(await value('sum') * 1000) / 1000 }
}

/** The slice of svc1 with one endpoint, annotated with a trigger time (epoch ms, or any text) if given. */
function triggered (ip: string, at?: number | string, name?: string): EndpointSlice {
  const s = slice({ ...(name !== undefined ? { name } : {}), endpoints: [sliceEp(ip)] })
  if (at !== undefined) s.metadata.annotations = { [TRIGGER_TIME_ANNOTATION]: typeof at === 'number' ? new Date(at).toISOString() : at }
  return s
}

t.test('programming latency counts from a changed slice\'s last-change-trigger-time, else from receipt', async t => {
  const { clock, store, backend, proxier, registry } = setup() // the proxier starts at 1_000_000
  slowSyncs(backend, clock, 2000)
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(10_000)
  // Each change lands at `now`, its sync starts at once and ends 2 s later.
  const cases: Array<{ name: string, at?: (now: number) => number | string, want: number }> = [
    { name: 'annotated: from the trigger time', at: now => now - 4000, want: 6 },
    { name: 'no annotation: from receipt', want: 2 },
    { name: 'an invalid annotation: from receipt', at: () => 'yesterday', want: 2 },
    { name: 'not RFC 3339 (no zone): from receipt', at: now => new Date(now - 4000).toISOString().replace('Z', ''), want: 2 },
    { name: 'a trigger time from before ferry started: from receipt', at: () => 999_000, want: 2 },
    { name: 'a trigger time ahead of our clock: 0, never negative', at: now => now + 60_000, want: 0 },
  ]
  for (const [i, c] of cases.entries()) {
    const before = await programming(registry)
    store.upsert(triggered(`10.180.0.${10 + i}`, c.at?.(clock.now())))
    await clock.advance(10_000)
    const after = await programming(registry)
    t.same({ count: after.count - before.count, seconds: after.sum - before.sum }, { count: 1, seconds: c.want }, c.name)
  }
  await proxier.stop()
})

t.test('programming latency: every update counts from its own trigger time, superseded ones too (kube-proxy)', async t => {
  const { clock, store, backend, proxier, registry } = setup()
  slowSyncs(backend, clock, 2000)
  store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(10_000)
  const before = await programming(registry)
  const now = clock.now()
  store.upsert(triggered('10.180.0.2', now - 6000))
  store.upsert(triggered('10.180.0.3', now - 3000)) // the same slice again, before any sync
  await clock.advance(10_000)
  t.same(backend.programmed.get(KEY)?.clusterEndpoints?.map(e => e.ip), ['10.180.0.3'])
  const after = await programming(registry)
  t.same({ count: after.count - before.count, seconds: after.sum - before.sum }, { count: 2, seconds: 13 }, '6 + 2 s and 3 + 2 s')
  await proxier.stop()
})

t.test('programming latency: a Service change counts from receipt unless a triggered slice of it changed too', async t => {
  const { clock, store, backend, proxier, registry } = setup()
  slowSyncs(backend, clock, 2000)
  const svc2 = (port: number): ReturnType<typeof svc> => svc({ name: 'svc2', clusterIP: '172.30.0.42', ports: [{ name: 'p80', port }] })
  store.replace([svc(), svc2(80), slice({ endpoints: [sliceEp('10.180.0.1')] })])
  proxier.start()
  await clock.advance(10_000)
  const steps: Array<{ name: string, change: (now: number) => void, want: { count: number, seconds: number } }> = [
    { name: 'a Service alone: from receipt', change: () => { store.upsert(svc2(81)) }, want: { count: 1, seconds: 2 } },
    {
      name: 'a Service and its triggered slice: once, from the trigger time',
      change: now => { store.upsert(svc({ ports: [{ name: 'p80', port: 8080 }] })); store.upsert(triggered('10.180.0.2', now - 4000)) },
      want: { count: 1, seconds: 6 },
    },
    {
      name: 'another Service and a triggered slice: each from its own start',
      change: now => { store.upsert(svc2(82)); store.upsert(triggered('10.180.0.3', now - 4000)) },
      want: { count: 2, seconds: 8 },
    },
    {
      name: 'a triggered slice and an unannotated one of the same Service: the trigger time, and the receipt',
      change: now => { store.upsert(triggered('10.180.0.4', now - 4000)); store.upsert(triggered('10.180.0.5', undefined, 'svc1-other')) },
      want: { count: 2, seconds: 8 },
    },
  ]
  for (const step of steps) {
    const before = await programming(registry)
    step.change(clock.now())
    await clock.advance(10_000)
    const after = await programming(registry)
    t.same({ count: after.count - before.count, seconds: after.sum - before.sum }, step.want, step.name)
  }
  await proxier.stop()
})
