// IpvsReconciler against the stateful fake kernel: the first sync creates everything in one pipelined
// apply, later syncs read nothing and send only the changes (one endpoint = one message), a changed
// scheduler or affinity is an edit in place, and an operator's virtual servers are never touched.
import t from 'tap'
import { realServer, virtualServer } from '../../pkg/proxy/ipvs/desired.js'
import { FakeClock } from '../../pkg/proxy/fake-clock.js'
import { FakeIpvsKernel, type FakeIpvsEntry } from '../../pkg/proxy/ipvs/fake-kernel.js'
import { desiredOf, NODE_IP, portPlan } from '../../pkg/proxy/ipvs/fixtures.js'
import { MemoryOwnershipStore } from '../../pkg/proxy/ipvs/ownership.js'
import { IpvsReconciler } from '../../pkg/proxy/ipvs/reconciler.js'
import type { VirtualServer } from '../../pkg/proxy/ipvs/types.js'
import { ep, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import type { EndpointInfo, ServicePortInfo } from '../../pkg/proxy/types.js'

const WEB = svcInfo({ name: 'web', clusterIP: '172.30.0.41', port: 80, nodePort: 30080 })
const DNS = svcInfo({ name: 'dns', portName: 'dns', clusterIP: '172.30.0.10', port: 53, protocol: 'UDP' })
const WEB_EPS = [ep('10.180.0.1', 8080), ep('10.180.1.1', 8080)]
const DNS_EPS = [ep('10.180.0.5', 53)]

type Svc = [ServicePortInfo, readonly EndpointInfo[]]
const want = (svcs: readonly Svc[], scheduler = 'rr'): ReturnType<typeof desiredOf> => desiredOf(svcs.map(([i, e]) => portPlan(i, e)), { scheduler })

function setup (): { kernel: FakeIpvsKernel, store: MemoryOwnershipStore, clock: FakeClock, rec: IpvsReconciler } {
  const kernel = new FakeIpvsKernel()
  const store = new MemoryOwnershipStore()
  const clock = new FakeClock(1_000_000)
  const rec = new IpvsReconciler({ family: 'IPv4', kernel, ownership: store, clock })
  return { kernel, store, clock, rec }
}

/** The kernel as "VS -> dest/weight ..." lines, sorted. */
function table (k: FakeIpvsKernel): string[] {
  return k.snapshot().map(e => `${e.service.protocol} ${e.service.address}:${e.service.port} ${e.service.scheduler} f${e.service.flags} t${e.service.timeout} -> ` +
    e.destinations.map(d => `${d.address}:${d.port}/${d.weight}`).sort().join(' ')).sort()
}

const vs = (address: string, port: number, o: Partial<VirtualServer> = {}): VirtualServer => virtualServer({ family: 'IPv4', protocol: 'TCP', address, port }, o)
const rs = realServer

t.test('the first sync reads the kernel once and creates everything in one apply', async t => {
  const { kernel, store, rec } = setup()
  const desired = want([[WEB, WEB_EPS], [DNS, DNS_EPS]])
  t.same([...desired.keys()], ['TCP/172.30.0.41:80', 'UDP/172.30.0.10:53', `TCP/${NODE_IP}:30080`], 'ClusterIPs first, then the NodePort on the node IP')
  const r = await rec.reconcile(desired)
  t.equal(r.kind, 'full')
  t.equal(r.ops, 3 + 2 + 1 + 2, 'three virtual servers and five dests')
  t.same(r.failed, [])
  t.equal(kernel.calls.apply, 1, 'one pipelined apply')
  t.equal(kernel.calls.ops, 8)
  t.equal(kernel.calls.listServices, 1, 'the kernel is read at start')
  t.equal(kernel.calls.listDestinations, 0, 'nothing owned or desired was there to dump')
  // Every virtual server comes before its dests.
  const seen = new Set<string>()
  for (const op of kernel.applied) {
    const key = `${op.service.address}:${op.service.port}`
    if (op.op === 'addService') seen.add(key)
    else t.ok(seen.has(key), `${op.op} ${key} after its service`)
  }
  t.same(table(kernel), [
    'TCP 172.30.0.41:80 rr f0 t0 -> 10.180.0.1:8080/1 10.180.1.1:8080/1',
    'TCP 192.168.0.2:30080 rr f0 t0 -> 10.180.0.1:8080/1 10.180.1.1:8080/1',
    'UDP 172.30.0.10:53 rr f0 t0 -> 10.180.0.5:53/1',
  ])
  t.same([...store.keys].sort(), [...desired.keys()].sort(), 'the owned set is saved')
  t.same(rec.status(), { virtualServers: 3, destinations: 5, draining: 0 })
})

t.test('one endpoint change is one netlink message, with no listing', async t => {
  const { kernel, store, rec } = setup()
  await rec.reconcile(want([[WEB, WEB_EPS]]))
  const saves = store.saves
  kernel.resetCalls()

  const added = await rec.reconcile(want([[WEB, [...WEB_EPS, ep('10.180.2.1', 8080)]]]))
  t.equal(added.kind, 'partial')
  t.equal(added.ops, 2, 'the new endpoint on the ClusterIP and on the NodePort')
  t.equal(kernel.calls.listServices, 0, 'no service dump')
  t.equal(kernel.calls.listDestinations, 0, 'no dest dump')
  t.equal(kernel.calls.apply, 1)
  t.same(kernel.applied.map(o => o.op), ['addDestination', 'addDestination'])
  t.equal(store.saves, saves, 'the owned set did not change, so it was not saved again')

  // A ClusterIP-only service: exactly one message per endpoint change.
  const api = svcInfo({ name: 'api', clusterIP: '172.30.0.50', port: 443 })
  await rec.reconcile(want([[api, [ep('10.180.0.9', 6443)]]]))
  kernel.resetCalls()
  const savesBefore = store.saves
  const one = await rec.reconcile(want([[api, [ep('10.180.0.9', 6443), ep('10.180.1.9', 6443)]]]))
  t.equal(one.ops, 1)
  t.equal(kernel.calls.ops, 1, 'exactly one op reached the kernel')
  t.equal(kernel.calls.listServices + kernel.calls.listDestinations, 0, 'and nothing was read')
  t.equal(store.saves, savesBefore, 'not saved either')

  kernel.resetCalls()
  const none = await rec.reconcile(want([[api, [ep('10.180.0.9', 6443), ep('10.180.1.9', 6443)]]]))
  t.equal(none.ops, 0)
  t.equal(kernel.calls.apply, 0, 'no change, no netlink at all')
})

t.test('deleting a service is one message; its dests go with it', async t => {
  const { kernel, store, rec } = setup()
  const dns = svcInfo({ name: 'dns', clusterIP: '172.30.0.10', port: 53 })
  await rec.reconcile(want([[dns, DNS_EPS], [svcInfo({ name: 'x', clusterIP: '172.30.0.11' }), [ep('10.180.0.6')]]]))
  kernel.resetCalls()
  const r = await rec.reconcile(want([[svcInfo({ name: 'x', clusterIP: '172.30.0.11' }), [ep('10.180.0.6')]]]))
  t.equal(r.ops, 1)
  t.same(kernel.applied, [{ op: 'deleteService', service: { family: 'IPv4', protocol: 'TCP', address: '172.30.0.10', port: 53 } }])
  t.equal(r.draining, 0, 'a deleted virtual server drains nothing')
  t.same(table(kernel), ['TCP 172.30.0.11:80 rr f0 t0 -> 10.180.0.6:80/1'])
  t.same([...store.keys], ['TCP/172.30.0.11:80'])
})

t.test('a changed scheduler is an update in place, not delete and add', async t => {
  const { kernel, rec } = setup()
  await rec.reconcile(want([[WEB, WEB_EPS]]))
  kernel.resetCalls()
  const r = await rec.reconcile(want([[WEB, WEB_EPS]], 'wlc'))
  t.equal(r.ops, 2)
  t.same(kernel.applied.map(o => o.op), ['updateService', 'updateService'])
  t.ok(table(kernel).every(l => l.includes(' wlc ')), 'both virtual servers use wlc')
  t.ok(table(kernel).every(l => l.endsWith('10.180.0.1:8080/1 10.180.1.1:8080/1')), 'dests untouched')

  // mh hashes the source port too (SCHED2 = 0x10).
  kernel.resetCalls()
  await rec.reconcile(want([[WEB, WEB_EPS]], 'mh'))
  t.ok(table(kernel).every(l => l.includes(' mh f16 ')), 'mh sets IP_VS_SVC_F_SCHED2')
})

t.test('ClientIP affinity is persistence (flag 0x1) with the timeout; turning it off edits in place', async t => {
  const { kernel, rec } = setup()
  const sticky = svcInfo({ name: 'web', clusterIP: '172.30.0.41', stickyMaxAgeSeconds: 10800 })
  await rec.reconcile(want([[sticky, WEB_EPS]]))
  t.same(kernel.snapshot().map(e => [e.service.flags, e.service.timeout]), [[1, 10800]])
  kernel.resetCalls()
  await rec.reconcile(want([[svcInfo({ name: 'web', clusterIP: '172.30.0.41', stickyMaxAgeSeconds: 60 }), WEB_EPS]]))
  t.same(kernel.applied.map(o => o.op), ['updateService'])
  t.same(kernel.snapshot().map(e => [e.service.flags, e.service.timeout]), [[1, 60]])
  await rec.reconcile(want([[svcInfo({ name: 'web', clusterIP: '172.30.0.41' }), WEB_EPS]]))
  t.same(kernel.snapshot().map(e => [e.service.flags, e.service.timeout]), [[0, 0]])
})

t.test("an operator's virtual server is never touched, on normal and full syncs", async t => {
  const { kernel, store, rec } = setup()
  const mine: FakeIpvsEntry = { service: vs('198.51.100.7', 8443, { scheduler: 'wrr' }), destinations: [rs('198.51.100.20', 443, { weight: 5 })] }
  kernel.seed([mine])
  await rec.reconcile(want([[WEB, WEB_EPS]]))
  t.notOk(store.keys.has('TCP/198.51.100.7:8443'), 'not owned')
  rec.resync()
  kernel.resetCalls()
  const r = await rec.reconcile(want([]))
  t.equal(r.kind, 'full')
  t.equal(kernel.calls.listDestinations, 2, 'only ferry\'s own virtual servers are dumped')
  t.same(kernel.applied.map(o => `${o.op} ${o.service.address}`), ['deleteService 172.30.0.41', `deleteService ${NODE_IP}`])
  t.same(kernel.snapshot(), [mine], 'the operator entry is as it was')
  t.equal(rec.status().virtualServers, 0)
})

t.test('an IPv6 reconciler handles only IPv6 virtual servers', async t => {
  const kernel = new FakeIpvsKernel()
  const store = new MemoryOwnershipStore()
  const v4 = new IpvsReconciler({ family: 'IPv4', kernel, ownership: new MemoryOwnershipStore(), clock: new FakeClock() })
  const v6 = new IpvsReconciler({ family: 'IPv6', kernel, ownership: store, clock: new FakeClock() })
  await v4.reconcile(want([[WEB, WEB_EPS]]))
  const info6 = svcInfo({ name: 'web6', family: 'IPv6', clusterIP: 'fd00:30::41', port: 80 })
  const d6 = desiredOf([portPlan(info6, [ep('fd00:10::1', 8080)])], { family: 'IPv6' })
  const r = await v6.reconcile(d6)
  t.equal(r.ops, 2)
  t.same([...store.keys], ['TCP/[fd00:30::41]:80'])
  const again = await v6.reconcile(new Map(), { full: true })
  t.equal(again.ops, 1, 'only its own virtual server is deleted')
  t.equal(kernel.snapshot().filter(e => e.service.family === 'IPv4').length, 2, 'the IPv4 table is intact')
})

t.test('an entry that is the very object applied last time is not compared again, unless a re-read or a drain', async t => {
  const { kernel, rec } = setup()
  const api = svcInfo({ name: 'api', clusterIP: '172.30.0.50', port: 443 })
  let reads = 0
  /** The desired table of `eps`, its one entry counting reads of its dests. */
  const watched = (eps: readonly EndpointInfo[]): ReturnType<typeof want> => {
    const [key, entry] = [...want([[api, eps]])][0] ?? []
    if (key === undefined || entry === undefined) throw new Error('no entry')
    return new Map([[key, { ...entry, get destinations () { reads++; return entry.destinations } }]])
  }
  const two = watched([ep('10.180.0.9', 6443), ep('10.180.1.9', 6443)])
  await rec.reconcile(two)
  t.ok(reads > 0, 'the first sync compares it')

  reads = 0
  await rec.reconcile(new Map(two))
  t.equal(reads, 0, 'the same object in a new map: skipped')

  reads = 0
  t.equal((await rec.reconcile(watched([ep('10.180.0.9', 6443), ep('10.180.1.9', 6443)]))).ops, 0)
  t.ok(reads > 0, 'an equal new object is compared, and found equal')

  rec.resync()
  reads = 0
  await rec.reconcile(two)
  t.ok(reads > 0, 'after resync() it is compared with what the kernel holds')

  // Someone edits ferry's dest behind its back: a normal sync trusts its record, a resync repairs.
  const service = [...two.values()][0]?.service
  if (service === undefined) throw new Error('no service')
  await kernel.apply([{ op: 'updateDestination', service, destination: rs('10.180.1.9', 6443, { weight: 7 }) }])
  t.equal((await rec.reconcile(two)).ops, 0)
  rec.resync()
  t.equal((await rec.reconcile(two)).ops, 1)
  t.ok(table(kernel)[0]?.endsWith('10.180.0.9:6443/1 10.180.1.9:6443/1'), 'repaired')

  // While a dest of it drains, it is compared on every sync (so an expired drain is noticed).
  const one = watched([ep('10.180.0.9', 6443)])
  kernel.setConnections(service, { address: '10.180.1.9', port: 6443 }, { active: 1 })
  await rec.reconcile(one)
  reads = 0
  await rec.reconcile(one)
  t.ok(reads > 0, 'compared while draining')
  rec.stop()
})
