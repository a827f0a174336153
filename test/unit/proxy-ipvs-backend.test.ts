// IpvsBackend against fakes (kernel, links, companion): the order of its steps, incremental syncs that
// send only the change, VIPs that follow the Services, and VIP-over-NodePort precedence kept across
// partial syncs (the merged table is updated per changed service port).
import t from 'tap'
import { silentLogger } from '../../pkg/log/log.js'
import { FakeLinks } from '../../pkg/netlink/fake.js'
import { ep, svcInfo, categorized as svc } from '../../pkg/proxy/iptables/fixtures.js'
import { IpvsBackend, type CompanionRules } from '../../pkg/proxy/ipvs/backend.js'
import { FakeIpvsKernel } from '../../pkg/proxy/ipvs/fake-kernel.js'
import { MemoryOwnershipStore } from '../../pkg/proxy/ipvs/ownership.js'
import { servicePortKey, type DesiredServicePort, type DesiredState } from '../../pkg/proxy/types.js'

const stateOf = (...sps: DesiredServicePort[]): DesiredState => ({ family: 'IPv4', services: new Map(sps.map(s => [servicePortKey(s.info), s])) })
const key = (s: DesiredServicePort): string => servicePortKey(s.info)

function setup (): { backend: IpvsBackend, kernel: FakeIpvsKernel, links: FakeLinks, steps: string[] } {
  const kernel = new FakeIpvsKernel()
  const links = new FakeLinks()
  const steps: string[] = []
  const origApply = kernel.apply.bind(kernel)
  kernel.apply = async ops => { steps.push(`ipvs ${ops.length}`); return await origApply(ops) }
  const companion: CompanionRules = {
    sync: async () => { steps.push('companion') },
    rulesIntact: async () => true,
    requestFullSync: () => { steps.push('companion full') },
    cleanup: async () => {},
  }
  const backend = new IpvsBackend({
    family: 'IPv4', proxy: { family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2'] }, scheduler: 'rr', gracefulTerminationMs: 0,
    kernel, links, companion, ownership: new MemoryOwnershipStore(), log: silentLogger,
  })
  return { backend, kernel, links, steps }
}

const table = (k: FakeIpvsKernel): string[] => k.snapshot().map(e => `${e.service.address}:${e.service.port} -> ${e.destinations.map(d => `${d.address}:${d.port}`).sort().join(',')}`).sort()
const vips = async (l: FakeLinks): Promise<string[]> => (await l.addresses()).map(a => a.ip).sort()

t.test('a full sync: companion rules first, then VIPs, then the virtual servers; partial syncs send only the change', async t => {
  const { backend, kernel, links, steps } = setup()
  const web = svc(svcInfo({ name: 'web', clusterIP: '172.30.0.10', nodePort: 30080 }), [ep('10.180.0.1', 8080), ep('10.180.0.2', 8080)])
  const api = svc(svcInfo({ name: 'api', clusterIP: '172.30.0.11', externalIPs: ['192.168.99.1'] }), [ep('10.180.0.3', 8080)])
  const r = await backend.sync(stateOf(web, api), null)
  t.equal(r.kind, 'full')
  t.same(steps, ['companion full', 'companion', 'ipvs 10'], 'rules before virtual servers; 4 virtual servers and 6 destinations in one apply')
  t.same(table(kernel), [
    '172.30.0.10:80 -> 10.180.0.1:8080,10.180.0.2:8080',
    '172.30.0.11:80 -> 10.180.0.3:8080',
    '192.168.0.2:30080 -> 10.180.0.1:8080,10.180.0.2:8080',
    '192.168.99.1:80 -> 10.180.0.3:8080',
  ])
  t.same(await vips(links), ['172.30.0.10', '172.30.0.11', '192.168.99.1'], 'VIPs bound; the node address is not')

  steps.length = 0
  kernel.resetCalls()
  const web2 = svc(web.info, [ep('10.180.0.1', 8080), ep('10.180.0.9', 8080)])
  const p = await backend.sync(stateOf(web2, api), new Set([key(web)]))
  t.equal(p.kind, 'partial')
  t.same(p.summary.ops, 4, 'one add and one delete on each of the two virtual servers of web')
  t.equal(kernel.calls.listServices, 0, 'no listing on a partial sync')

  const q = await backend.sync(stateOf(web2), new Set([key(api)]))
  t.same(q.summary.ops, 2, 'two virtual servers deleted')
  t.same(await vips(links), ['172.30.0.10'], 'the deleted service\'s VIPs are unbound')
})

t.test('an externalIP on a node address wins over another Service\'s NodePort there, across partial syncs', async t => {
  const { backend, kernel } = setup()
  const np = svc(svcInfo({ name: 'np', clusterIP: '172.30.0.20', nodePort: 31005 }), [ep('10.180.1.1', 8080)])
  const eip = svc(svcInfo({ name: 'eip', clusterIP: '172.30.0.21', port: 31005, externalIPs: ['192.168.0.2'] }), [ep('10.180.1.2', 8080)])
  await backend.sync(stateOf(np, eip), null)
  t.match(table(kernel), ['172.30.0.20:80 -> 10.180.1.1:8080', '172.30.0.21:31005 -> 10.180.1.2:8080', '192.168.0.2:31005 -> 10.180.1.2:8080'])
  // The externalIP goes: the NodePort takes the address and port over.
  await backend.sync(stateOf(np), new Set([key(eip)]))
  t.same(table(kernel), ['172.30.0.20:80 -> 10.180.1.1:8080', '192.168.0.2:31005 -> 10.180.1.1:8080'])
  // It comes back: the VIP wins again, though the NodePort's service did not change.
  await backend.sync(stateOf(np, eip), new Set([key(eip)]))
  t.same(table(kernel), ['172.30.0.20:80 -> 10.180.1.1:8080', '172.30.0.21:31005 -> 10.180.1.2:8080', '192.168.0.2:31005 -> 10.180.1.2:8080'])
  // The NodePort's service changes: the VIP still holds the address.
  const np2 = svc(np.info, [ep('10.180.1.3', 8080)])
  await backend.sync(stateOf(np2, eip), new Set([key(np)]))
  t.same(table(kernel), ['172.30.0.20:80 -> 10.180.1.3:8080', '172.30.0.21:31005 -> 10.180.1.2:8080', '192.168.0.2:31005 -> 10.180.1.2:8080'])
})
