// kubectl's NotFound line, as ferryctl get and delete print it for a missing object.
import t from 'tap'
import { notFound, notFoundLine } from '../../pkg/ctl/not-found.js'

t.test('the API server\'s words: group-qualified resource, quoted name, no namespace', async t => {
  const cases: Array<[Parameters<typeof notFound>, string]> = [
    [[{ kind: 'Service', name: 'web', namespace: 'shop' }], 'Error from server (NotFound): services "web" not found\n'],
    [[{ kind: 'EndpointSlice', name: 'web-abc', namespace: 'default' }], 'Error from server (NotFound): endpointslices.discovery.k8s.io "web-abc" not found\n'],
    [[{ kind: 'Node', name: 'n1' }], 'Error from server (NotFound): nodes "n1" not found\n'],
    [[{ kind: 'Pod', name: 'p', namespace: 'default' }], 'Error from server (NotFound): pods "p" not found\n'],
    [[{ kind: 'Service', name: 'web', namespace: 'default', source: 'dir/web.yaml' }, 'deleting'],
      'Error from server (NotFound): error when deleting "dir/web.yaml": services "web" not found\n'],
    [[{ kind: 'Service', name: 'web', namespace: 'default', source: 'dir/web.yaml' }], 'Error from server (NotFound): services "web" not found\n'],
  ]
  for (const [args, line] of cases) t.equal(notFoundLine(notFound(...args)), line, line)
})

t.test('a coded error that keeps the object\'s identity', async t => {
  const e = notFound({ kind: 'EndpointSlice', name: 'web-abc', namespace: 'shop', source: 'STDIN' }, 'deleting')
  t.equal(e.code, 'FERRY_ERR_NOT_FOUND')
  t.same(e.details, { kind: 'endpointslice.discovery.k8s.io', name: 'web-abc', namespace: 'shop', source: 'STDIN' })
})
