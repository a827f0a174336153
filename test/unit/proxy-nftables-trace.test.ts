// The nftables packet tracer on hand-written transactions in the layout's syntax (/tmp/nft-layout.md):
// ClusterIP with masquerade and hairpin, NodePorts, eTP=Local, source ranges, REJECT/DROP, affinity
// cascades, numgen maps, IPv6. Probabilities are checked too: every branch numgen can take is followed.
import t, { type Test } from 'tap'
import { NftModel } from '../../pkg/proxy/nftables/model.js'
import { traceNft, type NftTrace } from '../../pkg/proxy/nftables/trace.js'
import type { Packet, TraceEnv } from '../../pkg/proxy/trace.js'
import type { Protocol } from '../../pkg/api/types.js'
import { resolveNftablesOptions, type NftablesOptionsInput } from '../../pkg/proxy/nftables/options.js'
import { renderFull, renderPartial } from '../../pkg/proxy/nftables/render.js'
import { planPort, type PortPlan } from '../../pkg/proxy/plan.js'
import type { ProxyOptions } from '../../pkg/proxy/options.js'
import { tracePlan } from '../../pkg/proxy/trace.js'
import { expectFlow, fmtEps, type Want } from '../helpers/trace-flow.js'
import { generatedServices } from '../helpers/generated-services.js'
import { svcInfo, localEp as local, remoteEp as remote, categorized as svc } from '../../pkg/proxy/iptables/fixtures.js'
import { servicePortKey, type DesiredServicePort, type DesiredState } from '../../pkg/proxy/types.js'

const ENV: TraceEnv = { localAddresses: ['192.168.0.2', '192.168.1.2', '127.0.0.1', 'fd00:192::2', '::1'] }
const POD = '10.0.0.2'
const EXT = '203.0.113.2'
const NODE = '192.168.0.2'

interface Fam { readonly f: 'ip' | 'ip6', readonly t: string, readonly lo: string, readonly pods: string }
const V4: Fam = { f: 'ip', t: 'ipv4_addr', lo: '127.0.0.0/8', pods: '10.0.0.0/8' }
const V6: Fam = { f: 'ip6', t: 'ipv6_addr', lo: '::1', pods: 'fd00:10::/64' }

/** The fixed objects of the layout for one family, as the renderer writes them. */
function base ({ f, t, lo }: Fam): string {
  const vip = `${f} daddr . meta l4proto . th dport`
  return `add table ${f} ferry
delete table ${f} ferry
add table ${f} ferry
add map ${f} ferry service-ips { type ${t} . inet_proto . inet_service : verdict ; }
add map ${f} ferry service-nodeports { type inet_proto . inet_service : verdict ; }
add map ${f} ferry no-endpoint-cluster { type ${t} . inet_proto . inet_service : verdict ; }
add map ${f} ferry no-endpoint-external { type ${t} . inet_proto . inet_service : verdict ; }
add map ${f} ferry no-endpoint-nodeports { type inet_proto . inet_service : verdict ; }
add set ${f} ferry firewall-ips { type ${t} . inet_proto . inet_service ; }
add set ${f} ferry hairpin { type ${t} . ${t} ; }
add chain ${f} ferry nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }
add chain ${f} ferry nat-output { type nat hook output priority -100 ; policy accept ; }
add chain ${f} ferry nat-postrouting { type nat hook postrouting priority 100 ; policy accept ; }
add chain ${f} ferry filter-input { type filter hook input priority 0 ; policy accept ; }
add chain ${f} ferry filter-forward { type filter hook forward priority 0 ; policy accept ; }
add chain ${f} ferry filter-output { type filter hook output priority 0 ; policy accept ; }
add chain ${f} ferry services
add chain ${f} ferry mark-for-masquerade
add chain ${f} ferry masquerading
add chain ${f} ferry reject-chain
add rule ${f} ferry nat-prerouting jump services
add rule ${f} ferry nat-output jump services
add rule ${f} ferry nat-postrouting jump masquerading
add rule ${f} ferry filter-input ct state new ${vip} vmap @no-endpoint-cluster
add rule ${f} ferry filter-input ct state new ${vip} vmap @no-endpoint-external
add rule ${f} ferry filter-input ct state new fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ${f} ferry filter-input ct state new ${vip} @firewall-ips drop
add rule ${f} ferry filter-forward ct state invalid drop
add rule ${f} ferry filter-forward ct state new ${vip} vmap @no-endpoint-cluster
add rule ${f} ferry filter-forward ct state new ${vip} vmap @no-endpoint-external
add rule ${f} ferry filter-forward ct state new ${vip} @firewall-ips drop
add rule ${f} ferry filter-output ct state new ${vip} vmap @no-endpoint-cluster
add rule ${f} ferry filter-output ct state new ${vip} @firewall-ips drop
add rule ${f} ferry services ${vip} vmap @service-ips
add rule ${f} ferry services fib daddr type local ${f} daddr != ${lo} meta l4proto . th dport vmap @service-nodeports
add rule ${f} ferry mark-for-masquerade meta mark set meta mark | 0x4000
add rule ${f} ferry masquerading ct status dnat ${f} saddr . ${f} daddr @hairpin masquerade
add rule ${f} ferry masquerading meta mark & 0x4000 == 0 return
add rule ${f} ferry masquerading meta mark set meta mark ^ 0x4000
add rule ${f} ferry masquerading masquerade fully-random
add rule ${f} ferry reject-chain reject
`
}

/** A shared map + pick chain for (K, S, N). */
function pick ({ f }: Fam, k: 'vip' | 'np', s: 'cluster' | 'local', n: number): string {
  const key = k === 'vip' ? `${f} daddr . meta l4proto . th dport` : 'meta l4proto . th dport'
  return `add map ${f} ferry ${k}-${s}-${n} { typeof ${key} . numgen random mod ${n} : ${f} daddr . th dport ; }
add chain ${f} ferry pick-${k}-${s}-${n}
add rule ${f} ferry pick-${k}-${s}-${n} meta l4proto { tcp, udp, sctp } dnat ${f} to ${key} . numgen random mod ${n} map @${k}-${s}-${n}
`
}

/** Elements `key . i : ep` for endpoints `ip:port`. */
function eps (fam: Fam, map: string, key: string, endpoints: readonly string[]): string {
  const els = endpoints.map((e, i) => {
    const at = e.lastIndexOf(':')
    return `${key} . ${i} : ${e.slice(0, at)} . ${e.slice(at + 1)}`
  })
  const hp = endpoints.map(e => e.slice(0, e.lastIndexOf(':'))).map(ip => `${ip} . ${ip}`)
  return `add element ${fam.f} ferry ${map} { ${els.join(', ')} }\nadd element ${fam.f} ferry hairpin { ${hp.join(', ')} }\n`
}

function load (...parts: string[]): NftModel {
  const m = new NftModel()
  m.apply(parts.join(''))
  return m
}

const pkt = (src: string, dst: string, port: number, protocol: Protocol = 'TCP'): Packet => ({ src, dst, port, protocol })
const fmt = (r: NftTrace): string => r.endpoints.map(e => `${e.ip}:${e.port}${e.masquerade ? '(masq)' : ''}`).join(' ')

function reaches (t: Test, m: NftModel, p: Packet, want: string, name: string, family: 'IPv4' | 'IPv6' = 'IPv4'): NftTrace {
  const r = traceNft(m, family, ENV, p)
  t.equal(r.verdict, 'forward', `${name}: forwarded`, { paths: r.paths })
  t.equal(fmt(r), want, `${name}: reaches ${want}`, { paths: r.paths })
  return r
}

function verdict (t: Test, m: NftModel, p: Packet, want: NftTrace['verdict'], name: string, family: 'IPv4' | 'IPv6' = 'IPv4'): void {
  const r = traceNft(m, family, ENV, p)
  t.equal(r.verdict, want, `${name}: ${want}`, { paths: r.paths })
}

const closeTo = (t: Test, got: readonly number[], want: readonly number[], name: string): void => {
  t.ok(got.length === want.length && got.every((g, i) => Math.abs(g - (want[i] ?? NaN)) < 1e-9), `${name}: shares ${want.join(', ')}`, { got })
}

const CIP = (fam: Fam, n: number): string => `add chain ${fam.f} ferry cip-cluster-${n}
add rule ${fam.f} ferry cip-cluster-${n} ${fam.f} saddr != ${fam.pods} jump mark-for-masquerade
add rule ${fam.f} ferry cip-cluster-${n} goto pick-vip-cluster-${n}
`

t.test('ClusterIP: pods kept, others masqueraded, hairpin masqueraded, spread even', async t => {
  const m = load(base(V4), pick(V4, 'vip', 'cluster', 2), CIP(V4, 2),
    eps(V4, 'vip-cluster-2', '172.30.0.41 . tcp . 80', ['10.180.0.1:8080', '10.180.2.1:8080']),
    'add element ip ferry service-ips { 172.30.0.41 . tcp . 80 : goto cip-cluster-2 }\n')
  const r = reaches(t, m, pkt(POD, '172.30.0.41', 80), '10.180.0.1:8080 10.180.2.1:8080', 'pod to VIP')
  closeTo(t, r.shares, [0.5, 0.5], 'pod to VIP')
  t.equal(r.paths.length, 2, 'one path per numgen value')
  reaches(t, m, pkt(EXT, '172.30.0.41', 80), '10.180.0.1:8080(masq) 10.180.2.1:8080(masq)', 'external to VIP')
  reaches(t, m, pkt(NODE, '172.30.0.41', 80), '10.180.0.1:8080(masq) 10.180.2.1:8080(masq)', 'node to VIP')
  reaches(t, m, pkt('10.180.0.1', '172.30.0.41', 80), '10.180.0.1:8080(masq) 10.180.2.1:8080', 'endpoint to itself: hairpin')
  verdict(t, m, pkt(POD, '172.30.0.41', 80, 'UDP'), 'not-handled', 'other protocol')
  verdict(t, m, pkt(POD, '172.30.0.41', 443), 'not-handled', 'other port')
  verdict(t, m, pkt(POD, '172.30.0.42', 80), 'not-handled', 'other address')
})

t.test('NodePort, eTP=Cluster: any local address but loopback, masqueraded', async t => {
  const m = load(base(V4), pick(V4, 'np', 'cluster', 3),
    'add chain ip ferry ext-np-3\nadd rule ip ferry ext-np-3 jump mark-for-masquerade\nadd rule ip ferry ext-np-3 goto pick-np-cluster-3\n',
    eps(V4, 'np-cluster-3', 'tcp . 30080', ['10.180.0.1:80', '10.180.1.1:80', '10.180.2.1:80']),
    'add element ip ferry service-nodeports { tcp . 30080 : goto ext-np-3 }\n')
  const all = '10.180.0.1:80(masq) 10.180.1.1:80(masq) 10.180.2.1:80(masq)'
  closeTo(t, reaches(t, m, pkt(EXT, NODE, 30080), all, 'external to NodePort').shares, [1 / 3, 1 / 3, 1 / 3], 'three endpoints')
  reaches(t, m, pkt(POD, '192.168.1.2', 30080), all, 'pod to the second node address')
  reaches(t, m, pkt(NODE, NODE, 30080), all, 'node to itself')
  verdict(t, m, pkt('127.0.0.1', '127.0.0.1', 30080), 'not-handled', 'localhost NodePort')
  verdict(t, m, pkt(EXT, '192.168.7.7', 30080), 'not-handled', 'a non-local address')
})

t.test('eTP=Local: external keeps the client IP on local endpoints; pods and the node short-circuit', async t => {
  const m = load(base(V4), pick(V4, 'vip', 'cluster', 2), pick(V4, 'vip', 'local', 1),
    `add chain ip ferry xl-vip-2-1
add rule ip ferry xl-vip-2-1 ip saddr 10.0.0.0/8 goto pick-vip-cluster-2
add rule ip ferry xl-vip-2-1 fib saddr type local jump mark-for-masquerade
add rule ip ferry xl-vip-2-1 fib saddr type local goto pick-vip-cluster-2
add rule ip ferry xl-vip-2-1 goto pick-vip-local-1
`,
    eps(V4, 'vip-cluster-2', '5.6.7.8 . tcp . 80', ['10.180.0.2:80', '10.180.1.2:80']),
    eps(V4, 'vip-local-1', '5.6.7.8 . tcp . 80', ['10.180.0.2:80']),
    'add element ip ferry service-ips { 5.6.7.8 . tcp . 80 : goto xl-vip-2-1 }\n')
  reaches(t, m, pkt(EXT, '5.6.7.8', 80), '10.180.0.2:80', 'external to LB')
  reaches(t, m, pkt(POD, '5.6.7.8', 80), '10.180.0.2:80 10.180.1.2:80', 'pod to LB')
  reaches(t, m, pkt(NODE, '5.6.7.8', 80), '10.180.0.2:80(masq) 10.180.1.2:80(masq)', 'node to LB')
  // No local endpoints: the chain ends without DNAT and the filter map drops off-node clients.
  const none = load(base(V4), pick(V4, 'vip', 'cluster', 1),
    `add chain ip ferry xl-vip-1-0
add rule ip ferry xl-vip-1-0 ip saddr 10.0.0.0/8 goto pick-vip-cluster-1
add rule ip ferry xl-vip-1-0 fib saddr type local jump mark-for-masquerade
add rule ip ferry xl-vip-1-0 fib saddr type local goto pick-vip-cluster-1
`,
    eps(V4, 'vip-cluster-1', '5.6.7.8 . tcp . 80', ['10.180.1.2:80']),
    'add element ip ferry service-ips { 5.6.7.8 . tcp . 80 : goto xl-vip-1-0 }\n',
    'add element ip ferry no-endpoint-external { 5.6.7.8 . tcp . 80 : drop }\n')
  verdict(t, none, pkt(EXT, '5.6.7.8', 80), 'DROP', 'external, no local endpoint')
  reaches(t, none, pkt(POD, '5.6.7.8', 80), '10.180.1.2:80', 'pod, no local endpoint')
  // The node's own traffic to a remote-looking VIP is not checked on output.
  reaches(t, none, pkt(NODE, '5.6.7.8', 80), '10.180.1.2:80(masq)', 'node, no local endpoint')
})

t.test('loadBalancerSourceRanges: listed sources pass, the rest fall through to the filter drop', async t => {
  const m = load(base(V4), pick(V4, 'vip', 'cluster', 1),
    `add chain ip ferry ext-vip-1
add rule ip ferry ext-vip-1 jump mark-for-masquerade
add rule ip ferry ext-vip-1 goto pick-vip-cluster-1
add chain ip ferry fw-abc
add rule ip ferry fw-abc ip saddr 203.0.113.0/25 goto ext-vip-1
add rule ip ferry fw-abc ip saddr 192.168.0.0/24 goto ext-vip-1
add rule ip ferry fw-abc ip saddr 1.2.3.4 goto ext-vip-1
`,
    eps(V4, 'vip-cluster-1', '1.2.3.4 . tcp . 80', ['10.180.0.1:80']),
    'add element ip ferry service-ips { 1.2.3.4 . tcp . 80 : goto fw-abc }\n',
    'add element ip ferry firewall-ips { 1.2.3.4 . tcp . 80 }\n')
  reaches(t, m, pkt(EXT, '1.2.3.4', 80), '10.180.0.1:80(masq)', 'allowed client')
  verdict(t, m, pkt('203.0.113.130', '1.2.3.4', 80), 'DROP', 'blocked client')
  verdict(t, m, pkt(POD, '1.2.3.4', 80), 'DROP', 'pod')
  reaches(t, m, pkt(NODE, '1.2.3.4', 80), '10.180.0.1:80(masq)', 'node')
})

t.test('no endpoints: REJECT through reject-chain, DROP by verdict, on every hook', async t => {
  const m = load(base(V4),
    'add element ip ferry no-endpoint-cluster { 172.30.0.41 . tcp . 80 : goto reject-chain, 172.30.0.43 . tcp . 80 : drop }\n',
    'add element ip ferry no-endpoint-external { 1.2.3.4 . tcp . 80 : goto reject-chain }\n',
    'add element ip ferry no-endpoint-nodeports { tcp . 3001 : goto reject-chain }\n')
  verdict(t, m, pkt(POD, '172.30.0.41', 80), 'REJECT', 'pod to ClusterIP (forward)')
  verdict(t, m, pkt(NODE, '172.30.0.41', 80), 'REJECT', 'node to ClusterIP (output)')
  verdict(t, m, pkt(POD, '172.30.0.43', 80), 'DROP', 'iTP=Local, no local endpoint')
  verdict(t, m, pkt(EXT, '1.2.3.4', 80), 'REJECT', 'external to LB')
  verdict(t, m, pkt(EXT, NODE, 3001), 'REJECT', 'external to NodePort (input)')
  verdict(t, m, pkt('127.0.0.1', '127.0.0.1', 3001), 'REJECT', 'localhost to NodePort (output, then input)')
  verdict(t, m, pkt(EXT, '192.168.7.7', 3001), 'not-handled', 'NodePort refusals only on local addresses')
})

/** A per-service affinity pick chain over endpoints with the given cascade moduli. */
function affinity (fam: Fam, endpoints: readonly string[], moduli: readonly number[]): string {
  const { f } = fam
  let out = `add chain ${f} ferry aff-h-cluster\n`
  const rules: string[] = []
  endpoints.forEach((e, i) => {
    out += `add set ${f} ferry aff-h-cluster-${i} { type ${fam.t} ; flags dynamic,timeout ; timeout 10800s ; }
add chain ${f} ferry ep-h-cluster-${i}
add rule ${f} ferry ep-h-cluster-${i} update @aff-h-cluster-${i} { ${f} saddr }
add rule ${f} ferry ep-h-cluster-${i} meta l4proto tcp dnat ${f} to ${e}
`
    rules.push(`add rule ${f} ferry aff-h-cluster ${f} saddr @aff-h-cluster-${i} goto ep-h-cluster-${i}`)
  })
  moduli.forEach((k, i) => rules.push(`add rule ${f} ferry aff-h-cluster numgen random mod ${k} == 0 goto ep-h-cluster-${i}`))
  rules.push(`add rule ${f} ferry aff-h-cluster goto ep-h-cluster-${endpoints.length - 1}`)
  return out + rules.join('\n') + `
add chain ${f} ferry svc-h
add rule ${f} ferry svc-h ${f} saddr != ${fam.pods} jump mark-for-masquerade
add rule ${f} ferry svc-h goto aff-h-cluster
`
}

t.test('affinity cascade: a first connection may reach every endpoint, each equally', async t => {
  const four = ['10.180.0.1:80', '10.180.0.2:80', '10.180.0.3:80', '10.180.0.4:80']
  const m = load(base(V4), affinity(V4, four, [4, 3, 2]), 'add element ip ferry service-ips { 172.30.0.50 . tcp . 80 : goto svc-h }\n')
  const r = reaches(t, m, pkt(POD, '172.30.0.50', 80), four.join(' '), 'pod to affinity VIP')
  closeTo(t, r.shares, [0.25, 0.25, 0.25, 0.25], 'uniform cascade')
  t.equal(r.paths.length, 4, 'one path per cascade step')
  // A wrong cascade (1/2 first) still covers every endpoint, and the shares show the skew.
  const skewed = load(base(V4), affinity(V4, four, [2, 3, 2]), 'add element ip ferry service-ips { 172.30.0.50 . tcp . 80 : goto svc-h }\n')
  closeTo(t, traceNft(skewed, 'IPv4', ENV, pkt(POD, '172.30.0.50', 80)).shares, [1 / 2, 1 / 6, 1 / 6, 1 / 6], 'skewed cascade')
  // A remembered client goes to its endpoint only.
  const sticky = load(base(V4), affinity(V4, four, [4, 3, 2]), 'add element ip ferry service-ips { 172.30.0.50 . tcp . 80 : goto svc-h }\n',
    'add element ip ferry aff-h-cluster-2 { 10.0.0.2 }\n')
  reaches(t, sticky, pkt(POD, '172.30.0.50', 80), '10.180.0.3:80', 'known client')
})

t.test('every numgen branch is followed: a missing map slot shows as mixed', async t => {
  const m = load(base(V4), pick(V4, 'vip', 'cluster', 3), CIP(V4, 3),
    eps(V4, 'vip-cluster-3', '172.30.0.41 . tcp . 80', ['10.180.0.1:80', '10.180.0.2:80']),
    'add element ip ferry service-ips { 172.30.0.41 . tcp . 80 : goto cip-cluster-3 }\n')
  const r = traceNft(m, 'IPv4', ENV, pkt(POD, '172.30.0.41', 80))
  t.equal(r.verdict, 'mixed', 'one in three connections leaves un-DNATed')
  t.equal(r.paths.length, 3)
})

t.test('IPv6: the same layout with ip6 words', async t => {
  const m = load(base(V6), pick(V6, 'vip', 'cluster', 2), CIP(V6, 2),
    eps(V6, 'vip-cluster-2', 'fd00:96::10 . tcp . 80', ['fd00:10::5:8080', 'fd00:20::6:8080']),
    'add element ip6 ferry service-ips { fd00:96::10 . tcp . 80 : goto cip-cluster-2 }\n',
    'add element ip6 ferry no-endpoint-cluster { fd00:96::11 . udp . 53 : goto reject-chain }\n')
  closeTo(t, reaches(t, m, pkt('fd00:10::9', 'fd00:96::10', 80), 'fd00:10::5:8080 fd00:20::6:8080', 'pod to VIP', 'IPv6').shares, [0.5, 0.5], 'IPv6 spread')
  reaches(t, m, pkt('2001:db8::1', 'fd00:96:0::10', 80), 'fd00:10::5:8080(masq) fd00:20::6:8080(masq)', 'external to VIP', 'IPv6')
  reaches(t, m, pkt('fd00:10::5', 'fd00:96::10', 80), 'fd00:10::5:8080(masq) fd00:20::6:8080', 'hairpin', 'IPv6')
  verdict(t, m, pkt('fd00:10::9', 'fd00:96::11', 53, 'UDP'), 'REJECT', 'IPv6 refusal', 'IPv6')
  verdict(t, m, pkt(POD, '172.30.0.41', 80), 'not-handled', 'an IPv4 packet sees no ip6 table')
  const aff = load(base(V6), affinity(V6, ['[fd00:10::1]:80', '[fd00:10::2]:80'], [2]), 'add element ip6 ferry service-ips { fd00:96::50 . tcp . 80 : goto svc-h }\n')
  closeTo(t, reaches(t, aff, pkt('fd00:10::9', 'fd00:96::50', 80), 'fd00:10::1:80 fd00:10::2:80', 'IPv6 affinity', 'IPv6').shares, [0.5, 0.5], 'IPv6 cascade')
})

// ---- The renderer against the plan. PROXY.md §7's scenarios run over every renderer in
// proxy-trace.test.ts (there the nft rules are held to the plan under this mode's options, which force
// localhost NodePorts off); here is affinity, which the iptables tracer does not model, then a generated battery.

const BASE_OPTS: NftablesOptionsInput = { family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2', '192.168.1.2'] }
const SCENARIO_ENV: TraceEnv = { localAddresses: ['192.168.0.2', '192.168.1.2', '127.0.0.1'] }
const BLOCKED = '203.0.113.130'

function stateOf (...sps: DesiredServicePort[]): DesiredState {
  return { family: 'IPv4', services: new Map(sps.map(s => [servicePortKey(s.info), s])) }
}

function rendered (state: DesiredState, opts: NftablesOptionsInput): NftModel {
  const m = new NftModel()
  m.apply(renderFull(state, resolveNftablesOptions(opts)).text)
  return m
}

/** One packet against the plan tracer and the nft rules of the same state, spread included. */
function flow (t: Test, state: DesiredState, opts: NftablesOptionsInput, p: Packet, want: Want, name: string): void {
  const o = resolveNftablesOptions(opts)
  const byPlan = tracePlan([...state.services.values()].map(sp => planPort(sp, o)), o, SCENARIO_ENV, p)
  const byRules = traceNft(rendered(state, opts), 'IPv4', SCENARIO_ENV, p)
  expectFlow(t, p, want, name, [['plan', byPlan], ['nft rules', byRules]])
  const n = byRules.endpoints.length
  if (byRules.verdict === 'forward') t.ok(byRules.shares.every(s => Math.abs(s - 1 / n) < 1e-9), `${name}: even spread`, { shares: byRules.shares })
}

t.test('§7.16: ClientIP affinity, on the ClusterIP and external entry points', async t => {
  const info = svcInfo({ clusterIP: '172.30.0.70', nodePort: 3007, loadBalancerIPs: ['1.2.3.7'], stickyMaxAgeSeconds: 10800 })
  const s = stateOf(svc(info, [local('10.180.7.1'), remote('10.180.7.2'), remote('10.180.7.3')]))
  const all = ['10.180.7.1', '10.180.7.2', '10.180.7.3']
  flow(t, s, BASE_OPTS, pkt(POD, '172.30.0.70', 80), { reach: all, masq: false }, 'pod to ClusterIP')
  flow(t, s, BASE_OPTS, pkt(EXT, '1.2.3.7', 80), { reach: all, masq: true }, 'external to LB')
  flow(t, s, BASE_OPTS, pkt(EXT, NODE, 3007), { reach: all, masq: true }, 'external to NodePort')
})

/** Generated services with affinity (this mode's tracer models it), up to 4 endpoints each. */
const generated = (seed: number, count: number, prefix: string): DesiredServicePort[] =>
  generatedServices({ seed, count, prefix, endpointsBelow: 5, affinity: true })

const OPTION_SETS: readonly NftablesOptionsInput[] = [
  BASE_OPTS,
  { family: 'IPv4', nodeIPs: ['192.168.0.2'] },
  { ...BASE_OPTS, masqueradeAll: true },
  { ...BASE_OPTS, nodePortAddresses: ['192.168.0.0/24'] },
]

/**
 * Where the modes legitimately differ: with localhost NodePorts off, 127.0.0.1 -> 127.0.0.1:<eTP=Local
 * NodePort without local endpoints> from the node itself. No nat rule takes loopback, so the NodePort's
 * input refusal (DROP, on every local address, as kube-proxy's iptables rules do) applies; the plan
 * tracer, written for the short-circuit it would take on a NodePort address, calls it not-handled (as the
 * IPVS mode behaves). The battery expects the DROP and counts these packets.
 */
function loopbackGap (plans: readonly PortPlan[], o: ProxyOptions, p: Packet): boolean {
  if (p.dst !== '127.0.0.1' || p.src !== '127.0.0.1') return false
  return plans.some(pl => pl.sp.info.nodePort === p.port && pl.sp.info.protocol === p.protocol && pl.sp.info.family === o.family &&
    pl.hasAnyEndpoints && pl.externalSet === null)
}

/** Every packet to every entry point of `sps`, from the usual sources and the endpoints: plan vs nft. */
function battery (t: Test, state: DesiredState, opts: NftablesOptionsInput, m: NftModel, label: string): number {
  const o = resolveNftablesOptions(opts)
  const plans = [...state.services.values()].map(sp => planPort(sp, o))
  const sources = [POD, EXT, BLOCKED, NODE, '127.0.0.1', '10.180.3.1', '198.51.100.4']
  let compared = 0
  for (const sp of state.services.values()) {
    const info = sp.info
    const dsts: Array<[string, number]> = [[info.clusterIP, info.port], ...info.externalIPs.map((ip): [string, number] => [ip, info.port]),
      ...info.loadBalancerIPs.map((ip): [string, number] => [ip, info.port])]
    if (info.nodePort !== 0) dsts.push([NODE, info.nodePort], ['192.168.1.2', info.nodePort], ['127.0.0.1', info.nodePort])
    for (const [dst, port] of dsts) {
      for (const src of [...sources, ...sp.allReachableEndpoints.map(e => e.ip)]) {
        if (dst === '127.0.0.1' && src !== '127.0.0.1') continue
        const p = { src, dst, port, protocol: info.protocol }
        const plan = tracePlan(plans, o, SCENARIO_ENV, p)
        const a = plan.verdict === 'not-handled' && loopbackGap(plans, o, p) ? { ...plan, verdict: 'DROP' as const } : plan
        const b = traceNft(m, 'IPv4', SCENARIO_ENV, p)
        compared++
        if (a.verdict !== b.verdict || fmtEps(a.endpoints) !== fmtEps(b.endpoints)) {
          t.fail(`${label}: ${info.spn} ${src} -> ${dst}:${port}/${info.protocol}: plan ${a.verdict} ${fmtEps(a.endpoints)}, nft ${b.verdict} ${fmtEps(b.endpoints)}`,
            { paths: b.paths, reason: a.reason })
        } else if (b.verdict === 'forward' && !b.shares.every(x => Math.abs(x - 1 / b.shares.length) < 1e-9)) {
          t.fail(`${label}: ${info.spn} ${src} -> ${dst}:${port}: uneven spread ${b.shares.join(', ')}`, { paths: b.paths })
        }
      }
    }
  }
  return compared
}

t.test('generated services: the full render agrees with the plan on every packet', async t => {
  const state = stateOf(...generated(7, 40, 'g'))
  let compared = 0
  for (const opts of OPTION_SETS) compared += battery(t, state, opts, rendered(state, opts), JSON.stringify(opts))
  t.ok(compared > 2000, `${compared} packets compared`)
})

t.test('generated services: partial syncs apply cleanly and agree with the plan', async t => {
  const first = generated(11, 30, 'p')
  const opts = resolveNftablesOptions(BASE_OPTS)
  let state = stateOf(...first)
  const m = new NftModel()
  let r = renderFull(state, opts)
  m.apply(r.text)
  let compared = 0
  let stale: readonly string[] = []
  // Each round: new endpoints and policies for some services, some deleted, some added.
  for (let round = 1; round <= 4; round++) {
    const next = generated(11 + round * 101, 30, 'p')
    const changed = new Set<string>()
    const services = new Map(state.services)
    next.forEach((sp, i) => {
      if (i % 4 !== round % 4) return
      const key = servicePortKey(sp.info)
      changed.add(key)
      if (i % 8 === 0) services.delete(key)
      else services.set(key, sp)
    })
    const cur: DesiredState = { family: 'IPv4', services }
    // The previous sync's stale chains go first, in their own transaction (kernels < 6.2).
    if (stale.length > 0) m.apply(stale.map(c => `delete chain ip ferry ${c}`).join('\n'))
    r = renderPartial(cur, changed, r.owned, opts)
    t.ok(r.text.length > 0, `round ${round}: the partial sync writes something`)
    try {
      m.apply(r.text)
    } catch (e) {
      t.fail(`round ${round}: the partial transaction is refused: ${(e as Error).message}`)
      return
    }
    stale = r.staleChains
    compared += battery(t, cur, BASE_OPTS, m, `partial round ${round}`)
    state = cur
    // The partial result must equal a fresh full render of the same state, packet for packet.
    compared += battery(t, cur, BASE_OPTS, rendered(cur, BASE_OPTS), `full render after round ${round}`)
  }
  t.ok(compared > 1000, `${compared} packets compared`)
})
