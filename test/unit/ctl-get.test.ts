// ferryctl get over a store in memory: which objects print, in what shape and order, and what goes to
// stderr, for one type, several (kubectl get svc,eps) and named objects.
import t from 'tap'
import type { KObject, Kind } from '../../pkg/api/types.js'
import { validateObject } from '../../pkg/api/validate.js'
import { get, type GetRequest, type Lister } from '../../pkg/ctl/get.js'
import { parseResourceArgs } from '../../pkg/ctl/resource-args.js'
import { FerryError } from '../../pkg/errors/errors.js'

const svc = (name: string, namespace: string, ip: string): KObject =>
  validateObject({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { clusterIP: ip, ports: [{ port: 80 }] } })
const eps = (name: string, namespace: string): KObject => validateObject({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace }, addressType: 'IPv4',
  endpoints: [{ addresses: ['10.244.1.2'] }], ports: [{ port: 8080 }],
})
const node = (name: string): KObject => validateObject({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR: '10.244.1.0/24' } })

/** A store in memory that lists in etcd's key order (namespace, then name). */
function store (objects: KObject[], errors: FerryError[] = []): Lister & { calls: string[] } {
  const calls: string[] = []
  const key = (o: KObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`
  return {
    calls,
    list: async (kind: Kind, namespace?: string) => {
      calls.push(`${kind} ${namespace ?? '*'}`)
      const objs = objects.filter(o => o.kind === kind && (namespace === undefined || o.metadata.namespace === namespace))
      return { objects: objs.sort((a, b) => key(a) < key(b) ? -1 : 1), errors: kind === 'Service' ? errors : [] }
    },
  }
}

interface Out { code: number, stdout: string, stderr: string }
async function run (s: Lister, args: string[], opts: Partial<Omit<GetRequest, 'args'>> = {}): Promise<Out> {
  const out = { code: 0, stdout: '', stderr: '' }
  out.code = await get(s, { args: parseResourceArgs('get', args), namespace: 'default', all: false, output: 'table', ignoreNotFound: false, ...opts }, {
    stdout: x => { out.stdout += x }, stderr: x => { out.stderr += x },
  })
  return out
}

const objects = [svc('web', 'default', '10.96.0.10'), svc('db', 'default', '10.96.0.20'), svc('lb', 'shop', '10.96.0.30'), eps('web-abc', 'default'), node('n1')]

t.test('svc,eps: a table per type, a blank line between, NAME as TYPE/NAME', async t => {
  const s = store(objects)
  t.same(await run(s, ['svc,eps']), {
    code: 0,
    stdout: 'NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\n' +
      'service/db    ClusterIP   10.96.0.20   <none>        80/TCP\n' +
      'service/web   ClusterIP   10.96.0.10   <none>        80/TCP\n' +
      '\n' +
      'NAME                                     ADDRESSTYPE   PORTS   ENDPOINTS\n' +
      'endpointslice.discovery.k8s.io/web-abc   IPv4          8080    10.244.1.2\n',
    stderr: '',
  })
  t.same(s.calls, ['Service default', 'EndpointSlice default'], 'each type listed once, in the namespace')
  t.equal((await run(store(objects), ['eps,svc'])).stdout.split('\n')[0], 'NAME                                     ADDRESSTYPE   PORTS   ENDPOINTS', 'in the order asked')
})

t.test('several types asked, one found: a plain table, as kubectl (it prefixes only when the objects found are of several types)', async t => {
  t.same(await run(store(objects), ['svc,pods']), {
    code: 0, stdout: 'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\ndb     ClusterIP   10.96.0.20   <none>        80/TCP\nweb    ClusterIP   10.96.0.10   <none>        80/TCP\n', stderr: '',
  })
})

t.test('-A: NAMESPACE for namespaced types only; -o wide per table', async t => {
  const r = await run(store(objects), ['no,svc'], { all: true, output: 'wide' })
  t.equal(r.stdout,
    'NAME      INTERNAL-IP   POD-CIDRS       EXTERNAL-IP   OS-IMAGE    KERNEL-VERSION   CONTAINER-RUNTIME\n' +
    'node/n1   <none>        10.244.1.0/24   <none>        <unknown>   <unknown>        <unknown>\n' +
    '\n' +
    'NAMESPACE   NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   SELECTOR\n' +
    'default     service/db    ClusterIP   10.96.0.20   <none>        80/TCP    <none>\n' +
    'default     service/web   ClusterIP   10.96.0.10   <none>        80/TCP    <none>\n' +
    'shop        service/lb    ClusterIP   10.96.0.30   <none>        80/TCP    <none>\n')
})

t.test('named objects: kubectl\'s order, a new table whenever the type changes, NotFound per missing one', async t => {
  t.same(await run(store(objects), ['svc', 'web', 'db']), {
    code: 0, stdout: 'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\nweb    ClusterIP   10.96.0.10   <none>        80/TCP\ndb     ClusterIP   10.96.0.20   <none>        80/TCP\n', stderr: '',
  }, 'argument order, not name order')
  const mixed = await run(store(objects), ['svc/web', 'eps/web-abc', 'svc/db', 'no/gone'])
  t.equal(mixed.code, 1)
  t.equal(mixed.stdout,
    'NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\nservice/web   ClusterIP   10.96.0.10   <none>        80/TCP\n\n' +
    'NAME                                     ADDRESSTYPE   PORTS   ENDPOINTS\nendpointslice.discovery.k8s.io/web-abc   IPv4          8080    10.244.1.2\n\n' +
    'NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\nservice/db   ClusterIP   10.96.0.20   <none>        80/TCP\n')
  t.equal(mixed.stderr, 'Error from server (NotFound): nodes "gone" not found\n')
  const both = await run(store(objects), ['svc,eps', 'web'])
  t.equal(both.code, 1)
  t.equal(both.stdout, 'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\nweb    ClusterIP   10.96.0.10   <none>        80/TCP\n', 'one type found: no prefix')
  t.equal(both.stderr, 'Error from server (NotFound): endpointslices.discovery.k8s.io "web" not found\n', 'svc,eps web is svc/web and eps/web')
  t.same(await run(store(objects), ['svc,eps', 'web'], { ignoreNotFound: true }), { code: 0, stdout: both.stdout, stderr: '' })
})

t.test('a repeated name or TYPE/NAME prints once per mention, as kubectl visits each argument', async t => {
  const row = 'web    ClusterIP   10.96.0.10   <none>        80/TCP\n'
  t.same(await run(store(objects), ['svc', 'web', 'web']), { code: 0, stdout: 'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\n' + row + row, stderr: '' })
  t.same(await run(store(objects), ['svc/web', 'service/web'], { output: 'name' }), { code: 0, stdout: 'service/web\nservice/web\n', stderr: '' })
  const json = JSON.parse((await run(store(objects), ['svc/web', 'svc/web'], { output: 'json' })).stdout) as { kind: string, items: KObject[] }
  t.same([json.kind, json.items.length], ['List', 2], 'two mentions: a List of two')
  t.same(await run(store(objects), ['svc', 'nope', 'nope']), {
    code: 1, stdout: '', stderr: 'Error from server (NotFound): services "nope" not found\n'.repeat(2),
  }, 'a missing one, once per mention')
})

t.test('-o name and -o json/yaml: one stream, one List, whatever the types', async t => {
  t.same(await run(store(objects), ['svc,eps,no'], { output: 'name' }), {
    code: 0, stdout: 'service/db\nservice/web\nendpointslice.discovery.k8s.io/web-abc\nnode/n1\n', stderr: '',
  })
  const json = await run(store(objects), ['svc,eps'], { output: 'json' })
  const list = JSON.parse(json.stdout) as { apiVersion: string, kind: string, items: KObject[] }
  t.same([list.apiVersion, list.kind, list.items.map(o => `${o.kind}/${o.metadata.name}`)], ['v1', 'List', ['Service/db', 'Service/web', 'EndpointSlice/web-abc']])
  const yaml = await run(store(objects), ['svc/web', 'eps/web-abc'], { output: 'yaml' })
  t.match(yaml.stdout, /^apiVersion: v1\nitems:\n {2}- apiVersion: v1\n {4}kind: Service\n/)
  t.match(yaml.stdout, /\nkind: List\nmetadata:\n {2}resourceVersion: ""\n$/, 'kubectl\'s List: kind, then metadata with an empty resourceVersion')
  t.match(yaml.stdout, /\n {2}- apiVersion: discovery\.k8s\.io\/v1\n {4}kind: EndpointSlice\n/)
  const one = JSON.parse((await run(store(objects), ['svc/web'], { output: 'json' })).stdout) as KObject
  t.equal(one.kind, 'Service', 'one named object: the object itself')
  t.same(JSON.parse((await run(store(objects), ['svc', 'web', 'nope'], { output: 'json' })).stdout).items.length, 1, 'two named, one found: a List')
  const none = await run(store(objects), ['svc,eps', 'nope'], { output: 'json' })
  t.same([none.code, JSON.parse(none.stdout)], [1, { apiVersion: 'v1', items: [], kind: 'List', metadata: { resourceVersion: '' } }], 'none of several found: an empty List, as kubectl')
  t.equal(none.stderr.split('\n').length - 1, 2)
  t.same(await run(store(objects), ['svc/nope'], { output: 'json' }), { code: 1, stdout: '', stderr: 'Error from server (NotFound): services "nope" not found\n' },
    'one named, missing: only the error')
  t.same(await run(store(objects), ['svc,eps', 'nope'], { output: 'json', ignoreNotFound: true }), { code: 0, stdout: '', stderr: '' })
  t.same(await run(store([]), ['pods'], { output: 'json' }), {
    code: 0, stdout: '{\n  "apiVersion": "v1",\n  "items": [],\n  "kind": "List",\n  "metadata": {\n    "resourceVersion": ""\n  }\n}\n', stderr: '',
  }, 'kubectl\'s List: keys in its order, metadata.resourceVersion ""')
})

t.test('nothing found: one "No resources found" for all the types, none with --ignore-not-found', async t => {
  t.same(await run(store(objects), ['pods,eps'], { namespace: 'shop' }), { code: 0, stdout: '', stderr: 'No resources found in shop namespace.\n' })
  t.same(await run(store([]), ['svc,no']), { code: 0, stdout: '', stderr: 'No resources found in default namespace.\n' })
  t.same(await run(store([]), ['no']), { code: 0, stdout: '', stderr: 'No resources found\n' }, 'only cluster-scoped types: no namespace to name')
  t.same(await run(store([]), ['svc,eps'], { all: true }), { code: 0, stdout: '', stderr: 'No resources found\n' })
  t.same(await run(store([]), ['svc,eps'], { ignoreNotFound: true }), { code: 0, stdout: '', stderr: '' })
  t.same(await run(store([]), ['svc,eps'], { output: 'name' }), { code: 0, stdout: '', stderr: '' }, '-o name: silence, as kubectl')
})

t.test('values the store cannot decode are warnings; the rest prints', async t => {
  const r = await run(store(objects, [new FerryError('FERRY_ERR_PARSE', 'etcd key /ferry/v1/services/default/bad: invalid JSON')]), ['svc'], { output: 'name' })
  t.same(r, { code: 0, stdout: 'service/db\nservice/web\n', stderr: 'warning: etcd key /ferry/v1/services/default/bad: invalid JSON\n' })
})
