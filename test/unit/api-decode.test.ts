import t from 'tap'
import { decodeManifests } from '../../pkg/api/decode.js'
import { DEFAULT_DECODE_LIMITS } from '../../pkg/api/limits.js'

const SVC = (name: string): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ns1}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
`

t.test('multi-document YAML, empty documents and kind: List', async t => {
  const text = `${SVC('a')}---\n---\n${SVC('b')}---
apiVersion: v1
kind: List
items:
  - ${JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: {} })}
  - ${JSON.stringify({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'a-1', namespace: 'ns1' }, addressType: 'IPv4', endpoints: [], ports: [] })}
`
  const r = decodeManifests(text, 'all.yaml')
  t.same(r.errors, [])
  t.same(r.objects.map(o => `${o.kind}/${o.metadata.name}`), ['Service/a', 'Service/b', 'Node/n1', 'EndpointSlice/a-1'])
})

t.test('JSON is YAML too', async t => {
  const r = decodeManifests(JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: {} }), 'n.json')
  t.equal(r.objects.length, 1)
})

t.test('malformed YAML names the file and document', async t => {
  const r = decodeManifests(`${SVC('a')}---\nkind: Service\n  metadata: [unclosed\n`, 'bad.yaml')
  t.equal(r.objects.length, 1, 'the good document still decodes')
  t.equal(r.errors.length, 1)
  t.equal(r.errors[0]?.code, 'FERRY_ERR_PARSE')
  t.match(r.errors[0]?.message, /^bad\.yaml, document 2: /)
})

t.test('invalid objects, unknown kinds and duplicates are errors', async t => {
  const r = decodeManifests(`${SVC('a')}---\n${SVC('a')}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n${SVC('c').replace('port: 80', 'port: 0')}`, 'm.yaml')
  t.same(r.errors.map(e => e.code).sort(), ['FERRY_ERR_DUPLICATE', 'FERRY_ERR_INVALID_OBJECT', 'FERRY_ERR_UNKNOWN_KIND'])
  t.match(r.errors.find(e => e.code === 'FERRY_ERR_INVALID_OBJECT')?.message, /Service "ns1\/c" \(m\.yaml, document 4\): spec\.ports\[0\]\.port/)
  t.match(r.errors.find(e => e.code === 'FERRY_ERR_DUPLICATE')?.message, /Service\/ns1\/a is defined more than once/)
})

t.test('duplicate keys inside one mapping are a parse error', async t => {
  const r = decodeManifests('apiVersion: v1\napiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {}\n', 'dup.yaml')
  t.equal(r.errors[0]?.code, 'FERRY_ERR_PARSE')
})

t.test('YAML merge keys (<<) merge as kubectl\'s YAML 1.1 parser does', async t => {
  const text = `defaults: &port {protocol: TCP, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: ns1, labels: &l {app: a}}
spec:
  selector: {<<: *l}
  ports:
  - <<: {protocol: UDP, targetPort: 8080}
    name: dns
    port: 53
  - {<<: [{port: 1}, {port: 2}], name: web, port: 80, protocol: TCP}
`
  const r = decodeManifests(text, 'merge.yaml')
  t.same(r.errors.map(e => e.code), ['FERRY_ERR_UNKNOWN_KIND'], 'only the anchor-holding document is refused')
  const svc = r.objects[0]
  t.same(svc?.kind === 'Service' ? svc.spec.ports : undefined, [
    { protocol: 'UDP', port: 53, name: 'dns', targetPort: 8080 },
    { protocol: 'TCP', port: 80, name: 'web' },
  ])
  t.same(svc?.kind === 'Service' ? svc.spec.selector : undefined, { app: 'a' })
})

t.test('a .json file written with a UTF-8 byte order mark decodes (kubectl strips it)', async t => {
  const r = decodeManifests('\ufeff' + JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: {} }), 'n.json')
  t.same(r.errors, [])
  t.equal(r.objects.length, 1)
})

t.test('a kind: List whose items are empty or null holds no objects, and is no error', async t => {
  for (const text of ['apiVersion: v1\nkind: List\nitems:\n', 'apiVersion: v1\nkind: List\nitems: []\n', 'apiVersion: v1\nkind: List\n']) {
    const r = decodeManifests(text, 'empty.yaml')
    t.same(r.errors.map(e => e.message), [], JSON.stringify(text))
    t.same(r.objects, [])
  }
  t.same(decodeManifests('{"apiVersion":"v1","kind":"List","items":null}', 'empty.json').errors.map(e => e.message), [])
})

t.test('a stream of JSON objects (jq -c \'.items[]\') decodes as kubectl reads it, within the object limit', async t => {
  const node = (n: string): string => JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: n, annotations: { x: '}{"' } }, spec: {} })
  for (const origin of ['nodes.json', 'nodes.yaml']) {
    const r = decodeManifests(`${node('a')}\n${node('b')}\n  ${node('c')}`, origin)
    t.same(r.errors.map(e => e.message), [], origin)
    t.same(r.objects.map(o => o.metadata.name), ['a', 'b', 'c'])
  }
  const bad = decodeManifests(`${node('a')}\n${node('b')}x`, 'nodes.json')
  t.equal(bad.errors[0]?.code, 'FERRY_ERR_PARSE', 'anything else between objects is still invalid JSON')
  const many = decodeManifests('[]'.repeat(50), 'many.json', { ...DEFAULT_DECODE_LIMITS, maxObjects: 10 })
  t.equal(many.errors[0]?.code, 'FERRY_ERR_LIMIT')
})

t.test('a typed list (ServiceList, as the API server returns it) decodes, its items given kind and apiVersion', async t => {
  const text = JSON.stringify({
    kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: '42' },
    items: [{ metadata: { name: 'a', namespace: 'ns1' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } }],
  })
  const r = decodeManifests(text, 'services.json')
  t.same(r.errors.map(e => e.message), [])
  t.same(r.objects.map(o => `${o.kind}/${o.metadata.name}`), ['Service/a'])
  const slices = decodeManifests('apiVersion: discovery.k8s.io/v1\nkind: EndpointSliceList\nitems:\n- {metadata: {name: a-1}, addressType: IPv4, endpoints: [], ports: []}\n', 's.yaml')
  t.same(slices.objects.map(o => `${o.kind}/${o.metadata.name}`), ['EndpointSlice/a-1'])
  t.equal(decodeManifests('apiVersion: v1\nkind: ServiceList\nitems: [{apiVersion: v1, kind: Pod, metadata: {name: p}}]\n', 'x.yaml').objects[0]?.kind, 'Pod', 'an item\'s own kind stays')
})
