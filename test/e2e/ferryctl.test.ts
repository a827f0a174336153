// The compiled ferryctl against a real etcd. Needs `npm run build` first (the test script does it).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import t from 'tap'
import { startEtcd } from '../helpers/etcd.js'
import { FERRYCTL_BIN as bin, ferryctl, type CtlRun } from '../helpers/ferryctl.js'

const etcd = await startEtcd(t)

/** The built ferryctl against this test's etcd; the helper refuses a stale build of any of its sources. */
async function ctl (args: string[], env: Record<string, string> = {}): Promise<CtlRun> {
  return await ferryctl({ FERRY_ETCD_ENDPOINTS: etcd.endpoint, ...env })(args)
}

const web = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  clusterIP: 10.96.0.10
  ports: [{ name: http, port: 80, targetPort: 8080 }, { name: dns, port: 53, protocol: UDP }]
`
const lb = `apiVersion: v1
kind: Service
metadata: { name: lb, namespace: shop }
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.11
  externalIPs: [192.0.2.10]
  ports: [{ port: 443, nodePort: 30443 }]
`
const slice = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'web-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints: ['10.244.1.2', '10.244.1.3', '10.244.2.2', '10.244.2.3', '10.244.3.2'].map(a => ({ addresses: [a] })),
  ports: [{ name: 'http', port: 8080 }],
}
const nodeList = `apiVersion: v1
kind: List
items:
  - { apiVersion: v1, kind: Node, metadata: { name: node-1 }, spec: { podCIDR: 10.244.1.0/24 }, status: { addresses: [{ type: InternalIP, address: 192.168.1.11 }] } }
  - { apiVersion: v1, kind: Node, metadata: { name: node-2 }, spec: { podCIDR: 10.244.2.0/24 } }
`

async function keys (): Promise<string[]> {
  const { Etcd3 } = await import('etcd3')
  const c = new Etcd3({ hosts: etcd.endpoint })
  try { return (await c.getAll().prefix('/ferry/').keys()).sort() } finally { c.close() }
}

t.test('--help documents every flag and touches no etcd', async t => {
  const r = await ctl(['--help'], { FERRY_ETCD_ENDPOINTS: 'http://127.0.0.1:1' })
  t.equal(r.code, 0)
  for (const flag of ['--filename', '--namespace', '--all-namespaces', '--output', '--etcd-endpoints', '--etcd-prefix', '--ignore-not-found', 'FERRY_ETCD_ENDPOINTS', 'apply', 'delete', 'get',
    '--etcd-cafile', '--etcd-certfile', '--etcd-keyfile', '--etcd-username', '--etcd-password-file', '--max-txn-ops', '--max-request-bytes',
    'FERRY_ETCD_CAFILE', 'FERRY_ETCD_CERTFILE', 'FERRY_ETCD_KEYFILE', 'FERRY_ETCD_USERNAME', 'FERRY_ETCD_PASSWORD_FILE', 'FERRY_ETCD_PASSWORD', 'NOT atomic']) {
    t.match(r.stdout, flag, `help mentions ${flag}`)
  }
  t.same(await ctl([]), { code: 0, stdout: r.stdout, stderr: '' }, 'no command prints help')
  const bad = await ctl(['frobnicate'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /^error: unknown command "frobnicate"/)
  const badFlag = await ctl(['get', 'svc', '--colour'])
  t.equal(badFlag.code, 1)
  t.match(badFlag.stderr, /^error: Unknown option '--colour'/)
})

t.test('apply a directory, get, delete', async t => {
  const dir = t.testdir({
    '10-web.yaml': web + '---\n' + lb,
    '20-slice.json': JSON.stringify(slice),
    '30-nodes.yml': nodeList,
    'README.md': 'not a manifest',
    nested: { '40-ignored.yaml': 'this: [is not read' },
  })
  const applied = await ctl(['apply', '-f', dir])
  t.equal(applied.code, 0, applied.stderr)
  t.equal(applied.stdout, [
    'service/web created', 'service/lb created', 'endpointslice.discovery.k8s.io/web-abc created',
    'node/node-1 created', 'node/node-2 created', '',
  ].join('\n'), 'files in name order, non-recursive')
  t.same(await keys(), [
    '/ferry/v1/endpointslices/default/web-abc', '/ferry/v1/nodes/node-1', '/ferry/v1/nodes/node-2',
    '/ferry/v1/services/default/web', '/ferry/v1/services/shop/lb',
  ])
  const again = await ctl(['apply', '-f', join(dir, '10-web.yaml')])
  t.equal(again.stdout, 'service/web unchanged\nservice/lb unchanged\n', 'kubectl\'s words: kind/name, no namespace')

  const table = await ctl(['get', 'services'])
  t.equal(table.code, 0, table.stderr)
  t.equal(table.stdout, [
    'NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)',
    'web    ClusterIP   10.96.0.10   <none>        80/TCP,53/UDP',
    '',
  ].join('\n'))
  const all = await ctl(['get', 'svc', '-A'])
  t.equal(all.stdout, [
    'NAMESPACE   NAME   TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)',
    'default     web    ClusterIP      10.96.0.10   <none>        80/TCP,53/UDP',
    'shop        lb     LoadBalancer   10.96.0.11   192.0.2.10    443:30443/TCP',
    '',
  ].join('\n'))
  const eps = await ctl(['get', 'endpointslices'])
  t.equal(eps.stdout, [
    'NAME      ADDRESSTYPE   PORTS   ENDPOINTS',
    'web-abc   IPv4          8080    10.244.1.2,10.244.1.3,10.244.2.2 + 2 more...',
    '',
  ].join('\n'))
  const nodes = await ctl(['get', 'nodes', '-n', 'ignored'])
  t.match(nodes.stdout, /node-1\s+192\.168\.1\.11\s+10\.244\.1\.0\/24/)
  t.match(nodes.stdout, /node-2\s+<none>\s+10\.244\.2\.0\/24/)

  const json = await ctl(['get', 'svc', '-n', 'shop', '-o', 'json'])
  t.equal(json.code, 0)
  const list = JSON.parse(json.stdout) as { kind: string, items: Array<{ metadata: { name: string }, spec: { type: string, externalTrafficPolicy?: string } }> }
  t.equal(list.kind, 'List')
  t.same(list.items.map(i => i.metadata.name), ['lb'])
  t.equal(list.items[0]?.spec.externalTrafficPolicy, 'Cluster', 'stored normalized')
  const one = JSON.parse((await ctl(['get', 'svc', 'web', '-o', 'json'])).stdout) as { kind: string, metadata: { name: string } }
  t.same([one.kind, one.metadata.name], ['Service', 'web'])
  const yaml = await ctl(['get', 'service', 'web', '-o', 'yaml'])
  t.match(yaml.stdout, /^apiVersion: v1\nkind: Service\n/)
  const missing = await ctl(['get', 'svc', 'nope'])
  t.equal(missing.code, 1)
  t.equal(missing.stderr, 'Error from server (NotFound): services "nope" not found\n')
  const empty = await ctl(['get', 'pods'])
  t.equal(empty.code, 0)
  t.equal(empty.stdout, '')
  t.match(empty.stderr, /No resources found in default namespace/)

  const deleted = await ctl(['delete', '-f', join(dir, '10-web.yaml')])
  t.equal(deleted.code, 0, deleted.stderr)
  t.equal(deleted.stdout, 'service "web" deleted from default namespace\nservice "lb" deleted from shop namespace\n', 'kubectl\'s delete words')
  const gone = await ctl(['delete', '-f', join(dir, '10-web.yaml')])
  t.equal(gone.code, 1)
  t.match(gone.stderr, /^Error from server \(NotFound\): error when deleting ".*10-web\.yaml": services "web" not found\n/)
  t.equal((await ctl(['delete', '-f', join(dir, '10-web.yaml'), '--ignore-not-found'])).code, 0)
  t.equal((await ctl(['delete', '-f', dir, '--ignore-not-found'])).code, 0)
  t.same(await keys(), [])
})

t.test('an invalid object: exit 1, names file, object and field, writes nothing', async t => {
  const dir = t.testdir({
    'a-good.yaml': web,
    'b-bad.yaml': lb.replace('clusterIP: 10.96.0.11', 'clusterIP: 10.96.0.999'),
  })
  await ctl(['apply', '-f', join(dir, 'a-good.yaml')])
  const before = await etcd.revision()
  const r = await ctl(['apply', '-f', dir])
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.match(r.stderr, /^error: Service "shop\/lb" \(.*b-bad\.yaml, document 1\): spec\.clusterIP: Invalid value: "10\.96\.0\.999"/)
  t.match(r.stderr, /nothing was written/)
  t.equal(await etcd.revision(), before, 'etcd unchanged')
  t.same(await keys(), ['/ferry/v1/services/default/web'])

  const parse = t.testdir({ 'broken.yaml': 'kind: Service\nmetadata: {name: [unclosed\n' })
  const pr = await ctl(['apply', '-f', parse])
  t.equal(pr.code, 1)
  t.match(pr.stderr, /^error: .*broken\.yaml, document 1: /)
  const kind = await ctl(['apply', '-f', t.testdir({ 'x.yaml': 'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n' })])
  t.equal(kind.code, 1)
  t.match(kind.stderr, /kind: unsupported kind "Secret"/)
  const none = await ctl(['apply', '-f', join(dir, 'does-not-exist.yaml')])
  t.equal(none.code, 1)
  t.match(none.stderr, /^error: .*does-not-exist\.yaml: ENOENT/)
  t.equal(await etcd.revision(), before, 'still unchanged')
})

t.test('duplicate names are an error, within a file and across files', async t => {
  const before = await etcd.revision()
  const within = await ctl(['apply', '-f', t.testdir({ 'dup.yaml': web + '---\n' + web })])
  t.equal(within.code, 1)
  t.match(within.stderr, /error: .*dup\.yaml: Service\/default\/web is defined more than once/)
  const dir = t.testdir({ 'one.yaml': web, 'two.yaml': web.replace('10.96.0.10', '10.96.0.20') })
  const across = await ctl(['apply', '-f', dir])
  t.equal(across.code, 1)
  t.match(across.stderr, /error: .*two\.yaml: Service\/default\/web is also defined in .*one\.yaml/)
  t.equal(await etcd.revision(), before, 'nothing written')
})

t.test('--etcd-endpoints and --etcd-prefix', async t => {
  const file = join(t.testdir({ 'web.yaml': web }), 'web.yaml')
  const defaultKeys = await keys()
  const r = await ctl(['apply', '-f', file, '--etcd-endpoints', `http://127.0.0.1:1,${etcd.endpoint}`, '--etcd-prefix', '/tenant-b'], { FERRY_ETCD_ENDPOINTS: '' })
  t.equal(r.code, 0, r.stderr)
  const got = await ctl(['get', 'svc', '--etcd-prefix', '/tenant-b/'])
  t.match(got.stdout, /web\s+ClusterIP\s+10\.96\.0\.10/)
  t.same(await keys(), defaultKeys, 'default prefix untouched')
  const down = await ctl(['get', 'svc', '--etcd-endpoints', 'http://127.0.0.1:1'])
  t.equal(down.code, 1)
  t.match(down.stderr, /^error: etcd list failed: .*UNAVAILABLE/)
})

t.test('get NAME...: several names or TYPE/NAME, found ones printed, each missing one an error (kubectl get)', async t => {
  const db = web.replace('name: web', 'name: db').replace('10.96.0.10', '10.96.0.20')
  const file = join(t.testdir({ 'svcs.yaml': web + '---\n' + db }), 'svcs.yaml')
  t.equal((await ctl(['apply', '-f', file])).code, 0)
  const names = (r: CtlRun): string[] => (JSON.parse(r.stdout) as { kind: string, items: Array<{ metadata: { name: string } }> }).items.map(i => i.metadata.name)

  const two = await ctl(['get', 'services', 'db', 'web', '-o', 'json'])
  t.equal(two.code, 0, two.stderr)
  t.same(names(two), ['db', 'web'], 'a List, in argument order')
  const slash = await ctl(['get', 'svc/db', 'service/web', '-o', 'json'])
  t.equal(slash.code, 0, slash.stderr)
  t.same(names(slash), ['db', 'web'], 'TYPE/NAME form')
  const one = JSON.parse((await ctl(['get', 'svc/web', '-o', 'json'])).stdout) as { kind: string }
  t.equal(one.kind, 'Service', 'one TYPE/NAME is the object itself')

  const partial = await ctl(['get', 'svc', 'web', 'nope', 'gone'])
  t.equal(partial.code, 1, 'a missing name fails the command')
  t.match(partial.stdout, /^NAME .*\nweb\s+ClusterIP\s+10\.96\.0\.10/, 'the found ones still print')
  t.equal(partial.stderr, 'Error from server (NotFound): services "nope" not found\nError from server (NotFound): services "gone" not found\n')
  const partialJson = await ctl(['get', 'svc', 'web', 'nope', '-o', 'json'])
  t.equal(partialJson.code, 1)
  t.same(names(partialJson), ['web'], 'stdout still parses')
  const missing = await ctl(['get', 'svc/nope'])
  t.same([missing.code, missing.stdout, missing.stderr], [1, '', 'Error from server (NotFound): services "nope" not found\n'])
  const ignored = await ctl(['get', 'svc', 'web', 'nope', '--ignore-not-found', '-o', 'json'])
  t.same([ignored.code, names(ignored), ignored.stderr], [0, ['web'], ''], '--ignore-not-found skips the missing')
  const none = await ctl(['get', 'svc', 'nope', '--ignore-not-found'])
  t.same([none.code, none.stdout, none.stderr], [0, '', ''], 'nothing found and nothing to say, as kubectl')

  const mixed = await ctl(['get', 'svc', 'svc/web'])
  t.equal(mixed.code, 1)
  t.match(mixed.stderr, /^error: get: there is no need to specify a resource type as a separate argument when passing arguments in resource\/name form/)
  // Types may differ, as in kubectl; each name is looked up in its own type.
  const kinds = await ctl(['get', 'svc/web', 'node/node-1', '-o', 'name'])
  t.same(kinds, { code: 1, stdout: 'service/web\n', stderr: 'Error from server (NotFound): nodes "node-1" not found\n' })
  // kubectl refuses names with -A, and lets -A win over -n.
  const byNameEverywhere = await ctl(['get', 'svc', 'web', '-A'])
  t.same([byNameEverywhere.code, byNameEverywhere.stdout], [1, ''])
  t.match(byNameEverywhere.stderr, /^error: get: a resource cannot be retrieved by name across all namespaces/)
  const both = await ctl(['get', 'svc', '-n', 'elsewhere', '-A'])
  t.equal(both.code, 0, both.stderr)
  t.match(both.stdout, /^NAMESPACE\s+NAME .*\ndefault\s+db\s+ClusterIP\s+10\.96\.0\.20\s.*\ndefault\s+web\s+ClusterIP/s, '-A wins over -n: every namespace, with the NAMESPACE column')
  t.equal((await ctl(['delete', '-f', file])).code, 0)
})

t.test('get -o name prints kubectl\'s TYPE/NAME lines, which get takes back', async t => {
  const dir = t.testdir({ 'web.yaml': web, 'slice.json': JSON.stringify(slice), 'nodes.yaml': nodeList })
  t.equal((await ctl(['apply', '-f', dir])).code, 0)
  const name = async (args: string[]): Promise<CtlRun> => await ctl(['get', ...args, '-o', 'name'])
  t.same(await name(['svc']), { code: 0, stdout: 'service/web\n', stderr: '' })
  t.same(await name(['svc', '-A']), { code: 0, stdout: 'service/web\n', stderr: '' }, 'no namespace, as kubectl')
  t.same(await name(['endpointslices']), { code: 0, stdout: 'endpointslice.discovery.k8s.io/web-abc\n', stderr: '' })
  t.same(await name(['nodes']), { code: 0, stdout: 'node/node-1\nnode/node-2\n', stderr: '' })
  t.same(await name(['endpointslice.discovery.k8s.io/web-abc']), { code: 0, stdout: 'endpointslice.discovery.k8s.io/web-abc\n', stderr: '' }, 'round trip')
  t.same(await name(['pods']), { code: 0, stdout: '', stderr: '' }, 'nothing found: no output, as kubectl -o name')
  t.equal((await ctl(['delete', '-f', dir])).code, 0)
})

t.test('a reader that stops early (get ... | head -1) ends ferryctl quietly, with the shell\'s SIGPIPE status', async t => {
  const file = join(t.testdir({ 'web.yaml': web }), 'web.yaml')
  t.equal((await ctl(['apply', '-f', file])).code, 0)
  const child = spawn(process.execPath, [bin, 'get', 'svc', '-o', 'name'], {
    env: { PATH: process.env.PATH ?? '', FERRY_ETCD_ENDPOINTS: etcd.endpoint }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  // Closed before ferryctl has started (let alone read etcd), so its first write meets EPIPE.
  child.stdout.destroy()
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const [code, signal] = await once(child, 'exit') as [number | null, string | null]
  t.equal(stderr, '', 'no stack trace')
  t.same({ code, signal }, { code: 141, signal: null }, '128 + SIGPIPE, what a shell shows for kubectl here')
  t.equal((await ctl(['delete', '-f', file])).code, 0)
})

t.test('delete TYPE NAME... and TYPE/NAME... (kubectl delete svc web): missing ones are errors, exit 1', async t => {
  const db = web.replace('name: web', 'name: db').replace('10.96.0.10', '10.96.0.20')
  const dir = t.testdir({ 'svcs.yaml': web + '---\n' + db + '---\n' + lb, 'slice.json': JSON.stringify(slice), 'nodes.yaml': nodeList })
  t.equal((await ctl(['apply', '-f', dir])).code, 0)

  t.same(await ctl(['delete', 'svc', 'web', 'db']), { code: 0, stdout: 'service "web" deleted from default namespace\nservice "db" deleted from default namespace\n', stderr: '' })
  t.same(await ctl(['delete', 'service/lb', '-n', 'shop']), { code: 0, stdout: 'service "lb" deleted from shop namespace\n', stderr: '' }, '-n names the namespace')
  const names = (await ctl(['get', 'eps', '-o', 'name'])).stdout.trim().split('\n')
  t.same(await ctl(['delete', ...names]), { code: 0, stdout: 'endpointslice.discovery.k8s.io "web-abc" deleted from default namespace\n', stderr: '' }, 'get -o name feeds delete')
  t.same(await ctl(['delete', 'nodes', 'node-1', 'nope']),
    { code: 1, stdout: 'node "node-1" deleted\n', stderr: 'Error from server (NotFound): nodes "nope" not found\n' }, 'the found ones go, the missing fail the command')
  t.same(await ctl(['delete', 'no/node-2', 'no/nope', '--ignore-not-found']), { code: 0, stdout: 'node "node-2" deleted\n', stderr: '' })
  t.same(await keys(), [])

  const noName = await ctl(['delete', 'svc'])
  t.equal(noName.code, 1)
  t.match(noName.stderr, /^error: delete: resource\(s\) were provided, but no name was specified/)
  const both = await ctl(['delete', 'svc', 'web', '-f', dir])
  t.equal(both.code, 1)
  t.match(both.stderr, /^error: delete: when -f is given, you may not specify resource arguments as well/)
  const all = await ctl(['delete', 'svc', 'web', '-A'])
  t.equal(all.code, 1)
  t.match(all.stderr, /^error: delete: -A/)
})

t.test('apply/delete -R (--recursive) read nested directories, as kubectl; without it they are skipped', async t => {
  const dir = t.testdir({ 'web.yaml': web, shop: { 'lb.yaml': lb, nodes: { 'nodes.yml': nodeList } }, '.git': { 'x.yaml': 'not: [read' } })
  t.same(await ctl(['apply', '-f', dir, '-R']), {
    code: 0, stdout: 'service/lb created\nnode/node-1 created\nnode/node-2 created\nservice/web created\n', stderr: '',
  }, 'depth first in name order (kubectl\'s walk), dot-directories skipped')
  t.equal((await ctl(['apply', '-f', dir])).stdout, 'service/web unchanged\n', 'not recursive without -R')
  t.equal((await ctl(['delete', '--recursive', '-f', dir])).code, 0)
  t.same(await keys(), [])
  const get = await ctl(['get', 'svc', '-R'])
  t.equal(get.code, 1)
  t.match(get.stderr, /^error: get: -R applies to -f only/)
})
