import t from 'tap'
import { isFerryError } from '../../pkg/errors/errors.js'
import { bigintToIp, ipToBigint, rangeLabel, resolveRange, resolveRanges } from '../../pkg/ipam/range.js'

t.test('addresses round-trip through bigint in both families', async t => {
  const cases: Array<[string, 'IPv4' | 'IPv6', bigint]> = [
    ['0.0.0.0', 'IPv4', 0n],
    ['10.244.1.2', 'IPv4', 0x0af40102n],
    ['255.255.255.255', 'IPv4', 0xffffffffn],
    ['::', 'IPv6', 0n],
    ['::1', 'IPv6', 1n],
    ['fd00:10:244:1::2', 'IPv6', 0xfd000010024400010000000000000002n],
    ['2001:db8::1:0:0:1', 'IPv6', 0x20010db8000000000001000000000001n],
    ['2001:db8:0:1:1:1:1:1', 'IPv6', 0x20010db8000000010001000100010001n], // one zero group is not compressed
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'IPv6', (1n << 128n) - 1n],
  ]
  for (const [ip, family, n] of cases) {
    t.equal(ipToBigint(ip, family), n, `${ip} → number`)
    t.equal(bigintToIp(n, family), ip, `${ip} ← number`)
  }
})

t.test('defaults follow host-local: gateway .1, span .1 to broadcast−1', async t => {
  const r = resolveRange({ subnet: '10.244.1.0/24' }, 0)
  t.equal(r.gatewayText, '10.244.1.1')
  t.equal(bigintToIp(r.start, 'IPv4'), '10.244.1.1')
  t.equal(bigintToIp(r.end, 'IPv4'), '10.244.1.254')
  t.equal(r.size, 253n) // .1 to .254 less the gateway
  t.equal(rangeLabel(r), '10.244.1.0/24 (10.244.1.1-10.244.1.254)')
  const hostBits = resolveRange({ subnet: '10.244.1.1/24' }, 0) // the node file's gateway/prefix form
  t.equal(hostBits.subnet, '10.244.1.0/24')
  const v6 = resolveRange({ subnet: 'fd00:10:244:1::/64' }, 1)
  t.equal(v6.gatewayText, 'fd00:10:244:1::1')
  t.equal(bigintToIp(v6.end, 'IPv6'), 'fd00:10:244:1:ffff:ffff:ffff:ffff')
  t.equal(v6.size, (1n << 64n) - 2n)
  const narrow = resolveRange({ subnet: '10.90.0.0/24', rangeStart: '10.90.0.10', rangeEnd: '10.90.0.19', gateway: '10.90.0.254' }, 0)
  t.equal(narrow.size, 10n)
})

t.test('invalid ranges are FERRY_ERR_IPAM_RANGE naming the problem', async t => {
  const cases: Array<[object, RegExp]> = [
    [{ subnet: 'nope' }, /not a CIDR/],
    [{ subnet: '10.0.0.0/31' }, /too small to allocate from/],
    [{ subnet: 'fd00::/127' }, /too small to allocate from/],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.1.1' }, /gateway 10\.0\.1\.1 is outside 10\.0\.0\.0\/24/],
    [{ subnet: '10.0.0.0/24', gateway: 'fd00::1' }, /not an IPv4 address/],
    [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.0' }, /network or broadcast/],
    [{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.255' }, /broadcast/],
    [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.5' }, /after rangeEnd/],
    [{ subnet: '10.0.0.0/30', rangeStart: '10.0.0.1', rangeEnd: '10.0.0.1' }, /besides the gateway/],
  ]
  for (const [r, msg] of cases) {
    let caught: unknown
    try { resolveRange(r as { subnet: string }, 0) } catch (e) { caught = e }
    t.ok(isFerryError(caught, 'FERRY_ERR_IPAM_RANGE'), `${JSON.stringify(r)} code`)
    t.match((caught as Error | undefined)?.message, msg, JSON.stringify(r))
  }
  t.throws(() => resolveRanges([]), /no IPAM range/)
  t.throws(() => resolveRanges([{ subnet: '10.0.0.0/16' }, { subnet: '10.0.5.0/24' }]), /overlap/)
  t.equal(resolveRanges([{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]).length, 2)
})
