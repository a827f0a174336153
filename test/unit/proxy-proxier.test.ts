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
import type { Node } from '../../pkg/api/types.js'
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
