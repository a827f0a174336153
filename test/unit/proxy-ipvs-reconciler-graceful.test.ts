// Graceful termination in the IpvsReconciler: a removed TCP/SCTP dest goes to weight 0 and is deleted
// once its connections reach 0 or the cap passes, checked by one timer that dumps only the draining
// virtual servers (first just after the sync that began the drain, then every CHECK ms); an endpoint that comes back gets its weight again; UDP dests go at once and are
// reported for conntrack cleanup.
import t from 'tap'
import { FakeClock } from '../../pkg/proxy/fake-clock.js'
import { FakeIpvsKernel } from '../../pkg/proxy/ipvs/fake-kernel.js'
import { desiredOf, portPlan } from '../../pkg/proxy/ipvs/fixtures.js'
import { DrainSet, drainVerdict } from '../../pkg/proxy/ipvs/graceful.js'
import { MemoryOwnershipStore } from '../../pkg/proxy/ipvs/ownership.js'
import { IpvsReconciler } from '../../pkg/proxy/ipvs/reconciler.js'
import type { RealServer, VirtualServerKey } from '../../pkg/proxy/ipvs/types.js'
import { ep, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import type { Protocol } from '../../pkg/api/types.js'
import type { EndpointInfo } from '../../pkg/proxy/types.js'

const CAP = 60_000
const CHECK = 2_000
const FIRST = 50
const A = ep('10.180.0.1', 8080)
const B = ep('10.180.1.1', 8080)
const RB = { address: B.ip, port: B.port }

function setup (o: { cap?: number } = {}): { kernel: FakeIpvsKernel, clock: FakeClock, rec: IpvsReconciler } {
  const kernel = new FakeIpvsKernel()
  const clock = new FakeClock(5_000_000)
  const rec = new IpvsReconciler({ family: 'IPv4', kernel, ownership: new MemoryOwnershipStore(), clock, gracefulTerminationMs: o.cap ?? CAP, drainCheckIntervalMs: CHECK, drainFirstCheckMs: FIRST })
  return { kernel, clock, rec }
}

const svc = (protocol: Protocol = 'TCP'): ReturnType<typeof svcInfo> => svcInfo({ name: 'web', clusterIP: '172.30.0.41', port: 80, protocol })
const want = (eps: readonly EndpointInfo[], protocol: Protocol = 'TCP'): ReturnType<typeof desiredOf> => desiredOf([portPlan(svc(protocol), eps)])
const key = (protocol: Protocol = 'TCP'): VirtualServerKey => ({ family: 'IPv4', protocol, address: '172.30.0.41', port: 80 })

function dests (k: FakeIpvsKernel): RealServer[] {
  return (k.snapshot()[0]?.destinations ?? []).sort((a, b) => a.address.localeCompare(b.address))
}
const weights = (k: FakeIpvsKernel): string[] => dests(k).map(d => `${d.address}/${d.weight}`)

t.test('a removed TCP dest drains at weight 0 and is deleted when its connections reach 0', async t => {
  const { kernel, clock, rec } = setup()
  await rec.reconcile(want([A, B]))
  kernel.setConnections(key(), RB, { active: 3, inactive: 1 })
  kernel.resetCalls()

  const r = await rec.reconcile(want([A]))
  t.equal(r.ops, 1, 'one message: weight 0')
  t.same(kernel.applied.map(o => o.op), ['updateDestination'])
  t.equal(r.draining, 1)
  t.same(weights(kernel), ['10.180.0.1/1', '10.180.1.1/0'])
  t.equal(clock.pendingTimers(), 1, 'one drain timer')
  t.equal(kernel.calls.listDestinations, 0, 'weight 0 costs no dump')

  kernel.resetCalls()
  await clock.advance(FIRST)
  t.equal(kernel.calls.listServices, 0, 'the check never lists services')
  t.equal(kernel.calls.listDestinations, 1, 'just after the sync, it dumps the one draining virtual server')
  t.equal(kernel.calls.apply, 0, 'connections remain: nothing to delete')
  t.same(weights(kernel), ['10.180.0.1/1', '10.180.1.1/0'])
  await clock.advance(CHECK - 1)
  t.equal(kernel.calls.listDestinations, 1, 'then every CHECK ms')
  await clock.advance(1)
  t.equal(kernel.calls.listDestinations, 2)

  kernel.setConnections(key(), RB, { active: 0, inactive: 0, persist: 2 })
  kernel.resetCalls()
  await clock.advance(CHECK)
  t.same(kernel.applied.map(o => o.op), ['deleteDestination'], 'persistence templates do not hold it')
  t.same(weights(kernel), ['10.180.0.1/1'])
  t.same(rec.status(), { virtualServers: 1, destinations: 1, draining: 0 })
  t.equal(clock.pendingTimers(), 0, 'the timer stops when nothing drains')
})

t.test('a dest that never quiets is deleted when the cap passes', async t => {
  const { kernel, clock, rec } = setup()
  await rec.reconcile(want([A, B]))
  kernel.setConnections(key(), RB, { active: 7 })
  await rec.reconcile(want([A]))
  await clock.advance(CAP - CHECK + FIRST)
  t.same(weights(kernel), ['10.180.0.1/1', '10.180.1.1/0'], 'still draining at the last check before the cap')
  kernel.resetCalls()
  await clock.advance(CHECK)
  t.same(kernel.applied.map(o => o.op), ['deleteDestination'])
  t.equal(kernel.calls.listDestinations, 0, 'every drain of the virtual server expired: no dump needed')
  t.same(weights(kernel), ['10.180.0.1/1'])
  t.equal(rec.status().draining, 0)
})

t.test('a removed dest without connections is deleted just after the sync, not inside it', async t => {
  const { kernel, clock, rec } = setup()
  await rec.reconcile(want([A, B]))
  kernel.resetCalls()
  const r = await rec.reconcile(want([A]))
  t.same(kernel.applied.map(o => o.op), ['updateDestination'], 'the sync sets weight 0 and reads nothing')
  t.equal(kernel.calls.listDestinations, 0)
  t.equal(r.draining, 1)
  await clock.advance(FIRST - 1)
  t.same(weights(kernel), ['10.180.0.1/1', '10.180.1.1/0'])
  kernel.resetCalls()
  await clock.advance(1)
  t.equal(kernel.calls.listDestinations, 1)
  t.same(kernel.applied.map(o => o.op), ['deleteDestination'])
  t.same(weights(kernel), ['10.180.0.1/1'])
  t.equal(clock.pendingTimers(), 0, 'nothing left to check')
})

t.test('a later drain brings an armed check forward; a sync that begins none leaves it', async t => {
  const { kernel, clock, rec } = setup()
  const C = ep('10.180.2.1', 8080)
  await rec.reconcile(want([A, B, C]))
  kernel.setConnections(key(), RB, { active: 1 })
  kernel.setConnections(key(), { address: C.ip, port: C.port }, { active: 1 })
  await rec.reconcile(want([A, C]))
  await clock.advance(FIRST) // first look: B keeps its connection
  kernel.resetCalls()
  await rec.reconcile(want([A, C])) // nothing new drains: the check stays CHECK away
  await clock.advance(FIRST)
  t.equal(kernel.calls.listDestinations, 0)
  await rec.reconcile(want([A])) // C begins draining: the check comes FIRST after this sync
  await clock.advance(FIRST)
  t.equal(kernel.calls.listDestinations, 1)
  t.equal(clock.pendingTimers(), 1, 'still one timer')
  t.equal(rec.status().draining, 2)
})

t.test('a reconcile deletes expired drains itself, without reading the kernel', async t => {
  const { kernel, clock, rec } = setup()
  await rec.reconcile(want([A, B]))
  kernel.setConnections(key(), RB, { active: 7 })
  await rec.reconcile(want([A]))
  rec.stop() // no timer: only the reconcile can notice the cap
  await clock.advance(CAP)
  kernel.resetCalls()
  const r = await rec.reconcile(want([A]))
  t.equal(r.ops, 1)
  t.same(kernel.applied.map(o => o.op), ['deleteDestination'])
  t.equal(kernel.calls.listDestinations + kernel.calls.listServices, 0)
  t.equal(r.draining, 0)
  t.equal(clock.pendingTimers(), 0, 'a stopped reconciler arms no timer')
})

t.test('an endpoint that returns while draining gets weight 1 back (no delete and re-add)', async t => {
  const { kernel, clock, rec } = setup()
  await rec.reconcile(want([A, B]))
  kernel.setConnections(key(), RB, { active: 2 })
  await rec.reconcile(want([A]))
  kernel.resetCalls()
  const r = await rec.reconcile(want([A, B]))
  t.equal(r.ops, 1)
  t.same(kernel.applied.map(o => `${o.op} ${'destination' in o ? o.destination.address : ''}`), ['updateDestination 10.180.1.1'])
  t.same(weights(kernel), ['10.180.0.1/1', '10.180.1.1/1'])
  t.equal(dests(kernel)[1]?.activeConns, 2, 'its connections were kept')
  t.equal(r.draining, 0)
  kernel.resetCalls()
  await clock.advance(CAP * 2)
  t.equal(kernel.calls.apply + kernel.calls.listDestinations, 0, 'no drain left to check')
})

t.test('UDP dests are deleted at once and reported for conntrack cleanup', async t => {
  const { kernel, rec } = setup()
  await rec.reconcile(want([A, B], 'UDP'))
  kernel.setConnections(key('UDP'), RB, { active: 4 })
  kernel.resetCalls()
  const r = await rec.reconcile(want([A], 'UDP'))
  t.same(kernel.applied.map(o => o.op), ['deleteDestination'])
  t.same(r.removedUDPDestinations, [{ service: key('UDP'), destination: { address: '10.180.1.1', port: 8080 } }])
  t.equal(r.draining, 0)
  t.same(weights(kernel), ['10.180.0.1/1'])

  const gone = await rec.reconcile(new Map())
  t.same(gone.removedUDPDestinations, [{ service: key('UDP'), destination: { address: '10.180.0.1', port: 8080 } }],
    'a deleted UDP virtual server reports the dests it took along')
})

t.test('SCTP drains like TCP', async t => {
  const { kernel, rec } = setup()
  await rec.reconcile(want([A, B], 'SCTP'))
  const r = await rec.reconcile(want([A], 'SCTP'))
  t.equal(r.draining, 1)
  t.same(r.removedUDPDestinations, [])
  t.same(weights(kernel), ['10.180.0.1/1', '10.180.1.1/0'])
})

t.test('a deleted virtual server drops its draining dests at once', async t => {
  const { kernel, clock, rec } = setup()
  await rec.reconcile(want([A, B]))
  kernel.setConnections(key(), RB, { active: 1 })
  await rec.reconcile(want([A]))
  kernel.resetCalls()
  const r = await rec.reconcile(new Map())
  t.same(kernel.applied.map(o => o.op), ['deleteService'])
  t.equal(r.draining, 0)
  await clock.advance(CHECK)
  t.equal(kernel.calls.listDestinations, 0, 'the timer found nothing to check')
})

t.test('with a cap of 0, removed TCP dests are deleted at once', async t => {
  const { kernel, clock, rec } = setup({ cap: 0 })
  await rec.reconcile(want([A, B]))
  kernel.setConnections(key(), RB, { active: 1 })
  const r = await rec.reconcile(want([A]))
  t.same(weights(kernel), ['10.180.0.1/1'])
  t.equal(r.draining, 0)
  t.same(r.removedUDPDestinations, [], 'TCP needs no conntrack cleanup')
  t.equal(clock.pendingTimers(), 0)
})

t.test('a dest that vanished behind ferry\'s back stops draining', async t => {
  const { kernel, clock, rec } = setup()
  await rec.reconcile(want([A, B]))
  kernel.setConnections(key(), RB, { active: 1 })
  await rec.reconcile(want([A]))
  await kernel.apply([{ op: 'deleteDestination', service: key(), destination: RB }])
  kernel.resetCalls()
  await clock.advance(CHECK)
  t.equal(kernel.calls.apply, 0, 'nothing to delete')
  t.equal(rec.status().draining, 0)
  t.equal(rec.status().destinations, 1)
})

t.test('a failed dump in the drain check keeps the drain and makes the next sync full', async t => {
  const { kernel, clock, rec } = setup()
  await rec.reconcile(want([A, B]))
  kernel.setConnections(key(), RB, { active: 1 })
  await rec.reconcile(want([A]))
  kernel.failNextList(105)
  await clock.advance(CHECK)
  t.equal(rec.status().draining, 1)
  t.equal(clock.pendingTimers(), 1, 'the timer is armed again')
  kernel.setConnections(key(), RB, { active: 0 })
  const r = await rec.reconcile(want([A]))
  t.equal(r.kind, 'full')
  await clock.advance(CHECK)
  t.same(weights(kernel), ['10.180.0.1/1'], 'the drain finished after the re-read')
})

t.test('DrainSet and drainVerdict', async t => {
  const d = new DrainSet()
  d.start('v', 'a', 10)
  d.start('v', 'a', 50)
  d.start('v', 'b', 20)
  d.start('w', 'c', 30)
  t.equal(d.size, 3)
  t.equal(d.since('v', 'a'), 10, 'a second start keeps the first time')
  t.ok(d.expired('v', 'a', 110, 100))
  t.notOk(d.expired('v', 'b', 110, 100))
  d.retain((vs, rs) => rs !== 'b')
  t.equal(d.size, 2)
  d.dropService('v')
  t.same(d.services().map(([vs]) => vs), ['w'])
  d.stop('w', 'c')
  t.equal(d.size, 0)
  t.same(d.services(), [])

  t.equal(drainVerdict(undefined, 0, 0, 10), 'gone')
  t.equal(drainVerdict({ activeConns: 0, inactiveConns: 0 }, 0, 0, 10), 'delete')
  t.equal(drainVerdict({ activeConns: 0, inactiveConns: 1 }, 0, 9, 10), 'wait')
  t.equal(drainVerdict({ activeConns: 1, inactiveConns: 0 }, 0, 10, 10), 'delete')
})
