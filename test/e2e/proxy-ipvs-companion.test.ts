// IPVS mode's companion ipsets and iptables rules against the real kernel tools, in a throwaway network
// namespace (root only). This host has no IPVS, so nothing here proves traffic: it proves that the real
// `ipset restore` and `iptables-restore` accept what ferry renders, that the kernel then holds exactly
// that (the kernel's own listings, traced, answer like the rendered text), that re-applying a change
// updates the sets without duplicating rules, and that cleanup leaves nothing.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { netnsExec, run, spawnExec, type Exec } from '../../pkg/exec/exec.js'
import { planPort, type PortPlan } from '../../pkg/proxy/plan.js'
import { ep, svcInfo, localEp as local, remoteEp as remote, categorized as svc } from '../../pkg/proxy/iptables/fixtures.js'
import { loadRestore } from '../../pkg/proxy/iptables/trace.js'
import type { Variant } from '../../pkg/proxy/iptables/restore.js'
import { IpvsCompanion } from '../../pkg/proxy/ipvs/companion-apply.js'
import { boundVIPs, defaultNodePortIPs, IPVS_CHAIN_PREFIX, renderCompanion, resolveCompanionOptions, type CompanionOptionsInput } from '../../pkg/proxy/ipvs/companion.js'
import { desiredVirtualServers } from '../../pkg/proxy/ipvs/desired.js'
import { FakeIpset } from '../../pkg/proxy/ipvs/fake-ipset.js'
import { canonicalEntry, parseIpsetSave } from '../../pkg/proxy/ipvs/ipset.js'
import { loadCompanion, traceIpvs } from '../../pkg/proxy/ipvs/trace.js'
import type { DesiredServicePort } from '../../pkg/proxy/types.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

const NS = `fy-ipvsc-${randomBytes(3).toString('hex')}`
const exec: Exec = netnsExec(NS)
const sh = async (argv: string[]): Promise<string> => await run(argv, undefined, exec)
t.before(async () => {
  await run(['ip', 'netns', 'add', NS], undefined, spawnExec)
  await sh(['ip', 'link', 'set', 'lo', 'up'])
})
t.teardown(async () => { await spawnExec(['ip', 'netns', 'delete', NS]) })


const OPTS: CompanionOptionsInput = { family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2', '192.168.1.2'] }
const OPTS6: CompanionOptionsInput = { family: 'IPv6', clusterCIDR: 'fd00:10::/48', nodeIPs: ['fd00:77::1'] }
const NODE_ADDRS = ['192.168.0.2', '192.168.1.2', '127.0.0.1']

// Every set gets members: eTP=Cluster LB with source ranges, eTP=Local with and without local endpoints,
// iTP=Local with only remote ones, a NodePort without endpoints, health checks, UDP and SCTP.
const web = svc(svcInfo({ name: 'web', clusterIP: '172.30.0.10', nodePort: 30080, loadBalancerIPs: ['1.2.3.4'], loadBalancerSourceRanges: ['192.168.0.0/24', '203.0.113.0/25'] }),
  [local('10.180.0.1'), remote('10.180.1.1')])
const loc = svc(svcInfo({ name: 'loc', clusterIP: '172.30.0.11', nodePort: 30081, loadBalancerIPs: ['5.6.7.8'], externalIPs: ['192.168.99.11'], externalPolicyLocal: true, healthCheckNodePort: 30011 }),
  [local('10.180.0.2'), remote('10.180.1.2')])
const far = svc(svcInfo({ name: 'far', clusterIP: '172.30.0.12', nodePort: 30082, loadBalancerIPs: ['5.6.7.9'], externalPolicyLocal: true, healthCheckNodePort: 30012 }), [remote('10.180.1.3')])
const itl = svc(svcInfo({ name: 'itl', clusterIP: '172.30.0.13', internalPolicyLocal: true }), [remote('10.180.1.4')])
const empty = svc(svcInfo({ name: 'empty', clusterIP: '172.30.0.14', nodePort: 30084 }), [])
const dns = svc(svcInfo({ name: 'dns', clusterIP: '172.30.0.53', portName: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }), [remote('10.180.1.5', 5353)])
const sctp = svc(svcInfo({ name: 'sig', clusterIP: '172.30.0.54', port: 3868, protocol: 'SCTP' }), [local('10.180.0.6', 3868)])
const STATE_A = [web, loc, far, itl, empty, dns, sctp]
// B: web's remote endpoint moves, far goes, a new eTP=Local service brings a new short-circuit rule.
const web2 = svc(web.info, [local('10.180.0.1'), remote('10.180.1.9')])
const loc2 = svc(svcInfo({ name: 'loc2', clusterIP: '172.30.0.15', nodePort: 30085, externalPolicyLocal: true }), [local('10.180.0.7')])
const STATE_B = [web2, loc, loc2, itl, empty, dns, sctp]

const plansOf = (sps: readonly DesiredServicePort[], input: CompanionOptionsInput = OPTS): PortPlan[] => {
  const o = resolveCompanionOptions(input)
  return sps.map(sp => planPort(sp, o))
}

/** The kernel's sets of one family, members canonical and sorted. */
async function kernelSets (prefix: string): Promise<Map<string, string[]>> {
  const saved = parseIpsetSave(await sh(['ipset', 'save']))
  const out = new Map<string, string[]>()
  for (const [name, s] of saved) {
    if (!name.startsWith(prefix)) continue
    const family = s.family ?? (prefix === 'FERRY6-' ? 'IPv6' : 'IPv4')
    out.set(name, s.entries.map(e => canonicalEntry({ type: s.type as never, family }, e) ?? `unparsable ${e}`).sort())
  }
  return out
}

const saveAll = async (variant: Variant, family: 'IPv4' | 'IPv6' = 'IPv4'): Promise<string> => {
  const tool = `${family === 'IPv4' ? 'iptables' : 'ip6tables'}-${variant}-save`
  return (await Promise.all(['mangle', 'filter', 'nat'].map(async table => await sh([tool, '-t', table])))).join('')
}

const companionLines = (text: string): string[] => text.split('\n').filter(l => l.includes(IPVS_CHAIN_PREFIX))

async function checkLoaded (t: Test, variant: Variant, sps: readonly DesiredServicePort[]): Promise<void> {
  const o = resolveCompanionOptions(OPTS)
  const plans = plansOf(sps)
  const render = renderCompanion(plans, o)
  const kernel = await kernelSets('FERRY-')
  t.same([...kernel.keys()].sort(), render.sets.map(s => s.spec.name).sort(), 'the kernel holds exactly the rendered sets (no temporary set left)')
  for (const s of render.sets) t.same(kernel.get(s.spec.name), [...s.entries].sort(), `${s.spec.name} holds the rendered members`)

  const saved = await saveAll(variant)
  for (const [from, target, n] of [['PREROUTING', 'FERRY-IPVS-FIREWALL', 1], ['OUTPUT', 'FERRY-IPVS-FIREWALL', 1], ['INPUT', 'FERRY-IPVS-FILTER', 1],
    ['FORWARD', 'FERRY-IPVS-FORWARD', 1], ['PREROUTING', 'FERRY-IPVS-SERVICES', 1], ['OUTPUT', 'FERRY-IPVS-SERVICES', 1], ['POSTROUTING', 'FERRY-IPVS-POSTROUTING', 1]] as const) {
    t.equal(saved.split('\n').filter(l => l.startsWith(`-A ${from} `) && l.endsWith(`-j ${target}`)).length, n, `one jump ${from} -> ${target}`)
  }
  const ruleCount = saved.split('\n').filter(l => l.startsWith(`-A ${IPVS_CHAIN_PREFIX}`)).length
  t.equal(ruleCount, render.rules.mangle + render.rules.filter + render.rules.nat, `${ruleCount} companion rules, as rendered`)

  // The kernel's listings, traced, must answer every packet as the rendered text does.
  const vs = desiredVirtualServers(plans, { family: 'IPv4', scheduler: 'rr', nodePortIPs: defaultNodePortIPs(o) })
  const fromRender = loadCompanion('IPv4', render, vs)
  const kernelIpset = new FakeIpset()
  kernelIpset.restore(await sh(['ipset', 'save']), true)
  const fromKernel = { family: 'IPv4' as const, tables: loadRestore([saved]), sets: kernelIpset, virtualServers: vs }
  const env = { localAddresses: [...NODE_ADDRS, ...boundVIPs(plans, o)] }
  let n = 0
  for (const sp of sps) {
    const i = sp.info
    const dsts: Array<[string, number]> = [[i.clusterIP, i.port], [i.clusterIP, 9], ...[...i.externalIPs, ...i.loadBalancerIPs].map((ip): [string, number] => [ip, i.port])]
    if (i.nodePort !== 0) dsts.push(['192.168.0.2', i.nodePort], ['127.0.0.1', i.nodePort])
    for (const [dst, port] of dsts) {
      for (const src of ['10.0.0.2', '203.0.113.2', '203.0.113.130', '192.168.0.2', '127.0.0.1', ...sp.allReachableEndpoints.map(e => e.ip)]) {
        if (dst === '127.0.0.1' && src !== '127.0.0.1') continue
        const pkt = { src, dst, port, protocol: i.protocol }
        const a = traceIpvs(fromRender, env, pkt)
        const b = traceIpvs(fromKernel, env, pkt)
        n++
        if (a.verdict !== b.verdict || JSON.stringify(a.endpoints) !== JSON.stringify(b.endpoints)) {
          t.fail(`${src} -> ${dst}:${port}: rendered ${a.verdict}, kernel ${b.verdict}`, { rendered: a.paths, kernel: b.paths })
        }
      }
    }
  }
  t.ok(n > 100, `${n} packets traced alike through the rendered text and the kernel's listings`)
}

const tools = async (variant: Variant): Promise<boolean> => (await exec([`iptables-${variant}`, '-w', '5', '-t', 'mangle', '-S']).catch(() => ({ code: 127 }))).code === 0

for (const variant of ['legacy', 'nft'] as const) {
  t.test(`${variant}: load, change, reload, clean up`, async t => {
    if (!await tools(variant)) { t.plan(0, `iptables-${variant} unusable here`); return }
    const c = new IpvsCompanion({ ...OPTS, exec, variant })
    const r1 = await c.sync(plansOf(STATE_A))
    t.equal(r1.kind, 'full')
    t.ok(r1.rulesWritten)
    await checkLoaded(t, variant, STATE_A)

    const r2 = await c.sync(plansOf(STATE_B))
    t.equal(r2.kind, 'partial')
    t.ok(r2.rulesWritten, 'a new short-circuit rule rewrites the chains')
    await checkLoaded(t, variant, STATE_B)

    const r3 = await c.sync(plansOf(STATE_B))
    t.same([r3.setsWritten, r3.rulesWritten], [0, false], 'nothing changed: no ipset and no iptables process')

    // A remote endpoint change touches no set; a local one only the hairpin set, and never the rules.
    const webRemote = svc(web.info, [local('10.180.0.1'), remote('10.180.1.10')])
    const rRemote = await c.sync(plansOf([webRemote, loc, loc2, itl, empty, dns, sctp]))
    t.same([rRemote.setsWritten, rRemote.rulesWritten], [0, false], 'a remote endpoint change runs no program')
    const web3 = svc(web.info, [local('10.180.0.5'), remote('10.180.1.10')])
    const r4 = await c.sync(plansOf([web3, loc, loc2, itl, empty, dns, sctp]))
    t.same([r4.setsWritten, r4.rulesWritten], [1, false], 'a local endpoint change writes one set through add/del and no rules')
    await checkLoaded(t, variant, [web3, loc, loc2, itl, empty, dns, sctp])

    // A restarted daemon: a full sync over what is there, no duplicated jumps.
    const again = new IpvsCompanion({ ...OPTS, exec, variant })
    t.equal((await again.sync(plansOf(STATE_A))).kind, 'full')
    await checkLoaded(t, variant, STATE_A)

    await again.cleanup()
    t.same(companionLines(await saveAll(variant)), [], 'cleanup leaves no companion chain or jump')
    t.same([...(await kernelSets('FERRY')).keys()], [], 'and no set')
    await again.cleanup()
    t.same(companionLines(await saveAll(variant)), [], 'a second cleanup succeeds and still leaves no chain or jump')
    t.same([...(await kernelSets('FERRY')).keys()], [], 'nor any set')
  })
}

t.test('both families side by side; cleaning one leaves the other', async t => {
  const variant: Variant = 'legacy'
  if (!await tools(variant)) { t.plan(0, 'legacy iptables unusable here'); return }
  const v6 = svc(svcInfo({ name: 'v6', family: 'IPv6', clusterIP: 'fd00:30::10', nodePort: 30090, loadBalancerIPs: ['fd00:99::4'], externalPolicyLocal: true,
    loadBalancerSourceRanges: ['fd00:77::/64'] }), [ep('fd00:10::1', 80, { isLocal: true, nodeName: 'test-node' }), ep('fd00:10:1::1', 80, { nodeName: 'other' })])
  const c4 = new IpvsCompanion({ ...OPTS, exec, variant })
  const c6 = new IpvsCompanion({ ...OPTS6, exec, variant })
  await c4.sync(plansOf(STATE_A))
  await c6.sync(plansOf([v6], OPTS6))
  const render6 = renderCompanion(plansOf([v6], OPTS6), resolveCompanionOptions(OPTS6))
  const kernel6 = await kernelSets('FERRY6-')
  for (const s of render6.sets) t.same(kernel6.get(s.spec.name), [...s.entries].sort(), `${s.spec.name} holds the rendered members`)
  t.match(await sh(['ip6tables-legacy-save', '-t', 'nat']), /-j DNAT --to-destination \[fd00:30::10\]:80/, 'IPv6 short-circuit DNAT')
  await c6.cleanup()
  t.same([...(await kernelSets('FERRY6-')).keys()], [], 'IPv6 sets gone')
  t.same(companionLines(await saveAll(variant, 'IPv6')), [], 'IPv6 chains gone')
  await checkLoaded(t, variant, STATE_A)
  await c4.cleanup()
  t.same([...(await kernelSets('FERRY')).keys()], [])
})
