// The two ways kubectl names objects on its command line, as ferryctl get and delete take them.
import t from 'tap'
import type { Kind } from '../../pkg/api/types.js'
import { parseResourceArgs, uniqueTargets } from '../../pkg/ctl/resource-args.js'

const to = (kind: Kind, ...names: string[]): Array<{ kind: Kind, name: string }> => names.map(name => ({ kind, name }))

t.test('TYPE[,TYPE...] [NAME...] and TYPE/NAME...', async t => {
  const cases: Array<[string[], { kinds: Kind[], targets: Array<{ kind: Kind, name: string }> }]> = [
    [['svc'], { kinds: ['Service'], targets: [] }],
    [['Services', 'web', 'db'], { kinds: ['Service'], targets: to('Service', 'web', 'db') }],
    // A repeated object is kept, as kubectl visits (and get prints) it once per mention.
    [['svc', 'web', 'web'], { kinds: ['Service'], targets: to('Service', 'web', 'web') }],
    [['svc,svc', 'web'], { kinds: ['Service'], targets: to('Service', 'web') }],
    [['svc,services', 'web'], { kinds: ['Service'], targets: to('Service', 'web', 'web') }],
    [['svc/web', 'service/db'], { kinds: ['Service'], targets: to('Service', 'web', 'db') }],
    [['endpointslice.discovery.k8s.io/web-abc'], { kinds: ['EndpointSlice'], targets: to('EndpointSlice', 'web-abc') }],
    [['no/node-1'], { kinds: ['Node'], targets: to('Node', 'node-1') }],
    // kubectl get svc,eps: each type in turn; with names, each type's names in turn (svc/a svc/b eps/a eps/b).
    [['svc,eps'], { kinds: ['Service', 'EndpointSlice'], targets: [] }],
    [['svc,services,no'], { kinds: ['Service', 'Node'], targets: [] }],
    [['eps,svc', 'a', 'b'], { kinds: ['EndpointSlice', 'Service'], targets: [...to('EndpointSlice', 'a', 'b'), ...to('Service', 'a', 'b')] }],
    [['svc/web', 'no/node-1', 'svc/db', 'service/web'], {
      kinds: ['Service', 'Node'], targets: [...to('Service', 'web'), ...to('Node', 'node-1'), ...to('Service', 'db', 'web')],
    }],
  ]
  for (const [args, want] of cases) t.same(parseResourceArgs('get', args), want, args.join(' '))
})

t.test('uniqueTargets: what delete acts on, each object once, first mention first', async t => {
  t.same(uniqueTargets([...to('Service', 'web', 'db'), ...to('Node', 'n'), ...to('Service', 'web')]), [...to('Service', 'web', 'db'), ...to('Node', 'n')])
})

t.test('usage mistakes are FERRY_ERR_CONFIG, in kubectl\'s words where it has them', async t => {
  const cases: Array<[string[], RegExp]> = [
    [[], /^get: which resource\?/],
    [['secrets'], /^get: unknown resource "secrets"/],
    [['svc,secrets'], /^get: unknown resource "secrets"/],
    [['svc,'], /^get: unknown resource ""/],
    [['svc', 'svc/web'], /^get: there is no need to specify a resource type as a separate argument/],
    [['svc/web', 'db'], /^get: arguments in resource\/name form must have a single resource and name, got "db"/],
    [['svc,eps/web'], /^get: arguments in resource\/name form must have a single resource and name, got "svc,eps\/web"/],
    [['svc/'], /^get: invalid name ""/],
    [['svc/a/b'], /^get: invalid name "a\/b"/],
  ]
  for (const [args, message] of cases) t.throws(() => parseResourceArgs('get', args), { code: 'FERRY_ERR_CONFIG', message }, args.join(' '))
})
