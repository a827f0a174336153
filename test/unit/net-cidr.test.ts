import t from 'tap'
import {
  bigIntToIP, cidrLast, containsCidr, ipToBigInt, offsetIP, overlaps, parseCidr, subnetCount, subnetsBetween,
} from '../../pkg/net/cidr.js'

t.test('addresses round-trip through bigints in both families', async t => {
  const cases: Array<[string, bigint, string]> = [
    ['10.244.3.0', 0x0af40300n, '10.244.3.0'],
    ['255.255.255.255', 0xffffffffn, '255.255.255.255'],
    ['0.0.0.0', 0n, '0.0.0.0'],
    ['fd00:10:244::', 0xfd000010024400000000000000000000n, 'fd00:10:244::'],
    ['FD00:0:0:0:0:0:0:1', 0xfd000000000000000000000000000001n, 'fd00::1'],
    ['::', 0n, '::'],
  ]
  for (const [text, n, back] of cases) {
    const v = ipToBigInt(text)
    t.equal(v?.value, n, text)
    t.equal(bigIntToIP(n, v?.family ?? 'IPv4'), back, `${text} back`)
  }
  t.equal(ipToBigInt('10.0.0'), null)
})

t.test('parseCidr masks, or rejects host bits when strict', async t => {
  t.equal(parseCidr('10.244.3.7/16')?.text, '10.244.0.0/16')
  t.equal(parseCidr('10.244.3.7/16', { strict: true }), null)
  t.equal(parseCidr('fd00:10:244:3::/64', { strict: true })?.text, 'fd00:10:244:3::/64')
  t.equal(parseCidr('10.0.0.0/33'), null)
  t.equal(parseCidr('::/129'), null)
  t.equal(parseCidr('10.0.0.0'), null)
})

t.test('containment, overlap, offsets and carving', async t => {
  const net = parseCidr('10.244.0.0/22')
  const a = parseCidr('10.244.1.0/24')
  const b = parseCidr('10.244.1.128/25')
  const v6 = parseCidr('fd00::/56')
  if (net === null || a === null || b === null || v6 === null) throw new Error('fixtures')
  t.ok(containsCidr(net, a))
  t.notOk(containsCidr(a, net))
  t.ok(overlaps(a, b))
  t.notOk(overlaps(a, parseCidr('10.244.2.0/24') ?? a))
  t.notOk(overlaps(a, v6), 'families never overlap')
  t.equal(offsetIP(a, 1n), '10.244.1.1')
  t.equal(bigIntToIP(cidrLast(net), 'IPv4'), '10.244.3.255')
  t.same([...subnetsBetween('IPv4', 24, net.base + 256n, cidrLast(net) - 255n)].map(c => c.text), ['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24'])
  t.equal(subnetCount('IPv6', 64, v6.base, v6.base + (255n << 64n)), 256n)
  t.equal(subnetCount('IPv4', 24, 10n, 9n), 0n)
  const first = subnetsBetween('IPv6', 64, v6.base + (1n << 64n), cidrLast(v6)).next().value
  t.equal(first?.text, 'fd00:0:0:1::/64')
})
