import t from 'tap'
import type { Etcd3 } from 'etcd3'
import { parseCidr, type Cidr } from '../../pkg/net/cidr.js'
import { chooseSubnet, fits, planClaim } from '../../pkg/overlay/lease.js'
import { decodeAttrs, decodePublicIP, encodeAttrs, leaseKey, parseLeaseKey, type LeaseAttrs } from '../../pkg/overlay/lease-codec.js'
import { listLeases, type LeaseList } from '../../pkg/overlay/lease-store.js'
import { StaticSubnetManager } from '../../pkg/overlay/lease-static.js'
import { validateNetworkConfig } from '../../pkg/overlay/network-config.js'

function c (s: string): Cidr {
  const v = parseCidr(s)
  if (v === null) throw new Error(s)
  return v
}

t.test('lease keys round-trip; non-canonical keys are not leases', async t => {
  t.equal(leaseKey(c('10.244.3.0/24')), '/ferry/network/subnets/10.244.3.0-24')
  t.equal(leaseKey(c('fd00:10:244:3::/64'), '/x/'), '/x/network/subnets/fd00:10:244:3::-64')
  t.equal(parseLeaseKey('/ferry/network/subnets/fd00:10:244:3::-64')?.text, 'fd00:10:244:3::/64')
  for (const k of ['/ferry/network/subnets/10.244.3.7-24', '/ferry/network/subnets/10.244.3.0', '/ferry/network/config', '/ferry/network/subnets/FD00::-64']) {
    t.equal(parseLeaseKey(k), null, k)
  }
})

t.test('lease values: flannel field names, case-insensitive, errors name the key', async t => {
  const a = { publicIP: '192.0.2.1', publicIPv6: '2001:db8::1', backendType: 'vxlan' as const, backendData: { vni: 1, vtepMAC: '02:00:00:00:00:01' } }
  t.equal(encodeAttrs(a), '{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}}')
  t.same(decodeAttrs('k', encodeAttrs(a)), a)
  t.same(decodeAttrs('k', '{"publicip":"192.0.2.1","backendtype":"host-gw"}'), { publicIP: '192.0.2.1', backendType: 'host-gw' })
  const bad: Array<[string, RegExp]> = [
    ['nope', /not valid JSON/], ['[]', /JSON object/], ['{"PublicIP":"x","BackendType":"vxlan"}', /PublicIP/],
    ['{"PublicIP":"192.0.2.1","BackendType":"udp"}', /BackendType/],
    ['{"PublicIP":"192.0.2.1","BackendType":"vxlan"}', /BackendData/],
    ['{"PublicIP":"192.0.2.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"zz"}}', /VtepMAC/],
  ]
  for (const [v, re] of bad) t.throws(() => decodeAttrs('/k', v), { code: 'FERRY_ERR_PARSE', message: re }, v)
})

t.test('vxlan lease values: a VtepMAC is required, a VNI is not (flannel routes a peer by its VtepMAC alone)', async t => {
  const v = (data: unknown): string => JSON.stringify({ PublicIP: '192.0.2.2', BackendType: 'vxlan', BackendData: data })
  const ok: Array<[string, unknown, object]> = [
    ['flannel\'s older form: no VNI', { VtepMAC: '02:00:00:00:00:AA' }, { vtepMAC: '02:00:00:00:00:aa' }],
    ['VNI null', { VNI: null, VtepMAC: '02:00:00:00:00:aa' }, { vtepMAC: '02:00:00:00:00:aa' }],
    ['another VNI: kept, for the backend to warn about', { VNI: 7, VtepMAC: '02:00:00:00:00:aa' }, { vni: 7, vtepMAC: '02:00:00:00:00:aa' }],
    ['a VNI above flannel\'s uint16', { vni: 70000, vtepmac: '02:00:00:00:00:aa' }, { vni: 70000, vtepMAC: '02:00:00:00:00:aa' }],
    // flannel decodes VtepMAC with Go's net.ParseMAC: dashes and Cisco dots too; stored as the kernel prints it.
    ['a dashed VtepMAC', { VNI: 1, VtepMAC: '02-00-00-00-00-AA' }, { vni: 1, vtepMAC: '02:00:00:00:00:aa' }],
    ['a dotted VtepMAC', { VNI: 1, VtepMAC: '0200.0000.00Aa' }, { vni: 1, vtepMAC: '02:00:00:00:00:aa' }],
  ]
  for (const [name, data, want] of ok) {
    const a = decodeAttrs('/k', v(data))
    t.same(a, { publicIP: '192.0.2.2', backendType: 'vxlan', backendData: want }, name)
    t.same(Object.keys(a.backendData ?? {}).sort(), Object.keys(want).sort(), `${name}: exactly these keys`)
    t.same(decodeAttrs('/k', encodeAttrs(a)), a, `${name}: round-trips`)
  }
  t.equal(encodeAttrs(decodeAttrs('/k', v({ VtepMAC: '02:00:00:00:00:aa' }))), v({ VtepMAC: '02:00:00:00:00:aa' }), 'a VNI-less value re-encodes without one')
  // Without a usable VtepMAC there is nothing to route by: the same clear error as before, naming the key.
  const bad: Array<[string, unknown, RegExp]> = [
    ['VNI only', { VNI: 1 }, /^etcd key \/k: BackendData\.VtepMAC: want a MAC address, got undefined$/],
    ['empty', {}, /BackendData\.VtepMAC/],
    ['VtepMAC null', { VNI: 1, VtepMAC: null }, /BackendData\.VtepMAC: want a MAC address, got null/],
    ['VtepMAC not a MAC', { VtepMAC: 'c6:d2' }, /BackendData\.VtepMAC/],
    ['VtepMAC with mixed separators', { VtepMAC: '02:00-00:00:00:aa' }, /^etcd key \/k: BackendData\.VtepMAC: want a MAC address, got "02:00-00:00:00:aa"$/],
    ['VtepMAC of 8 bytes (Go takes EUI-64; a VTEP is Ethernet)', { VtepMAC: '02:00:00:00:00:aa:bb:cc' }, /BackendData\.VtepMAC/],
    ['BackendData not an object', 'x', /^etcd key \/k: BackendData: vxlan leases carry/],
    // A VNI that is there must be one: flannel's typed decoding skips such a peer too.
    ['VNI a string', { VNI: '1', VtepMAC: '02:00:00:00:00:aa' }, /BackendData\.VNI: want 0\.\.16777215 or none, got "1"/],
    ['VNI negative', { VNI: -1, VtepMAC: '02:00:00:00:00:aa' }, /BackendData\.VNI/],
    ['VNI fractional', { VNI: 1.5, VtepMAC: '02:00:00:00:00:aa' }, /BackendData\.VNI/],
    ['VNI out of range', { VNI: 16777216, VtepMAC: '02:00:00:00:00:aa' }, /BackendData\.VNI/],
  ]
  for (const [name, data, re] of bad) t.throws(() => decodeAttrs('/k', v(data)), { code: 'FERRY_ERR_PARSE', message: re }, name)
})

t.test('listLeases: another node\'s VNI-less vxlan lease is a readable peer; one without a VtepMAC is not', async t => {
  const list = await listOf([
    ['10.9.1.0/24', { PublicIP: '192.0.2.2', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:02' } }, '5'],
    ['10.9.2.0/24', { PublicIP: '192.0.2.3', BackendType: 'vxlan', BackendData: { VNI: 1 } }, '5'],
  ])
  t.same([...list.leases.values()].map(l => [l.subnet.text, l.attrs.backendData]), [['10.9.1.0/24', { vtepMAC: '02:00:00:00:00:02' }]])
  t.same(list.unreadable.map(u => [u.subnet.text, u.publicIP]), [['10.9.2.0/24', '192.0.2.3']], 'still holds its subnet')
  t.match(list.errors.map(e => e.message), [/10\.9\.2\.0-24: BackendData\.VtepMAC/])
})

t.test('chooseSubnet: preferred if free, random among free, null when full', async t => {
  const net = validateNetworkConfig({ Network: '10.9.0.0/22' }).ipv4
  if (net === undefined) throw new Error('fixture')
  t.equal(chooseSubnet(net, [], { random: () => 0 })?.text, '10.9.1.0/24', 'first subnet never leased')
  t.equal(chooseSubnet(net, [], { random: () => 0.99 })?.text, '10.9.3.0/24')
  t.equal(chooseSubnet(net, [c('10.9.1.0/24')], { random: () => 0 })?.text, '10.9.2.0/24')
  t.equal(chooseSubnet(net, [c('10.9.2.128/25')], { random: () => 0.99 })?.text, '10.9.3.0/24', 'overlap with a foreign length counts')
  t.equal(chooseSubnet(net, [], { random: () => 0, preferred: c('10.9.3.0/24') })?.text, '10.9.3.0/24')
  t.equal(chooseSubnet(net, [c('10.9.3.0/24')], { random: () => 0, preferred: c('10.9.3.0/24') })?.text, '10.9.1.0/24', 'taken preference skipped')
  t.equal(chooseSubnet(net, [], { random: () => 0, preferred: c('10.9.0.0/24') })?.text, '10.9.1.0/24', 'preference outside Min..Max skipped')
  t.equal(chooseSubnet(net, [c('10.9.0.0/22')]), null)
  t.notOk(fits(net, c('10.9.1.0/25')))
})

t.test('StaticSubnetManager serves --pod-cidr with the same interface', async t => {
  const m = new StaticSubnetManager({ network: '10.244.0.0/16', podCIDR: '10.244.7.0/24', networkIPv6: 'fd00::/56', podCIDRIPv6: 'fd00:0:0:7::/64' })
  const got = await m.acquire({ publicIP: '192.0.2.1', backendType: 'host-gw' })
  t.equal(got.ipv4?.subnet.text, '10.244.7.0/24')
  t.equal(got.ipv6?.subnet.text, 'fd00:0:0:7::/64')
  t.equal(got.config.ipv4?.network.text, '10.244.0.0/16')
  let synced = -1
  const w = await m.watch({ event: () => { t.fail('no peers') }, synced: l => { synced = l.size } })
  t.equal(synced, 0)
  await w.stop()
  await m.close()
  t.throws(() => new StaticSubnetManager({ network: '10.244.0.0/16', podCIDR: '10.245.0.0/24' }), { code: 'FERRY_ERR_CONFIG', message: /--pod-cidr/ })
  t.throws(() => new StaticSubnetManager({ network: '10.244.0.0/16', podCIDR: '10.244.0.0/24', networkIPv6: 'fd00::/56' }), { code: 'FERRY_ERR_CONFIG' })
})

t.test('decodePublicIP: the owner of values decodeAttrs rejects', async t => {
  const cases: Array<[string, string | undefined]> = [
    ['{"PublicIP":"192.0.2.1","BackendType":"vxlan","BackendData":{"VtepMAC":"02:00:00:00:00:01"}}', '192.0.2.1'],
    ['{"PublicIP":"192.0.2.1","BackendType":"vxlan"}', '192.0.2.1'],
    ['{"publicip":"192.0.2.1"}', '192.0.2.1'],
    ['{"PublicIP":"192.0.2.1","BackendType":"udp"}', '192.0.2.1'],
    ['{"PublicIP":"2001:db8::1"}', undefined],
    ['{"PublicIP":7}', undefined],
    ['{"BackendType":"vxlan"}', undefined],
    ['nope', undefined],
    ['["192.0.2.1"]', undefined],
  ]
  for (const [v, want] of cases) t.equal(decodePublicIP(v), want, v)
})

/** What listLeases makes of these keys (subnet → value, etcd lease; mod revision = index + 1), from a range-only fake. */
async function listOf (keys: Array<[string, unknown, string?]>): Promise<LeaseList> {
  const kvs = keys.map(([subnet, v, lease], i) => ({
    key: Buffer.from(`/ferry/network/subnets/${subnet.replace('/', '-')}`), value: Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)),
    lease: lease ?? '0', mod_revision: String(i + 1), create_revision: String(i + 1), version: '1',
  }))
  const client = { kv: { range: async () => ({ header: { revision: String(keys.length) }, kvs }) } } as unknown as Etcd3
  return await listLeases(client)
}

const me: LeaseAttrs = { publicIP: '192.0.2.1', backendType: 'vxlan', backendData: { vni: 1, vtepMAC: '02:00:00:00:00:01' } }
const dual = validateNetworkConfig({ Network: '10.9.0.0/22', EnableIPv6: true, IPv6Network: 'fd00:9::/62' })
const v4only = validateNetworkConfig({ Network: '10.9.0.0/22' })

t.test('planClaim: this node\'s key is reused whether or not its value carries a VNI, and gets the VNI back', async t => {
  const forms: Array<[string, unknown]> = [
    ['current form', JSON.parse(encodeAttrs({ ...me, backendData: { vni: 1, vtepMAC: '02:00:00:00:00:aa' } }))],
    ['older vxlan form, no VNI', { PublicIP: '192.0.2.1', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:aa' } }],
    ['by hand: PublicIP and BackendType', { PublicIP: '192.0.2.1', BackendType: 'vxlan' }],
    ['by hand: PublicIP only', { PublicIP: '192.0.2.1' }],
    ['host-gw', { PublicIP: '192.0.2.1', BackendType: 'host-gw' }],
    ['another backend', { PublicIP: '192.0.2.1', BackendType: 'udp' }],
    ['another VNI', { PublicIP: '192.0.2.1', BackendType: 'vxlan', BackendData: { VNI: 7, VtepMAC: '02:00:00:00:00:aa' } }],
  ]
  for (const [name, value] of forms) {
    for (const lease of ['0', '694d854330fc5110']) {
      const what = `${name}, ${lease === '0' ? 'reservation' : 'lease'}`
      // random() = 0 would pick 10.9.1.0/24 if the key were not reused.
      const list = await listOf([['10.9.3.0/24', value, lease], ['fd00:9:0:3::/64', value, lease]])
      const plan = planClaim(dual, list, me, { random: () => 0 })
      t.same(plan.claims.map(c => [c.subnet.text, c.put.expectModRevision, c.put.noLease]),
        [['10.9.3.0/24', '1', lease === '0'], ['fd00:9:0:3::/64', '2', lease === '0']], `${what}: both keys reused, guarded by their revision`)
      for (const c of plan.claims) t.same(JSON.parse(c.put.value), { PublicIP: '192.0.2.1', BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' } }, `${what}: rewritten with the VNI`)
      t.same(plan.deletes, [], what)
      t.same([...plan.oldLeases], lease === '0' ? [] : [lease], `${what}: the old etcd lease is revoked after`)
    }
  }
})

t.test('planClaim: other nodes\' keys are never reused or deleted, readable or not', async t => {
  const list = await listOf([
    ['10.9.1.0/24', { PublicIP: '192.0.2.2', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:02' } }],
    ['10.9.2.0/24', { BackendType: 'vxlan' }],
    ['10.9.3.0/24', encodeAttrs({ ...me, publicIP: '192.0.2.3' }), '7'],
  ])
  t.throws(() => planClaim(v4only, list, me), { code: 'FERRY_ERR_SUBNETS_EXHAUSTED' }, 'all three hold their subnet')
  const wide = validateNetworkConfig({ Network: '10.9.0.0/21', SubnetLen: 24 })
  const plan = planClaim(wide, list, me, { random: () => 0 })
  t.same(plan.claims.map(c => [c.subnet.text, c.put.expectModRevision]), [['10.9.4.0/24', '0']], 'a new key on a free subnet')
  t.same(plan.deletes, [])
  t.same([...plan.oldLeases], [])
})

t.test('planClaim: a reservation of ours wins over a lease of ours, which is deleted', async t => {
  // Left by the old bug: the unread reservation, and the lease claimed beside it.
  const list = await listOf([
    ['10.9.1.0/24', encodeAttrs(me), '9'],
    ['10.9.3.0/24', { PublicIP: '192.0.2.1', BackendType: 'vxlan' }],
  ])
  const plan = planClaim(v4only, list, me)
  t.same(plan.claims.map(c => [c.subnet.text, c.put.noLease]), [['10.9.3.0/24', true]])
  t.same(plan.deletes, ['/ferry/network/subnets/10.9.1.0-24'])
  t.same([...plan.oldLeases], [])
  t.same([...plan.staleLeases], ['9'], 'the deleted key\'s etcd lease is revoked after, not left to its TTL')
  // A key of ours that no longer fits the config goes, unread or not.
  const misfit = await listOf([['10.9.2.0/25', { PublicIP: '192.0.2.1' }]])
  const p2 = planClaim(v4only, misfit, me, { random: () => 0 })
  t.same(p2.claims.map(c => c.subnet.text), ['10.9.1.0/24'])
  t.same(p2.deletes, ['/ferry/network/subnets/10.9.2.0-25'])
  t.same([...p2.staleLeases], [], 'a reservation has no etcd lease to revoke')
})

t.test('planClaim: a deleted key\'s etcd lease is revoked only when no key left after the claim uses it', async t => {
  const list = await listOf([
    ['10.9.1.0/24', encodeAttrs(me), '9'], // stale: deleted, its lease also holds our IPv6 key
    ['10.9.2.0/25', { PublicIP: '192.0.2.1' }, '8'], // stale misfit: its lease holds nothing else
    ['10.9.3.0/24', { PublicIP: '192.0.2.1', BackendType: 'vxlan' }], // our reservation: reused
    ['fd00:9:0:1::/64', encodeAttrs(me), '9'], // IPv6, which this config no longer routes: left alone, keeps lease 9
    ['10.9.0.0/25', { PublicIP: '192.0.2.2', BackendType: 'vxlan', BackendData: { VtepMAC: '02:00:00:00:00:02' } }, '8'], // another node's key on lease 8 (by hand)
  ])
  const plan = planClaim(v4only, list, me)
  t.same(plan.deletes.sort(), ['/ferry/network/subnets/10.9.1.0-24', '/ferry/network/subnets/10.9.2.0-25'])
  t.same([...plan.staleLeases], [], 'both leases still hold a key that stays')
  const alone = await listOf([
    ['10.9.1.0/24', encodeAttrs(me), '7'], // our lease (the first that fits): reused under a new etcd lease, so 7 is an old lease, not a stale one
    ['10.9.2.0/25', { PublicIP: '192.0.2.1' }, '8'],
    ['10.9.3.0/24', encodeAttrs(me), '9'],
  ])
  const p2 = planClaim(v4only, alone, me)
  t.same(p2.deletes.sort(), ['/ferry/network/subnets/10.9.2.0-25', '/ferry/network/subnets/10.9.3.0-24'])
  t.same([...p2.staleLeases].sort(), ['8', '9'])
  t.same([...p2.oldLeases], ['7'])
  // A stale key on the reused key's lease: that lease is revoked once, as the old lease.
  const shared = await listOf([['10.9.1.0/24', encodeAttrs(me), '7'], ['10.9.3.0/24', encodeAttrs(me), '7']])
  const p3 = planClaim(v4only, shared, me)
  t.same([p3.claims.map(c => c.subnet.text), p3.deletes, [...p3.oldLeases]], [['10.9.1.0/24'], ['/ferry/network/subnets/10.9.3.0-24'], ['7']])
  t.same([...p3.staleLeases], [], 'the reused key moves to the new lease, so nothing else holds 7: one revoke, as the old lease')
  // The reused key's old lease also holds a key the claim leaves alone (IPv6, no longer routed): revoking
  // it would delete that key long before its TTL.
  const kept = await listOf([['10.9.1.0/24', encodeAttrs(me), '7'], ['fd00:9:0:1::/64', encodeAttrs(me), '7']])
  const p4 = planClaim(v4only, kept, me)
  t.same([p4.claims.map(c => c.subnet.text), p4.deletes, [...p4.oldLeases], [...p4.staleLeases]], [['10.9.1.0/24'], [], [], []],
    'lease 7 still holds the IPv6 key: not revoked')
})
