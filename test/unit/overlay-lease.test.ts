import t from 'tap'
import { parseCidr, type Cidr } from '../../pkg/net/cidr.js'
import { chooseSubnet, fits } from '../../pkg/overlay/lease.js'
import { decodeAttrs, encodeAttrs, leaseKey, parseLeaseKey } from '../../pkg/overlay/lease-codec.js'
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
