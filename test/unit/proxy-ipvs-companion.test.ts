// IPVS mode's companion state as rendered: set names, set members per policy case, a ruleset that does
// not grow with Services, the ipset texts, the in-memory ipset, and the incremental set tracker against a
// fresh build. Packet behaviour is proxy-ipvs-trace.test.ts; loading it is proxy-ipvs-companion-apply.
import t from 'tap'
import { planPort, type PortPlan } from '../../pkg/proxy/plan.js'
import { svcInfo, localEp as local, remoteEp as remote, categorized as svc } from '../../pkg/proxy/iptables/fixtures.js'
import { companionSetSpecs, renderCompanion, resolveCompanionOptions, setName, SET_KINDS, type CompanionOptionsInput, type SetKind } from '../../pkg/proxy/ipvs/companion.js'
import { buildCompanionSets, CompanionSetsTracker } from '../../pkg/proxy/ipvs/companion-sets.js'
import { FakeIpset } from '../../pkg/proxy/ipvs/fake-ipset.js'
import { canonicalEntry, MAX_SET_NAME, swapRestore, tempName } from '../../pkg/proxy/ipvs/ipset.js'
import { isFerryError } from '../../pkg/errors/errors.js'
import type { DesiredServicePort, ServicePortInfo } from '../../pkg/proxy/types.js'
import { rngInt } from '../helpers/fuzz.js'

const NODE = { nodeName: 'test-node', zone: '' }
const BASE: CompanionOptionsInput = { family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2', '192.168.1.2'] }
const plansOf = (sps: readonly DesiredServicePort[], input: CompanionOptionsInput = BASE): PortPlan[] => {
  const o = resolveCompanionOptions(input)
  return sps.map(sp => planPort(sp, o))
}
function members (sps: readonly DesiredServicePort[], input: CompanionOptionsInput = BASE): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const s of buildCompanionSets(plansOf(sps, input), resolveCompanionOptions(input)).sets) {
    if (s.entries.size > 0) out[s.spec.name.replace(/^FERRY6?-/, '')] = [...s.entries].sort()
  }
  return out
}

t.test('set names: short enough with the temporary suffix, distinct per family', async t => {
  const v4 = companionSetSpecs('IPv4').map(s => s.name)
  const v6 = companionSetSpecs('IPv6').map(s => s.name)
  t.equal(v4.length, Object.keys(SET_KINDS).length)
  for (const n of [...v4, ...v6]) t.ok(tempName(n).length <= MAX_SET_NAME, `${tempName(n)} fits ${MAX_SET_NAME} characters`)
  t.same(v4.filter(n => v6.includes(n)), [], 'no name shared between families')
  t.ok(v4.every(n => n.startsWith('FERRY-')) && v6.every(n => n.startsWith('FERRY6-')))
  t.equal(setName('IPv6', 'LOOP-BACK'), 'FERRY6-LOOP-BACK')
})

t.test('members per policy case', async t => {
  // eTP=Cluster with source ranges allowing the node: masqueraded, firewalled, hairpin for the local endpoint.
  const web = svc(svcInfo({ name: 'web', clusterIP: '172.30.0.10', nodePort: 30080, loadBalancerIPs: ['1.2.3.4'], loadBalancerSourceRanges: ['192.168.0.0/24', '203.0.113.0/25'] }),
    [local('10.180.0.1'), remote('10.180.1.1')])
  t.same(members([web]), {
    'CLUSTER-IP': ['172.30.0.10,tcp:80'],
    'EXTERNAL-IP': ['1.2.3.4,tcp:80'],
    'EXTERNAL-MASQ': ['1.2.3.4,tcp:80', '192.168.0.2,tcp:30080', '192.168.1.2,tcp:30080'],
    'LB-FW': ['1.2.3.4,tcp:80'],
    'LB-SOURCE-CIDR': ['1.2.3.4,tcp:80,192.168.0.0/24', '1.2.3.4,tcp:80,203.0.113.0/25'],
    'LB-SOURCE-IP': ['1.2.3.4,tcp:80,1.2.3.4'],
    'LOOP-BACK': ['10.180.0.1,tcp:80,10.180.0.1'],
    'BOUND-IPS': ['1.2.3.4', '172.30.0.10'],
  })
  // eTP=Local without local endpoints: off-node clients dropped everywhere, pods and node short-circuit.
  const far = svc(svcInfo({ name: 'far', clusterIP: '172.30.0.12', nodePort: 30082, loadBalancerIPs: ['5.6.7.9'], externalPolicyLocal: true, healthCheckNodePort: 30012 }), [remote('10.180.1.3')])
  t.same(members([far]), {
    'CLUSTER-IP': ['172.30.0.12,tcp:80'],
    'EXTERNAL-IP': ['5.6.7.9,tcp:80'],
    'SHORT-CIRCUIT': ['192.168.0.2,tcp:30082', '192.168.1.2,tcp:30082', '5.6.7.9,tcp:80'],
    'DROP-OFF-NODE': ['127.0.0.1,tcp:30082', '192.168.0.2,tcp:30082', '192.168.1.2,tcp:30082', '5.6.7.9,tcp:80'],
    'HC-NODE-PORT': ['30012'],
    'BOUND-IPS': ['172.30.0.12', '5.6.7.9'],
  })
  const r = renderCompanion(plansOf([far]), resolveCompanionOptions(BASE))
  t.same(r.shortCircuits.map(s => [s.address, s.port, s.clusterIP, s.clusterPort]), [['5.6.7.9', 80, '172.30.0.12', 80], [null, 30082, '172.30.0.12', 80]], 'VIP short-circuits first, one per NodePort')
  // iTP=Local with remote endpoints only: the ClusterIP drops for every source. No endpoints: the
  // NodePort is rejected where no virtual server answers (loopback, addresses outside nodePortAddresses).
  const itl = svc(svcInfo({ name: 'itl', clusterIP: '172.30.0.13', internalPolicyLocal: true }), [remote('10.180.1.4')])
  const empty = svc(svcInfo({ name: 'empty', clusterIP: '172.30.0.14', nodePort: 30084 }), [])
  const m = members([itl, empty], { ...BASE, nodePortAddresses: ['192.168.0.0/24'] })
  t.same(m.DROP, ['172.30.0.13,tcp:80'])
  t.same(m.REJECT, ['127.0.0.1,tcp:30084', '192.168.1.2,tcp:30084'])
  t.same(m['EXTERNAL-MASQ'], undefined, 'a service without endpoints masquerades nothing')
  // A /0 range guards nothing (and ipset refuses /0 nets).
  const open = svc(svcInfo({ name: 'open', clusterIP: '172.30.0.16', loadBalancerIPs: ['1.2.3.5'], loadBalancerSourceRanges: ['0.0.0.0/0'] }), [remote('10.180.1.6')])
  t.same(members([open])['LB-FW'], undefined)
  // Given bound addresses replace the VIP default.
  t.same(members([web], { ...BASE, boundAddresses: ['172.30.0.10'] })['BOUND-IPS'], ['172.30.0.10'])
})

t.test('the first claim of an address and port wins, as for the virtual servers', async t => {
  const a = svc(svcInfo({ name: 'a', clusterIP: '172.30.0.20', externalIPs: ['192.168.1.2'], port: 31005 }), [remote('10.180.2.1')])
  const b = svc(svcInfo({ name: 'b', clusterIP: '172.30.0.21', nodePort: 31005, externalPolicyLocal: true }), [remote('10.180.2.2')])
  const c = svc(svcInfo({ name: 'c', clusterIP: '172.30.0.22', externalIPs: ['192.168.99.1'], externalPolicyLocal: true }), [])
  const d = svc(svcInfo({ name: 'd', clusterIP: '172.30.0.23', externalIPs: ['192.168.99.1'] }), [remote('10.180.2.4')])
  const m = members([b, a, c, d])
  t.ok(m['EXTERNAL-MASQ']?.includes('192.168.1.2,tcp:31005'), 'the externalIP on a node address is the VIP entry, though its Service comes later')
  t.notOk(m['SHORT-CIRCUIT']?.includes('192.168.1.2,tcp:31005'), 'the NodePort does not claim it')
  t.ok(m['SHORT-CIRCUIT']?.includes('192.168.0.2,tcp:31005'), 'the NodePort keeps the other address')
  t.notOk(m['EXTERNAL-MASQ']?.includes('192.168.99.1,tcp:80'), 'c claimed 192.168.99.1:80 first (no endpoints: refused by its VS); d does not add it')
})

t.test('the ruleset is fixed: Services add members, not rules (except one DNAT per eTP=Local entry)', async t => {
  const o = resolveCompanionOptions(BASE)
  const many = (n: number, o2: Partial<ServicePortInfo> = {}): DesiredServicePort[] => Array.from({ length: n }, (_, i) =>
    svc(svcInfo({ name: `s${i}`, clusterIP: `172.30.3.${i + 1}`, nodePort: 31000 + i, loadBalancerIPs: [`198.51.100.${i + 1}`], loadBalancerSourceRanges: ['203.0.113.0/25'], ...o2 }),
      [local(`10.180.3.${i + 1}`), remote(`10.180.4.${i + 1}`)]))
  const one = renderCompanion(plansOf(many(1)), o)
  const lots = renderCompanion(plansOf(many(200)), o)
  t.equal(lots.iptables, one.iptables, '200 eTP=Cluster services: the same rules as one')
  t.ok([...lots.sets].reduce((n, s) => n + s.entries.size, 0) > 1000, 'and many more members')
  const loc = renderCompanion(plansOf(many(3, { externalPolicyLocal: true })), o)
  t.equal(loc.rules.nat - one.rules.nat, 6, 'three eTP=Local services: one DNAT per LB IP and per NodePort')
  t.match(loc.iptables, /-A FERRY-IPVS-SHORTCUT -m comment --comment "ns1\/s0:p80 external address" -d 198\.51\.100\.1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172\.30\.3\.1:80\n/)
  t.match(loc.iptables, /-A FERRY-IPVS-SHORTCUT -m comment --comment "ns1\/s0:p80 node port" -p tcp -m tcp --dport 31000 -j DNAT --to-destination 172\.30\.3\.1:80\n/)
  const vipRules = loc.iptables.split('\n').filter(l => l.includes('SHORTCUT -m') && l.includes(' -d '))
  const last = loc.iptables.split('\n').filter(l => l.startsWith('-A FERRY-IPVS-SHORTCUT')).at(-1) ?? ''
  t.equal(vipRules.length, 3)
  t.notMatch(last, / -d /, 'NodePort DNATs come after every VIP DNAT')
})

t.test('rules by option: detector, masqueradeAll, mark bit, IPv6, jumps', async t => {
  const s = [svc(svcInfo({ clusterIP: '172.30.0.10', loadBalancerIPs: ['1.2.3.4'], externalPolicyLocal: true }), [local('10.180.0.1')])]
  const base = renderCompanion(plansOf(s), resolveCompanionOptions(BASE)).iptables
  t.match(base, /-A FERRY-IPVS-SERVICES .*--match-set FERRY-CLUSTER-IP dst,dst ! -s 10\.0\.0\.0\/8 -j FERRY-IPVS-MARK-MASQ/)
  t.match(base, /--match-set FERRY-SHORT-CIRCUIT dst,dst -s 10\.0\.0\.0\/8 -j FERRY-IPVS-SHORTCUT/)
  t.match(base, /--match-set FERRY-DROP-OFF-NODE dst,dst ! -s 10\.0\.0\.0\/8 -m addrtype ! --src-type LOCAL -j DROP/)
  t.match(base, /-A FERRY-IPVS-MARK-MASQ -j MARK --or-mark 0x4000\n/)
  const noDetector = renderCompanion(plansOf(s, { family: 'IPv4', nodeIPs: ['192.168.0.2'] }), resolveCompanionOptions({ family: 'IPv4', nodeIPs: ['192.168.0.2'] })).iptables
  t.notMatch(noDetector, /FERRY-CLUSTER-IP dst,dst .*MARK-MASQ/, 'no detector: ClusterIP traffic is not masqueraded')
  t.notMatch(noDetector, /-s [0-9]/, 'and no pod short-circuit')
  const all = renderCompanion(plansOf(s), resolveCompanionOptions({ ...BASE, masqueradeAll: true, masqueradeBit: 5 })).iptables
  t.match(all, /--match-set FERRY-CLUSTER-IP dst,dst -j FERRY-IPVS-MARK-MASQ/)
  t.match(all, /--or-mark 0x20\n/)
  t.match(all, /-m mark ! --mark 0x20\/0x20 -j RETURN/)
  const v6in: CompanionOptionsInput = { family: 'IPv6', clusterCIDR: 'fd00:10::/48', nodeIPs: ['fd00:77::1'] }
  const v6 = renderCompanion(plansOf([svc(svcInfo({ family: 'IPv6', clusterIP: 'fd00:30::10', loadBalancerIPs: ['fd00:99::4'], externalPolicyLocal: true }), [local('fd00:10::1')])], v6in),
    resolveCompanionOptions(v6in))
  t.match(v6.iptables, /-d fd00:99::4 -p tcp -m tcp --dport 80 -j DNAT --to-destination \[fd00:30::10\]:80/)
  t.match(v6.iptables, /--match-set FERRY6-SHORT-CIRCUIT dst,dst -s fd00:10::\/48/)
  t.match(v6.ipsetRestore, /create FERRY6-CLUSTER-IP hash:ip,port family inet6 /)
  t.match(v6.ipsetRestore, /add FERRY6-LOOP-BACK-T fd00:10::1,tcp:80,fd00:10::1\n/)
  const jumps = base.split('\n').filter(l => l.startsWith('-I '))
  t.same(jumps, [
    '-I PREROUTING 1 -m conntrack --ctstate NEW -m comment --comment "ferry ipvs firewall" -j FERRY-IPVS-FIREWALL',
    '-I OUTPUT 1 -m conntrack --ctstate NEW -m comment --comment "ferry ipvs firewall" -j FERRY-IPVS-FIREWALL',
    '-I INPUT 1 -m comment --comment "ferry ipvs filter" -j FERRY-IPVS-FILTER',
    '-I FORWARD 1 -m comment --comment "ferry ipvs forwarding rules" -j FERRY-IPVS-FORWARD',
    '-I PREROUTING 1 -m comment --comment "ferry ipvs services" -j FERRY-IPVS-SERVICES',
    '-I OUTPUT 1 -m comment --comment "ferry ipvs services" -j FERRY-IPVS-SERVICES',
    '-I POSTROUTING 1 -m comment --comment "ferry ipvs postrouting rules" -j FERRY-IPVS-POSTROUTING',
  ], 'every jump, each in its table')
  t.match(base, /^\*mangle\n(.*\n)*COMMIT\n\*filter\n(.*\n)*COMMIT\n\*nat\n(.*\n)*COMMIT\n$/, 'mangle, filter and nat in one payload')
  t.equal(renderCompanion(plansOf(s), resolveCompanionOptions(BASE), { jumps: [] }).iptables.split('\n').filter(l => l.startsWith('-I ')).length, 0, 'jumps only when asked')
})

t.test('ipset texts and canonical members', async t => {
  const spec = { name: 'FERRY-X', type: 'hash:ip,port' as const, family: 'IPv4' as const }
  t.equal(swapRestore([{ spec, entries: new Set(['1.2.3.4,tcp:80']) }]), [
    'create FERRY-X hash:ip,port family inet hashsize 1024 maxelem 1048576',
    'create FERRY-X-T hash:ip,port family inet hashsize 1024 maxelem 1048576',
    'flush FERRY-X-T', 'add FERRY-X-T 1.2.3.4,tcp:80', 'swap FERRY-X-T FERRY-X', 'destroy FERRY-X-T', '',
  ].join('\n'))
  t.equal(swapRestore([{ spec: { name: 'FERRY-P', type: 'bitmap:port', family: 'IPv4' }, entries: new Set(['30000']) }]).split('\n')[0], 'create FERRY-P bitmap:port range 0-65535')
  const cases: Array<[Parameters<typeof canonicalEntry>[0], string, string | null]> = [
    [{ type: 'hash:ip,port', family: 'IPv6' }, '[FD00::0001],TCP:80', 'fd00::1,tcp:80'],
    [{ type: 'hash:ip,port', family: 'IPv4' }, 'fd00::1,tcp:80', null],
    [{ type: 'hash:ip,port', family: 'IPv4' }, '1.2.3.4,icmp:8', null],
    [{ type: 'hash:ip,port,net', family: 'IPv4' }, '1.2.3.4,udp:53,10.0.0.5', '1.2.3.4,udp:53,10.0.0.5/32'],
    [{ type: 'hash:ip,port,net', family: 'IPv4' }, '1.2.3.4,udp:53,10.0.0.7/24', '1.2.3.4,udp:53,10.0.0.0/24'],
    [{ type: 'hash:ip,port,net', family: 'IPv4' }, '1.2.3.4,udp:53,0.0.0.0/0', null],
    [{ type: 'hash:ip,port,ip', family: 'IPv4' }, '10.0.0.1,sctp:9,10.0.0.1', '10.0.0.1,sctp:9,10.0.0.1'],
    [{ type: 'bitmap:port', family: 'IPv4' }, 'tcp:30000', '30000'],
    [{ type: 'bitmap:port', family: 'IPv4' }, '70000', null],
    [{ type: 'hash:ip', family: 'IPv4' }, '192.168.099.011', '192.168.99.11'],
  ]
  for (const [s, text, want] of cases) t.equal(canonicalEntry(s, text), want, `${s.type} ${text}`)
})

t.test('the in-memory ipset answers like the tool', async t => {
  const f = new FakeIpset()
  const r1 = await f.exec(['ipset', 'restore'], 'create a hash:ip,port family inet maxelem 8\nadd a 1.2.3.4,tcp:80\nadd a 1.2.3.4,tcp:80\nadd a 1.2.3.5,tcp:80\n')
  t.equal(r1.code, 1)
  t.match(r1.stderr, /Error in line 3: Element cannot be added to the set: it's already added/)
  t.same(f.members('a'), ['1.2.3.4,tcp:80'], 'lines before the error stay applied, lines after it do not run')
  t.equal((await f.exec(['ipset', 'restore', '-exist'], 'create a hash:ip,port family inet maxelem 8\nadd a 1.2.3.4,tcp:80\ndel a 9.9.9.9,tcp:1\ndestroy nosuch\n')).code, 0, '-exist forgives the same create, add, del and destroy')
  t.match((await f.exec(['ipset', 'restore', '-exist'], 'create a hash:ip,port family inet maxelem 9\n')).stderr, /set with the same name already exists/, 'a different maxelem is not the same set')
  t.match((await f.exec(['ipset', 'restore'], 'create b hash:ip family inet\nswap a b\n')).stderr, /Error in line 2: .*type does not match/)
  f.referenced = n => n === 'a'
  t.match((await f.exec(['ipset', 'destroy', 'a'])).stderr, /in use by a kernel component/)
  t.equal((await f.exec(['ipset', 'list', '-n'])).stdout, 'a\nb\n')
  t.match((await f.exec(['ipset', 'save'])).stdout, /^create a hash:ip,port family inet hashsize 1024 maxelem 8\nadd a 1\.2\.3\.4,tcp:80\n/)
  t.equal((await f.exec(['iptables-save'])).code, 127, 'other programs need a fallback')

  f.restore('create c hash:ip,port family inet\ncreate d hash:ip,port,net family inet\ncreate e bitmap:port range 0-65535\ncreate g hash:ip,port,ip family inet\n' +
    'add c 1.2.3.4,udp:53\nadd d 1.2.3.4,tcp:80,203.0.113.0/25\nadd e 30000\nadd g 10.0.0.1,tcp:80,10.0.0.1\n', false)
  const probe = (src: string, dst: string, dport: number, protocol: 'TCP' | 'UDP' = 'TCP') => ({ src, dst, dport, protocol })
  t.ok(f.test('c', ['dst', 'dst'], probe('9.9.9.9', '1.2.3.4', 53, 'UDP')))
  t.notOk(f.test('c', ['dst', 'dst'], probe('9.9.9.9', '1.2.3.4', 53, 'TCP')), 'the protocol is part of the member')
  t.ok(f.test('d', ['dst', 'dst', 'src'], probe('203.0.113.5', '1.2.3.4', 80)))
  t.notOk(f.test('d', ['dst', 'dst', 'src'], probe('203.0.113.130', '1.2.3.4', 80)))
  t.ok(f.test('e', ['dst'], probe('1.1.1.1', '2.2.2.2', 30000)))
  t.ok(f.test('g', ['dst', 'dst', 'src'], probe('10.0.0.1', '10.0.0.1', 80)))
  t.notOk(f.test('g', ['dst', 'dst', 'src'], probe('10.0.0.2', '10.0.0.1', 80)))
  t.throws(() => f.test('nosuch', ['dst'], probe('1.1.1.1', '2.2.2.2', 1)), /missing set/)
})

t.test('the incremental tracker always equals a fresh build', async t => {
  const rnd = rngInt(5)
  // Few addresses and ports, so claims clash often (shared VIPs, externalIPs on node addresses, NodePorts).
  const endpoints = (): ReturnType<typeof local>[] => Array.from({ length: rnd(3) }, (_, j) => (rnd(2) === 0 ? local : remote)(`10.180.${rnd(4)}.${j + 1}`))
  const make = (i: number): DesiredServicePort => {
    const eps = endpoints()
    return svc(svcInfo({
      name: `s${i}-${rnd(1000)}`,
      clusterIP: `172.30.0.${rnd(6) + 1}`,
      port: [80, 31000][rnd(2)],
      protocol: rnd(3) === 0 ? 'UDP' : 'TCP',
      nodePort: rnd(2) === 0 ? 31000 + rnd(3) : 0,
      externalIPs: rnd(3) === 0 ? [['192.168.1.2', '192.168.99.1'][rnd(2)] as string] : [],
      loadBalancerIPs: rnd(3) === 0 ? [`198.51.100.${rnd(3)}`] : [],
      loadBalancerSourceRanges: rnd(3) === 0 ? ['192.168.0.0/24'] : [],
      externalPolicyLocal: rnd(2) === 0,
      internalPolicyLocal: rnd(4) === 0,
      healthCheckNodePort: rnd(4) === 0 ? 32000 + rnd(3) : 0,
    }), eps)
  }
  const o = resolveCompanionOptions(BASE)
  const tracker = new CompanionSetsTracker()
  const kernel = new FakeIpset()
  // Keyed like the backend's plans: a replaced plan keeps its key's place, a new key goes last.
  const current = new Map<string, PortPlan>()
  let mismatches = 0
  let visitedPartial = 0
  let changedPartial = 0
  for (let step = 0; step < 300; step++) {
    const changed = new Set<string>()
    // One to three changes per step, sometimes to the same key twice.
    for (let n = 1 + rnd(3); n > 0; n--) {
      const keys = [...current.keys()]
      const op = rnd(5)
      if (op === 0 && keys.length > 0) { const k = keys[rnd(keys.length)] as string; current.delete(k); changed.add(k) }
      else if (op === 1 && keys.length > 0) { const k = keys[rnd(keys.length)] as string; current.set(k, planPort(make(step), o)); changed.add(k) }
      // The common change: the same Service with other endpoints (often the same share of the sets).
      else if (op === 2 && keys.length > 0) {
        const k = keys[rnd(keys.length)] as string
        current.set(k, planPort(svc((current.get(k) as PortPlan).sp.info, endpoints()), o))
        changed.add(k)
      }
      else { const k = `k${step}-${n}`; current.set(k, planPort(make(step), o)); changed.add(k) }
    }
    // Now and then the same content comes back as new objects with every key visited (a full resync).
    const resync = step % 37 === 0
    if (resync) for (const [k, p] of current) current.set(k, planPort(p.sp, o))
    const inc = tracker.update(current, resync ? null : changed, o)
    if (!resync) { visitedPartial += inc.visited; changedPartial += changed.size }
    const fresh = buildCompanionSets(current.values(), o)
    const a = inc.sets.map(s => `${s.spec.name}=${[...s.entries].sort().join(' ')}`).join('\n')
    const b = fresh.sets.map(s => `${s.spec.name}=${[...s.entries].sort().join(' ')}`).join('\n')
    const sa = JSON.stringify(inc.shortCircuits)
    const sb = JSON.stringify(fresh.shortCircuits)
    if (a !== b || sa !== sb) { mismatches++; t.fail(`step ${step}: the tracker differs from a fresh build`, { a, b, sa, sb }) }
    // The changes, applied as add/del lines, keep an in-memory kernel equal to the sets.
    const lines: string[] = inc.reset ? [swapRestore(inc.sets)] : []
    if (!inc.reset) {
      for (const [name, c] of inc.changes) {
        for (const e of c.del) lines.push(`del ${name} ${e}\n`)
        for (const e of c.add) lines.push(`add ${name} ${e}\n`)
      }
    }
    kernel.restore(lines.join(''), false)
    for (const s of inc.sets) {
      if (kernel.members(s.spec.name).join(' ') !== [...s.entries].sort().join(' ')) { mismatches++; t.fail(`step ${step}: ${s.spec.name} drifted`) }
    }
  }
  t.equal(mismatches, 0, '300 steps of adds, removals, replacements and resyncs')
  t.ok(visitedPartial <= changedPartial, `a partial update visits only the changed keys (${visitedPartial} visits for ${changedPartial} changed keys)`)
  const again = tracker.update(current, null, resolveCompanionOptions({ ...BASE, nodePortAddresses: ['192.168.0.0/24'] }))
  t.ok(again.reset, 'changed addresses start the tracker over')
})

t.test('a partial update never reads a plan it is not told about', async t => {
  const o = resolveCompanionOptions(BASE)
  const tracker = new CompanionSetsTracker()
  const plans = new Map<string, PortPlan>()
  for (let i = 0; i < 50; i++) {
    plans.set(`k${i}`, planPort(svc(svcInfo({ name: `s${i}`, clusterIP: `172.30.1.${i + 1}`, nodePort: 31000 + i }), [local(`10.180.5.${i + 1}`)]), o))
  }
  tracker.update(plans, null, o)
  // Every plan but the changed one now throws if anything reads it.
  const poisoned = new Map<string, PortPlan>()
  for (const [k, p] of plans) poisoned.set(k, new Proxy(p, { get: () => { throw new Error(`${k} was read`) } }))
  const edited = planPort(svc(svcInfo({ name: 's7', clusterIP: '172.30.1.8', nodePort: 31007 }), [local('10.180.6.1')]), o)
  poisoned.set('k7', edited)
  const u = tracker.update(poisoned, new Set(['k7']), o)
  t.equal(u.visited, 1, 'one plan visited')
  const change = u.changes.get('FERRY-LOOP-BACK')
  t.same([...(change?.add ?? [])], ['10.180.6.1,tcp:80,10.180.6.1'])
  t.same([...(change?.del ?? [])], ['10.180.5.8,tcp:80,10.180.5.8'])
  t.notOk(u.circuitsChanged, 'no short-circuit came or went: the rules need no render')
  const rest = [...u.changes].filter(([name, c]) => name !== 'FERRY-LOOP-BACK' && (c.add.size > 0 || c.del.size > 0))
  t.same(rest, [], 'no other set changed')
})

t.test('options are validated once', async t => {
  const caught = (fn: () => unknown): unknown => { try { fn(); return undefined } catch (e) { return e } }
  t.ok(isFerryError(caught(() => resolveCompanionOptions({ ...BASE, masqueradeBit: 32 })), 'FERRY_ERR_CONFIG'), 'a mark bit out of range')
  t.ok(isFerryError(caught(() => resolveCompanionOptions({ ...BASE, boundAddresses: ['not-an-ip'] })), 'FERRY_ERR_CONFIG'), 'a bound address that is not one')
  const o = resolveCompanionOptions({ ...BASE, nodePortIPs: ['192.168.0.2', 'fd00::1', '192.168.000.002'] })
  t.same(o.nodePortIPs, ['192.168.0.2'], 'other families dropped, duplicates merged')
  t.ok(Object.isFrozen(o))
  const kinds: SetKind[] = ['CLUSTER-IP', 'DROP']
  t.same(kinds.map(k => SET_KINDS[k]), ['hash:ip,port', 'hash:ip,port'])
})
