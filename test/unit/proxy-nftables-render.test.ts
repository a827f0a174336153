// Full renders of the nftables mode (the layout contract): fixtures follow PROXY.md §7 (pod CIDR
// 10.0.0.0/8, ClusterIPs 172.30.0.0/16, node 192.168.0.2).
import t from 'tap'
import { PIECE_CHARS, renderDeleteChains, renderFull, streamFull } from '../../pkg/proxy/nftables/render.js'
import { NftModel } from '../../pkg/proxy/nftables/model.js'
import { syntheticState } from '../../pkg/proxy/iptables/fixtures.js'
import { resolveNftablesOptions, type NftablesOptionsInput } from '../../pkg/proxy/nftables/options.js'
import { endpointTag, serviceHash } from '../../pkg/proxy/nftables/names.js'
import { desired, ep, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import { servicePortKey, type DesiredServicePort } from '../../pkg/proxy/types.js'

const OPTS = resolveNftablesOptions({ family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2'] })
const lines = (text: string): string[] => text.split('\n').filter(l => l !== '')
const rulesOf = (text: string, chain: string): string[] => lines(text).filter(l => l.startsWith(`add rule ip ferry ${chain} `)).map(l => l.slice(`add rule ip ferry ${chain} `.length))
/** Every element of `map`, over all its `add element` lines. */
function elementsOf (text: string, map: string, fam = 'ip'): string[] {
  const prefix = `add element ${fam} ferry ${map} { `
  return lines(text).filter(l => l.startsWith(prefix)).flatMap(l => l.slice(prefix.length, -2).split(', '))
}
const H = (s: DesiredServicePort): string => serviceHash(servicePortKey(s.info))

const clusterIP = desired(svcInfo({ name: 'cip', clusterIP: '172.30.0.41' }), { cluster: [ep('10.180.0.2'), ep('10.180.0.1')] })
const nodePort = desired(svcInfo({ name: 'np', clusterIP: '172.30.0.42', nodePort: 3001 }), { cluster: [ep('10.180.0.3')] })
const etpLocal = desired(svcInfo({ name: 'etp', clusterIP: '172.30.0.43', nodePort: 3002, loadBalancerIPs: ['5.6.7.8'], externalPolicyLocal: true }),
  { cluster: [ep('10.180.0.4'), ep('10.180.1.4')], local: [ep('10.180.0.4')] })
const itpLocal = desired(svcInfo({ name: 'itp', clusterIP: '172.30.0.44', internalPolicyLocal: true }), { cluster: null, local: [ep('10.180.0.5')] })
const none = desired(svcInfo({ name: 'none', clusterIP: '172.30.0.45', nodePort: 3005, externalIPs: ['192.168.99.11'] }), { cluster: [], hasAny: false })
const localDrop = desired(svcInfo({ name: 'drop', clusterIP: '172.30.0.46', nodePort: 3006, externalPolicyLocal: true, internalPolicyLocal: true }),
  { cluster: [], local: [], hasAny: true })
const ranged = desired(svcInfo({ name: 'lb', clusterIP: '172.30.0.47', loadBalancerIPs: ['1.2.3.4'], loadBalancerSourceRanges: ['203.0.113.0/25', '192.168.0.0/24'] }),
  { cluster: [ep('10.180.0.7')] })
const sticky = desired(svcInfo({ name: 'sticky', clusterIP: '172.30.0.48', stickyMaxAgeSeconds: 600, protocol: 'UDP', port: 53 }),
  { cluster: [ep('10.180.0.8', 53), ep('10.180.0.9', 53), ep('10.180.0.10', 53)] })
const MIXED = stateOf([clusterIP, nodePort, etpLocal, itpLocal, none, localDrop, ranged, sticky])

t.test('fixed objects: base chains, dispatch and masquerading', async t => {
  const r = renderFull(MIXED, OPTS)
  const all = lines(r.text)
  t.same(all.slice(0, 3), ['add table ip ferry', 'delete table ip ferry', 'add table ip ferry'], 'atomic replace of the table')
  t.ok(all.includes('add chain ip ferry nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }'))
  t.ok(all.includes('add chain ip ferry nat-postrouting { type nat hook postrouting priority 100 ; policy accept ; }'))
  t.ok(all.includes('add chain ip ferry filter-forward { type filter hook forward priority 0 ; policy accept ; }'))
  t.same(rulesOf(r.text, 'services'), [
    'ip daddr . meta l4proto . th dport vmap @service-ips',
    'fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports',
  ], 'VIP dispatch, then the NodePorts last')
  t.same(rulesOf(r.text, 'masquerading'), [
    'ct status dnat ip saddr . ip daddr @hairpin masquerade',
    'meta mark & 0x4000 == 0 return',
    'meta mark set meta mark ^ 0x4000',
    'masquerade fully-random',
  ])
  t.same(rulesOf(r.text, 'mark-for-masquerade'), ['meta mark set meta mark | 0x4000'])
  t.same(rulesOf(r.text, 'filter-forward')[0], 'ct state invalid drop')
  t.same(rulesOf(r.text, 'filter-output'), [
    'ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-cluster',
    'ct state new ip daddr . meta l4proto . th dport @firewall-ips drop',
    'ct state new ip daddr @cluster-ips reject',
  ])
  t.same(rulesOf(r.text, 'filter-forward').at(-1), 'ct state new ip daddr @cluster-ips reject', 'other ports of a ClusterIP: rejected after DNAT')
  t.ok(all.includes('add map ip ferry service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }'))
  t.ok(all.includes('add set ip ferry hairpin { type ipv4_addr . ipv4_addr ; }'))
  t.ok(all.includes('add set ip ferry cluster-ips { type ipv4_addr ; }'))
  t.same(elementsOf(r.text, 'cluster-ips').sort(), ['172.30.0.41', '172.30.0.42', '172.30.0.43', '172.30.0.44', '172.30.0.45', '172.30.0.46', '172.30.0.47', '172.30.0.48'], 'every ClusterIP, once')
  // Objects are declared service by service as the stream reaches them: every reference must still
  // resolve to an earlier line, which the model of the kernel's transaction checks.
  t.doesNotThrow(() => { new NftModel().apply(r.text) }, 'every reference resolves inside the transaction')
})

t.test('ClusterIP: shared policy chain, endpoints sorted into the numgen map', async t => {
  const r = renderFull(MIXED, OPTS)
  t.ok(elementsOf(r.text, 'service-ips').includes('172.30.0.41 . tcp . 80 : goto cip-cluster-2'))
  t.same(rulesOf(r.text, 'cip-cluster-2'), ['ip saddr != 10.0.0.0/8 jump mark-for-masquerade', 'goto pick-vip-cluster-2'])
  t.same(rulesOf(r.text, 'pick-vip-cluster-2'), ['meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @vip-cluster-2'])
  t.ok(lines(r.text).includes('add map ip ferry vip-cluster-2 { typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport ; }'))
  const m = elementsOf(r.text, 'vip-cluster-2')
  t.ok(m.includes('172.30.0.41 . tcp . 80 . 0 : 10.180.0.1 . 80') && m.includes('172.30.0.41 . tcp . 80 . 1 : 10.180.0.2 . 80'), 'stable order: sorted by ip')
  t.ok(elementsOf(r.text, 'hairpin').includes('10.180.0.1 . 10.180.0.1'))
})

t.test('NodePort eTP=Cluster: masqueraded shared external chain', async t => {
  const r = renderFull(MIXED, OPTS)
  t.ok(elementsOf(r.text, 'service-nodeports').includes('tcp . 3001 : goto ext-np-1'))
  t.same(rulesOf(r.text, 'ext-np-1'), ['jump mark-for-masquerade', 'goto pick-np-cluster-1'])
  t.same(elementsOf(r.text, 'np-cluster-1'), ['tcp . 3001 . 0 : 10.180.0.3 . 80'])
  t.same(rulesOf(r.text, 'pick-np-cluster-1'), ['meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport . numgen random mod 1 map @np-cluster-1'])
})

t.test('eTP=Local with short-circuit: xl chain, both sets mapped', async t => {
  const r = renderFull(MIXED, OPTS)
  t.ok(elementsOf(r.text, 'service-ips').includes('5.6.7.8 . tcp . 80 : goto xl-vip-2-1'))
  t.ok(elementsOf(r.text, 'service-nodeports').includes('tcp . 3002 : goto xl-np-2-1'))
  t.same(rulesOf(r.text, 'xl-vip-2-1'), [
    'ip saddr 10.0.0.0/8 goto pick-vip-cluster-2',
    'fib saddr type local jump mark-for-masquerade',
    'fib saddr type local goto pick-vip-cluster-2',
    'goto pick-vip-local-1',
  ])
  t.ok(elementsOf(r.text, 'vip-local-1').includes('5.6.7.8 . tcp . 80 . 0 : 10.180.0.4 . 80'))
  t.ok(elementsOf(r.text, 'vip-cluster-2').includes('5.6.7.8 . tcp . 80 . 1 : 10.180.1.4 . 80'))
  t.notOk(elementsOf(r.text, 'no-endpoint-external').some(e => e.startsWith('5.6.7.8 ')), 'local endpoints exist: not refused')
})

t.test('iTP=Local, no endpoints (REJECT), Local without local endpoints (DROP)', async t => {
  const r = renderFull(MIXED, OPTS)
  t.ok(elementsOf(r.text, 'service-ips').includes('172.30.0.44 . tcp . 80 : goto cip-local-1'))
  t.same(rulesOf(r.text, 'cip-local-1'), ['ip saddr != 10.0.0.0/8 jump mark-for-masquerade', 'goto pick-vip-local-1'])
  t.ok(elementsOf(r.text, 'no-endpoint-cluster').includes('172.30.0.45 . tcp . 80 : goto reject-chain'))
  t.ok(elementsOf(r.text, 'no-endpoint-external').includes('192.168.99.11 . tcp . 80 : goto reject-chain'))
  t.ok(elementsOf(r.text, 'no-endpoint-nodeports').includes('tcp . 3005 : goto reject-chain'))
  t.notOk(elementsOf(r.text, 'service-ips').some(e => e.startsWith('172.30.0.45 ')), 'no dispatch without endpoints')
  t.ok(elementsOf(r.text, 'no-endpoint-cluster').includes('172.30.0.46 . tcp . 80 : drop'))
  t.ok(elementsOf(r.text, 'no-endpoint-nodeports').includes('tcp . 3006 : drop'))
})

t.test('LB with source ranges: per-service firewall chain and firewall-ips', async t => {
  const r = renderFull(MIXED, OPTS)
  const fw = `fw-${H(ranged)}`
  t.ok(elementsOf(r.text, 'service-ips').includes(`1.2.3.4 . tcp . 80 : goto ${fw}`))
  t.same(elementsOf(r.text, 'firewall-ips'), ['1.2.3.4 . tcp . 80'])
  t.same(rulesOf(r.text, fw), [
    'ip saddr 203.0.113.0/25 goto ext-vip-1',
    'ip saddr 192.168.0.0/24 goto ext-vip-1',
    'ip saddr 1.2.3.4 goto ext-vip-1',
  ], 'ranges, then the LB IP itself since a range holds the node IP')
  t.ok(elementsOf(r.text, 'vip-cluster-1').includes('1.2.3.4 . tcp . 80 . 0 : 10.180.0.7 . 80'))
})

t.test('ClientIP affinity: own chains, one timeout set per endpoint, uniform cascade', async t => {
  const r = renderFull(MIXED, OPTS)
  const h = H(sticky)
  t.ok(elementsOf(r.text, 'service-ips').includes(`172.30.0.48 . udp . 53 : goto svc-${h}`))
  t.same(rulesOf(r.text, `svc-${h}`), ['ip saddr != 10.0.0.0/8 jump mark-for-masquerade', `goto aff-${h}-cluster`])
  // Sorted by ip as text: 10.180.0.10 < 10.180.0.8 < 10.180.0.9; objects are named by endpoint, not position.
  const [a, b, c] = ['10.180.0.10', '10.180.0.8', '10.180.0.9'].map(ip => endpointTag(ip, 53))
  t.same(rulesOf(r.text, `aff-${h}-cluster`), [
    `ip saddr @aff-${h}-cluster-${a} goto ep-${h}-cluster-${a}`,
    `ip saddr @aff-${h}-cluster-${b} goto ep-${h}-cluster-${b}`,
    `ip saddr @aff-${h}-cluster-${c} goto ep-${h}-cluster-${c}`,
    `numgen random mod 3 == 0 goto ep-${h}-cluster-${a}`,
    `numgen random mod 2 == 0 goto ep-${h}-cluster-${b}`,
    `goto ep-${h}-cluster-${c}`,
  ])
  t.same(rulesOf(r.text, `ep-${h}-cluster-${a}`), [`update @aff-${h}-cluster-${a} { ip saddr }`, 'meta l4proto udp dnat ip to 10.180.0.10:53'])
  t.ok(lines(r.text).includes(`add set ip ferry aff-${h}-cluster-${c} { type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }`))
  t.notOk(lines(r.text).some(l => l.includes('vip-cluster-3')), 'affinity services use no shared endpoint map')
})

t.test('counts: totals are what the table holds', async t => {
  const r = renderFull(MIXED, OPTS)
  const all = lines(r.text)
  t.equal(r.totals.rules, all.filter(l => l.startsWith('add rule')).length)
  t.equal(r.totals.chains, all.filter(l => l.startsWith('add chain')).length)
  t.equal(r.totals.elements, all.filter(l => l.startsWith('add element')).reduce((n, l) => n + l.split(', ').length, 0))
  t.same(r.written, r.totals)
  t.same(r.owned.totals, r.totals)
  t.equal(r.kind, 'full')
})

t.test('options: localhost NodePorts forced off, nodePortAddresses, be_liberal, mark bit', async t => {
  const o = (extra: Partial<NftablesOptionsInput>) => resolveNftablesOptions({ family: 'IPv4', ...extra })
  t.equal(o({ localhostNodePorts: true }).localhostNodePorts, false)
  t.throws(() => o({ masqueradeBit: 32 }), { code: 'FERRY_ERR_CONFIG' })
  const cases: Array<[Partial<NftablesOptionsInput>, string[]]> = [
    [{ nodePortAddresses: ['192.168.0.0/24', '127.0.0.1/32'] }, ['ip daddr 192.168.0.0/24 fib daddr type local meta l4proto . th dport vmap @service-nodeports']],
    [{ nodePortAddresses: ['0.0.0.0/0'] }, ['fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports']],
    // No CIDR of this family: every address, as kube-proxy does.
    [{ nodePortAddresses: ['fd00::/64'] }, ['fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports']],
  ]
  for (const [extra, want] of cases) {
    t.same(rulesOf(renderFull(MIXED, o(extra)).text, 'services').slice(1), want, JSON.stringify(extra))
  }
  const liberal = renderFull(MIXED, o({ conntrackTCPBeLiberal: true, masqueradeBit: 5 }))
  t.notOk(rulesOf(liberal.text, 'filter-forward').includes('ct state invalid drop'))
  t.same(rulesOf(liberal.text, 'mark-for-masquerade'), ['meta mark set meta mark | 0x20'])
  t.same(rulesOf(liberal.text, 'cip-cluster-2'), ['goto pick-vip-cluster-2'], 'no detector: no ClusterIP masquerade')
  t.same(rulesOf(renderFull(MIXED, o({ masqueradeAll: true })).text, 'cip-cluster-2')[0], 'jump mark-for-masquerade')
})

t.test('IPv6: ip6 words, endpoint values and affinity dnat', async t => {
  const opts = resolveNftablesOptions({ family: 'IPv6', clusterCIDR: 'fd00:10::/64' })
  const v6 = desired(svcInfo({ name: 'v6', family: 'IPv6', clusterIP: 'fd00:30::41', nodePort: 3001 }), { cluster: [ep('fd00:10::1'), ep('fd00:10::2')] })
  const st = desired(svcInfo({ name: 'st6', family: 'IPv6', clusterIP: 'fd00:30::42', stickyMaxAgeSeconds: 30 }), { cluster: [ep('fd00:10::3', 8080)] })
  const r = renderFull(stateOf([v6, st], 'IPv6'), opts)
  t.equal(lines(r.text)[0], 'add table ip6 ferry')
  t.ok(lines(r.text).includes('add map ip6 ferry vip-cluster-2 { typeof ip6 daddr . meta l4proto . th dport . numgen random mod 2 : ip6 daddr . th dport ; }'))
  t.ok(elementsOf(r.text, 'vip-cluster-2', 'ip6').includes('fd00:30::41 . tcp . 80 . 1 : fd00:10::2 . 80'))
  t.ok(lines(r.text).includes('add map ip6 ferry service-ips { type ipv6_addr . inet_proto . inet_service : verdict ; }'))
  t.ok(elementsOf(r.text, 'hairpin', 'ip6').includes('fd00:10::1 . fd00:10::1'))
  t.ok(lines(r.text).includes('add rule ip6 ferry services fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports'))
  t.ok(lines(r.text).includes('add rule ip6 ferry cip-cluster-2 ip6 saddr != fd00:10::/64 jump mark-for-masquerade'))
  const h = H(st)
  const e = endpointTag('fd00:10::3', 8080)
  t.ok(lines(r.text).includes(`add rule ip6 ferry ep-${h}-cluster-${e} meta l4proto tcp dnat ip6 to [fd00:10::3]:8080`))
  t.ok(lines(r.text).includes(`add rule ip6 ferry ep-${h}-cluster-${e} update @aff-${h}-cluster-${e} { ip6 saddr }`))
})

t.test('an entry key has one owner: a second Service with the same VIP and port gets nothing for it', async t => {
  const twin = desired(svcInfo({ name: 'twin', clusterIP: '172.30.0.41' }), { cluster: [ep('10.180.9.9')] })
  const r = renderFull(stateOf([clusterIP, twin]), OPTS)
  t.same(elementsOf(r.text, 'service-ips'), ['172.30.0.41 . tcp . 80 : goto cip-cluster-2'])
  t.same(r.owned.services.get(servicePortKey(twin.info))?.entries, [])
})

t.test('renderDeleteChains', async t => {
  t.equal(renderDeleteChains('IPv6', ['fw-a', 'svc-b']), 'delete chain ip6 ferry fw-a\ndelete chain ip6 ferry svc-b\n')
  t.equal(renderDeleteChains('IPv4', []), '')
})

t.test('streamFull: pipe-sized pieces of whole lines, joining to renderFull, accepted by the model', async t => {
  const st = syntheticState(600, 5)
  const full = renderFull(st, OPTS)
  const it = streamFull(st, OPTS)
  const pieces: string[] = []
  let done
  for (;;) {
    const n = it.next()
    if (n.done === true) { done = n.value; break }
    pieces.push(n.value)
  }
  t.ok(pieces.length > 3, `${pieces.length} pieces`)
  t.equal(pieces.join(''), full.text)
  for (const p of pieces.slice(0, -1)) t.ok(p.endsWith('\n') && p.length >= PIECE_CHARS && p.length < PIECE_CHARS + 20_000, 'whole lines, about a pipe each')
  t.same(done.totals, full.totals)
  t.equal(done.totals.elements, 600 + 600 * 5 + 30 + 30 * 5 + 600 * 5 + 600, 'dispatch, endpoint, NodePort, hairpin and cluster-ips elements')
  t.doesNotThrow(() => { new NftModel().apply(full.text) })
})
