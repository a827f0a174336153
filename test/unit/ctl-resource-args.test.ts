// The two ways kubectl names objects on its command line, as ferryctl get takes them.
import t from 'tap'
import { parseResourceArgs } from '../../pkg/ctl/resource-args.js'

t.test('TYPE [NAME...] and TYPE/NAME...', async t => {
  const cases: Array<[string[], { kind: string, names: string[] }]> = [
    [['svc'], { kind: 'Service', names: [] }],
    [['Services', 'web', 'db'], { kind: 'Service', names: ['web', 'db'] }],
    [['svc', 'web', 'web'], { kind: 'Service', names: ['web'] }],
    [['svc/web', 'service/db'], { kind: 'Service', names: ['web', 'db'] }],
    [['endpointslice.discovery.k8s.io/web-abc'], { kind: 'EndpointSlice', names: ['web-abc'] }],
    [['no/node-1'], { kind: 'Node', names: ['node-1'] }],
  ]
  for (const [args, want] of cases) t.same(parseResourceArgs('get', args), want, args.join(' '))
})

t.test('usage mistakes are FERRY_ERR_CONFIG, in kubectl\'s words where it has them', async t => {
  const cases: Array<[string[], RegExp]> = [
    [[], /^get: which resource\?/],
    [['secrets'], /^get: unknown resource "secrets"/],
    [['svc', 'svc/web'], /^get: there is no need to specify a resource type as a separate argument/],
    [['svc/web', 'db'], /^get: arguments in resource\/name form must have a single resource and name, got "db"/],
    [['svc/web', 'node/n'], /^get: one resource type at a time, got Service and Node/],
    [['svc/'], /^get: invalid name ""/],
    [['svc/a/b'], /^get: invalid name "a\/b"/],
  ]
  for (const [args, message] of cases) t.throws(() => parseResourceArgs('get', args), { code: 'FERRY_ERR_CONFIG', message }, args.join(' '))
})
