import t from 'tap'
import { ClusterStore } from '../../pkg/cache/store.js'
import { validateObject } from '../../pkg/api/validate.js'
import type { KObject, Service } from '../../pkg/api/types.js'
import { FerryError } from '../../pkg/errors/errors.js'

const svc = (name: string, ip: string): Service => validateObject({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns1' }, spec: { clusterIP: ip, ports: [{ port: 80 }] },
}) as Service
const node = validateObject({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: {} })

t.test('replace, upsert and remove tell listeners (prev, cur) and drop no-ops', async t => {
  const store = new ClusterStore()
  const seen: string[] = []
  const name = (o: KObject | undefined): string => o === undefined ? '-' : `${o.metadata.name}@${(o as Service).spec.clusterIP ?? ''}`
  store.on('Service', (p, c) => seen.push(`${name(p)} -> ${name(c)}`))
  t.notOk(store.synced)
  store.replace([svc('a', '10.96.0.1'), svc('b', '10.96.0.2'), node])
  t.ok(store.synced)
  t.equal(store.size, 3)
  store.upsert(svc('a', '10.96.0.1')) // same content: no event
  store.upsert(svc('a', '10.96.0.9'))
  store.replace([svc('a', '10.96.0.9'), node]) // b disappears
  store.remove('Service', 'ns1', 'a')
  store.remove('Service', 'ns1', 'nope')
  t.same(seen, ['- -> a@10.96.0.1', '- -> b@10.96.0.2', 'a@10.96.0.1 -> a@10.96.0.9', 'b@10.96.0.2 -> -', 'a@10.96.0.9 -> -'])
  t.same(store.list('Service'), [])
  t.equal(store.get('Node', undefined, 'n1')?.metadata.name, 'n1')
})

t.test('errors are kept (bounded) and forwarded', async t => {
  const store = new ClusterStore()
  const got: string[] = []
  store.onError(e => got.push(e.code))
  for (let i = 0; i < 25; i++) store.error(new FerryError('FERRY_ERR_PARSE', `bad ${i}`))
  t.equal(got.length, 25)
  t.equal(store.errors.length, 20)
  t.equal(store.errors.at(-1)?.message, 'bad 24')
})

t.test('list and count read one kind only; duplicates in replace count once, last wins', async t => {
  const store = new ClusterStore()
  const seen: string[] = []
  store.on('Service', (p, c) => seen.push(`${p === undefined ? '-' : (p as Service).spec.clusterIP ?? ''} -> ${c === undefined ? '-' : (c as Service).spec.clusterIP ?? ''}`))
  store.replace([svc('a', '10.96.0.1'), node, svc('a', '10.96.0.2'), svc('b', '10.96.0.3')])
  t.equal(store.size, 3)
  t.equal(store.count('Service'), 2)
  t.equal(store.count('Node'), 1)
  t.equal(store.count('Pod'), 0)
  t.same(store.list('Node').map(n => n.metadata.name), ['n1'])
  t.same(store.list('Service').map(s => s.metadata.name), ['a', 'b'])
  t.same(seen, ['- -> 10.96.0.2', '- -> 10.96.0.3'])
  store.remove('Node', undefined, 'n1')
  t.equal(store.size, 2)
  t.equal(store.count('Node'), 0)
})

t.test('no-op detection compares content, not identity or key order', async t => {
  const store = new ClusterStore()
  let events = 0
  store.on('Service', () => { events++ })
  const a = svc('a', '10.96.0.1')
  store.upsert(a)
  store.upsert(a)
  store.upsert(svc('a', '10.96.0.1'))
  const reordered = { ...a, spec: Object.fromEntries(Object.entries(a.spec).reverse()) } as Service
  store.upsert(reordered)
  t.equal(events, 1, 'same content in any key order is a no-op')
  store.upsert({ ...a, metadata: { ...a.metadata, labels: { x: 'y' } } })
  store.upsert({ ...a, spec: { ...a.spec, ports: [{ protocol: 'TCP', port: 81 }] } })
  t.equal(events, 3)
})

t.test('a replace reaches batch listeners as one batch per kind, after every change is in the cache', async t => {
  const store = new ClusterStore()
  const heard: string[] = []
  const sliceOf = (name: string, svcName: string): KObject => validateObject({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'ns1', labels: { 'kubernetes.io/service-name': svcName } },
    addressType: 'IPv4', endpoints: [{ addresses: ['10.180.0.1'] }], ports: [{ name: 'p80', port: 80 }],
  })
  store.onBatch('Service', changes => {
    heard.push(`svc batch ${changes.map(c => `${c.cur?.metadata.name ?? `-${c.prev?.metadata.name ?? ''}`}@${c.revision}`).join(',')} size=${store.size} rev=${store.revision}`)
  })
  store.on('Service', (_p, c, rev) => heard.push(`svc one ${c?.metadata.name ?? '-'}@${rev}`))
  store.onBatch('EndpointSlice', changes => {
    heard.push(`slice batch ${changes.map(c => `${c.cur?.metadata.name ?? ''}@${c.revision}`).join(',')} for=${store.slicesForService('ns1', 'a').length}`)
  })
  store.replace([svc('a', '10.96.0.1'), sliceOf('a-1', 'a'), svc('b', '10.96.0.2'), sliceOf('a-2', 'a'), node])
  t.same(heard, [
    'svc batch a@1,b@2 size=5 rev=2',
    'svc one a@1',
    'svc one b@2',
    'slice batch a-1@3,a-2@4 for=2',
  ], 'consecutive revisions per kind, listeners in registration order, indexes already hold every object')
  t.equal(store.revision, 5, 'the Node counted too')
  heard.length = 0
  store.replace([svc('a', '10.96.0.1'), sliceOf('a-1', 'a'), svc('c', '10.96.0.3'), sliceOf('a-2', 'a'), node])
  t.same(heard, ['svc batch -b@6,c@7 size=5 rev=7', 'svc one -@6', 'svc one c@7'], 'only what changed; removals first')
  heard.length = 0
  store.upsert(svc('c', '10.96.0.4'))
  t.same(heard, ['svc batch c@8 size=5 rev=8', 'svc one c@8'], 'an upsert is a batch of one')
})
