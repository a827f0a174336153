import t from 'tap'
import { ClusterStore } from '../../pkg/cache/store.js'
import { MultiIndex, podIPs, serviceClusterIPs } from '../../pkg/cache/index.js'
import { validateObject } from '../../pkg/api/validate.js'
import type { EndpointSlice, Pod, Service } from '../../pkg/api/types.js'

const svc = (name: string, ips: string[] | string, ns = 'ns1'): Service => validateObject({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns },
  spec: typeof ips === 'string' ? { clusterIP: ips, ports: [{ port: 80 }] } : { clusterIP: ips[0], clusterIPs: ips, ports: [{ port: 80 }] },
}) as Service
const slice = (name: string, service: string | undefined, ns = 'ns1'): EndpointSlice => validateObject({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { name, namespace: ns, ...(service !== undefined ? { labels: { 'kubernetes.io/service-name': service } } : {}) },
  addressType: 'IPv4', endpoints: [{ addresses: ['10.244.0.5'] }], ports: [{ port: 80, protocol: 'TCP' }],
}) as EndpointSlice
const pod = (name: string, ips: string[], ns = 'ns1'): Pod => validateObject({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, spec: {},
  status: ips.length === 0 ? { phase: 'Pending' } : { phase: 'Running', podIP: ips[0], podIPs: ips.map(ip => ({ ip })) },
}) as Pod
const names = (objs: Array<{ metadata: { name: string } }>): string[] => objs.map(o => o.metadata.name)

t.test('which fields are indexed', async t => {
  const cases: Array<{ name: string, svc: Service, want: string[] }> = [
    { name: 'single clusterIP', svc: svc('a', '10.96.0.1'), want: ['10.96.0.1'] },
    { name: 'dual stack, canonical v6', svc: svc('a', ['10.96.0.1', 'FD00:0:0::1']), want: ['10.96.0.1', 'fd00::1'] },
    { name: 'headless', svc: svc('a', 'None'), want: [] },
    { name: 'headless dual', svc: svc('a', ['None']), want: [] },
    { name: 'ExternalName', svc: validateObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', namespace: 'n' }, spec: { type: 'ExternalName', externalName: 'example.com' } }) as Service, want: [] },
  ]
  for (const c of cases) t.same(serviceClusterIPs(c.svc), c.want, c.name)
  t.same(podIPs(pod('p', ['10.244.0.5', 'fd00:10:244::5'])), ['10.244.0.5', 'fd00:10:244::5'])
  t.same(podIPs(pod('p', [])), [])
  t.same(podIPs(undefined), [])
})

t.test('Services by ClusterIP follow upserts that change the IPs, removals and replace()', async t => {
  const store = new ClusterStore()
  store.upsert(svc('a', ['10.96.0.1', 'fd00::1']))
  store.upsert(svc('b', '10.96.0.2'))
  t.equal(store.serviceByClusterIP('10.96.0.1')?.metadata.name, 'a')
  t.equal(store.serviceByClusterIP('fd00::1')?.metadata.name, 'a')
  t.equal(store.serviceByClusterIP('10.96.0.2')?.metadata.name, 'b')
  t.equal(store.serviceByClusterIP('None'), undefined)

  store.upsert(svc('a', '10.96.0.3')) // drops fd00::1 and 10.96.0.1
  t.equal(store.serviceByClusterIP('10.96.0.1'), undefined)
  t.equal(store.serviceByClusterIP('fd00::1'), undefined)
  t.equal(store.serviceByClusterIP('10.96.0.3')?.spec.clusterIP, '10.96.0.3', 'the index holds the current object')

  store.upsert(svc('a', 'None'))
  t.equal(store.serviceByClusterIP('10.96.0.3'), undefined, 'turning headless unindexes')

  // A conflict (possible with hand-written manifests): the first holder wins and keeps winning on update.
  store.upsert(svc('c', '10.96.0.2'))
  t.same(names(store.servicesByClusterIP('10.96.0.2')), ['b', 'c'])
  store.upsert({ ...svc('b', '10.96.0.2'), metadata: { name: 'b', namespace: 'ns1', labels: { x: 'y' } } })
  t.equal(store.serviceByClusterIP('10.96.0.2')?.metadata.labels?.x, 'y', 'an update keeps its place and its new content')
  store.remove('Service', 'ns1', 'b')
  t.equal(store.serviceByClusterIP('10.96.0.2')?.metadata.name, 'c')

  store.replace([svc('d', '10.96.0.2', 'ns2'), svc('e', '10.96.0.9')])
  t.same(names(store.servicesByClusterIP('10.96.0.2')), ['d'], 'replace drops what it does not list')
  t.equal(store.serviceByClusterIP('10.96.0.9')?.metadata.name, 'e')
  store.replace([])
  t.equal(store.serviceByClusterIP('10.96.0.2'), undefined)
  t.equal(store.serviceByClusterIP('10.96.0.9'), undefined)
})

t.test('EndpointSlices by Service follow label changes, namespaces, removals and replace()', async t => {
  const store = new ClusterStore()
  store.upsert(slice('web-1', 'web'))
  store.upsert(slice('web-2', 'web'))
  store.upsert(slice('web-x', 'web', 'ns2'))
  store.upsert(slice('orphan', undefined))
  t.same(names(store.slicesForService('ns1', 'web')), ['web-1', 'web-2'])
  t.same(names(store.slicesForService('ns2', 'web')), ['web-x'], 'namespaces apart')
  t.same(store.slicesForService('ns1', 'nope'), [])

  store.upsert(slice('web-2', 'api')) // relabelled
  t.same(names(store.slicesForService('ns1', 'web')), ['web-1'])
  t.same(names(store.slicesForService('ns1', 'api')), ['web-2'])
  store.upsert(slice('web-1', undefined)) // label removed
  t.same(store.slicesForService('ns1', 'web'), [])
  store.upsert(slice('orphan', 'web')) // label added
  t.same(names(store.slicesForService('ns1', 'web')), ['orphan'])

  store.remove('EndpointSlice', 'ns1', 'web-2')
  t.same(store.slicesForService('ns1', 'api'), [])
  store.replace([slice('web-3', 'web')])
  t.same(names(store.slicesForService('ns1', 'web')), ['web-3'])
  t.same(store.slicesForService('ns2', 'web'), [])
})

t.test('Pods by IP follow IP changes, removals and replace()', async t => {
  const store = new ClusterStore()
  store.upsert(pod('p1', []))
  store.upsert(pod('p1', ['10.244.0.5', 'fd00:10:244::5'])) // IPs assigned later
  store.upsert(pod('p2', ['10.244.0.6']))
  t.same(names(store.podsByIP('10.244.0.5')), ['p1'])
  t.same(names(store.podsByIP('fd00:10:244::5')), ['p1'])
  store.upsert(pod('p3', ['10.244.0.5'], 'ns2')) // an IP reused before the old pod is gone
  t.same(names(store.podsByIP('10.244.0.5')), ['p1', 'p3'])
  store.upsert(pod('p1', ['10.244.0.7']))
  t.same(names(store.podsByIP('10.244.0.5')), ['p3'])
  t.same(store.podsByIP('fd00:10:244::5'), [])
  t.same(names(store.podsByIP('10.244.0.7')), ['p1'])
  store.remove('Pod', 'ns2', 'p3')
  t.same(store.podsByIP('10.244.0.5'), [])
  store.replace([pod('p2', ['10.244.0.8'])])
  t.same(store.podsByIP('10.244.0.7'), [])
  t.same(store.podsByIP('10.244.0.6'), [])
  t.same(names(store.podsByIP('10.244.0.8')), ['p2'])
})

t.test('typed listeners get the revision; indexes are current when they run', async t => {
  const store = new ClusterStore()
  t.equal(store.revision, 0)
  const seen: string[] = []
  store.on('Service', (prev, cur, rev) => {
    // Typed per kind: spec.clusterIP needs no cast.
    seen.push(`${prev?.spec.clusterIP ?? '-'}>${cur?.spec.clusterIP ?? '-'}@${rev}`)
    if (cur !== undefined) t.equal(store.serviceByClusterIP(cur.spec.clusterIP ?? ''), cur)
    t.equal(store.revision, rev)
  })
  const pods: number[] = []
  store.on('Pod', (_p, cur, rev) => { pods.push(rev); t.equal(cur?.status?.podIP, '10.244.0.5') })
  store.upsert(svc('a', '10.96.0.1'))
  store.upsert(svc('a', '10.96.0.1')) // no-op: no revision
  store.upsert(pod('p', ['10.244.0.5']))
  store.upsert(svc('a', '10.96.0.2'))
  store.replace([pod('p', ['10.244.0.5'])]) // removes a; p unchanged
  store.remove('Service', 'ns1', 'gone') // absent: no revision
  t.same(seen, ['->10.96.0.1@1', '10.96.0.1>10.96.0.2@3', '10.96.0.2>-@4'])
  t.same(pods, [2])
  t.equal(store.revision, 4)
})

t.test('MultiIndex keeps order of first arrival and drops empty keys', async t => {
  const ix = new MultiIndex<string>()
  ix.update('o1', [], ['k'], 'v1')
  ix.update('o2', [], ['k', 'j'], 'v2')
  ix.update('o1', ['k'], ['k'], 'v1b')
  t.same(ix.get('k'), ['v1b', 'v2'])
  t.equal(ix.first('k'), 'v1b')
  t.equal(ix.size, 2)
  ix.update('o2', ['k', 'j'], [], undefined)
  ix.update('o1', ['k'], [], undefined)
  t.equal(ix.size, 0)
  t.equal(ix.first('k'), undefined)
})
