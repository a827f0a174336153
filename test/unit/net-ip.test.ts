import t from 'tap'
import { cidrContains, familyOf, parseCIDR, parseIP } from '../../pkg/net/ip.js'

t.test('parseIP normalizes both families', async t => {
  const cases: Array<[string, ReturnType<typeof parseIP>]> = [
    ['10.0.0.1', { family: 'IPv4', ip: '10.0.0.1' }],
    ['192.168.099.011', { family: 'IPv4', ip: '192.168.99.11' }], // legacy leading zeros read as decimal
    [' 172.30.0.41 ', { family: 'IPv4', ip: '172.30.0.41' }],
    ['2001:DB8:0:0:0:0:0:1', { family: 'IPv6', ip: '2001:db8::1' }],
    ['fd00::0a', { family: 'IPv6', ip: 'fd00::a' }],
    ['::ffff:10.0.0.1', { family: 'IPv6', ip: '::ffff:a00:1' }],
    ['256.1.1.1', null],
    ['10.0.0', null],
    ['not-an-ip', null],
    ['', null],
    ['::', { family: 'IPv6', ip: '::' }],
    ['::1.2.3.4', { family: 'IPv6', ip: '::102:304' }],
    ['fe80::1%eth0', null], // zone IDs are not Kubernetes addresses
    ['::1]/x[', null], // nothing outside an address's characters reaches the URL parser
    ['1:2:3:4:5:6:7:8:9', null],
    ['1::2::3', null],
    ['::1.02.3.4', null],
    ['12345::1', null],
    [':1', null],
  ]
  for (const [input, want] of cases) t.same(parseIP(input), want, JSON.stringify(input))
  for (const [input, want] of cases) if (input.includes(':')) t.equal(familyOf(input), want?.family ?? null, `familyOf ${JSON.stringify(input)}`)
})

t.test('parseCIDR masks host bits and checks prefixes', async t => {
  t.same(parseCIDR('10.244.3.7/16'), { family: 'IPv4', ip: '10.244.0.0', prefix: 16, text: '10.244.0.0/16' })
  t.same(parseCIDR(' 203.0.113.0/25'), { family: 'IPv4', ip: '203.0.113.0', prefix: 25, text: '203.0.113.0/25' })
  t.same(parseCIDR('fd00:10:244::1/64')?.text, 'fd00:10:244::/64')
  t.same(parseCIDR('2001:db8::/129'), null)
  t.same(parseCIDR('10.0.0.0/33'), null)
  t.same(parseCIDR('10.0.0.0'), null)
  t.same(parseCIDR('10.0.0.0/x'), null)
})

t.test('cidrContains is family-aware', async t => {
  const v4 = parseCIDR('10.0.0.0/8')
  const v6 = parseCIDR('fd00::/8')
  if (v4 === null || v6 === null) throw new Error('fixture')
  t.ok(cidrContains(v4, '10.180.0.1'))
  t.notOk(cidrContains(v4, '11.0.0.1'))
  t.notOk(cidrContains(v4, 'fd00::1'), 'an IPv6 address is never in an IPv4 CIDR')
  t.ok(cidrContains(v6, 'fd12::1'))
  t.equal(familyOf('::1'), 'IPv6')
  t.equal(familyOf('1.2.3.4'), 'IPv4')
  t.equal(familyOf('x'), null)
})
