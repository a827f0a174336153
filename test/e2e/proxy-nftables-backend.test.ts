// The nftables backend against the real kernel and nft, inside throwaway network namespaces (root only).
//
//   client (192.168.77.2) --veth-- node (192.168.77.1; 10.244.0.1 on each pod veth) --veth-- pod1, pod2 (10.244.1.N)
//
// The lab (pkg/lab) builds it; NftablesBackend programs the node namespace (exec wrapped in `ip netns
// exec`); each pod answers HTTP on :8080 with its name.
import t from 'tap'
import { NftablesBackend } from '../../pkg/proxy/nftables/backend.js'
import { probeNftables } from '../../pkg/proxy/nftables/probe.js'
import { desired, ep, stateOf, svcInfo, syntheticState } from '../../pkg/proxy/iptables/fixtures.js'
import { netnsExec, run } from '../../pkg/exec/exec.js'
import type { RuleCounter } from '../../pkg/proxy/nftables/rule-probe.js'
import type { RememberedClient } from '../../pkg/proxy/nftables/affinity-read.js'
import { endpointTag, serviceHash } from '../../pkg/proxy/nftables/names.js'
import { Lab, LAB } from '../../pkg/lab/lab.js'
import { netnsElementLoader } from '../helpers/netns-elements.js'
import { servicePortKey, type DesiredServicePort, type DesiredState } from '../../pkg/proxy/types.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

let lab: Lab
t.before(async () => {
  lab = await Lab.create()
  for (let i = 1; i <= 2; i++) await lab.addPod(`pod${i}`, `10.244.1.${i}`)
})
t.teardown(async () => { await lab.close() })

const key = (s: DesiredServicePort): string => servicePortKey(s.info)
const nft = async (...args: string[]): Promise<string> => await run(['ip', 'netns', 'exec', lab.nodeNs, 'nft', ...args])
/**
 * The rule count asked in the node netns. The real counter speaks netlink from the calling process,
 * which sits in the host netns here, so this one reads `nft list chain` (a small table: cheap).
 */
const countRules: RuleCounter = async (family, chain) => {
  const r = await netnsExec(lab.nodeNs)(['nft', 'list', 'chain', family === 'IPv4' ? 'ip' : 'ip6', 'ferry', chain])
  if (r.code !== 0) return 0
  return r.stdout.split('\n').filter(l => /^\t\t\S/.test(l) && !/^\t\ttype /.test(l)).length
}
/** The real reader speaks netlink from the host netns here too: these tests hand their own clients in. */
const noneRemembered = async (): Promise<Map<string, RememberedClient[]>> => new Map()
const backend = (readAffinity = noneRemembered): NftablesBackend => new NftablesBackend({ family: 'IPv4', exec: netnsExec(lab.nodeNs), clusterCIDR: LAB.podCIDR, countRules, readAffinity, loadElements: netnsElementLoader(lab.nodeNs) })
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Elements of every map and set of the table but the affinity sets (traffic fills those). */
async function elementCount (): Promise<number> {
  const j = JSON.parse(await nft('-j', 'list', 'table', 'ip', 'ferry')) as { nftables: Array<Record<string, { name?: string, elem?: unknown[] }>> }
  let n = 0
  for (const o of j.nftables) {
    const s = o.map ?? o.set
    if (s !== undefined && s.name?.startsWith('aff-') !== true) n += s.elem?.length ?? 0
  }
  return n
}
async function chains (): Promise<string[]> {
  return (await nft('list', 'chains', 'ip')).split('\n').map(l => /^\s*chain (\S+)/.exec(l)?.[1]).filter((c): c is string => c !== undefined)
}

const pod = (i: number): ReturnType<typeof ep> => ep(`10.244.1.${i + 1}`, 8080)
const web = desired(svcInfo({ name: 'web', clusterIP: '172.30.0.10', nodePort: 30080 }), { cluster: [pod(0), pod(1)] })
const api = desired(svcInfo({ name: 'api', clusterIP: '172.30.0.11' }), { cluster: [pod(0)] })
const empty = desired(svcInfo({ name: 'empty', clusterIP: '172.30.0.12', nodePort: 30082 }), { cluster: [], hasAny: false })
const sticky = desired(svcInfo({ name: 'sticky', clusterIP: '172.30.0.13', stickyMaxAgeSeconds: 10800 }), { cluster: [pod(0), pod(1)] })
const everyPod = new Set(['pod1', 'pod2'])

t.test('the probe passes here', async t => {
  t.same(await probeNftables(netnsExec(lab.nodeNs)), { ok: true })
})

t.test('traffic, partial syncs, stale chains, a flushed ruleset, cleanup', async t => {
  const be = backend()
  const base = [web, api, empty, sticky]
  t.equal((await be.sync(stateOf(base), null)).kind, 'full')
  t.match(await nft('list', 'table', 'ip', 'ferry'), /map service-ips/)

  const spread = await lab.spread('http://172.30.0.10/', 60)
  t.same(new Set(spread.keys()), everyPod, `ClusterIP reaches both endpoints: ${JSON.stringify([...spread])}`)
  for (const p of everyPod) t.ok((spread.get(p) ?? 0) >= 15, `${p} got ${spread.get(p) ?? 0} of 60: numgen spreads evenly`)
  t.same(new Set((await lab.spread(`http://${LAB.nodeExternalIP}:30080/`, 20)).keys()), everyPod, 'NodePort reaches both endpoints')
  for (const url of ['http://172.30.0.12/', `http://${LAB.nodeExternalIP}:30082/`]) {
    const c = await lab.get(url, lab.clientNs, 4)
    t.match(c, { ok: false, error: 'refused' }, `${url} is refused (REJECT)`)
  }
  // A port no Service defines on a live ClusterIP is refused at once too, as kube-proxy's nftables mode does.
  const other = await lab.get('http://172.30.0.10:8080/', lab.clientNs, 4)
  t.match(other, { ok: false, error: 'refused' }, 'another port of a ClusterIP is refused (REJECT)')
  // Without the rule the lab's default route answers after ~3 s of unanswered ARP (host unreachable).
  if (!other.ok) t.ok(other.ms < 2500, `refused by the rules, not by the route (${other.ms} ms)`)
  t.equal((await lab.spread('http://172.30.0.13/', 10)).size, 1, 'ClientIP affinity sticks to one endpoint')

  // Partial sync: api moves from pod1 to pod2.
  const api2 = desired(api.info, { cluster: [pod(1)] })
  t.equal((await be.sync(stateOf([web, api2, empty, sticky]), new Set([key(api)]))).kind, 'partial')
  t.same([...(await lab.spread('http://172.30.0.11/', 5)).keys()], ['pod2'], 'the changed service follows its new endpoint')

  // The affinity service goes: its chains are flushed now and deleted by a sync at least 1 s later.
  await be.sync(stateOf([web, api2, empty]), new Set([key(sticky)]))
  const stale = be.pendingStaleChains
  t.equal(stale.length, 4)
  const listed = await chains()
  t.ok(stale.every(c => listed.includes(c)), 'stale chains still exist after the partial sync')
  await sleep(1100)
  await be.sync(stateOf([web, api2, empty]), new Set())
  const after = await chains()
  t.notOk(stale.some(c => after.includes(c)), 'stale chains deleted by the later sync')
  t.same(be.pendingStaleChains, [])

  // A firewall reload flushes everything: detected, and the next sync rebuilds the table.
  await nft('flush', 'ruleset')
  t.equal(await be.rulesIntact(), false)
  t.equal((await be.sync(stateOf([web, api2, empty]), new Set([key(api)]))).kind, 'full')
  t.equal(await be.rulesIntact(), true)
  t.same(new Set((await lab.spread('http://172.30.0.10/', 20)).keys()), everyPod, 'rebuilt rules carry traffic')

  // `nft flush table` keeps the table, its sets and maps, and empties every chain: detected too.
  await nft('flush', 'table', 'ip', 'ferry')
  t.equal(await be.rulesIntact(), false, 'a flushed table is missing rules')
  t.equal((await be.sync(stateOf([web, api2, empty]), new Set())).kind, 'full')
  t.equal(await be.rulesIntact(), true)
  t.same(new Set((await lab.spread('http://172.30.0.10/', 20)).keys()), everyPod, 'rebuilt after the flush')

  await be.cleanup()
  t.notMatch(await nft('list', 'tables'), /table ip ferry/, 'cleanup removed the table')
  await t.resolves(be.cleanup(), 'a second cleanup finds nothing and does not fail')
})

t.test('a full sync puts remembered affinity clients back, with their time left', async t => {
  const sticky = desired(svcInfo({ name: 'sticky', clusterIP: '172.30.0.13', stickyMaxAgeSeconds: 600 }), { cluster: [ep('10.244.1.2', 8080)] })
  const set = `aff-${serviceHash(key(sticky))}-cluster-${endpointTag('10.244.1.2', 8080)}`
  const be = backend(async () => new Map([[set, [{ ip: '10.244.1.99', expiresMs: 120_000 }]]]))
  t.teardown(async () => { await be.cleanup() })
  await be.sync(stateOf([sticky]), null)
  const listed = await nft('list', 'set', 'ip', 'ferry', set)
  const left = /10\.244\.1\.99 expires (\d+)m(\d+)s/.exec(listed)
  t.ok(left !== null, `the client is in the kernel's set: ${listed}`)
  const seconds = Number(left?.[1]) * 60 + Number(left?.[2])
  t.ok(seconds > 100 && seconds <= 120, `with about the time it had left (${seconds} s of 120)`)
})

t.test('every shape of the layout loads, in both families', async t => {
  for (const family of ['IPv4', 'IPv6'] as const) {
    const v6 = family === 'IPv6'
    const a = (v4: string, six: string): string => v6 ? six : v4
    const e = (v4: string, six: string, port = 80): ReturnType<typeof ep> => ep(a(v4, six), port)
    const svc = (name: string, o: Parameters<typeof svcInfo>[0]): ReturnType<typeof svcInfo> => svcInfo({ name, family, ...o })
    const state = stateOf([
      desired(svc('np', { clusterIP: a('172.30.0.41', 'fd00:30::41'), nodePort: 3001 }), { cluster: [e('10.180.0.1', 'fd00:10::1'), e('10.180.0.2', 'fd00:10::2')] }),
      desired(svc('etp', { clusterIP: a('172.30.0.43', 'fd00:30::43'), nodePort: 3002, loadBalancerIPs: [a('5.6.7.8', 'fd00:56::8')], externalPolicyLocal: true, stickyMaxAgeSeconds: 100 }),
        { cluster: [e('10.180.0.4', 'fd00:10::4'), e('10.180.1.4', 'fd00:10::14')], local: [e('10.180.0.4', 'fd00:10::4')] }),
      desired(svc('itp', { clusterIP: a('172.30.0.44', 'fd00:30::44'), internalPolicyLocal: true }), { cluster: null, local: [e('10.180.0.5', 'fd00:10::5')] }),
      desired(svc('none', { clusterIP: a('172.30.0.45', 'fd00:30::45'), nodePort: 3005, externalIPs: [a('192.168.99.11', 'fd00:99::11')] }), { cluster: [], hasAny: false }),
      desired(svc('drop', { clusterIP: a('172.30.0.46', 'fd00:30::46'), nodePort: 3006, externalPolicyLocal: true, internalPolicyLocal: true }), { cluster: [], local: [], hasAny: true }),
      desired(svc('lb', { clusterIP: a('172.30.0.47', 'fd00:30::47'), loadBalancerIPs: [a('1.2.3.4', 'fd00:12::34')], loadBalancerSourceRanges: [a('192.168.0.0/24', 'fd00:77::/64')] }), { cluster: [e('10.180.0.7', 'fd00:10::7')] }),
      desired(svc('udp', { clusterIP: a('172.30.0.48', 'fd00:30::48'), protocol: 'UDP', port: 53, stickyMaxAgeSeconds: 60 }), { cluster: [e('10.180.0.8', 'fd00:10::8', 53)] }),
    ], family)
    let loads = 0
    const loader = netnsElementLoader(lab.nodeNs)
    const opts = { family, exec: netnsExec(lab.nodeNs), clusterCIDR: a('10.0.0.0/8', 'fd00:10::/64'), nodeIPs: [a('192.168.0.2', 'fd00:77::1')], nodePortAddresses: [a('192.168.0.0/24', 'fd00:77::/64'), a('127.0.0.1/32', '::1/128')], readAffinity: noneRemembered }
    const be = new NftablesBackend({ ...opts, countRules, loadElements: async (f, b) => { loads++; await loader(f, b) } })
    t.equal((await be.sync(state, null)).kind, 'full', `${family} full sync loads`)
    t.equal(loads, 1, `${family}: the table was absent, so its elements went over netlink`)
    const twoStep = await nft('list', 'table', v6 ? 'ip6' : 'ip', 'ferry')
    t.match(twoStep, /fib daddr type local/)
    await be.cleanup()
    // The same state through nft alone (as when replacing a live table) lists the same table.
    const atomic = new NftablesBackend({ ...opts, countRules: async () => 1, loadElements: async () => { throw new Error('not used') } })
    await atomic.sync(state, null)
    t.equal(await nft('list', 'table', v6 ? 'ip6' : 'ip', 'ferry'), twoStep, `${family}: nft lists the same table, element for element`)
    await atomic.cleanup()
  }
})

t.test('30 random partial syncs apply and end equal to a fresh full sync', async t => {
  let seed = 7
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  const originals = [...syntheticState(60, 3).services.values()]
  const services = new Map(originals.map(s => [key(s), s]))
  const be = backend()
  let state: DesiredState = { family: 'IPv4', services: new Map(services) }
  await be.sync(state, null)
  for (let i = 0; i < 30; i++) {
    const changed = new Set<string>()
    for (let j = 0; j <= rnd(3); j++) {
      const base = originals[rnd(originals.length)] as DesiredServicePort
      const k = key(base)
      changed.add(k)
      const kind = rnd(6)
      if (kind === 0) { services.delete(k); continue }
      const n = rnd(7)
      const info = { ...base.info, stickyMaxAgeSeconds: kind === 1 ? 30 : 0, loadBalancerIPs: kind === 2 ? [`1.2.3.${rnd(4)}`] : [], loadBalancerSourceRanges: kind === 2 ? ['203.0.113.0/25'] : [], externalPolicyLocal: kind === 3 }
      const list = Array.from({ length: n }, (_, x) => ep(`10.200.${rnd(3)}.${x}`, 8080))
      services.set(k, desired(info, { cluster: list, local: kind === 3 ? list.slice(0, rnd(n + 1)) : null, hasAny: n > 0 || rnd(2) === 0 }))
    }
    state = { family: 'IPv4', services: new Map(services) }
    const r = await be.sync(state, changed)
    t.equal(r.kind, 'partial', `partial sync ${i} applied`)
  }
  const partialCount = await elementCount()
  await be.sync(state, null)
  t.equal(partialCount, await elementCount(), 'same element count as a fresh full sync')
  await be.cleanup()
})
