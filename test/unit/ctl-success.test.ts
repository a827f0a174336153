// The stdout lines kubectl prints for a successful apply and delete, as ferryctl prints them.
import t from 'tap'
import { appliedLine, deletedLine } from '../../pkg/ctl/success.js'

t.test('apply: kubectl\'s name printer with the operation; group-qualified kind, no namespace', async t => {
  const cases: Array<[Parameters<typeof appliedLine>, string]> = [
    [[{ kind: 'Service', namespace: 'default', name: 'web' }, 'created'], 'service/web created\n'],
    [[{ kind: 'Service', namespace: 'shop', name: 'lb' }, 'configured'], 'service/lb configured\n'],
    [[{ kind: 'EndpointSlice', namespace: 'default', name: 'web-abc' }, 'unchanged'], 'endpointslice.discovery.k8s.io/web-abc unchanged\n'],
    [[{ kind: 'Node', name: 'node-1' }, 'created'], 'node/node-1 created\n'],
    [[{ kind: 'Pod', namespace: 'default', name: 'web-1' }, 'created'], 'pod/web-1 created\n'],
  ]
  for (const [args, want] of cases) t.equal(appliedLine(...args), want, want.trim())
})

t.test('delete: kind, quoted name, and the namespace it was deleted from (kubectl 1.34+)', async t => {
  const cases: Array<[Parameters<typeof deletedLine>[0], string]> = [
    [{ kind: 'Service', namespace: 'default', name: 'web' }, 'service "web" deleted from default namespace\n'],
    [{ kind: 'EndpointSlice', namespace: 'shop', name: 'web-abc' }, 'endpointslice.discovery.k8s.io "web-abc" deleted from shop namespace\n'],
    [{ kind: 'Node', name: 'node-1' }, 'node "node-1" deleted\n'],
  ]
  for (const [o, want] of cases) t.equal(deletedLine(o), want, want.trim())
})
