// The in-memory IPVS kernel answers as ip_vs_ctl.c does (errnos, HASHED, dest order, trash) and
// exposes the hooks reconciler tests need (counters, injected failures, call counts, seeding).
import t from 'tap'
import { realServer, virtualServer } from '../../pkg/proxy/ipvs/desired.js'
import { FakeIpvsKernel } from '../../pkg/proxy/ipvs/fake-kernel.js'
import type { IpvsOp, RealServer, VirtualServerKey } from '../../pkg/proxy/ipvs/types.js'

const EPERM = 1
const ENOENT = 2
const ESRCH = 3
const EEXIST = 17
const EINVAL = 22
const ERANGE = 34

const KEY4: VirtualServerKey = { family: 'IPv4', protocol: 'TCP', address: '10.96.0.1', port: 443 }
const KEY6: VirtualServerKey = { family: 'IPv6', protocol: 'UDP', address: 'fd00::a', port: 53 }
const vs = virtualServer
const rs = (address: string, port = 8080, o: Partial<RealServer> = {}): RealServer => realServer(address, port, o)
const errnos = async (k: FakeIpvsKernel, ops: IpvsOp[]): Promise<number[]> => (await k.apply(ops)).map(r => r.errno)

t.test('services: add, EEXIST on a duplicate, update, ESRCH when missing, delete', async t => {
  const k = new FakeIpvsKernel()
  t.same(await errnos(k, [
    { op: 'addService', service: vs(KEY4) },
    { op: 'addService', service: vs(KEY4, { scheduler: 'wrr' }) },
    { op: 'updateService', service: vs(KEY4, { scheduler: 'sh', flags: 0x1 | 0x8, timeout: 10800 }) },
    { op: 'updateService', service: vs(KEY6) },
    { op: 'deleteService', service: KEY6 },
  ]), [0, EEXIST, 0, ESRCH, ESRCH])
  t.same(await k.listServices(), [vs(KEY4, { scheduler: 'sh', flags: 0x9, timeout: 10800 })])
  t.same(await errnos(k, [{ op: 'deleteService', service: KEY4 }, { op: 'deleteService', service: KEY4 }]), [0, ESRCH])
  t.same(await k.listServices(), [])
})

t.test('HASHED is never reported, whatever was sent', async t => {
  const k = new FakeIpvsKernel()
  await k.apply([{ op: 'addService', service: vs(KEY4, { flags: 0x2 | 0x1 }) }])
  t.equal((await k.listServices())[0]?.flags, 0x1)
})

t.test('a scheduler whose module is missing answers ENOENT, on add and on update', async t => {
  const k = new FakeIpvsKernel({ schedulers: ['rr'] })
  t.same(await errnos(k, [
    { op: 'addService', service: vs(KEY4, { scheduler: 'mh' }) },
    { op: 'addService', service: vs(KEY4) },
    { op: 'updateService', service: vs(KEY4, { scheduler: 'wlc' }) },
    { op: 'addService', service: vs(KEY6, { scheduler: 'none' }) },
  ]), [ENOENT, 0, ENOENT, 0])
  t.equal((await k.listServices())[0]?.scheduler, 'rr', 'the failed update changed nothing')
})

t.test('a v6 netmask must be 1..128; a v4 one is not checked by the kernel', async t => {
  const k = new FakeIpvsKernel()
  t.same(await errnos(k, [
    { op: 'addService', service: vs(KEY6, { netmask: 0 }) },
    { op: 'addService', service: vs(KEY6, { netmask: 129 }) },
    { op: 'addService', service: vs(KEY6, { netmask: 64 }) },
    { op: 'addService', service: vs(KEY4, { netmask: 0 }) },
  ]), [EINVAL, EINVAL, 0, 0])
})

t.test('input that cannot be encoded is EINVAL, as from the real kernel class', async t => {
  const k = new FakeIpvsKernel()
  t.same(await errnos(k, [
    { op: 'addService', service: vs({ ...KEY4, address: 'fd00::1' }) },
    { op: 'addService', service: vs({ ...KEY4, port: -1 }) },
  ]), [EINVAL, EINVAL])
})

t.test('destinations: ESRCH without the service, EEXIST on a duplicate, ENOENT to update or delete a missing one', async t => {
  const k = new FakeIpvsKernel()
  t.same(await errnos(k, [
    { op: 'addDestination', service: KEY4, destination: rs('10.244.1.5') },
    { op: 'addService', service: vs(KEY4) },
    { op: 'addDestination', service: KEY4, destination: rs('10.244.1.5') },
    { op: 'addDestination', service: KEY4, destination: rs('10.244.1.5', 8080, { weight: 9 }) },
    { op: 'updateDestination', service: KEY4, destination: rs('10.244.1.6') },
    { op: 'deleteDestination', service: KEY4, destination: { address: '10.244.1.6', port: 8080 } },
    { op: 'updateDestination', service: KEY4, destination: rs('10.244.1.5', 8080, { weight: 0 }) },
    { op: 'deleteDestination', service: KEY6, destination: { address: 'fd00::5', port: 53 } },
  ]), [ESRCH, 0, 0, EEXIST, ENOENT, ENOENT, 0, ESRCH])
  t.same(await k.listDestinations(KEY4), [rs('10.244.1.5', 8080, { weight: 0 })])
})

t.test('destination checks: weight and thresholds ERANGE, family mismatch only for tunnels, unicast only', async t => {
  const k = new FakeIpvsKernel()
  await k.apply([{ op: 'addService', service: vs(KEY4) }, { op: 'addService', service: vs(KEY6) }])
  t.same(await errnos(k, [
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.1', 80, { weight: -1 }) },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.1', 80, { weight: 0x80000000 }) },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.1', 80, { upperThreshold: 5, lowerThreshold: 6 }) },
    { op: 'addDestination', service: KEY4, destination: rs('fd00::1', 80) },
    { op: 'addDestination', service: KEY4, destination: rs('fd00::1', 80, { forward: 'tunnel' }) },
    { op: 'addDestination', service: KEY4, destination: rs('224.0.0.1', 80) },
    { op: 'addDestination', service: KEY4, destination: rs('0.0.0.0', 80) },
    { op: 'addDestination', service: KEY6, destination: rs('fe80::1', 53) },
    { op: 'addDestination', service: KEY6, destination: rs('ff02::1', 53) },
    { op: 'addDestination', service: KEY6, destination: rs('FD00:0::5', 53) },
  ]), [ERANGE, ERANGE, ERANGE, EINVAL, 0, EINVAL, EINVAL, EINVAL, EINVAL, 0])
  t.same((await k.listDestinations(KEY6)).map(d => d.address), ['fd00::5'], 'addresses are kept canonical')
})

t.test('dests list newest first, as the kernel\'s list_add_rcu puts them; output counters start at 0', async t => {
  const k = new FakeIpvsKernel()
  await k.apply([
    { op: 'addService', service: vs(KEY4) },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.1', 80, { activeConns: 99 }) },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.2', 80) },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.3', 80) },
  ])
  t.same(await k.listDestinations(KEY4), [rs('10.0.0.3', 80), rs('10.0.0.2', 80), rs('10.0.0.1', 80)])
})

t.test('a missing service lists no dests (no error); deleting a service drops its dests', async t => {
  const k = new FakeIpvsKernel()
  t.same(await k.listDestinations(KEY4), [])
  await k.apply([
    { op: 'addService', service: vs(KEY4) },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.1', 80) },
    { op: 'deleteService', service: KEY4 },
    { op: 'addService', service: vs(KEY4) },
  ])
  t.same(await k.listDestinations(KEY4), [])
  await t.rejects(k.listDestinations({ ...KEY4, address: 'nope' }), { code: 'FERRY_ERR_INVALID_OBJECT' })
})

t.test('connection counters: set by the test, kept on update, revived from the trash on re-add', async t => {
  const k = new FakeIpvsKernel()
  const d = rs('10.0.0.1', 80)
  await k.apply([{ op: 'addService', service: vs(KEY4) }, { op: 'addDestination', service: KEY4, destination: d }])
  k.setConnections(KEY4, d, { active: 3, inactive: 2 })
  await k.apply([{ op: 'updateDestination', service: KEY4, destination: { ...d, weight: 0 } }])
  t.same(await k.listDestinations(KEY4), [{ ...d, weight: 0, activeConns: 3, inactiveConns: 2 }])
  await k.apply([{ op: 'deleteDestination', service: KEY4, destination: d }, { op: 'addDestination', service: KEY4, destination: d }])
  t.same(await k.listDestinations(KEY4), [{ ...d, activeConns: 3, inactiveConns: 2 }])
  t.throws(() => k.setConnections(KEY4, rs('10.0.0.9'), { active: 1 }), { code: 'FERRY_ERR_NOT_FOUND' })
})

t.test('an injected errno hits the next matching op once and changes nothing', async t => {
  const k = new FakeIpvsKernel()
  k.failNext('addDestination', EPERM)
  k.failNext(op => op.op === 'addService' && op.service.port === 80, EEXIST)
  t.same(await errnos(k, [
    { op: 'addService', service: vs(KEY4) },
    { op: 'addService', service: vs({ ...KEY4, port: 80 }) },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.1') },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.2') },
    { op: 'addService', service: vs({ ...KEY4, port: 80 }) },
  ]), [0, EEXIST, EPERM, 0, 0])
  t.same((await k.listDestinations(KEY4)).map(d => d.address), ['10.0.0.2'])
  k.failNextList(EPERM)
  await t.rejects(k.listServices(), { code: 'FERRY_ERR_NETLINK' })
  t.equal((await k.listServices()).length, 2, 'only once')
})

t.test('call counts: one op is one message; lists are counted, snapshot() and seed() are not', async t => {
  const k = new FakeIpvsKernel()
  k.seed([{ service: vs(KEY6), destinations: [rs('fd00::5', 53, { activeConns: 4 })] }])
  t.same(k.calls, { listServices: 0, listDestinations: 0, apply: 0, ops: 0, flush: 0, info: 0 })
  t.same(k.snapshot(), [{ service: vs(KEY6), destinations: [rs('fd00::5', 53, { activeConns: 4 })] }])
  await k.apply([{ op: 'addService', service: vs(KEY4) }, { op: 'addDestination', service: KEY4, destination: rs('10.0.0.1') }])
  await k.apply([{ op: 'updateDestination', service: KEY4, destination: rs('10.0.0.1', 8080, { weight: 0 }) }])
  await k.listServices()
  await k.listDestinations(KEY4)
  t.same(k.calls, { listServices: 1, listDestinations: 1, apply: 2, ops: 3, flush: 0, info: 0 })
  t.same(k.applied.map(o => o.op), ['addService', 'addDestination', 'updateDestination'])
  k.resetCalls()
  t.same(k.calls, { listServices: 0, listDestinations: 0, apply: 0, ops: 0, flush: 0, info: 0 })
  t.same(k.applied, [])
})

t.test('flush empties the table; info answers; a closed kernel refuses', async t => {
  const k = new FakeIpvsKernel()
  await k.apply([{ op: 'addService', service: vs(KEY4) }, { op: 'addService', service: vs(KEY6) }])
  await k.flush()
  t.same(await k.listServices(), [])
  t.same(await k.info(), { version: '1.2.1', connTableSize: 4096 })
  k.close()
  await t.rejects(k.apply([]), { code: 'FERRY_ERR_NETLINK' })
  await t.rejects(k.listServices(), { code: 'FERRY_ERR_NETLINK' })
})
