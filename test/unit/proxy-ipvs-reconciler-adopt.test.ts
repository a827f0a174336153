// Restarts, ownership and faults: a new reconciler over the same kernel and ownership store adopts the
// table without disturbing it, repairs what a crash left, deletes its own leftovers and never an
// operator's; a refused op is reported by name and errno while the rest apply, and the next sync re-reads
// and repairs; a failed socket is a coded error. The file store writes atomically and survives restarts.
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { Logger } from '../../pkg/log/log.js'
import { FakeClock } from '../../pkg/proxy/fake-clock.js'
import { FakeIpvsKernel, type FakeIpvsEntry } from '../../pkg/proxy/ipvs/fake-kernel.js'
import { desiredOf, NODE_IP, portPlan } from '../../pkg/proxy/ipvs/fixtures.js'
import { FileOwnershipStore, MemoryOwnershipStore, keyFamily, type OwnershipStore } from '../../pkg/proxy/ipvs/ownership.js'
import { IpvsReconciler } from '../../pkg/proxy/ipvs/reconciler.js'
import type { RealServer, VirtualServer } from '../../pkg/proxy/ipvs/types.js'
import { ep, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import type { EndpointInfo, ServicePortInfo } from '../../pkg/proxy/types.js'

const EEXIST = 17
const EINVAL = 22
const ENOMEM = 12

const WEB = svcInfo({ name: 'web', clusterIP: '172.30.0.41', port: 80, nodePort: 30080 })
const API = svcInfo({ name: 'api', clusterIP: '172.30.0.50', port: 443 })
const DNS = svcInfo({ name: 'dns', clusterIP: '172.30.0.10', port: 53, protocol: 'UDP' })
const WEB_EPS = [ep('10.180.0.1', 8080), ep('10.180.1.1', 8080)]
const API_EPS = [ep('10.180.0.9', 6443)]
const DNS_EPS = [ep('10.180.0.5', 53)]
const API_KEY = { family: 'IPv4' as const, protocol: 'TCP' as const, address: '172.30.0.50', port: 443 }
type Svc = [ServicePortInfo, readonly EndpointInfo[]]
const want = (...svcs: Svc[]): ReturnType<typeof desiredOf> => desiredOf(svcs.map(([i, e]) => portPlan(i, e)))

const OPERATOR: FakeIpvsEntry = {
  service: { family: 'IPv4', protocol: 'TCP', address: '198.51.100.7', port: 8443, scheduler: 'wrr', flags: 0, timeout: 0, netmask: 32 },
  destinations: [{ address: '198.51.100.20', port: 443, weight: 5, forward: 'masq', upperThreshold: 0, lowerThreshold: 0, activeConns: 0, inactiveConns: 0, persistConns: 0 }],
}

function recorder (): { log: Logger, lines: string[] } {
  const lines: string[] = []
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (m, f) => { lines.push(`${m} ${JSON.stringify(f ?? {})}`) },
    error: (m, f) => { lines.push(`${m} ${JSON.stringify(f ?? {})}`) },
    child: () => log,
  }
  return { log, lines }
}

const reconciler = (kernel: FakeIpvsKernel, ownership: OwnershipStore, clock = new FakeClock(), log?: Logger): IpvsReconciler =>
  new IpvsReconciler({ family: 'IPv4', kernel, ownership, clock, gracefulTerminationMs: 60_000, ...(log !== undefined ? { log } : {}) })

const tableOf = (k: FakeIpvsKernel): string[] => k.snapshot().map(e => `${e.service.address}:${e.service.port} ${e.service.scheduler} -> ` +
  e.destinations.map(d => `${d.address}:${d.port}/${d.weight}`).sort().join(' ')).sort()

t.test('a restarted reconciler adopts the table with zero ops and leaves the operator alone', async t => {
  const kernel = new FakeIpvsKernel()
  kernel.seed([OPERATOR])
  const store = new MemoryOwnershipStore()
  const desired = want([WEB, WEB_EPS], [API, API_EPS])
  const first = reconciler(kernel, store)
  await first.reconcile(desired)
  first.stop()
  const before = kernel.snapshot()
  const saves = store.saves

  kernel.resetCalls()
  const second = reconciler(kernel, store)
  const r = await second.reconcile(desired)
  t.equal(r.kind, 'full')
  t.equal(r.ops, 0, 'nothing changed, nothing sent')
  t.equal(kernel.calls.apply, 0)
  t.equal(kernel.calls.flush, 0, 'never flushed')
  t.equal(kernel.calls.listServices, 1)
  t.equal(kernel.calls.listDestinations, 3, 'one dump per owned virtual server, none for the operator\'s')
  t.same(kernel.snapshot(), before)
  t.same(second.status(), { virtualServers: 3, destinations: 5, draining: 0 })
  t.equal(store.saves, saves, 'the same owned set is not written again')

  kernel.resetCalls()
  const next = await second.reconcile(desired)
  t.equal(next.kind, 'partial', 'later syncs read nothing')
  t.equal(kernel.calls.listServices, 0)
})

t.test('after a crash mid-drain: weight 0 goes back to 1 if wanted, and resumes draining if not', async t => {
  const kernel = new FakeIpvsKernel()
  const store = new MemoryOwnershipStore()
  const first = reconciler(kernel, store)
  await first.reconcile(want([API, [...API_EPS, ep('10.180.1.9', 6443), ep('10.180.2.9', 6443)]]))
  kernel.setConnections(API_KEY, { address: '10.180.1.9', port: 6443 }, { active: 1 })
  kernel.setConnections(API_KEY, { address: '10.180.2.9', port: 6443 }, { active: 1 })
  await first.reconcile(want([API, API_EPS]))
  first.stop() // "crash": two dests stay at weight 0
  t.same(tableOf(kernel), ['172.30.0.50:443 rr -> 10.180.0.9:6443/1 10.180.1.9:6443/0 10.180.2.9:6443/0'])

  kernel.resetCalls()
  const clock = new FakeClock()
  const second = reconciler(kernel, store, clock)
  const r = await second.reconcile(want([API, [...API_EPS, ep('10.180.1.9', 6443)]]))
  t.equal(r.ops, 1, 'only the weight of the returning endpoint is fixed')
  t.same(kernel.applied.map(o => `${o.op} ${'destination' in o ? `${o.destination.address}/${'weight' in o.destination ? o.destination.weight : '-'}` : ''}`),
    ['updateDestination 10.180.1.9/1'])
  t.equal(r.draining, 1, 'the unwanted weight-0 dest drains again, with no op')
  kernel.setConnections(API_KEY, { address: '10.180.2.9', port: 6443 }, { active: 0 })
  await clock.advance(2_000)
  t.same(tableOf(kernel), ['172.30.0.50:443 rr -> 10.180.0.9:6443/1 10.180.1.9:6443/1'])
  second.stop()
})

t.test('a restarted reconciler deletes its own leftovers, never the operator\'s', async t => {
  const kernel = new FakeIpvsKernel()
  kernel.seed([OPERATOR])
  const store = new MemoryOwnershipStore()
  await reconciler(kernel, store).reconcile(want([WEB, WEB_EPS], [API, API_EPS]))
  kernel.resetCalls()
  const r = await reconciler(kernel, store).reconcile(want([API, API_EPS]))
  t.same(kernel.applied.map(o => `${o.op} ${o.service.address}:${o.service.port}`).sort(), ['deleteService 172.30.0.41:80', `deleteService ${NODE_IP}:30080`])
  t.equal(r.ops, 2)
  t.same(tableOf(kernel), ['172.30.0.50:443 rr -> 10.180.0.9:6443/1', '198.51.100.7:8443 wrr -> 198.51.100.20:443/5'])
  t.same([...store.keys], ['TCP/172.30.0.50:443'])
})

t.test('a lost ownership list still adopts what is desired, without a flush', async t => {
  const kernel = new FakeIpvsKernel()
  kernel.seed([OPERATOR])
  await reconciler(kernel, new MemoryOwnershipStore()).reconcile(want([API, API_EPS]))
  kernel.resetCalls()
  const store = new MemoryOwnershipStore()
  const r = await reconciler(kernel, store).reconcile(want([API, API_EPS]))
  t.equal(r.ops, 0)
  t.same([...store.keys], ['TCP/172.30.0.50:443'], 'the desired one is owned now; the operator\'s is not')
})

t.test('an unreadable ownership list is logged and only desired virtual servers are adopted', async t => {
  const kernel = new FakeIpvsKernel()
  const { log, lines } = recorder()
  const broken: OwnershipStore = { load: async () => { throw new Error('disk on fire') }, save: async () => {} }
  const r = await reconciler(kernel, broken, new FakeClock(), log).reconcile(want([API, API_EPS]))
  t.equal(r.failed.length, 0)
  t.match(lines.join('\n'), /cannot load the IPVS ownership list.*disk on fire/)
  t.equal(kernel.snapshot().length, 1)
})

t.test('a refused op is reported with the virtual server, dest and errno; the rest apply; the next sync repairs', async t => {
  const kernel = new FakeIpvsKernel()
  const { log, lines } = recorder()
  const rec = reconciler(kernel, new MemoryOwnershipStore(), new FakeClock(), log)
  kernel.failNext(op => op.op === 'addDestination' && op.destination.address === '10.180.1.1' && op.service.port === 80, EINVAL)
  const r = await rec.reconcile(want([WEB, WEB_EPS], [API, API_EPS]))
  t.same(r.failed, [{ what: 'addDestination TCP 172.30.0.41:80 -> 10.180.1.1:8080: EINVAL (22)', errno: EINVAL }])
  t.match(lines.join('\n'), /EINVAL/, 'logged once')
  t.same(tableOf(kernel), [
    '172.30.0.41:80 rr -> 10.180.0.1:8080/1',
    '172.30.0.50:443 rr -> 10.180.0.9:6443/1',
    `${NODE_IP}:30080 rr -> 10.180.0.1:8080/1 10.180.1.1:8080/1`,
  ], 'every other op applied')

  kernel.resetCalls()
  const repair = await rec.reconcile(want([WEB, WEB_EPS], [API, API_EPS]))
  t.equal(repair.kind, 'full', 'the kernel is re-read')
  t.equal(kernel.calls.listServices, 1)
  t.same(kernel.applied.map(o => o.op), ['addDestination'], 'and only the missing dest is added')
  t.same(repair.failed, [])
  t.ok(tableOf(kernel).includes('172.30.0.41:80 rr -> 10.180.0.1:8080/1 10.180.1.1:8080/1'))

  kernel.resetCalls()
  t.equal((await rec.reconcile(want([WEB, WEB_EPS], [API, API_EPS]))).kind, 'partial', 'then back to reading nothing')
  t.equal(kernel.calls.listServices, 0)
})

t.test('EEXIST on an add (someone made it meanwhile) is reported and adopted by the next, full, sync', async t => {
  const kernel = new FakeIpvsKernel()
  const rec = reconciler(kernel, new MemoryOwnershipStore())
  await rec.reconcile(want([API, API_EPS]))
  // Made behind ferry's back, with another scheduler and dest.
  const sneaky: VirtualServer = { family: 'IPv4', protocol: 'TCP', address: '172.30.0.41', port: 80, scheduler: 'wrr', flags: 0, timeout: 0, netmask: 32 }
  const stray: RealServer = { address: '10.180.9.9', port: 8080, weight: 1, forward: 'masq', upperThreshold: 0, lowerThreshold: 0, activeConns: 0, inactiveConns: 0, persistConns: 0 }
  kernel.seed([{ service: sneaky, destinations: [stray] }])
  const web = svcInfo({ name: 'web', clusterIP: '172.30.0.41', port: 80 })
  const r = await rec.reconcile(want([API, API_EPS], [web, WEB_EPS]))
  t.same(r.failed.map(f => [f.what, f.errno]), [['addService TCP 172.30.0.41:80: EEXIST (17)', EEXIST]])
  kernel.resetCalls()
  const again = await rec.reconcile(want([API, API_EPS], [web, WEB_EPS]))
  t.equal(again.kind, 'full')
  t.same(again.failed, [])
  t.same(kernel.applied.map(o => o.op), ['updateService', 'updateDestination'], 'scheduler fixed, the stray dest drains; the wanted dests were added by the first try')
  t.same(tableOf(kernel), ['172.30.0.41:80 rr -> 10.180.0.1:8080/1 10.180.1.1:8080/1 10.180.9.9:8080/0', '172.30.0.50:443 rr -> 10.180.0.9:6443/1'])
  rec.stop()
})

t.test('deleting what is already gone is fine', async t => {
  const kernel = new FakeIpvsKernel()
  const rec = reconciler(kernel, new MemoryOwnershipStore())
  await rec.reconcile(want([API, API_EPS], [DNS, DNS_EPS]))
  await kernel.apply([{ op: 'deleteService', service: API_KEY }, { op: 'deleteDestination', service: { ...API_KEY, protocol: 'UDP', address: '172.30.0.10', port: 53 }, destination: { address: '10.180.0.5', port: 53 } }])
  const r = await rec.reconcile(want([DNS, [ep('10.180.0.6', 53)]]))
  t.same(r.failed, [], 'ESRCH and ENOENT on delete are not failures')
  t.same(r.removedUDPDestinations.map(d => d.destination.address), ['10.180.0.5'], 'the UDP dest is still reported for conntrack')
  t.same(rec.status(), { virtualServers: 1, destinations: 1, draining: 0 })
})

t.test('a failed socket is a coded error, and the next sync re-reads the kernel', async t => {
  const kernel = new FakeIpvsKernel()
  const rec = reconciler(kernel, new MemoryOwnershipStore())
  await rec.reconcile(want([API, API_EPS]))
  kernel.closed = true
  await t.rejects(rec.reconcile(want([API, [...API_EPS, ep('10.180.1.9', 6443)]])), { code: 'FERRY_ERR_APPLY', message: /applying 1 IPVS changes.*re-reads/ })
  kernel.closed = false
  kernel.resetCalls()
  const r = await rec.reconcile(want([API, [...API_EPS, ep('10.180.1.9', 6443)]]))
  t.equal(r.kind, 'full')
  t.equal(r.ops, 1)
  t.same(tableOf(kernel), ['172.30.0.50:443 rr -> 10.180.0.9:6443/1 10.180.1.9:6443/1'])

  kernel.failNextList(ENOMEM)
  rec.resync()
  await t.rejects(rec.reconcile(want([API, API_EPS])), { code: 'FERRY_ERR_APPLY', message: /reading the IPv4 IPVS table/ })
  kernel.resetCalls()
  t.equal((await rec.reconcile(want([API, API_EPS]))).kind, 'full', 'still full after a failed read')
  rec.stop()
})

t.test('reconciles run one at a time', async t => {
  const kernel = new FakeIpvsKernel()
  const rec = reconciler(kernel, new MemoryOwnershipStore())
  const [a, b] = await Promise.all([rec.reconcile(want([API, API_EPS])), rec.reconcile(want([API, [...API_EPS, ep('10.180.1.9', 6443)]]))])
  t.equal(a?.kind, 'full')
  t.equal(b?.kind, 'partial', 'the second diffed against the first one\'s result')
  t.equal(b?.ops, 1)
})

t.test('file ownership store: atomic JSON list, 0700 directory, survives a new instance', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-own-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'ferry', 'ipvs-owned.json')
  const a = new FileOwnershipStore(path)
  t.same(await a.load(), new Set(), 'no file: nothing owned')
  await a.save(new Set(['TCP/172.30.0.41:80', 'UDP/172.30.0.10:53']))
  t.equal((await stat(join(dir, 'ferry'))).mode & 0o777, 0o700)
  t.equal((await stat(path)).mode & 0o777, 0o600)
  t.same(JSON.parse(await readFile(path, 'utf8')), ['TCP/172.30.0.41:80', 'UDP/172.30.0.10:53'])
  t.same(await readdir(join(dir, 'ferry')), ['ipvs-owned.json'], 'no temporary file left')
  t.same(await new FileOwnershipStore(path).load(), new Set(['TCP/172.30.0.41:80', 'UDP/172.30.0.10:53']))

  // Per-family views share the file; each keeps the other's keys.
  const v4 = a.forFamily('IPv4')
  const v6 = new FileOwnershipStore(path).forFamily('IPv6')
  await Promise.all([v6.save(new Set(['TCP/[fd00:30::41]:80'])), v4.save(new Set(['TCP/172.30.0.50:443']))])
  t.same(await v4.load(), new Set(['TCP/172.30.0.50:443']))
  t.same(await v6.load(), new Set(['TCP/[fd00:30::41]:80']))
  t.equal(keyFamily('UDP/[fd00::a]:53'), 'IPv6')

  await writeFile(path, '{"not":"a list"}')
  await t.rejects(a.load(), { code: 'FERRY_ERR_PARSE' })
  await writeFile(path, 'garbage')
  await t.rejects(a.load(), { code: 'FERRY_ERR_PARSE' })
})

t.test('a reconciler over the file store survives a restart', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-own-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'ipvs-owned.json')
  const kernel = new FakeIpvsKernel()
  kernel.seed([OPERATOR])
  await reconciler(kernel, new FileOwnershipStore(path).forFamily('IPv4')).reconcile(want([WEB, WEB_EPS], [API, API_EPS]))
  kernel.resetCalls()
  const r = await reconciler(kernel, new FileOwnershipStore(path).forFamily('IPv4')).reconcile(want([API, API_EPS]))
  t.equal(r.ops, 2, 'both of WEB\'s virtual servers go')
  t.equal(kernel.snapshot().length, 2, 'API and the operator\'s remain')
  t.same(JSON.parse(await readFile(path, 'utf8')), ['TCP/172.30.0.50:443'])
})

t.test('a failed save is logged and retried on the next reconcile', async t => {
  const kernel = new FakeIpvsKernel()
  const { log, lines } = recorder()
  let fail = true
  const saved: string[][] = []
  const store: OwnershipStore = { load: async () => new Set(), save: async keys => { if (fail) throw new Error('read-only'); saved.push([...keys]) } }
  const rec = reconciler(kernel, store, new FakeClock(), log)
  await rec.reconcile(want([API, API_EPS]))
  t.match(lines.join('\n'), /cannot save the IPVS ownership list.*read-only/)
  fail = false
  await rec.reconcile(want([API, API_EPS]))
  t.same(saved, [['TCP/172.30.0.50:443']])
})
