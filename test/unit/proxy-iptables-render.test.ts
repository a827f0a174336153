// Rendering of the iptables backend: fixtures follow PROXY.md §7 (pod CIDR 10.0.0.0/8, ClusterIPs 172.30.0.0/16).
import t from 'tap'
import { renderFull, renderPartial, probability, type Rendered } from '../../pkg/proxy/iptables/render.js'
import { desired, ep, stateOf, svcInfo, syntheticState, withEndpointChanged } from '../../pkg/proxy/iptables/fixtures.js'
import { OwnedChains } from '../../pkg/proxy/iptables/owned.js'
import type { RenderOptionsInput } from '../../pkg/proxy/iptables/options.js'
import { servicePortKey, type DesiredServicePort } from '../../pkg/proxy/types.js'

const OPTS: RenderOptionsInput = { family: 'IPv4', clusterCIDR: '10.0.0.0/8' }
const H1 = 'XPGD46QRK7WJZT7O' // ns1/svc1:p80 tcp

function lines (r: Rendered): string[] { return r.payload.split('\n') }
function table (r: Rendered, name: 'filter' | 'nat'): string[] {
  const all = lines(r)
  const start = all.indexOf(`*${name}`)
  const end = all.indexOf('COMMIT', start)
  return all.slice(start + 1, end)
}
function chainRules (r: Rendered, chain: string, tbl: 'filter' | 'nat' = 'nat'): string[] {
  return table(r, tbl).filter(l => l.startsWith(`-A ${chain} `))
}
function declared (r: Rendered, tbl: 'filter' | 'nat' = 'nat'): string[] {
  return table(r, tbl).filter(l => l.startsWith(':')).map(l => l.slice(1).split(' ')[0] ?? '')
}

const svc1 = desired(svcInfo({}), { cluster: [ep('10.180.0.1'), ep('10.180.0.2')] })

t.test('PROXY.md two-endpoint ClusterIP example, with FERRY- names', async t => {
  const r = renderFull(stateOf([svc1]), OPTS)
  const nat = table(r, 'nat')
  const expected = [
    `-A FERRY-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j FERRY-SVC-${H1}`,
    `-A FERRY-SVC-${H1} -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j FERRY-MARK-MASQ`,
    `-A FERRY-SVC-${H1} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j FERRY-SEP-SXIVWICOYRO3J4NJ`,
    `-A FERRY-SVC-${H1} -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j FERRY-SEP-LXVODXWDISEETFEF`,
    '-A FERRY-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j FERRY-MARK-MASQ',
    '-A FERRY-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80',
    '-A FERRY-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A FERRY-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A FERRY-POSTROUTING -m comment --comment "ferry service traffic requiring SNAT" -j MASQUERADE --random-fully',
    '-A FERRY-MARK-MASQ -j MARK --or-mark 0x4000',
  ]
  for (const l of expected) t.ok(nat.includes(l), l)
  const services = chainRules(r, 'FERRY-SERVICES')
  t.match(services.at(-1), /NOTE: this must be the last rule in this chain.*--dst-type LOCAL ! -d 127\.0\.0\.0\/8 -j FERRY-NODEPORTS$/,
    'NodePort jump is last and excludes localhost (localhostNodePorts defaults off)')
  t.same(chainRules(r, 'FERRY-SERVICES', 'filter'), [], 'no REJECT when endpoints exist')
  t.same(r.rulesWritten, { filter: 3, nat: 4 + 1 + 3 + 4 + 1 })
  t.same(r.rulesTotal, r.rulesWritten)
  t.ok(r.payload.startsWith('*filter\n'))
  t.ok(r.payload.endsWith('COMMIT\n'))
  t.same([...r.ownedChains].sort(), [`FERRY-SEP-LXVODXWDISEETFEF`, 'FERRY-SEP-SXIVWICOYRO3J4NJ', `FERRY-SVC-${H1}`])
})

t.test('probabilities', async t => {
  t.equal(probability(3), '0.3333333333')
  t.equal(probability(2), '0.5000000000')
  const r = renderFull(stateOf([desired(svcInfo({}), { cluster: [ep('10.180.0.1'), ep('10.180.0.2'), ep('10.180.0.3')] })]), OPTS)
  const rules = chainRules(r, `FERRY-SVC-${H1}`).filter(l => l.includes('FERRY-SEP-'))
  t.match(rules[0], /--probability 0\.3333333333 -j/)
  t.match(rules[1], /--probability 0\.5000000000 -j/)
  t.notMatch(rules[2], /statistic/)
})

interface ChainCase {
  name: string
  sp: DesiredServicePort
  present: string[]
  absent: string[]
  filter?: RegExp[]
  noNat?: boolean
}
const lbInfo = { nodePort: 3001, externalIPs: ['192.168.99.11'], loadBalancerIPs: ['1.2.3.4'] }
const remote = ep('10.180.1.2')
const local = ep('10.180.0.2', 80, { isLocal: true })
const chainCases: ChainCase[] = [
  {
    name: 'LB service without endpoints: REJECT everywhere, no nat rules',
    sp: desired(svcInfo(lbInfo), { cluster: [], hasAny: false }),
    present: [],
    absent: ['SVC', 'SVL', 'EXT', 'FW'],
    filter: [
      /^-A FERRY-SERVICES .*"ns1\/svc1:p80 has no endpoints" -m tcp -p tcp -d 172\.30\.0\.41 --dport 80 -j REJECT$/,
      /^-A FERRY-EXTERNAL-SERVICES .* -d 192\.168\.99\.11 --dport 80 -j REJECT$/,
      /^-A FERRY-EXTERNAL-SERVICES .* -d 1\.2\.3\.4 --dport 80 -j REJECT$/,
      /^-A FERRY-EXTERNAL-SERVICES .* -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT$/,
    ],
    noNat: true,
  },
  {
    name: 'eTP=Cluster LB: SVC and EXT',
    sp: desired(svcInfo(lbInfo), { cluster: [remote, local] }),
    present: ['SVC', 'EXT'],
    absent: ['SVL', 'FW'],
  },
  {
    name: 'eTP=Local with local endpoint: SVC, SVL, EXT',
    sp: desired(svcInfo({ ...lbInfo, externalPolicyLocal: true }), { cluster: [remote, local], local: [local] }),
    present: ['SVC', 'SVL', 'EXT'],
    absent: ['FW'],
  },
  {
    name: 'eTP=Local with only remote endpoints: DROP external, EXT keeps the short-circuit',
    sp: desired(svcInfo({ ...lbInfo, externalPolicyLocal: true }), { cluster: [remote], local: [] }),
    present: ['SVC', 'EXT'],
    absent: ['SVL', 'FW'],
    filter: [
      /^-A FERRY-EXTERNAL-SERVICES .*"ns1\/svc1:p80 has no local endpoints" .* -d 1\.2\.3\.4 --dport 80 -j DROP$/,
      /^-A FERRY-EXTERNAL-SERVICES .*--dport 3001 -j DROP$/,
    ],
  },
  {
    name: 'iTP=Local with only remote endpoints: ClusterIP DROP',
    sp: desired(svcInfo({ internalPolicyLocal: true }), { cluster: null, local: [], hasAny: true }),
    present: [],
    absent: ['SVC', 'SVL', 'EXT'],
    filter: [/^-A FERRY-SERVICES .*has no local endpoints.* -d 172\.30\.0\.41 --dport 80 -j DROP$/],
    noNat: true,
  },
  {
    name: 'iTP=Local with local endpoint: SVL only, ClusterIP jumps to SVL',
    sp: desired(svcInfo({ internalPolicyLocal: true }), { cluster: null, local: [local] }),
    present: ['SVL'],
    absent: ['SVC', 'EXT'],
  },
  {
    name: 'source ranges: FW chain and filter PROXY-FIREWALL drop',
    sp: desired(svcInfo({ ...lbInfo, loadBalancerSourceRanges: ['192.168.0.0/24', ' 203.0.113.0/25'] }), { cluster: [remote] }),
    present: ['SVC', 'EXT', 'FW'],
    absent: ['SVL'],
    filter: [/^-A FERRY-PROXY-FIREWALL .*traffic not accepted by FERRY-FW-XPGD46QRK7WJZT7O" -m tcp -p tcp -d 1\.2\.3\.4 --dport 80 -j DROP$/],
  },
]

t.test('per-service chains present per PROXY.md table', async t => {
  for (const c of chainCases) {
    t.test(c.name, async t => {
      const r = renderFull(stateOf([c.sp]), OPTS)
      const decl = declared(r)
      for (const p of c.present) t.ok(decl.includes(`FERRY-${p}-${H1}`), `${p} declared`)
      for (const p of c.absent) t.notOk(decl.includes(`FERRY-${p}-${H1}`), `${p} absent`)
      const f = [...table(r, 'filter')]
      for (const re of c.filter ?? []) t.ok(f.some(l => re.test(l)), `filter ${String(re)}`)
      if (c.noNat === true) t.notOk(table(r, 'nat').some(l => l.includes('ns1/svc1')), 'no nat rule mentions the service')
      // SEP chains exist exactly for the reachable endpoints
      t.equal(decl.filter(d => d.startsWith('FERRY-SEP-')).length, c.sp.allReachableEndpoints.length)
    })
  }
})

t.test('eTP=Local EXT chain order and targets', async t => {
  const r = renderFull(stateOf([desired(svcInfo({ ...lbInfo, externalPolicyLocal: true }), { cluster: [remote, local], local: [local] })]), OPTS)
  const ext = chainRules(r, `FERRY-EXT-${H1}`)
  t.equal(ext.length, 4)
  t.match(ext[0], new RegExp(`-s 10\\.0\\.0\\.0/8 -j FERRY-SVC-${H1}$`))
  t.match(ext[1], /--src-type LOCAL -j FERRY-MARK-MASQ$/)
  t.match(ext[2], new RegExp(`--src-type LOCAL -j FERRY-SVC-${H1}$`))
  t.equal(ext[3], `-A FERRY-EXT-${H1} -j FERRY-SVL-${H1}`)
  t.ok(chainRules(r, 'FERRY-SERVICES').some(l => l.includes('-d 1.2.3.4') && l.endsWith(`-j FERRY-EXT-${H1}`)))
  t.ok(chainRules(r, 'FERRY-NODEPORTS').some(l => l.includes('--dport 3001') && l.endsWith(`-j FERRY-EXT-${H1}`)))
  t.notOk(chainRules(r, `FERRY-SVL-${H1}`).some(l => l.includes('MARK-MASQ')), 'no ClusterIP masquerade in SVL under iTP=Cluster')

  const noDetector = renderFull(stateOf([desired(svcInfo({ ...lbInfo, externalPolicyLocal: true }), { cluster: [remote, local], local: [local] })]), { family: 'IPv4' })
  t.equal(chainRules(noDetector, `FERRY-EXT-${H1}`).length, 3, 'no pod short-circuit without a detector')
  t.notOk(chainRules(noDetector, `FERRY-SVC-${H1}`).some(l => l.includes('MARK-MASQ')), 'no ClusterIP masquerade without a detector')
})

t.test('eTP=Cluster EXT masquerades then jumps to SVC', async t => {
  const r = renderFull(stateOf([desired(svcInfo(lbInfo), { cluster: [remote] })]), OPTS)
  t.same(chainRules(r, `FERRY-EXT-${H1}`).map(l => l.replace(/ -m comment --comment "[^"]*"/, '')),
    [`-A FERRY-EXT-${H1} -j FERRY-MARK-MASQ`, `-A FERRY-EXT-${H1} -j FERRY-SVC-${H1}`])
})

t.test('masqueradeAll marks all ClusterIP traffic', async t => {
  const r = renderFull(stateOf([svc1]), { ...OPTS, masqueradeAll: true })
  t.ok(chainRules(r, `FERRY-SVC-${H1}`).some(l => l.endsWith('--dport 80 -j FERRY-MARK-MASQ')))
})

t.test('masquerade bit', async t => {
  const r = renderFull(stateOf([svc1]), { ...OPTS, masqueradeBit: 5 })
  t.ok(lines(r).includes('-A FERRY-MARK-MASQ -j MARK --or-mark 0x20'))
  t.ok(lines(r).includes('-A FERRY-FORWARD -m comment --comment "ferry forwarding rules" -m mark --mark 0x20/0x20 -j ACCEPT'))
})

t.test('FW chain allows the LB IPs when a range holds a node IP', async t => {
  const sp = desired(svcInfo({ ...lbInfo, loadBalancerSourceRanges: ['192.168.0.0/24', '203.0.113.0/25'] }), { cluster: [remote] })
  const r = renderFull(stateOf([sp]), { ...OPTS, nodeIPs: ['192.168.0.2'] })
  const fw = chainRules(r, `FERRY-FW-${H1}`)
  t.same(fw.map(l => l.replace(/ -m comment --comment "[^"]*"/, '')), [
    `-A FERRY-FW-${H1} -s 192.168.0.0/24 -j FERRY-EXT-${H1}`,
    `-A FERRY-FW-${H1} -s 203.0.113.0/25 -j FERRY-EXT-${H1}`,
    `-A FERRY-FW-${H1} -s 1.2.3.4 -j FERRY-EXT-${H1}`,
  ])
  t.ok(chainRules(r, 'FERRY-SERVICES').some(l => l.includes('-d 1.2.3.4') && l.endsWith(`-j FERRY-FW-${H1}`)))
  t.ok(chainRules(r, 'FERRY-NODEPORTS').some(l => l.endsWith(`-j FERRY-EXT-${H1}`)), 'NodePorts ignore source ranges')
})

t.test('ClientIP affinity', async t => {
  const sp = desired(svcInfo({ stickyMaxAgeSeconds: 10800 }), { cluster: [ep('10.180.0.1'), ep('10.180.0.2')] })
  const r = renderFull(stateOf([sp]), OPTS)
  const svc = chainRules(r, `FERRY-SVC-${H1}`)
  t.match(svc[1], /-m recent --name FERRY-SEP-SXIVWICOYRO3J4NJ --rcheck --seconds 10800 --reap -j FERRY-SEP-SXIVWICOYRO3J4NJ$/)
  t.match(svc[2], /-m recent --name FERRY-SEP-LXVODXWDISEETFEF --rcheck --seconds 10800 --reap -j FERRY-SEP-LXVODXWDISEETFEF$/)
  t.match(svc[3], /--probability 0\.5000000000/)
  t.match(chainRules(r, 'FERRY-SEP-SXIVWICOYRO3J4NJ')[1], /-m recent --name FERRY-SEP-SXIVWICOYRO3J4NJ --set -m tcp -p tcp -j DNAT --to-destination 10\.180\.0\.1:80$/)
})

t.test('health check node port ACCEPT', async t => {
  const sp = desired(svcInfo({ ...lbInfo, externalPolicyLocal: true, healthCheckNodePort: 30002 }), { cluster: [local], local: [local] })
  const r = renderFull(stateOf([sp]), OPTS)
  t.ok(chainRules(r, 'FERRY-NODEPORTS', 'filter').some(l => l.endsWith('-m tcp -p tcp --dport 30002 -j ACCEPT')))
})

t.test('nodePortAddresses and localhost NodePorts', async t => {
  const st = stateOf([svc1])
  const jumps = (o: Partial<RenderOptionsInput>): string[] => chainRules(renderFull(st, { ...OPTS, ...o }), 'FERRY-SERVICES').filter(l => l.endsWith('-j FERRY-NODEPORTS'))
  t.same(jumps({ nodePortAddresses: ['192.168.0.0/24', '127.0.0.1/32', 'fd00::/64'] }).map(l => l.replace(/ -m comment --comment "[^"]*"/, '')),
    ['-A FERRY-SERVICES -d 192.168.0.0/24 -m addrtype --dst-type LOCAL -j FERRY-NODEPORTS'], 'loopback and other-family CIDRs skipped')
  t.match(jumps({ localhostNodePorts: true })[0], /--dst-type LOCAL -j FERRY-NODEPORTS$/)
  const withLocalhost = renderFull(st, { ...OPTS, localhostNodePorts: true })
  t.ok(chainRules(withLocalhost, 'FERRY-FIREWALL', 'filter').some(l => l.includes('-d 127.0.0.0/8 ! -s 127.0.0.0/8')))
  t.same(chainRules(renderFull(st, OPTS), 'FERRY-FIREWALL', 'filter'), [])
})

t.test('IPv6', async t => {
  const sp = desired(svcInfo({ family: 'IPv6', clusterIP: 'fd00:30::41', nodePort: 3001 }), { cluster: [ep('fd00:180::1')] })
  const r = renderFull(stateOf([sp], 'IPv6'), { family: 'IPv6', clusterCIDR: 'fd00::/16' })
  t.ok(table(r, 'nat').some(l => l.endsWith('-j DNAT --to-destination [fd00:180::1]:80')))
  t.ok(chainRules(r, 'FERRY-SERVICES').some(l => l.includes('! -d ::1/128 -j FERRY-NODEPORTS')))
  t.ok(chainRules(r, 'FERRY-SERVICES').some(l => l.includes('-d fd00:30::41 --dport 80')))
  t.ok(chainRules(r, `FERRY-SVC-${H1}`).some(l => l.includes('! -s fd00::/16 -j FERRY-MARK-MASQ')))
})

t.test('UDP and SCTP use their own match', async t => {
  for (const protocol of ['UDP', 'SCTP'] as const) {
    const r = renderFull(stateOf([desired(svcInfo({ protocol, port: 53 }), { cluster: [ep('10.180.0.1', 5353)] })]), OPTS)
    const p = protocol.toLowerCase()
    t.ok(table(r, 'nat').some(l => l.includes(`-m ${p} -p ${p} -d 172.30.0.41 --dport 53`)), protocol)
    t.ok(table(r, 'nat').some(l => l.endsWith(`-m ${p} -p ${p} -j DNAT --to-destination 10.180.0.1:5353`)), protocol)
  }
})

t.test('partial sync writes only changed services, deletes stale chains', async t => {
  const a = desired(svcInfo({ name: 'a', clusterIP: '172.30.0.1' }), { cluster: [ep('10.180.0.1'), ep('10.180.0.2')] })
  const b = desired(svcInfo({ name: 'b', clusterIP: '172.30.0.2' }), { cluster: [ep('10.180.0.3')] })
  const c = desired(svcInfo({ name: 'c', clusterIP: '172.30.0.3' }), { cluster: [ep('10.180.0.4')] })
  const full = renderFull(stateOf([a, b, c]), OPTS)
  const aChains = [...(full.ownedChains.chainsOf(servicePortKey(a.info)) ?? [])]
  const bChains = [...(full.ownedChains.chainsOf(servicePortKey(b.info)) ?? [])]
  const cChains = [...(full.ownedChains.chainsOf(servicePortKey(c.info)) ?? [])]
  t.equal(aChains.length, 3)

  // a: endpoint 10.180.0.2 replaced by 10.180.0.9; c: deleted; b: unchanged.
  const a2 = desired(a.info, { cluster: [ep('10.180.0.1'), ep('10.180.0.9')] })
  const changed = new Set([servicePortKey(a.info), servicePortKey(c.info)])
  const p = renderPartial(stateOf([a2, b]), changed, full.ownedChains, OPTS)
  t.equal(p.kind, 'partial')
  const decl = declared(p)
  for (const ch of bChains) {
    t.notOk(decl.includes(ch), `unchanged ${ch} not declared (declaring would flush it)`)
    t.notOk(table(p, 'nat').some(l => l.startsWith(`-A ${ch} `)), `unchanged ${ch} not written`)
    t.ok(p.ownedChains.has(ch), `unchanged ${ch} still owned`)
  }
  t.ok(chainRules(p, 'FERRY-SERVICES').some(l => l.includes('-d 172.30.0.2')), 'top-level rules of unchanged services rewritten')
  const oldSep = aChains.find(ch => !p.ownedChains.has(ch))
  t.ok(oldSep !== undefined, 'the replaced endpoint chain is no longer owned')
  t.same([...p.deletedChains].sort(), [oldSep, ...cChains].sort())
  for (const ch of p.deletedChains) {
    t.ok(decl.includes(ch), `deleted ${ch} declared (flushed)`)
    t.ok(table(p, 'nat').includes(`-X ${ch}`), `deleted ${ch} removed`)
  }
  const natLines = table(p, 'nat')
  t.ok(natLines.findIndex(l => l.startsWith('-X ')) > natLines.findLastIndex(l => l.startsWith('-A ')), '-X after every rule')
  t.ok(decl.includes(`FERRY-SVC-${full.ownedChains.chainsOf(servicePortKey(a.info))?.[0]?.slice(10) ?? ''}`), 'changed SVC declared')

  // Totals equal a full render of the same state.
  const again = renderFull(stateOf([a2, b]), OPTS)
  t.same(p.rulesTotal, again.rulesTotal)
  t.ok(p.rulesWritten.nat < again.rulesWritten.nat)
  t.same([...p.ownedChains].sort(), [...again.ownedChains].sort())
})

t.test('partial with a plain Set of previous chains', async t => {
  const full = renderFull(stateOf([svc1]), OPTS)
  const p = renderPartial(stateOf([]), new Set([servicePortKey(svc1.info)]), new Set(full.ownedChains), OPTS)
  t.same([...p.deletedChains].sort(), [...full.ownedChains].sort())
  t.equal(p.ownedChains.size, 0)
})

t.test('full sync deletes stale chains found in the kernel, never KUBE- or top-level ones', async t => {
  const existing = new Set(['FERRY-SVC-AAAAAAAAAAAAAAAA', 'FERRY-SEP-BBBBBBBBBBBBBBBB', `FERRY-SVC-${H1}`, 'FERRY-SERVICES', 'KUBE-SVC-XPGD46QRK7WJZT7O'])
  const r = renderFull(stateOf([svc1]), OPTS, existing)
  t.same([...r.deletedChains].sort(), ['FERRY-SEP-BBBBBBBBBBBBBBBB', 'FERRY-SVC-AAAAAAAAAAAAAAAA'])
  const again = renderFull(stateOf([]), OPTS, r.ownedChains)
  t.same([...again.deletedChains].sort(), [...r.ownedChains].sort(), 'full after full deletes by previous ownership')
})

t.test('rule counts of skipped services match what a full render writes', async t => {
  const sps = [
    ...chainCases.map((c, i) => desired({ ...c.sp.info, spn: `ns/c${i}`, name: `c${i}` }, {
      cluster: c.sp.clusterEndpoints, local: c.sp.localEndpoints, hasAny: c.sp.hasAnyEndpoints,
    })),
    desired(svcInfo({ name: 'sticky', stickyMaxAgeSeconds: 60, ...lbInfo, externalPolicyLocal: true, internalPolicyLocal: true }), { cluster: [remote, local], local: [local] }),
  ]
  const st = stateOf(sps)
  for (const o of [OPTS, { family: 'IPv4' as const }, { ...OPTS, masqueradeAll: true, nodeIPs: ['192.168.0.2'] }]) {
    const full = renderFull(st, o)
    const none = renderPartial(st, new Set(), full.ownedChains, o)
    t.same(none.rulesTotal, full.rulesTotal)
    t.same(none.deletedChains, [])
    t.equal(none.ownedChains.size, full.ownedChains.size)
  }
})

t.test('large clusters drop per-service comments', async t => {
  const st = syntheticState(300, 5)
  const r = renderFull(st, OPTS)
  t.notOk(table(r, 'nat').some(l => l.startsWith('-A FERRY-SEP-') && l.includes('--comment')))
  t.ok(chainRules(r, 'FERRY-SERVICES').every(l => l.includes('--comment')), 'top-level rules keep comments')
})

t.test('render scale: 50k services x 5 endpoints', async t => {
  const st = syntheticState(50000, 5)
  let t0 = performance.now()
  const r = renderFull(st, OPTS)
  const fullMs = performance.now() - t0
  t.equal(r.ownedChains.size, 50000 * 6 + 2500, "SVC + 5 SEP each, EXT on every twentieth (NodePort)")
  const { state, key } = withEndpointChanged(st, 123, '10.250.0.1')
  t0 = performance.now()
  const p = renderPartial(state, new Set([key]), r.ownedChains, OPTS)
  const partialMs = performance.now() - t0
  t.equal(p.deletedChains.length, 1)
  t.equal(p.ownedChains.size, r.ownedChains.size)
  t.comment(`full ${fullMs.toFixed(0)} ms, partial ${partialMs.toFixed(0)} ms, ${(r.payload.length / 1e6).toFixed(1)} MB`)
  t.ok(fullMs < 15000, 'full render finishes (loose bound: shared CI hosts are noisy)')
})
