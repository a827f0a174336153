// Partial syncs of IPVS mode cost the change, not the table: the reconciler compares only the virtual
// servers it is told about, the backend reads only the changed service ports (the others throw if read),
// and a seeded sequence of random changes leaves the fake kernel, the VIPs and the sets exactly as full
// syncs of the same states do.
import t from 'tap'
import type { ExecResult } from '../../pkg/exec/exec.js'
import { silentLogger } from '../../pkg/log/log.js'
import { FakeLinks } from '../../pkg/netlink/fake.js'
import { FakeClock } from '../../pkg/proxy/fake-clock.js'
import { ep, localEp, svcInfo, categorized as svc } from '../../pkg/proxy/iptables/fixtures.js'
import { IpvsBackend } from '../../pkg/proxy/ipvs/backend.js'
import { IpvsCompanion } from '../../pkg/proxy/ipvs/companion-apply.js'
import { companionSetSpecs } from '../../pkg/proxy/ipvs/companion.js'
import { realServer, virtualServer, vsKey, type DesiredVirtualServer } from '../../pkg/proxy/ipvs/desired.js'
import { FakeIpset } from '../../pkg/proxy/ipvs/fake-ipset.js'
import { FakeIpvsKernel } from '../../pkg/proxy/ipvs/fake-kernel.js'
import { MemoryOwnershipStore } from '../../pkg/proxy/ipvs/ownership.js'
import { IpvsReconciler } from '../../pkg/proxy/ipvs/reconciler.js'
import { servicePortKey, type DesiredServicePort, type DesiredState } from '../../pkg/proxy/types.js'
import { rngInt } from '../helpers/fuzz.js'

/** A map whose entries outside `allowed` throw when read, and which throws when walked. */
function poisoned<V> (m: ReadonlyMap<string, V>, allowed: ReadonlySet<string>): Map<string, V> {
  const out = new Map(m)
  const refuse = (what: string): never => { throw new Error(`partial sync ${what}`) }
  out.get = (k: string) => allowed.has(k) ? m.get(k) : refuse(`read ${k}`)
  out.has = (k: string) => allowed.has(k) ? m.has(k) : refuse(`looked up ${k}`)
  out.keys = () => refuse('walked the keys')
  out.values = () => refuse('walked the values')
  out.entries = () => refuse('walked the entries')
  out[Symbol.iterator] = () => refuse('walked the map')
  out.forEach = () => refuse('walked the map')
  return out
}

const dvs = (i: number, dests: number[]): [string, DesiredVirtualServer] => {
  const service = virtualServer({ family: 'IPv4', protocol: 'TCP', address: `172.30.${i >> 8}.${i & 255}`, port: 80 })
  return [vsKey(service), { service, destinations: dests.map(d => realServer(`10.180.${i >> 8}.${d}`, 8080)), servicePort: `ns/s${i}:http/tcp`, entry: 'clusterIP' }]
}

t.test('a partial reconcile reads only the virtual servers it is told about', async t => {
  const kernel = new FakeIpvsKernel()
  const r = new IpvsReconciler({ family: 'IPv4', kernel, ownership: new MemoryOwnershipStore(), gracefulTerminationMs: 0, log: silentLogger })
  const desired = new Map(Array.from({ length: 300 }, (_, i) => dvs(i, [1, 2, 3])))
  const first = await r.reconcile(desired, { full: true })
  t.equal(first.ops, 1200)
  const [vk, changed] = dvs(7, [1, 2, 9])
  const next = new Map(desired).set(vk, changed)
  const [gone] = dvs(8, [])
  next.delete(gone)
  const p = await r.reconcile(poisoned(next, new Set([vk, gone])), { only: new Set([vk, gone]) })
  t.equal(p.kind, 'partial')
  t.equal(p.ops, 3, 'one add and one delete on the edited virtual server, one deleted virtual server')
  t.same(r.status(), { virtualServers: 299, destinations: 897, draining: 0 }, 'the kept counts follow the changes')
  const kernelDests = kernel.snapshot().reduce((n, e) => n + e.destinations.length, 0)
  t.equal(kernelDests, 897, 'and agree with the kernel')
  const entry = kernel.snapshot().find(e => vsKey(e.service) === vk)
  t.same(entry?.destinations.map(d => d.address).sort(), ['10.180.0.1', '10.180.0.2', '10.180.0.9'])
  // A reconcile that must read the kernel ignores `only` and compares everything.
  r.resync()
  const full = await r.reconcile(next, { only: new Set() })
  t.equal(full.kind, 'full')
  t.equal(full.ops, 0, 'nothing left to change')
})

// ---- The backend over fakes: a real companion over an in-memory ipset, iptables accepted as-is ----

interface Rig { backend: IpvsBackend, kernel: FakeIpvsKernel, links: FakeLinks, ipset: FakeIpset, companion: IpvsCompanion }

function rig (gracefulTerminationMs: number): Rig {
  const kernel = new FakeIpvsKernel()
  const links = new FakeLinks()
  const iptables = async (argv: readonly string[]): Promise<ExecResult> => {
    const table = argv[argv.indexOf('-t') + 1] ?? 'filter'
    return { code: 0, stdout: String(argv[0]).endsWith('-save') ? `*${table}\nCOMMIT\n` : '', stderr: '' }
  }
  const ipset = new FakeIpset(iptables)
  const companion = new IpvsCompanion({ family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2'], variant: 'legacy', exec: ipset.exec, log: silentLogger })
  const backend = new IpvsBackend({
    family: 'IPv4', proxy: { family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2'] }, scheduler: 'rr', gracefulTerminationMs,
    kernel, links, companion, ownership: new MemoryOwnershipStore(), clock: new FakeClock(), log: silentLogger,
  })
  return { backend, kernel, links, ipset, companion }
}

async function picture (r: Rig): Promise<string> {
  const ipvs = r.kernel.snapshot().map(e => `${vsKey(e.service)} ${e.service.flags}/${e.service.timeout} -> ` +
    e.destinations.map(d => `${d.address}:${d.port}w${d.weight}`).sort().join(',')).sort()
  const vips = (await r.links.addresses()).map(a => a.ip).sort()
  const sets = companionSetSpecs('IPv4').map(s => `${s.name}=${r.ipset.members(s.name).join(' ')}`)
  return [...ipvs, `vips ${vips.join(' ')}`, ...sets].join('\n')
}

t.test('a partial backend sync reads only the changed service ports', async t => {
  const r = rig(0)
  const services = new Map<string, DesiredServicePort>()
  for (let i = 0; i < 200; i++) {
    const sp = svc(svcInfo({ name: `s${i}`, clusterIP: `172.30.0.${i + 1}`, nodePort: i % 20 === 0 ? 30000 + i : 0 }), [ep(`10.180.${i}.1`, 8080), localEp(`10.180.${i}.2`, 8080)])
    services.set(servicePortKey(sp.info), sp)
  }
  await r.backend.sync({ family: 'IPv4', services }, null)
  r.kernel.resetCalls()
  const calls = r.ipset.calls.length
  const old = services.get(servicePortKey(svcInfo({ name: 's40' }))) as DesiredServicePort
  const key = servicePortKey(old.info)
  const edited = svc(old.info, [ep('10.180.40.1', 8080), localEp('10.180.40.9', 8080)])
  const next = new Map(services).set(key, edited)
  const res = await r.backend.sync({ family: 'IPv4', services: poisoned(next, new Set([key])) }, new Set([key]))
  t.equal(res.kind, 'partial')
  t.equal(res.summary.ops, 4, 'the ClusterIP and the NodePort virtual servers: one add and one delete each')
  t.equal(r.kernel.calls.listServices, 0, 'no kernel listing')
  t.same(r.ipset.calls.slice(calls), [['ipset', 'restore', '-exist']], 'one ipset restore (the hairpin set), no iptables-restore')
  const reference = rig(0)
  await reference.backend.sync({ family: 'IPv4', services: next }, null)
  t.equal(await picture(r), await picture(reference), 'the same kernel state as a full sync')
})

t.test('partial and full syncs end in the same kernel state across seeded random changes', async t => {
  for (const graceful of [0, 60_000]) {
    const rnd = rngInt(11 + graceful)
    // Few addresses and ports, so entry points clash (shared ClusterIPs, externalIPs on the node address
    // against NodePorts), plus UDP, affinity, Local policies and endpoints that come and go.
    const make = (name: string): DesiredServicePort => {
      const eps = Array.from({ length: rnd(4) }, (_, j) => (rnd(2) === 0 ? localEp : ep)(`10.180.${rnd(3)}.${j + 1}`, 8080, { ready: rnd(6) !== 0 }))
      return svc(svcInfo({
        name,
        clusterIP: `172.30.0.${rnd(8) + 1}`,
        port: [80, 31000][rnd(2)],
        protocol: rnd(4) === 0 ? 'UDP' : 'TCP',
        nodePort: rnd(2) === 0 ? 31000 + rnd(2) : 0,
        externalIPs: rnd(3) === 0 ? [['192.168.0.2', '192.168.99.1'][rnd(2)] as string] : [],
        loadBalancerIPs: rnd(4) === 0 ? [`198.51.100.${rnd(3)}`] : [],
        stickyMaxAgeSeconds: rnd(4) === 0 ? 300 : 0,
        externalPolicyLocal: rnd(3) === 0,
        internalPolicyLocal: rnd(5) === 0,
      }), eps)
    }
    const partial = rig(graceful)
    const full = rig(graceful)
    // Kept like the proxier's desired map: an edited key keeps its place, a new key goes last.
    const services = new Map<string, DesiredServicePort>()
    let mismatches = 0
    let changes = 0
    for (let step = 0; step < 150; step++) {
      const changed = new Set<string>()
      for (let n = 1 + rnd(3); n > 0; n--) {
        const keys = [...services.keys()]
        const op = rnd(5)
        let k: string
        if (op >= 2 || keys.length === 0) {
          // A new service port, or a new spec for a known one (same name, protocol and port name).
          const sp = make(`s${rnd(40)}`)
          k = servicePortKey(sp.info)
          services.set(k, sp)
        } else {
          k = keys[rnd(keys.length)] as string
          const prev = services.get(k) as DesiredServicePort
          if (op === 0) services.delete(k)
          else services.set(k, svc(prev.info, make(prev.info.name).allReachableEndpoints)) // endpoints only
        }
        changed.add(k)
      }
      changes += changed.size
      const state: DesiredState = { family: 'IPv4', services }
      // The first sync is full for both; then one side gets only the changes.
      await partial.backend.sync(state, step === 0 ? null : changed)
      await full.backend.sync(state, null)
      const a = await picture(partial)
      const b = await picture(full)
      if (a !== b) { mismatches++; t.fail(`graceful ${graceful}, step ${step}: partial and full differ`, { partial: a, full: b }) }
      if (mismatches > 3) break
    }
    t.equal(mismatches, 0, `graceful ${graceful}: 150 steps, ${changes} changes, the same state after each`)
  }
})
