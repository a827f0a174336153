import t from 'tap'
import type { KObject } from '../../pkg/api/types.js'
import {
  DEFAULT_PREFIX, displayName, keyFor, keyForName, normalizePrefix, objectsPrefix, parseKey, prefixRangeEnd, resourcePrefix,
} from '../../pkg/etcd/keys.js'

const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { type: 'ClusterIP', ports: [], sessionAffinity: 'None' } } as KObject
const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1.example' }, spec: {} } as KObject

t.test('keys for objects', async t => {
  t.equal(DEFAULT_PREFIX, '/ferry')
  t.equal(keyFor(svc), '/ferry/v1/services/shop/web')
  t.equal(keyFor(node), '/ferry/v1/nodes/node-1.example')
  t.equal(keyFor(svc, '/other/'), '/other/v1/services/shop/web')
  t.equal(keyForName('EndpointSlice', 'default', 'web-abc'), '/ferry/v1/endpointslices/default/web-abc')
  t.equal(keyForName('Pod', 'kube-system', 'dns-0', '/x'), '/x/v1/pods/kube-system/dns-0')
  t.equal(keyForName('Node', 'ignored', 'n1'), '/ferry/v1/nodes/n1', 'nodes are cluster-scoped')
  t.throws(() => keyForName('Service', undefined, 'web'), /needs a namespace/)
  t.throws(() => keyForName('Pod', '', 'p'), /needs a namespace/)
})

t.test('prefixes', async t => {
  t.equal(normalizePrefix('/ferry///'), '/ferry')
  t.equal(normalizePrefix(), '/ferry')
  t.equal(objectsPrefix(), '/ferry/v1/')
  t.equal(objectsPrefix(''), '/v1/')
  t.equal(resourcePrefix('Service'), '/ferry/v1/services/')
  t.equal(resourcePrefix('EndpointSlice', undefined, 'default'), '/ferry/v1/endpointslices/default/')
  t.equal(resourcePrefix('Node', '/p', 'default'), '/p/v1/nodes/', 'namespace ignored for nodes')
  t.equal(resourcePrefix('Pod', '/p/'), '/p/v1/pods/')
})

t.test('parseKey round-trips and rejects keys outside the layout', async t => {
  const cases: Array<[string, string | undefined, ReturnType<typeof parseKey>]> = [
    ['/ferry/v1/services/shop/web', undefined, { kind: 'Service', namespace: 'shop', name: 'web' }],
    ['/ferry/v1/endpointslices/default/web-1', undefined, { kind: 'EndpointSlice', namespace: 'default', name: 'web-1' }],
    ['/ferry/v1/pods/default/p', undefined, { kind: 'Pod', namespace: 'default', name: 'p' }],
    ['/ferry/v1/nodes/node-1.example', undefined, { kind: 'Node', name: 'node-1.example' }],
    ['/custom/v1/nodes/n', '/custom', { kind: 'Node', name: 'n' }],
    ['/ferry/v1/nodes/n', '/custom', null],
    ['/ferry/v1/services/web', undefined, null], // namespaced kind needs a namespace
    ['/ferry/v1/services/a/b/c', undefined, null],
    ['/ferry/v1/nodes/ns/n', undefined, null],
    ['/ferry/v1/secrets/default/x', undefined, null],
    ['/ferry/v2/services/default/x', undefined, null],
    ['/ferry/v1/services/default/', undefined, null],
    ['/ferry/v1/services//x', undefined, null],
    ['/ferryx/v1/services/default/x', undefined, null],
    ['/ferry/subnets/10.0.0.0-24', undefined, null],
    ['', undefined, null],
  ]
  for (const [key, prefix, want] of cases) t.same(parseKey(key, prefix), want, key)
  t.same(parseKey(keyFor(svc)), { kind: 'Service', namespace: 'shop', name: 'web' })
  t.same(parseKey(keyFor(node)), { kind: 'Node', name: 'node-1.example' })
})

t.test('prefixRangeEnd', async t => {
  t.equal(prefixRangeEnd('/ferry/v1/').toString(), '/ferry/v10')
  t.same([...prefixRangeEnd('a\xff')], [0x61, 0xc3, 0xc0], 'increments the last byte below 0xff (utf8 bytes)')
  t.same([...prefixRangeEnd(Buffer.from([0x61, 0xff]))], [0x62], 'trailing 0xff bytes are dropped')
  t.same([...prefixRangeEnd(Buffer.from([0xff, 0xff]))], [0], 'all 0xff: all keys')
  t.same([...prefixRangeEnd('')], [0], 'empty prefix: all keys')
})

t.test('displayName', async t => {
  t.equal(displayName({ kind: 'Service', namespace: 'a', name: 'b' }), 'service/a/b')
  t.equal(displayName({ kind: 'Node', name: 'n' }), 'node/n')
})
