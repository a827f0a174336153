import t from 'tap'
import { TYPE } from '../../pkg/dns/message.js'
import { RecordIndex } from '../../pkg/dns/kubernetes/index.js'
import type { NameEntry } from '../../pkg/dns/kubernetes/index.js'
import { reverseName } from '../../pkg/dns/kubernetes/names.js'
import { validateObject } from '../../pkg/api/validate.js'
import { NOW, ZONE, clusterIndex, clusterObjects, ep, pod, port, rr, slice, svc } from './fixtures/dns-cluster.js'

const S = 'shop.svc.cluster.local'

function snapshot (index: RecordIndex, names: string[]): Map<string, NameEntry | undefined> {
  return new Map(names.map(n => [n, index.entry(n)]))
}

function addresses (index: RecordIndex, name: string, type: number): string[] {
  return index.entry(name)?.answers.get(type)?.answer.map(rr) ?? []
}

const OTHERS = [`db.${S}`, `db-0.db.${S}`, `_pg._tcp.db.${S}`, `dual.${S}`, `ext.${S}`, S, '1.2.0.10.in-addr.arpa', '12.0.30.172.in-addr.arpa', ZONE, 'dns-version.cluster.local']

t.test("a slice change rebuilds that Service's entries only; others keep identity and version", async t => {
  const index = clusterIndex()
  const before = snapshot(index, [...OTHERS, `web.${S}`, `_http._tcp.web.${S}`, `10-0-1-1.web.${S}`, '1.1.0.10.in-addr.arpa'])
  const gen = index.generation
  // 10.0.1.2 becomes ready, 10.0.1.1 goes away.
  index.upsertSlice(slice('shop', 'web-1', 'web', [ep('10.0.1.2')], [{ name: 'http', protocol: 'TCP', port: 8080 }]))
  t.ok(index.generation > gen, 'the generation moved')
  for (const n of OTHERS) t.equal(index.entry(n), before.get(n), `${n} kept its identity`)
  t.equal(index.entry(`web.${S}`), before.get(`web.${S}`), 'the ClusterIP answers did not change, so the entry is kept')
  t.equal(index.entry(`_http._tcp.web.${S}`), before.get(`_http._tcp.web.${S}`))
  t.equal(index.entry(`10-0-1-1.web.${S}`), undefined, 'the old endpoint name is gone')
  t.equal(index.entry('1.1.0.10.in-addr.arpa'), undefined, 'and its PTR')
  t.same(addresses(index, `10-0-1-2.web.${S}`, TYPE.A), [`10-0-1-2.web.${S} 5 A 10.0.1.2`])
  t.same(addresses(index, '2.1.0.10.in-addr.arpa', TYPE.PTR), [`2.1.0.10.in-addr.arpa 5 PTR 10-0-1-2.web.${S}`])
})

t.test('a Service change gives its changed entries new versions and leaves the rest', async t => {
  const index = clusterIndex()
  const before = snapshot(index, [...OTHERS, `web.${S}`, `_dns._udp.web.${S}`, `10-0-1-1.web.${S}`])
  index.upsertService(svc('shop', 'web', { clusterIP: '172.30.0.21', clusterIPs: ['172.30.0.21'], ports: [port('http', 80), port('dns', 53, 'UDP')] }))
  for (const n of OTHERS) t.equal(index.entry(n), before.get(n), `${n} kept its identity`)
  const after = index.entry(`web.${S}`)
  t.not(after, before.get(`web.${S}`))
  t.ok((after?.version ?? 0) > (before.get(`web.${S}`)?.version ?? 0), 'a new version')
  t.same(addresses(index, `web.${S}`, TYPE.A), [`web.${S} 5 A 172.30.0.21`])
  t.equal(index.entry(`10-0-1-1.web.${S}`), before.get(`10-0-1-1.web.${S}`), 'endpoint names do not depend on the ClusterIP')
  t.equal(index.entry('20.0.30.172.in-addr.arpa'), undefined, 'the old ClusterIP PTR is gone')
  t.same(addresses(index, '21.0.30.172.in-addr.arpa', TYPE.PTR), [`21.0.30.172.in-addr.arpa 5 PTR web.${S}`])
})

t.test('an identical upsert changes nothing, not even the serial', async t => {
  let now = NOW
  const index = new RecordIndex({ zone: ZONE, now: () => now })
  const { services, slices } = clusterObjects()
  for (const s of services) index.upsertService(s)
  for (const s of slices) index.upsertSlice(s)
  const gen = index.generation
  const serial = index.serial
  now += 60_000
  index.upsertService(services[0]!)
  index.upsertSlice(slices[0]!)
  t.equal(index.generation, gen)
  t.equal(index.serial, serial)
  index.deleteService('shop', 'web')
  t.equal(index.serial, serial + 60, 'serial: Unix seconds of the last change')
  t.match(index.soa(ZONE).answer[0]?.data, { type: TYPE.SOA, serial: serial + 60 }, 'the SOA follows')
})

t.test('deleting a Service removes its names and ClusterIP PTR; slices keep endpoint PTR until they go', async t => {
  const index = clusterIndex()
  index.deleteService('shop', 'web')
  t.equal(index.entry(`web.${S}`), undefined)
  t.equal(index.entry(`10-0-1-1.web.${S}`), undefined)
  t.equal(index.entry('20.0.30.172.in-addr.arpa'), undefined)
  t.same(addresses(index, '1.1.0.10.in-addr.arpa', TYPE.PTR), [`1.1.0.10.in-addr.arpa 5 PTR 10-0-1-1.web.${S}`], 'CoreDNS reads endpoint PTR from slices alone')
  index.deleteSlice('shop', 'web-1')
  t.equal(index.entry('1.1.0.10.in-addr.arpa'), undefined)
})

t.test('PTR: the first Service with the ClusterIP wins; endpoints give one PTR per selecting Service', async t => {
  const index = new RecordIndex({ zone: ZONE, now: () => NOW })
  index.upsertService(svc('a', 'first', { clusterIP: '172.30.0.99', ports: [port('http', 80)] }))
  index.upsertService(svc('b', 'second', { clusterIP: '172.30.0.99', ports: [port('http', 80)] }))
  t.same(addresses(index, '99.0.30.172.in-addr.arpa', TYPE.PTR), ['99.0.30.172.in-addr.arpa 5 PTR first.a.svc.cluster.local'])
  index.deleteService('a', 'first')
  t.same(addresses(index, '99.0.30.172.in-addr.arpa', TYPE.PTR), ['99.0.30.172.in-addr.arpa 5 PTR second.b.svc.cluster.local'])
  for (const name of ['x', 'y']) {
    index.upsertService(svc('c', name, { clusterIP: 'None', ports: [] }))
    index.upsertSlice(slice('c', `${name}-1`, name, [ep('fd00:10::7', { hostname: `${name}-0` })], [], 'IPv6'))
  }
  const rev = reverseName('fd00:10::7') as string
  t.same(addresses(index, rev, TYPE.PTR), [`${rev} 5 PTR x-0.x.c.svc.cluster.local`, `${rev} 5 PTR y-0.y.c.svc.cluster.local`])
})

t.test('a slice whose service-name label moves leaves the old Service', async t => {
  const index = clusterIndex()
  index.upsertSlice(slice('shop', 'web-1', 'dual', [ep('10.0.1.1')], [{ name: 'http', protocol: 'TCP', port: 8080 }]))
  t.equal(index.entry(`10-0-1-1.web.${S}`), undefined)
  t.same(addresses(index, `10-0-1-1.dual.${S}`, TYPE.A), [`10-0-1-1.dual.${S} 5 A 10.0.1.1`])
})

t.test('a namespace exists while it holds a Service, slice or pod', async t => {
  const index = new RecordIndex({ zone: ZONE, podRecords: 'insecure', now: () => NOW })
  t.equal(index.entry('team.svc.cluster.local'), undefined)
  index.upsertPod(pod('team', 'p', '10.0.5.5'))
  t.ok(index.entry('team.svc.cluster.local'))
  t.ok(index.entry('team.pod.cluster.local'))
  t.same(addresses(index, '1-2-3-4.team.pod.cluster.local', TYPE.A), ['1-2-3-4.team.pod.cluster.local 5 A 1.2.3.4'])
  index.upsertService(svc('team', 's', { clusterIP: '172.30.0.50', ports: [port('http', 80)] }))
  index.deletePod('team', 'p')
  t.ok(index.entry('team.svc.cluster.local'), 'the Service keeps it')
  index.deleteService('team', 's')
  t.equal(index.entry('team.svc.cluster.local'), undefined)
  t.equal(index.entry('1-2-3-4.team.pod.cluster.local'), undefined, 'memoised pod names go with the namespace')
})

t.test('verified pods and podNamespaceByIP follow pod changes', async t => {
  const index = clusterIndex('verified')
  t.equal(index.podNamespaceByIP('10.0.1.1'), 'shop')
  t.equal(index.podNamespaceByIP('10.0.1.9'), undefined, 'Succeeded')
  t.equal(index.podNamespaceByIP('10.0.1.8'), undefined, 'terminating')
  t.equal(index.podNamespaceByIP('10.0.9.9'), 'lonely')
  t.ok(index.entry('10-0-1-1.shop.pod.cluster.local'))
  index.upsertPod(pod('shop', 'client', '10.0.1.77'))
  t.equal(index.entry('10-0-1-1.shop.pod.cluster.local'), undefined, 'the old IP no longer verifies')
  t.equal(index.podNamespaceByIP('10.0.1.1'), undefined)
  t.ok(index.entry('10-0-1-77.shop.pod.cluster.local'))
  index.deletePod('shop', 'client')
  t.equal(index.entry('10-0-1-77.shop.pod.cluster.local'), undefined)
})

t.test('publishNotReadyAddresses passes validation and reaches the index', async t => {
  const obj = validateObject({
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'h', namespace: 'shop' },
    spec: { clusterIP: 'None', publishNotReadyAddresses: true, ports: [{ port: 80 }] },
  })
  t.equal(obj.kind === 'Service' && obj.spec.publishNotReadyAddresses, true)
  t.throws(() => validateObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'h' }, spec: { clusterIP: 'None', publishNotReadyAddresses: 'yes' } }), /publishNotReadyAddresses/)
})
