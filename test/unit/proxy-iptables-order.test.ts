// The nat table is written chain by chain in name order, with the chains declared in reverse name order:
// libiptc restores that shape fastest (bench/README.md). Rule order within a chain is
// what decides packets, so it must be unchanged by the regrouping.
import t from 'tap'
import { desired, ep, stateOf, svcInfo, syntheticState, withEndpointChanged } from '../../pkg/proxy/iptables/fixtures.js'
import { Chain } from '../../pkg/proxy/iptables/names.js'
import { renderFull, renderPartial } from '../../pkg/proxy/iptables/render.js'
import { fullSyncExtras, jumps } from '../../pkg/proxy/iptables/restore.js'

const OPTS = { family: 'IPv4' as const, clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2'] }
const TOP = new Set<string>([Chain.SERVICES, Chain.NODEPORTS, Chain.POSTROUTING, Chain.MARK_MASQ, Chain.CANARY])

interface Nat { decls: string[], runs: Array<{ chain: string, rules: string[] }>, rest: string[] }

function natTable (payload: string): Nat {
  const lines = payload.split('\n')
  const body = lines.slice(lines.indexOf('*nat') + 1)
  const out: Nat = { decls: [], runs: [], rest: [] }
  for (const l of body.slice(0, body.indexOf('COMMIT'))) {
    if (l.startsWith(':')) out.decls.push(l.slice(1, l.indexOf(' ')))
    else if (l.startsWith('-A ')) {
      const chain = l.split(' ')[1] ?? ''
      const last = out.runs.at(-1)
      if (last?.chain === chain) last.rules.push(l)
      else out.runs.push({ chain, rules: [l] })
    } else out.rest.push(l)
  }
  return out
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort((a, b) => a < b ? -1 : a > b ? 1 : 0)

function mixedState (): ReturnType<typeof stateOf> {
  const base = syntheticState(60, 3)
  const extra = [
    desired(svcInfo({ name: 'lb', clusterIP: '172.30.0.50', nodePort: 30050, loadBalancerIPs: ['203.0.113.9'], loadBalancerSourceRanges: ['203.0.113.0/24', '192.168.0.0/24'] }),
      { cluster: [ep('10.180.0.1'), ep('10.180.0.2')] }),
    desired(svcInfo({ name: 'local', clusterIP: '172.30.0.51', nodePort: 30051, externalPolicyLocal: true, stickyMaxAgeSeconds: 60 }),
      { cluster: [ep('10.180.0.3'), ep('10.180.0.4', 80, { isLocal: true })], local: [ep('10.180.0.4', 80, { isLocal: true })] }),
  ]
  return stateOf([...base.services.values(), ...extra])
}

t.test('full render: per-service chains declared and written in name order, one run per chain', async t => {
  const r = renderFull(mixedState(), OPTS, new Set(), fullSyncExtras(jumps('IPv4')))
  const nat = natTable(r.payload)
  const perService = nat.decls.filter(c => !TOP.has(c))
  t.same(perService, sorted(perService).reverse(), 'per-service declarations in reverse name order')
  t.same(sorted(perService), sorted([...r.ownedChains]), 'every owned chain declared once')
  const chains = nat.runs.map(x => x.chain)
  t.equal(new Set(chains).size, chains.length, 'each chain\'s rules come in one run')
  t.same(chains, sorted(chains), 'runs in chain-name order')
  for (const k of ['SVC', 'SVL', 'EXT', 'FW', 'SEP']) t.ok(chains.some(c => c.startsWith(`FERRY-${k}-`)), `has ${k} chains`)

  const services = nat.runs.find(x => x.chain === Chain.SERVICES)?.rules ?? []
  t.match(services.at(-1), /NOTE: this must be the last rule in this chain.* -j FERRY-NODEPORTS$/, 'nodeports jump stays last')
  t.equal(services.length, 60 + 2 + 1 + 1, 'one VIP rule per service, the LB IP rule and the nodeports jump')
  t.same(nat.runs.find(x => x.chain === Chain.POSTROUTING)?.rules.map(l => l.split(' -j ')[1]?.split(' ')[0]), ['RETURN', 'MARK', 'MASQUERADE'])

  // Intra-chain order: a 3-endpoint SVC chain is masquerade, 1/3, 1/2, then the last endpoint.
  const svc = nat.runs.find(x => x.chain.startsWith('FERRY-SVC-') && x.rules.length === 4)
  t.ok(svc !== undefined)
  t.match(svc?.rules[0], /-j FERRY-MARK-MASQ$/)
  t.match(svc?.rules[1], /--probability 0\.3333333333 /)
  t.match(svc?.rules[2], /--probability 0\.5000000000 /)
  t.notMatch(svc?.rules[3], /probability/)
  const sep = nat.runs.find(x => x.chain.startsWith('FERRY-SEP-'))
  t.match(sep?.rules, [/-j FERRY-MARK-MASQ$/, /-j DNAT --to-destination /], 'SEP: hairpin masquerade, then DNAT')
  t.same(nat.rest, ['-I PREROUTING 1 -m comment --comment "ferry service portals" -j FERRY-SERVICES',
    '-I OUTPUT 1 -m comment --comment "ferry service portals" -j FERRY-SERVICES',
    '-I POSTROUTING 1 -m comment --comment "ferry postrouting rules" -j FERRY-POSTROUTING'], 'jumps from built-in chains after the rules')
  const total = nat.runs.reduce((n, x) => n + x.rules.length, 0)
  t.equal(r.rulesWritten.nat, total, 'rule count matches the lines written')
})

t.test('partial render: the changed service\'s chains sorted, stale chains deleted at the end', async t => {
  const state = mixedState()
  const full = renderFull(state, OPTS)
  const next = withEndpointChanged(state, 7, '10.250.0.7')
  const part = renderPartial(next.state, new Set([next.key]), full.ownedChains, OPTS)
  const nat = natTable(part.payload)
  const perService = nat.decls.filter(c => !TOP.has(c) && !part.deletedChains.includes(c))
  t.same(perService, sorted(perService).reverse())
  const chains = nat.runs.map(x => x.chain)
  t.same(chains, sorted(chains))
  t.ok(part.deletedChains.length > 0)
  t.same(nat.rest, part.deletedChains.map(c => `-X ${c}`))
  t.equal(part.rulesTotal.nat, full.rulesTotal.nat, 'same total: one endpoint swapped for another')
})
