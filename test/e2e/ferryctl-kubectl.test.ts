// ferryctl's get and delete print what kubectl prints for the same command: NotFound errors, -o wide
// columns, several resource types at once. The compiled binary against a real etcd, with manifests
// applied from real directories. Needs `npm run build` first (the test script does it).
import { join } from 'node:path'
import t from 'tap'
import { startEtcd } from '../helpers/etcd.js'
import { ferryctl } from '../helpers/ferryctl.js'

const etcd = await startEtcd(t)
const ctl = ferryctl({ FERRY_ETCD_ENDPOINTS: etcd.endpoint })

/** A Service; `extra` goes on in its spec (indented two spaces). */
const service = (name: string, ns: string, clusterIP: string, extra = ''): string => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterIP: ${clusterIP}
  ports: [{ name: http, port: 80, targetPort: 8080 }]
${extra}`
const slice = (name: string, ns: string, svc: string, addresses: string[]): string => JSON.stringify({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  endpoints: addresses.map(a => ({ addresses: [a] })),
  ports: [{ name: 'http', port: 8080 }],
})

t.test('a missing object is kubectl\'s NotFound line: resource plural (group-qualified), quoted name, exit 1', async t => {
  const dir = t.testdir({
    'svc.yaml': service('web', 'default', '10.96.0.10'),
    'slice.json': slice('web-abc', 'default', 'web', ['10.244.1.2']),
    'node.yaml': 'apiVersion: v1\nkind: Node\nmetadata: { name: node-1 }\nspec: { podCIDR: 10.244.1.0/24 }\n',
  })
  t.equal((await ctl(['apply', '-f', dir])).code, 0)

  t.same(await ctl(['get', 'svc', 'nope']), { code: 1, stdout: '', stderr: 'Error from server (NotFound): services "nope" not found\n' })
  t.same(await ctl(['get', 'endpointslices/nope']), { code: 1, stdout: '', stderr: 'Error from server (NotFound): endpointslices.discovery.k8s.io "nope" not found\n' },
    'a resource outside the core group is qualified by it')
  t.same(await ctl(['get', 'no', 'nope']), { code: 1, stdout: '', stderr: 'Error from server (NotFound): nodes "nope" not found\n' })
  t.same(await ctl(['get', 'pods', 'nope', '-n', 'shop']), { code: 1, stdout: '', stderr: 'Error from server (NotFound): pods "nope" not found\n' },
    'no namespace in the message, as the API server words it')

  const partial = await ctl(['get', 'services', 'nope', 'web', 'gone'])
  t.equal(partial.code, 1)
  t.equal(partial.stdout, 'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\nweb    ClusterIP   10.96.0.10   <none>        80/TCP\n', 'the found one still prints')
  t.equal(partial.stderr, 'Error from server (NotFound): services "nope" not found\nError from server (NotFound): services "gone" not found\n', 'one line per missing name, in order')
  t.same(await ctl(['get', 'svc', 'nope', 'web', '--ignore-not-found', '-o', 'name']), { code: 0, stdout: 'service/web\n', stderr: '' }, '--ignore-not-found')

  t.same(await ctl(['delete', 'svc', 'nope', 'web']), {
    code: 1, stdout: 'service "web" deleted from default namespace\n', stderr: 'Error from server (NotFound): services "nope" not found\n',
  }, 'delete NAME: the found one goes, the missing one is NotFound')
  t.same(await ctl(['delete', 'eps/nope', 'eps/gone', '--ignore-not-found']), { code: 0, stdout: '', stderr: '' })
  const file = join(dir, 'svc.yaml')
  t.same(await ctl(['delete', '-f', file, '-f', join(dir, 'node.yaml')]), {
    code: 1, stdout: 'node "node-1" deleted\n', stderr: `Error from server (NotFound): error when deleting "${file}": services "web" not found\n`,
  }, 'delete -f names the file, as kubectl delete -f does')
  t.same(await ctl(['delete', '-f', file, '--ignore-not-found']), { code: 0, stdout: '', stderr: '' })
  t.equal((await ctl(['delete', '-f', dir, '--ignore-not-found'])).code, 0)
})

t.test('get -o wide adds kubectl\'s wide columns for each kind', async t => {
  const dir = t.testdir({
    'svc.yaml': service('web', 'default', '10.96.0.10', '  selector: { tier: front, app: web }\n') + '---\n' + service('db', 'shop', '10.96.0.20'),
    'slice.json': slice('web-abc', 'default', 'web', ['10.244.1.2', '10.244.1.3']),
    'nodes.yaml': `apiVersion: v1
kind: List
items:
  - { apiVersion: v1, kind: Node, metadata: { name: node-1 }, spec: { podCIDR: 10.244.1.0/24 },
      status: { addresses: [{ type: InternalIP, address: 192.168.1.11 }, { type: ExternalIP, address: 203.0.113.11 }] } }
  - { apiVersion: v1, kind: Node, metadata: { name: node-2 }, spec: { podCIDR: 10.244.2.0/24 } }
`,
    'pod.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: { name: web-1, namespace: default }\nspec: { nodeName: node-1 }\nstatus: { phase: Running, podIP: 10.244.1.2 }\n',
  })
  const applied = await ctl(['apply', '-f', dir])
  t.equal(applied.code, 0, applied.stderr)

  t.same(await ctl(['get', 'svc', '-o', 'wide']), {
    code: 0,
    stdout: 'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   SELECTOR\n' +
      'web    ClusterIP   10.96.0.10   <none>        80/TCP    app=web,tier=front\n',
    stderr: '',
  }, 'services: SELECTOR, labels in key order')
  t.equal((await ctl(['get', 'svc', '-A', '-o', 'wide'])).stdout,
    'NAMESPACE   NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   SELECTOR\n' +
    'default     web    ClusterIP   10.96.0.10   <none>        80/TCP    app=web,tier=front\n' +
    'shop        db     ClusterIP   10.96.0.20   <none>        80/TCP    <none>\n', 'with -A, and <none> for no selector')
  t.equal((await ctl(['get', 'svc', 'db', '-n', 'shop', '-o', 'wide'])).stdout,
    'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   SELECTOR\ndb     ClusterIP   10.96.0.20   <none>        80/TCP    <none>\n', 'by name')
  const eps = await ctl(['get', 'eps', '-o', 'wide'])
  t.same(eps, await ctl(['get', 'eps']), 'endpointslices: no wide columns, as kubectl')
  t.equal(eps.stdout, 'NAME      ADDRESSTYPE   PORTS   ENDPOINTS\nweb-abc   IPv4          8080    10.244.1.2,10.244.1.3\n')
  t.same(await ctl(['get', 'nodes', '-o', 'wide']), {
    code: 0,
    stdout: 'NAME     INTERNAL-IP    POD-CIDRS       EXTERNAL-IP    OS-IMAGE    KERNEL-VERSION   CONTAINER-RUNTIME\n' +
      'node-1   192.168.1.11   10.244.1.0/24   203.0.113.11   <unknown>   <unknown>        <unknown>\n' +
      'node-2   <none>         10.244.2.0/24   <none>         <unknown>   <unknown>        <unknown>\n',
    stderr: '',
  }, 'nodes: EXTERNAL-IP, and the node info ferry does not keep as kubectl shows it unset')
  t.same(await ctl(['get', 'pods', '-o', 'wide']), {
    code: 0,
    stdout: 'NAME    STATUS    IP           NODE     NOMINATED NODE   READINESS GATES\n' +
      'web-1   Running   10.244.1.2   node-1   <none>           <none>\n',
    stderr: '',
  }, 'pods: NOMINATED NODE, READINESS GATES')
  t.same(await ctl(['get', 'pods', '-n', 'empty', '-o', 'wide']), { code: 0, stdout: '', stderr: 'No resources found in empty namespace.\n' })
  const bad = await ctl(['get', 'svc', '-o', 'jsonpath'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /^error: --output: must be table, wide, json, yaml or name, got "jsonpath"/)
  t.equal((await ctl(['delete', '-f', dir])).code, 0)
})

t.test('get svc,eps (and TYPE/NAME of several types) lists each type in turn, as kubectl', async t => {
  const dir = t.testdir({
    'a-svc.yaml': service('web', 'default', '10.96.0.10') + '---\n' + service('db', 'default', '10.96.0.20') + '---\n' + service('lb', 'shop', '10.96.0.30'),
    'b-slices.yaml': slice('web-abc', 'default', 'web', ['10.244.1.2']) + '\n---\n' + slice('lb-xyz', 'shop', 'lb', ['10.244.2.2', '10.244.2.3']),
    'c-node.yaml': 'apiVersion: v1\nkind: Node\nmetadata: { name: node-1 }\nspec: { podCIDR: 10.244.1.0/24 }\n',
  })
  const applied = await ctl(['apply', '-f', dir])
  t.equal(applied.code, 0, applied.stderr)

  t.same(await ctl(['get', 'svc,eps']), {
    code: 0,
    stdout: [
      'NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)',
      'service/db    ClusterIP   10.96.0.20   <none>        80/TCP',
      'service/web   ClusterIP   10.96.0.10   <none>        80/TCP',
      '',
      'NAME                                     ADDRESSTYPE   PORTS   ENDPOINTS',
      'endpointslice.discovery.k8s.io/web-abc   IPv4          8080    10.244.1.2',
      '',
    ].join('\n'),
    stderr: '',
  }, 'a table per type, a blank line between, TYPE/NAME names')
  t.same(await ctl(['get', 'services,endpointslices', '-n', 'shop']), {
    code: 0,
    stdout: [
      'NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)',
      'service/lb   ClusterIP   10.96.0.30   <none>        80/TCP',
      '',
      'NAME                                    ADDRESSTYPE   PORTS   ENDPOINTS',
      'endpointslice.discovery.k8s.io/lb-xyz   IPv4          8080    10.244.2.2,10.244.2.3',
      '',
    ].join('\n'),
    stderr: '',
  }, '-n')
  t.same(await ctl(['get', 'svc,eps,no', '-A']), {
    code: 0,
    stdout: [
      'NAMESPACE   NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)',
      'default     service/db    ClusterIP   10.96.0.20   <none>        80/TCP',
      'default     service/web   ClusterIP   10.96.0.10   <none>        80/TCP',
      'shop        service/lb    ClusterIP   10.96.0.30   <none>        80/TCP',
      '',
      'NAMESPACE   NAME                                     ADDRESSTYPE   PORTS   ENDPOINTS',
      'default     endpointslice.discovery.k8s.io/web-abc   IPv4          8080    10.244.1.2',
      'shop        endpointslice.discovery.k8s.io/lb-xyz    IPv4          8080    10.244.2.2,10.244.2.3',
      '',
      'NAME          INTERNAL-IP   POD-CIDRS',
      'node/node-1   <none>        10.244.1.0/24',
      '',
    ].join('\n'),
    stderr: '',
  }, '-A: NAMESPACE for the namespaced types')
  t.same(await ctl(['get', 'svc,pods']), {
    code: 0, stdout: 'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\ndb     ClusterIP   10.96.0.20   <none>        80/TCP\nweb    ClusterIP   10.96.0.10   <none>        80/TCP\n', stderr: '',
  }, 'only one type has objects: a plain table, as kubectl')
  t.same(await ctl(['get', 'pods,eps', '-n', 'empty']), { code: 0, stdout: '', stderr: 'No resources found in empty namespace.\n' }, 'nothing of any type: said once')

  t.same(await ctl(['get', 'svc,eps', '-o', 'name']), {
    code: 0, stdout: 'service/db\nservice/web\nendpointslice.discovery.k8s.io/web-abc\n', stderr: '',
  })
  const json = await ctl(['get', 'svc,eps', '-o', 'json'])
  t.equal(json.code, 0, json.stderr)
  const list = JSON.parse(json.stdout) as { apiVersion: string, kind: string, items: Array<{ kind: string, metadata: { name: string } }>, metadata: unknown }
  t.same([list.apiVersion, list.kind, list.items.map(i => `${i.kind}/${i.metadata.name}`)], ['v1', 'List', ['Service/db', 'Service/web', 'EndpointSlice/web-abc']], 'one kind: List')
  t.same([Object.keys(list), list.metadata], [['apiVersion', 'items', 'kind', 'metadata'], { resourceVersion: '' }], 'as kubectl prints a List it built')
  const yaml = await ctl(['get', 'svc/web', 'eps/web-abc', '-o', 'yaml'])
  t.equal(yaml.code, 0, yaml.stderr)
  t.match(yaml.stdout, /^apiVersion: v1\nitems:\n {2}- apiVersion: v1\n {4}kind: Service\n[^]*\n {2}- apiVersion: discovery\.k8s\.io\/v1\n {4}kind: EndpointSlice\n[^]*\nkind: List\nmetadata:\n {2}resourceVersion: ""\n$/)

  const named = await ctl(['get', 'svc,eps', 'web', 'web-abc'])
  t.equal(named.code, 1, 'svc,eps web web-abc is svc/web svc/web-abc eps/web eps/web-abc')
  t.equal(named.stdout, [
    'NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)',
    'service/web   ClusterIP   10.96.0.10   <none>        80/TCP',
    '',
    'NAME                                     ADDRESSTYPE   PORTS   ENDPOINTS',
    'endpointslice.discovery.k8s.io/web-abc   IPv4          8080    10.244.1.2',
    '',
  ].join('\n'))
  t.equal(named.stderr, 'Error from server (NotFound): services "web-abc" not found\nError from server (NotFound): endpointslices.discovery.k8s.io "web" not found\n')
  t.same(await ctl(['get', 'svc/db', 'no/node-1', '-o', 'name']), { code: 0, stdout: 'service/db\nnode/node-1\n', stderr: '' }, 'TYPE/NAME of different types')
  const all = await ctl(['get', 'svc,eps', 'web', '-A'])
  t.equal(all.code, 1)
  t.match(all.stderr, /^error: get: a resource cannot be retrieved by name across all namespaces/)

  t.same(await ctl(['get', 'svc/db', 'service/db', '-o', 'name']), { code: 0, stdout: 'service/db\nservice/db\n', stderr: '' }, 'a repeated object: once per mention, as kubectl')
  t.same(await ctl(['delete', 'svc', 'db', 'db']), { code: 0, stdout: 'service "db" deleted from default namespace\n', stderr: '' }, 'delete acts on it once')

  t.same(await ctl(['delete', 'svc,eps', 'web', 'web-abc', '--ignore-not-found']), {
    code: 0, stdout: 'service "web" deleted from default namespace\nendpointslice.discovery.k8s.io "web-abc" deleted from default namespace\n', stderr: '',
  }, 'delete takes the same forms')
  t.equal((await ctl(['delete', '-f', dir, '--ignore-not-found'])).code, 0)
})
