import t from 'tap'
import type { KObject } from '../../pkg/api/types.js'
import { validateObject } from '../../pkg/api/validate.js'
import { formatLabels, formatTable, renderTable } from '../../pkg/ctl/printers.js'

const v = (o: Record<string, unknown>): KObject => validateObject(o)
const svc = (name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}): KObject =>
  v({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec, ...extra })

t.test('renderTable pads columns like kubectl', async t => {
  t.equal(renderTable(['A', 'LONGER'], [['xxxxx', 'y'], ['z', '']]), 'A       LONGER\nxxxxx   y\nz\n')
})

t.test('service columns by type', async t => {
  const rows = formatTable('Service', [
    svc('plain', { clusterIP: '10.96.0.1', ports: [{ port: 80 }] }),
    svc('headless', { clusterIP: 'None', ports: [{ name: 'a', port: 80 }, { name: 'b', port: 53, protocol: 'UDP' }] }),
    svc('ext', { type: 'ExternalName', externalName: 'db.example.com' }),
    svc('lb-pending', { type: 'LoadBalancer', clusterIP: '10.96.0.2', ports: [{ port: 443, nodePort: 30443 }] }),
    svc('lb', { type: 'LoadBalancer', clusterIP: '10.96.0.3', externalIPs: ['192.0.2.1'], ports: [{ port: 443 }] },
      { status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }, { hostname: 'lb.example.com' }] } } }),
    svc('noports', { clusterIP: 'None' }),
  ]).split('\n')
  t.equal(rows[0], 'NAME         TYPE           CLUSTER-IP   EXTERNAL-IP                  PORT(S)')
  // In the order given: the caller orders (a list in key order, named objects in argument order).
  t.match(rows[1], /^plain\s+ClusterIP\s+10\.96\.0\.1\s+<none>\s+80\/TCP$/)
  t.match(rows[2], /^headless\s+ClusterIP\s+None\s+<none>\s+80\/TCP,53\/UDP$/)
  t.match(rows[3], /^ext\s+ExternalName\s+<none>\s+db\.example\.com\s+<none>$/)
  t.match(rows[4], /^lb-pending\s+LoadBalancer\s+10\.96\.0\.2\s+<pending>\s+443:30443\/TCP$/)
  t.match(rows[5], /^lb\s+LoadBalancer\s+10\.96\.0\.3\s+203\.0\.113\.7,l\.\.\.,192\.0\.2\.1\s+443\/TCP$/, 'ingress (clipped) before externalIPs')
  t.match(rows[6], /^noports\s+ClusterIP\s+None\s+<none>\s+<none>$/)
})

t.test('EXTERNAL-IP as kubectl\'s printer has it: ingress first, sorted and once, clipped to 16 outside -o wide', async t => {
  const ingress = (...xs: Array<{ ip?: string, hostname?: string }>): Record<string, unknown> => ({ status: { loadBalancer: { ingress: xs } } })
  const cases: Array<[string, Record<string, unknown>, Record<string, unknown>, string, string]> = [
    // [what, spec, extra, table cell, -o wide cell]
    ['ClusterIP: externalIPs only, ingress not shown', { externalIPs: ['192.0.2.1', '192.0.2.2'] }, ingress({ ip: '203.0.113.7' }), '192.0.2.1,192.0.2.2', '192.0.2.1,192.0.2.2'],
    ['ClusterIP with ingress and no externalIPs', {}, ingress({ ip: '203.0.113.7' }), '<none>', '<none>'],
    ['NodePort', { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }, {}, '<none>', '<none>'],
    ['LoadBalancer, nothing yet', { type: 'LoadBalancer' }, {}, '<pending>', '<pending>'],
    ['LoadBalancer, externalIPs only', { type: 'LoadBalancer', externalIPs: ['192.0.2.1'] }, {}, '192.0.2.1', '192.0.2.1'],
    ['16 characters: not clipped (sorted as bytes)', { type: 'LoadBalancer' }, ingress({ ip: '10.0.0.1' }, { ip: '1.0.0.2' }), '1.0.0.2,10.0.0.1', '1.0.0.2,10.0.0.1'],
    ['17: the first 13 and "..."', { type: 'LoadBalancer' }, ingress({ ip: '10.0.0.2' }, { ip: '10.0.0.1' }), '10.0.0.1,10.0...', '10.0.0.1,10.0.0.2'],
    ['one address', { type: 'LoadBalancer' }, ingress({ ip: '10.0.0.22' }, { ip: '10.0.0.22' }), '10.0.0.22', '10.0.0.22'],
    ['sorted, each once, hostname when no IP', { type: 'LoadBalancer', externalIPs: ['192.0.2.9'] },
      ingress({ ip: '10.1.0.2' }, { hostname: 'a.example' }, { hostname: 'b.example' }, { ip: '10.1.0.2' }),
      '10.1.0.2,a.ex...,192.0.2.9', '10.1.0.2,a.example,b.example,192.0.2.9'],
    ['ExternalName', { type: 'ExternalName', externalName: 'db.example.com' }, {}, 'db.example.com', 'db.example.com'],
  ]
  for (const [what, spec, extra, cell, wideCell] of cases) {
    const o = svc('s', { clusterIP: '10.96.0.1', ports: [{ port: 80 }], ...spec }, extra)
    const column = (wide: boolean): string => (formatTable('Service', [o], { wide }).split('\n')[1] ?? '').split(/ {3,}/)[3] ?? ''
    t.equal(column(false), cell, what)
    t.equal(column(true), wideCell, `${what} (-o wide)`)
  }
})

t.test('slices, nodes, pods; -A adds NAMESPACE except for nodes', async t => {
  const slice = v({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'ns1' },
    addressType: 'IPv6', endpoints: [{ addresses: ['fd00::1'] }], ports: [{ port: 80 }, { name: 'x' }],
  })
  const empty = v({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'e', namespace: 'ns0' }, addressType: 'IPv4', endpoints: [], ports: [] })
  t.equal(formatTable('EndpointSlice', [empty, slice], { withNamespace: true }),
    'NAMESPACE   NAME   ADDRESSTYPE   PORTS        ENDPOINTS\n' +
    'ns0         e      IPv4          <unset>      <unset>\n' +
    'ns1         s      IPv6          80,<unset>   fd00::1\n')
  const node = v({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDRs: ['10.244.1.0/24', 'fd00:1::/64'] } })
  t.equal(formatTable('Node', [node], { withNamespace: true }), 'NAME   INTERNAL-IP   POD-CIDRS\nn1     <none>        10.244.1.0/24,fd00:1::/64\n')
  const pod = v({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { nodeName: 'n1' }, status: { podIP: '10.244.1.9', phase: 'Running' } })
  t.equal(formatTable('Pod', [pod]), 'NAME   STATUS    IP           NODE\np      Running   10.244.1.9   n1\n')
})

t.test('-o wide appends kubectl\'s priority-1 columns; fields ferry does not keep show as kubectl shows them unset', async t => {
  t.equal(formatTable('Service', [
    svc('web', { clusterIP: '10.96.0.1', selector: { tier: 'web', app: 'shop' }, ports: [{ port: 80 }] }),
    svc('ext', { type: 'ExternalName', externalName: 'db.example.com' }),
  ], { wide: true }),
  'NAME   TYPE           CLUSTER-IP   EXTERNAL-IP      PORT(S)   SELECTOR\n' +
  'web    ClusterIP      10.96.0.1    <none>           80/TCP    app=shop,tier=web\n' +
  'ext    ExternalName   <none>       db.example.com   <none>    <none>\n', 'SELECTOR: labels in key order')
  const slice = v({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'ns1' }, addressType: 'IPv4', endpoints: [], ports: [] })
  t.equal(formatTable('EndpointSlice', [slice], { wide: true }), formatTable('EndpointSlice', [slice]), 'EndpointSlices: none, as kubectl')
  const nodes = [
    v({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDR: '10.244.1.0/24' }, status: { addresses: [
      { type: 'Hostname', address: 'n1' }, { type: 'InternalIP', address: '192.168.1.11' },
      { type: 'ExternalIP', address: '203.0.113.1' }, { type: 'ExternalIP', address: '203.0.113.2' }] } }),
    v({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n2' }, spec: {} }),
  ]
  t.equal(formatTable('Node', nodes, { wide: true, withNamespace: true }),
    'NAME   INTERNAL-IP    POD-CIDRS       EXTERNAL-IP   OS-IMAGE    KERNEL-VERSION   CONTAINER-RUNTIME\n' +
    'n1     192.168.1.11   10.244.1.0/24   203.0.113.1   <unknown>   <unknown>        <unknown>\n' +
    'n2     <none>         <none>          <none>        <unknown>   <unknown>        <unknown>\n', 'the first ExternalIP; no nodeInfo in ferry: <unknown>')
  const pod = v({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: {}, status: { podIP: '10.244.1.9' } })
  t.equal(formatTable('Pod', [pod], { wide: true, withNamespace: true }),
    'NAMESPACE   NAME   STATUS      IP           NODE     NOMINATED NODE   READINESS GATES\n' +
    'shop        p      <unknown>   10.244.1.9   <none>   <none>           <none>\n')
})

t.test('formatLabels is kubectl\'s labels.FormatLabels', async t => {
  t.equal(formatLabels(undefined), '<none>')
  t.equal(formatLabels({}), '<none>')
  t.equal(formatLabels({ b: '2', 'a.io/x': '', a: '1' }), 'a=1,a.io/x=,b=2', 'byte order of keys, empty values kept')
})

t.test('withKind: NAME as kubectl prints it when one get shows several types (service/web), after NAMESPACE', async t => {
  const web = svc('web', { clusterIP: '10.96.0.1', ports: [{ port: 80 }] })
  t.equal(formatTable('Service', [web], { withKind: true, withNamespace: true }),
    'NAMESPACE   NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)\n' +
    'default     service/web   ClusterIP   10.96.0.1    <none>        80/TCP\n')
  const slice = v({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-abc', namespace: 'default' }, addressType: 'IPv4', endpoints: [], ports: [] })
  t.equal(formatTable('EndpointSlice', [slice], { withKind: true, wide: true }),
    'NAME                                     ADDRESSTYPE   PORTS     ENDPOINTS\n' +
    'endpointslice.discovery.k8s.io/web-abc   IPv4          <unset>   <unset>\n', 'group-qualified, as -o name')
})
