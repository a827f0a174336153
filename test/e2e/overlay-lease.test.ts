// Subnet leases against a real etcd: claim, renew, expiry, reuse, out of subnets, concurrent claims, watch.
import t from 'tap'
import { Etcd3 } from 'etcd3'
import { isFerryError } from '../../pkg/errors/errors.js'
import { EtcdSubnetManager, type EtcdSubnetManagerOptions } from '../../pkg/overlay/lease.js'
import { decodeAttrs, type LeaseAttrs } from '../../pkg/overlay/lease-codec.js'
import { writeNetworkConfig } from '../../pkg/overlay/lease-store.js'
import type { LeaseEvent } from '../../pkg/overlay/lease-watch.js'
import { startEtcd } from '../helpers/etcd.js'

const etcd = await startEtcd(t)
const admin = new Etcd3({ hosts: [etcd.endpoint] })
t.teardown(() => { admin.close() })
let n = 0

function node (i: number): LeaseAttrs {
  return { publicIP: `192.0.2.${i}`, backendType: 'vxlan', backendData: { vni: 1, vtepMAC: `02:00:00:00:00:${i.toString(16).padStart(2, '0')}` } }
}

/** A fresh prefix holding `config`, and a maker of managers on it (all closed at teardown). */
async function cluster (t: { teardown: (fn: () => unknown) => void }, config: Record<string, unknown>): Promise<{ prefix: string, manager: (o?: Partial<EtcdSubnetManagerOptions>) => EtcdSubnetManager }> {
  const prefix = `/lease-test-${++n}`
  await writeNetworkConfig(admin, config, prefix)
  const all: EtcdSubnetManager[] = []
  t.teardown(async () => { for (const m of all) await m.close() })
  return {
    prefix,
    manager: (o = {}) => { const m = new EtcdSubnetManager({ endpoints: [etcd.endpoint], prefix, ...o }); all.push(m); return m },
  }
}

async function subnetKeys (prefix: string): Promise<Record<string, string>> {
  return await admin.getAll().prefix(`${prefix}/network/subnets/`).strings()
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('claim: one key per family under one etcd lease, value as documented', async t => {
  const c = await cluster(t, { Network: '10.244.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:10:244::/56' })
  const m = c.manager({ ttlSeconds: 60 })
  const got = await m.acquire(node(1))
  t.match(got.ipv4?.subnet.text, /^10\.244\.\d+\.0\/24$/)
  t.match(got.ipv6?.subnet.text, /^fd00:10:244:[0-9a-f]+::\/64$/)
  const keys = await subnetKeys(c.prefix)
  t.same(Object.keys(keys).sort(), [got.ipv4?.key, got.ipv6?.key].sort())
  t.equal(got.ipv4?.key, `${c.prefix}/network/subnets/${got.ipv4?.subnet.text.replace('/', '-')}`)
  t.same(JSON.parse(keys[got.ipv4?.key ?? ''] ?? ''), { PublicIP: '192.0.2.1', BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' } })
  const live = await admin.leaseClient.leaseTimeToLive({ ID: m.etcdLeaseId, keys: true })
  t.ok(Number(live.TTL) > 50 && Number(live.grantedTTL) === 60, `TTL ${live.TTL} of ${live.grantedTTL}`)
  t.equal(live.keys.length, 2, 'both keys hang on the one lease')
})

t.test('renew keeps a short lease alive; without renewal a watcher sees it expire', async t => {
  const c = await cluster(t, { Network: '10.244.0.0/16' })
  const kept = c.manager({ ttlSeconds: 2, renewMs: 500 })
  const dropped = c.manager({ ttlSeconds: 2, renewMs: 60_000 })
  const a = await kept.acquire(node(1))
  const b = await dropped.acquire(node(2))
  const events: LeaseEvent[] = []
  const w = await c.manager().watch({ event: ev => { events.push(ev) } })
  t.teardown(w.stop)
  t.same(events.map(e => [e.type, e.lease.subnet.text]).sort(), [['added', a.ipv4?.subnet.text], ['added', b.ipv4?.subnet.text]].sort())
  events.length = 0
  await dropped.close() // stops renewing, does not revoke
  const t0 = Date.now()
  while (events.length === 0 && Date.now() - t0 < 10_000) await sleep(100)
  t.same(events.map(e => [e.type, e.lease.subnet.text, e.lease.attrs.publicIP]), [['removed', b.ipv4?.subnet.text, '192.0.2.2']], 'the unrenewed lease expired')
  t.ok(Date.now() - t0 < 6000, `gone after ${Date.now() - t0}ms`)
  await sleep(1500)
  const keys = await subnetKeys(c.prefix)
  t.same(Object.keys(keys), [a.ipv4?.key], 'the renewed lease outlived several TTLs')
})

t.test('reuse after restart: same PublicIP → same subnet; a lost lease is claimed again', async t => {
  const c = await cluster(t, { Network: '10.244.0.0/16' })
  const first = c.manager({ ttlSeconds: 30 })
  const a = await first.acquire(node(7))
  await first.close()
  const second = c.manager({ ttlSeconds: 30 })
  const b = await second.acquire({ ...node(7), backendData: { vni: 1, vtepMAC: '02:00:00:00:00:77' } })
  t.equal(b.ipv4?.subnet.text, a.ipv4?.subnet.text)
  t.not(second.etcdLeaseId, first.etcdLeaseId, 'a fresh etcd lease')
  const keys = await subnetKeys(c.prefix)
  t.same(Object.keys(keys), [a.ipv4?.key], 'still one key')
  t.equal(decodeAttrs('k', keys[a.ipv4?.key ?? ''] ?? '').backendData?.vtepMAC, '02:00:00:00:00:77', 'new MAC published')
  // A reservation (key without an etcd lease) is reused and stays a reservation.
  await admin.put(`${c.prefix}/network/subnets/10.244.200.0-24`).value(JSON.stringify({ PublicIP: '192.0.2.9', BackendType: 'host-gw' }))
  const r = c.manager({ ttlSeconds: 30 })
  const got = await r.acquire({ publicIP: '192.0.2.9', backendType: 'host-gw' })
  t.equal(got.ipv4?.subnet.text, '10.244.200.0/24')
  t.equal(got.ipv4?.leaseId, '0')
  t.equal((await admin.get(`${c.prefix}/network/subnets/10.244.200.0-24`).exec()).kvs[0]?.lease, '0', 'no TTL attached')
  // Revoked behind the manager's back: the next renewal claims the same subnet again.
  const lost = c.manager({ ttlSeconds: 30, renewMs: 300 })
  const l = await lost.acquire(node(8))
  await admin.leaseClient.leaseRevoke({ ID: lost.etcdLeaseId })
  t.equal(Object.keys(await subnetKeys(c.prefix)).includes(l.ipv4?.key ?? ''), false)
  await sleep(1000)
  t.equal(lost.leases?.ipv4?.subnet.text, l.ipv4?.subnet.text)
  t.ok(Object.keys(await subnetKeys(c.prefix)).includes(l.ipv4?.key ?? ''), 'reclaimed')
})

t.test('a key deleted while its etcd lease lives: reclaim() writes it again, same subnets, at once', async t => {
  const c = await cluster(t, { Network: '10.244.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:10:244::/56' })
  const m = c.manager({ ttlSeconds: 60 })
  const got = await m.acquire(node(9))
  const v6 = got.ipv6?.key ?? ''
  const v4 = got.ipv4?.key ?? ''
  t.ok(v4 !== '' && v6 !== '', 'a key per family')
  // `etcdctl del` of one family's key: the etcd lease (and the other key) live on, so keepalive cannot tell.
  await admin.delete().key(v6)
  t.same(Object.keys(await subnetKeys(c.prefix)).sort(), [v4])
  m.reclaim()
  const end = Date.now() + 10_000
  while (Date.now() < end && !Object.keys(await subnetKeys(c.prefix)).includes(v6)) await sleep(100)
  t.same(Object.keys(await subnetKeys(c.prefix)).sort(), [v4, v6].sort(), 'both keys are back, with the same subnets')
  t.equal(m.leases?.ipv6?.subnet.text, got.ipv6?.subnet.text)
  const live = await admin.leaseClient.leaseTimeToLive({ ID: m.etcdLeaseId, keys: true })
  t.equal(live.keys.length, 2, 'both under the manager\'s (new) etcd lease, which it renews')
  // A reclaim with nothing deleted changes nothing but the etcd lease.
  m.reclaim()
  await sleep(500)
  t.same(Object.keys(await subnetKeys(c.prefix)).sort(), [v4, v6].sort())
})

t.test('out of subnets: a coded error once SubnetMin..SubnetMax is taken', async t => {
  const c = await cluster(t, { Network: '10.9.0.0/22', SubnetLen: 24, SubnetMin: '10.9.1.0', SubnetMax: '10.9.2.0' })
  const a = await c.manager({ ttlSeconds: 30 }).acquire(node(1))
  const b = await c.manager({ ttlSeconds: 30 }).acquire(node(2))
  t.same([a.ipv4?.subnet.text, b.ipv4?.subnet.text].sort(), ['10.9.1.0/24', '10.9.2.0/24'])
  try {
    await c.manager({ ttlSeconds: 30 }).acquire(node(3))
    t.fail('third node got a subnet')
  } catch (e) {
    t.ok(isFerryError(e, 'FERRY_ERR_SUBNETS_EXHAUSTED'), String(e))
    t.match((e as Error).message, /out of subnets.*10\.9\.0\.0\/22.*10\.9\.1\.0\/24.*10\.9\.2\.0\/24/)
  }
  t.equal(Object.keys(await subnetKeys(c.prefix)).length, 2, 'nothing written by the failed claim')
})

t.test('concurrent claims get distinct subnets, lost races retried in-process', async t => {
  const c = await cluster(t, { Network: '10.8.0.0/20' })
  const N = 8
  // random() = 0: every node aims at the first free subnet, so all but one lose each round.
  const got = await Promise.all(Array.from({ length: N }, async (_, i) => await c.manager({ ttlSeconds: 30, random: () => 0 }).acquire(node(10 + i))))
  const subnets = got.map(g => g.ipv4?.subnet.text)
  t.equal(new Set(subnets).size, N, subnets.join(' '))
  t.equal(Object.keys(await subnetKeys(c.prefix)).length, N)
  // Bounded: with one retry allowed, a forced collision fails with a coded error instead of exiting.
  await admin.put(`${c.prefix}/network/subnets/10.8.12.0-24`).value(JSON.stringify({ PublicIP: '192.0.2.99', BackendType: 'host-gw' }))
  const racers = await Promise.allSettled(Array.from({ length: 4 }, async (_, i) => await c.manager({ ttlSeconds: 30, random: () => 0, raceRetries: 1 }).acquire(node(40 + i))))
  const failed = racers.filter(r => r.status === 'rejected')
  t.ok(failed.length >= 1 && failed.every(r => isFerryError(r.reason, 'FERRY_ERR_LEASE')), `${failed.length} lost with FERRY_ERR_LEASE`)
})

t.test('watch: changed on a new VtepMAC, full resync after a compaction', async t => {
  const c = await cluster(t, { Network: '10.244.0.0/16' })
  const events: LeaseEvent[] = []
  let syncs = 0
  const w = await c.manager().watch({ event: ev => { events.push(ev) }, synced: () => { syncs++ } })
  t.teardown(w.stop)
  const key = `${c.prefix}/network/subnets/10.244.5.0-24`
  const val = (mac: string): string => JSON.stringify({ PublicIP: '192.0.2.5', BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } })
  await admin.put(key).value(val('02:00:00:00:00:05'))
  await admin.put(key).value(val('02:00:00:00:00:05')) // same value: no event
  await admin.put(key).value(val('02:00:00:00:00:55'))
  const wait = async (k: number, ms = 5000): Promise<void> => { const t0 = Date.now(); while (events.length < k && Date.now() - t0 < ms) await sleep(50) }
  await wait(2)
  t.same(events.map(e => [e.type, e.lease.attrs.backendData?.vtepMAC, e.previous?.attrs.backendData?.vtepMAC]),
    [['added', '02:00:00:00:00:05', undefined], ['changed', '02:00:00:00:00:55', '02:00:00:00:00:05']])
  events.length = 0
  // Outage and compaction: the stream breaks, the watcher reconnects and re-lists; the MAC written meanwhile
  // still comes out as one "changed" (a resync diffs values, not just keys).
  await etcd.stop()
  await etcd.restart()
  await admin.put(key).value(val('02:00:00:00:00:66'))
  await etcd.compact()
  // The watcher reconnects with backoff: on a loaded host that took more than 5 s once.
  await wait(1, 20_000)
  t.same(events.map(e => [e.type, e.lease.attrs.backendData?.vtepMAC]), [['changed', '02:00:00:00:00:66']])
  t.ok(syncs >= 1)
  events.length = 0
  await admin.delete().key(key)
  await wait(1)
  t.same(events.map(e => [e.type, e.lease.subnet.text]), [['removed', '10.244.5.0/24']])
})

t.test('this node\'s own key is reused whether or not its value carries a VNI; the VNI is written back', async t => {
  const c = await cluster(t, { Network: '10.244.0.0/16' })
  const key = (s: string): string => `${c.prefix}/network/subnets/${s}`
  const put = async (k: string, v: unknown, lease = '0'): Promise<void> => { await admin.kv.put({ key: Buffer.from(k), value: Buffer.from(JSON.stringify(v)), lease }) }
  const value = async (k: string): Promise<{ json: unknown, lease: string } | undefined> => {
    const kv = (await admin.get(k).exec()).kvs[0]
    return kv === undefined ? undefined : { json: JSON.parse(kv.value.toString()), lease: kv.lease }
  }
  const want = (i: number): unknown => ({ PublicIP: `192.0.2.${i}`, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: `02:00:00:00:00:${i.toString(16).padStart(2, '0')}` } })
  // Another node's VNI-less reservation: left as it is, and its subnet stays taken.
  const other = { PublicIP: '192.0.2.99', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:99' } }
  await put(key('10.244.99.0-24'), other)
  const cases: Array<{ name: string, i: number, subnet: string, stored: unknown }> = [
    { name: 'flannel\'s older vxlan form (VtepMAC, no VNI)', i: 61, subnet: '10.244.61.0', stored: { PublicIP: '192.0.2.61', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:aa' } } },
    { name: 'by hand: PublicIP and BackendType only', i: 62, subnet: '10.244.62.0', stored: { PublicIP: '192.0.2.62', BackendType: 'vxlan' } },
    { name: 'by hand: PublicIP only, lower-case key', i: 63, subnet: '10.244.63.0', stored: { publicip: '192.0.2.63' } },
    { name: 'another backend\'s data', i: 64, subnet: '10.244.64.0', stored: { PublicIP: '192.0.2.64', BackendType: 'udp' } },
  ]
  for (const k of cases) {
    await put(key(`${k.subnet}-24`), k.stored)
    const got = await c.manager({ ttlSeconds: 30 }).acquire(node(k.i))
    t.equal(got.ipv4?.subnet.text, `${k.subnet}/24`, `${k.name}: the reservation is reused`)
    t.equal(got.ipv4?.leaseId, '0', `${k.name}: and stays a reservation`)
    t.same(await value(key(`${k.subnet}-24`)), { json: want(k.i), lease: '0' }, `${k.name}: rewritten with the VNI and VtepMAC, no TTL`)
  }
  t.same(Object.keys(await subnetKeys(c.prefix)).sort(), [...cases.map(k => key(`${k.subnet}-24`)), key('10.244.99.0-24')].sort(), 'no second key for any node')
  t.same(await value(key('10.244.99.0-24')), { json: other, lease: '0' }, 'the other node\'s reservation untouched')
  // A VNI-less lease with a TTL (written by an older version): reused, moved onto a fresh etcd lease.
  const old = (await admin.leaseClient.leaseGrant({ TTL: 60 })).ID
  await put(key('10.244.65.0-24'), { PublicIP: '192.0.2.65', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:bb' } }, old)
  const m = c.manager({ ttlSeconds: 30 })
  const got = await m.acquire(node(65))
  t.equal(got.ipv4?.subnet.text, '10.244.65.0/24', 'a VNI-less lease is reused')
  t.same(await value(key('10.244.65.0-24')), { json: want(65), lease: m.etcdLeaseId })
  t.not(m.etcdLeaseId, old)
  t.equal(Number((await admin.leaseClient.leaseTimeToLive({ ID: old })).TTL), -1, 'the old etcd lease is revoked')
  // After the old bug: the node claimed a lease elsewhere beside its unread reservation. The reservation wins
  // and the stray lease goes (reusing the lease would have deleted the reservation as a stale key of ours).
  const stray = (await admin.leaseClient.leaseGrant({ TTL: 60 })).ID
  await put(key('10.244.66.0-24'), { PublicIP: '192.0.2.66', BackendType: 'vxlan' })
  await put(key('10.244.166.0-24'), want(66), stray)
  const r = await c.manager({ ttlSeconds: 30 }).acquire(node(66))
  t.equal(r.ipv4?.subnet.text, '10.244.66.0/24')
  t.same(await value(key('10.244.66.0-24')), { json: want(66), lease: '0' })
  t.equal(await value(key('10.244.166.0-24')), undefined, 'the stray lease is deleted')
  t.equal(Number((await admin.leaseClient.leaseTimeToLive({ ID: stray })).TTL), -1, 'and its etcd lease revoked, not left to its TTL')
})

t.test('a deleted stale key\'s etcd lease is revoked; a failed revoke is a warning, and the claim stands', async t => {
  const c = await cluster(t, { Network: '10.244.0.0/16', SubnetLen: 24 })
  const key = (s: string): string => `${c.prefix}/network/subnets/${s}`
  const put = async (k: string, v: unknown, lease: string): Promise<void> => { await admin.kv.put({ key: Buffer.from(k), value: Buffer.from(JSON.stringify(v)), lease }) }
  // This node's keys after a config change: a /25 that no longer fits (stale), and a /24 that does (reused).
  const stale = (await admin.leaseClient.leaseGrant({ TTL: 600 })).ID
  const kept = (await admin.leaseClient.leaseGrant({ TTL: 600 })).ID
  await put(key('10.244.70.0-25'), { PublicIP: '192.0.2.70', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:70' } }, stale)
  await put(key('10.244.71.0-24'), { PublicIP: '192.0.2.70', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:70' } }, kept)
  const m = c.manager({ ttlSeconds: 30 })
  const got = await m.acquire(node(70))
  t.equal(got.ipv4?.subnet.text, '10.244.71.0/24')
  t.same(Object.keys(await subnetKeys(c.prefix)), [key('10.244.71.0-24')], 'the stale key is deleted')
  t.equal(Number((await admin.leaseClient.leaseTimeToLive({ ID: stale })).TTL), -1, 'its etcd lease is gone, not left to its TTL')
  t.ok(Number((await admin.leaseClient.leaseTimeToLive({ ID: m.etcdLeaseId })).TTL) > 0, 'the lease ferry keeps is alive')
  // The same again with etcd refusing that one revoke: a warning, the claim is in all the same.
  const stale2 = (await admin.leaseClient.leaseGrant({ TTL: 600 })).ID
  await put(key('10.244.72.0-25'), { PublicIP: '192.0.2.72' }, stale2)
  const warnings: string[] = []
  const flaky = c.manager({
    ttlSeconds: 30,
    log: (level, msg) => { if (level === 'warn') warnings.push(msg) },
    clientFactory: hosts => {
      const client = new Etcd3({ hosts })
      const revoke = client.leaseClient.leaseRevoke.bind(client.leaseClient)
      client.leaseClient.leaseRevoke = async (req, opts) => req.ID === stale2 ? await Promise.reject(new Error('injected: etcd unavailable')) : await revoke(req, opts)
      return client
    },
  })
  const got2 = await flaky.acquire(node(72))
  t.not(got2.ipv4?.subnet.text, '10.244.72.0/25', `claimed ${got2.ipv4?.subnet.text ?? ''}`)
  t.equal((await admin.get(key('10.244.72.0-25')).exec()).kvs.length, 0, 'the stale key is deleted')
  t.match(warnings, [/revoking the etcd lease of a deleted stale subnet key failed; it expires at its TTL: .*injected/], 'a warning')
  t.equal(warnings.length, 1, 'just the one')
  t.ok(Number((await admin.leaseClient.leaseTimeToLive({ ID: stale2 })).TTL) > 0, 'that lease is left to its TTL')
  await admin.leaseClient.leaseRevoke({ ID: stale2 })
})

t.test('a key ferry cannot read still holds its subnet: never claimed, preferred or overlapped', async t => {
  const c = await cluster(t, { Network: '10.7.0.0/21', SubnetLen: 24 })
  // A hand-written reservation in flannel's older form (no VNI) and another backend's lease spanning two /24s.
  await admin.put(`${c.prefix}/network/subnets/10.7.5.0-24`).value(JSON.stringify({ PublicIP: '192.0.2.50', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:50' } }))
  await admin.put(`${c.prefix}/network/subnets/10.7.2.0-23`).value(JSON.stringify({ PublicIP: '192.0.2.51', BackendType: 'udp' }))
  // The node's last subnet file named a subnet now held by the unreadable key: pick another, do not lose ten races.
  const a = await c.manager({ ttlSeconds: 30, preferred: { ipv4: '10.7.5.1/24' } }).acquire(node(1))
  t.not(a.ipv4?.subnet.text, '10.7.5.0/24')
  const b = await c.manager({ ttlSeconds: 30, preferred: { ipv4: '10.7.3.1/24' } }).acquire(node(2))
  t.notOk(['10.7.2.0/24', '10.7.3.0/24'].includes(b.ipv4?.subnet.text ?? ''), `${b.ipv4?.subnet.text ?? ''} lies outside 10.7.2.0/23`)
  // With every other subnet taken, the unreadable ones are still not handed out: out of subnets instead.
  const rest = await Promise.all([3, 4].map(async i => await c.manager({ ttlSeconds: 30 }).acquire(node(i))))
  t.same([a, b, ...rest].map(g => g.ipv4?.subnet.text).sort(), ['10.7.1.0/24', '10.7.4.0/24', '10.7.6.0/24', '10.7.7.0/24'])
  await t.rejects(c.manager({ ttlSeconds: 30 }).acquire(node(5)), { code: 'FERRY_ERR_SUBNETS_EXHAUSTED' })
})

t.test('a long TTL (a third of it past setTimeout\'s 24.8-day limit) does not renew in a busy loop', async t => {
  const c = await cluster(t, { Network: '10.244.0.0/16' })
  let renewals = 0
  const m = c.manager({ ttlSeconds: 100 * 24 * 3600, log: (_l, msg) => { if (msg === 'subnet lease renewed') renewals++ } })
  await m.acquire(node(1))
  await sleep(1000)
  t.equal(renewals, 0, `${renewals} keepalives in one second`)
})
