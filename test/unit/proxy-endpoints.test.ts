import t from 'tap'
import { compareEndpoints, endpointsFromSlices, serviceOfSlice, ipv4Key, ipv4KeySlow } from '../../pkg/proxy/endpoints.js'
import type { EndpointInfo } from '../../pkg/proxy/types.js'
import { HEADLESS_LABEL, SERVICE_PROXY_NAME_LABEL, type EndpointSlice } from '../../pkg/api/types.js'
import { NODE, OTHER_NODE, ZONE_A, ZONE_B, slice, sliceEp } from '../helpers/fixtures.js'

const KEY = 'ns1/svc1:p80/tcp'

function labelled (s: EndpointSlice, label: string, value: string): EndpointSlice {
  return { ...s, metadata: { ...s.metadata, labels: { ...s.metadata.labels, [label]: value } } }
}

function brief (m: Map<string, EndpointInfo[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [k, eps] of m) out[k] = eps.map(e => `${e.ip}:${e.port}`)
  return out
}

t.test('one slice, one port', async t => {
  const m = endpointsFromSlices([slice({ endpoints: [sliceEp('10.180.0.1', { node: true }), sliceEp('10.180.0.2', { node: false })] })], 'IPv4', NODE)
  t.same([...m.keys()], [KEY])
  t.same(m.get(KEY), [
    { ip: '10.180.0.1', port: 80, ready: true, serving: true, terminating: false, isLocal: true, nodeName: NODE },
    { ip: '10.180.0.2', port: 80, ready: true, serving: true, terminating: false, isLocal: false, nodeName: OTHER_NODE },
  ])
})

t.test('ports: name and protocol give the key, the slice gives the backend port (scenario 2)', async t => {
  const m = endpointsFromSlices([slice({
    service: 'svc2',
    ports: [{ name: 'http', port: 80 }, { name: 'https', port: 8443 }, { name: 'dns', port: 5353 }, { name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns', port: 5354, protocol: 'SCTP' }, { port: 9000 }],
    endpoints: [sliceEp('10.180.0.1', { node: true }), sliceEp('10.180.2.1')],
  })], 'IPv4', NODE)
  t.same(brief(m), {
    'ns1/svc2:http/tcp': ['10.180.0.1:80', '10.180.2.1:80'],
    'ns1/svc2:https/tcp': ['10.180.0.1:8443', '10.180.2.1:8443'],
    'ns1/svc2:dns/tcp': ['10.180.0.1:5353', '10.180.2.1:5353'],
    'ns1/svc2:dns/udp': ['10.180.0.1:53', '10.180.2.1:53'],
    'ns1/svc2:dns/sctp': ['10.180.0.1:5354', '10.180.2.1:5354'],
    'ns1/svc2/tcp': ['10.180.0.1:9000', '10.180.2.1:9000'],
  })
})

t.test('ignored inputs', async t => {
  const eps = [sliceEp('10.180.0.1')]
  const rows: Array<[string, ReturnType<typeof slice>[]]> = [
    ['no service-name label', [slice({ service: null, endpoints: eps })]],
    ['empty service-name label', [slice({ service: '', name: 'x', endpoints: eps })]],
    ['FQDN slice', [{ ...slice({ endpoints: [sliceEp('db.example.com')] }), addressType: 'FQDN' }]],
    ['IPv6 slice on the IPv4 proxier (scenario 20)', [slice({ addressType: 'IPv6', endpoints: [sliceEp('fd00::1')] })]],
    ['port without a number', [slice({ ports: [{ name: 'p80' }], endpoints: eps })]],
    ['port 0', [slice({ ports: [{ name: 'p80', port: 0 }], endpoints: eps })]],
    ['no endpoints', [slice({ endpoints: [] })]],
    ['endpoint without addresses', [slice({ endpoints: [{ addresses: [] }] })]],
    ['address of the other family in an IPv4 slice', [slice({ endpoints: [sliceEp('fd00::1')] })]],
    // kube-proxy's informers select these labels away for slices as for Services.
    ['slice for another service proxy', [labelled(slice({ endpoints: eps }), SERVICE_PROXY_NAME_LABEL, 'other-proxy')]],
    ['slice labelled headless', [labelled(slice({ endpoints: eps }), HEADLESS_LABEL, '')]],
  ]
  for (const [name, slices] of rows) t.same(brief(endpointsFromSlices(slices, 'IPv4', NODE)), {}, name)
})

t.test('IPv6', async t => {
  const m = endpointsFromSlices([
    slice({ name: 'v6', addressType: 'IPv6', endpoints: [sliceEp('fd00::10'), sliceEp('fd00::9'), sliceEp('fd00:1::1')] }),
    slice({ name: 'v4', endpoints: [sliceEp('10.180.0.1')] }),
  ], 'IPv6', NODE)
  t.same(brief(m), { [KEY]: ['fd00::9:80', 'fd00::10:80', 'fd00:1::1:80'] }, 'numeric order, IPv4 slice ignored')
})

t.test('only the first address counts', async t => {
  const m = endpointsFromSlices([slice({ endpoints: [sliceEp('10.180.0.1', { more: ['10.180.0.99'] })] })], 'IPv4', NODE)
  t.same(brief(m), { [KEY]: ['10.180.0.1:80'] })
})

t.test('conditions and their defaults', async t => {
  const rows: Array<[string, Parameters<typeof sliceEp>[1], Pick<EndpointInfo, 'ready' | 'serving' | 'terminating'>]> = [
    ['no conditions object', { noConditions: true }, { ready: true, serving: true, terminating: false }],
    ['empty conditions', {}, { ready: true, serving: true, terminating: false }],
    ['ready false only (serving still defaults to true)', { ready: false }, { ready: false, serving: true, terminating: false }],
    ['serving+terminating', { ready: false, serving: true, terminating: true }, { ready: false, serving: true, terminating: true }],
    ['terminating, serving missing, ready false: usable as serving+terminating', { ready: false, terminating: true }, { ready: false, serving: true, terminating: true }],
    ['terminating only (ready and serving missing)', { terminating: true }, { ready: true, serving: true, terminating: true }],
    ['not serving, ready missing', { serving: false }, { ready: true, serving: false, terminating: false }],
  ]
  for (const [name, o, want] of rows) {
    const [e] = endpointsFromSlices([slice({ endpoints: [sliceEp('10.180.0.1', o)] })], 'IPv4', NODE).get(KEY) ?? []
    t.same(e === undefined ? undefined : { ready: e.ready, serving: e.serving, terminating: e.terminating }, want, name)
  }
})

t.test('isLocal, zone and hints', async t => {
  const m = endpointsFromSlices([slice({
    endpoints: [
      sliceEp('10.180.0.1', { node: true, zone: ZONE_A, forZones: [ZONE_A, ZONE_B, ZONE_A] }),
      sliceEp('10.180.0.2', { node: 'elsewhere', forNodes: [NODE] }),
      sliceEp('10.180.0.3'),
      sliceEp('10.180.0.4', { forZones: [], forNodes: [] }),
    ],
  })], 'IPv4', NODE)
  const eps = m.get(KEY) ?? []
  t.same(eps.map(e => [e.isLocal, e.nodeName, e.zone, e.zoneHints, e.nodeHints]), [
    [true, NODE, ZONE_A, [ZONE_A, ZONE_B], undefined],
    [false, 'elsewhere', undefined, undefined, [NODE]],
    [false, undefined, undefined, undefined, undefined],
    [false, undefined, undefined, undefined, undefined],
  ])
  t.notOk('zoneHints' in (eps[2] ?? {}), 'absent, not set to undefined')
  const other = endpointsFromSlices([slice({ endpoints: [sliceEp('10.180.0.1', { node: true })] })], 'IPv4', 'another-node')
  t.equal(other.get(KEY)?.[0]?.isLocal, false, 'local is relative to our node name')
})

t.test('several slices per service merge; duplicates collapse', async t => {
  const a = slice({ name: 'svc1-a', endpoints: [sliceEp('10.180.0.2'), sliceEp('10.180.0.1', { ready: false, serving: true, terminating: true })] })
  const b = slice({ name: 'svc1-b', endpoints: [sliceEp('10.180.0.1', { node: true }), sliceEp('10.180.0.10')] })
  for (const order of [[a, b], [b, a]]) {
    const eps = endpointsFromSlices(order, 'IPv4', NODE).get(KEY) ?? []
    t.same(eps.map(e => e.ip), ['10.180.0.1', '10.180.0.2', '10.180.0.10'], 'sorted numerically, one entry per ip:port')
    t.same(eps[0], { ip: '10.180.0.1', port: 80, ready: true, serving: true, terminating: false, isLocal: true, nodeName: NODE }, 'the non-terminating duplicate wins')
  }
  t.test('different ports of one IP are different endpoints', async t => {
    const c = slice({ name: 'svc1-c', ports: [{ name: 'p80', port: 8080 }], endpoints: [sliceEp('10.180.0.1')] })
    t.same(brief(endpointsFromSlices([b, c], 'IPv4', NODE)), { [KEY]: ['10.180.0.1:80', '10.180.0.1:8080', '10.180.0.10:80'] })
  })
  t.test('ties prefer the local copy, whatever the order', async t => {
    const x = slice({ name: 'x', endpoints: [sliceEp('10.180.0.1', { node: false })] })
    const y = slice({ name: 'y', endpoints: [sliceEp('10.180.0.1', { node: true })] })
    t.equal(endpointsFromSlices([x, y], 'IPv4', NODE).get(KEY)?.[0]?.isLocal, true)
    t.equal(endpointsFromSlices([y, x], 'IPv4', NODE).get(KEY)?.[0]?.isLocal, true)
  })
  t.test('a ready duplicate beats a not-ready non-terminating one', async t => {
    const x = slice({ name: 'x', endpoints: [sliceEp('10.180.0.1', { ready: false })] })
    const y = slice({ name: 'y', endpoints: [sliceEp('10.180.0.1')] })
    t.equal(endpointsFromSlices([x, y], 'IPv4', NODE).get(KEY)?.[0]?.ready, true)
  })
})

t.test('slices of several services and namespaces', async t => {
  const m = endpointsFromSlices([
    slice({ service: 'svc1', endpoints: [sliceEp('10.180.0.1')] }),
    slice({ service: 'svc2', endpoints: [sliceEp('10.180.0.2')] }),
    slice({ ns: 'ns2', service: 'svc1', endpoints: [sliceEp('10.180.0.3')] }),
  ], 'IPv4', NODE)
  t.same(brief(m), { [KEY]: ['10.180.0.1:80'], 'ns1/svc2:p80/tcp': ['10.180.0.2:80'], 'ns2/svc1:p80/tcp': ['10.180.0.3:80'] })
})

t.test('serviceOfSlice and compareEndpoints', async t => {
  t.equal(serviceOfSlice(slice({ ns: 'ns2', service: 'web' })), 'ns2/web')
  t.equal(serviceOfSlice(slice({ service: null })), undefined)
  const sorted = [
    { ip: '10.0.0.10', port: 1 }, { ip: '10.0.0.9', port: 2 }, { ip: '10.0.0.9', port: 1 }, { ip: '9.0.0.1', port: 1 },
  ].sort(compareEndpoints)
  t.same(sorted.map(e => `${e.ip}:${e.port}`), ['9.0.0.1:1', '10.0.0.9:1', '10.0.0.9:2', '10.0.0.10:1'])
  t.same([{ ip: 'fd00::1', port: 1 }, { ip: '10.0.0.1', port: 1 }, { ip: '::ffff:a00:1', port: 1 }, { ip: '::1', port: 1 }].sort(compareEndpoints).map(e => e.ip),
    ['10.0.0.1', '::1', '::ffff:a00:1', 'fd00::1'])
})

t.test('ipv4Key: the fast scan gives the general form\'s key for every input', async t => {
  const inputs = ['0.0.0.0', '255.255.255.255', '10.0.137.239', '1.2.3.4', '010.001.000.009', '192.168.0.2',
    '1.300.0.0', '256.1.1.1', '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', '', 'a.b.c.d', '1.2.3.4 ', '1234.1.1.1']
  let seed = 7
  for (let i = 0; i < 500; i++) {
    const o = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % 256 }
    inputs.push(`${o()}.${o()}.${o()}.${o()}`)
  }
  for (const ip of inputs) t.equal(ipv4Key(ip), ipv4KeySlow(ip), ip)
  t.equal(ipv4Key('10.0.137.239'), '0a0089ef')
})

t.test('endpoint lists come out in compareEndpoints order whatever the input order', async t => {
  // A small deterministic generator: shuffled IPv4 addresses (some repeated under two ports), some IPv6.
  let seed = 7
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  for (let round = 0; round < 50; round++) {
    const v6 = round % 10 === 9
    const ips: string[] = []
    for (let i = 0; i < 2 + rnd(12); i++) ips.push(v6 ? `fd00::${rnd(300).toString(16)}` : `10.${rnd(3)}.${rnd(3)}.${rnd(260) % 256}`)
    const a = slice({ name: 'svc1-a', addressType: v6 ? 'IPv6' : 'IPv4', endpoints: ips.map(ip => sliceEp(ip)) })
    const b = slice({ name: 'svc1-b', addressType: v6 ? 'IPv6' : 'IPv4', ports: [{ name: 'p80', port: 8080 }], endpoints: ips.slice(0, 3).reverse().map(ip => sliceEp(ip)) })
    const got = endpointsFromSlices([a, b], v6 ? 'IPv6' : 'IPv4', NODE).get(KEY) ?? []
    const want = [...new Map(got.map(e => [`${e.ip}:${e.port}`, e])).values()].sort(compareEndpoints)
    t.same(got.map(e => `${e.ip}:${e.port}`), want.map(e => `${e.ip}:${e.port}`), `round ${round}`)
    t.equal(got.length, new Set([...ips.map(ip => `${ip}:80`), ...ips.slice(0, 3).map(ip => `${ip}:8080`)]).size, 'one entry per ip:port')
  }
  const inOrder = endpointsFromSlices([slice({ endpoints: [sliceEp('9.0.0.1'), sliceEp('10.0.0.2'), sliceEp('10.0.0.10')] })], 'IPv4', NODE)
  t.same(brief(inOrder), { [KEY]: ['9.0.0.1:80', '10.0.0.2:80', '10.0.0.10:80'] }, 'an ordered list stays as it is')
})

t.test('long lists collapse duplicates the same way as short ones', async t => {
  for (const n of [5, 40]) {
    const ips = Array.from({ length: n }, (_, i) => `10.180.${i % 3}.${n - i}`)
    const a = slice({ name: 'svc1-a', endpoints: ips.map(ip => sliceEp(ip, { ready: false, node: false })) })
    const b = slice({ name: 'svc1-b', endpoints: ips.map(ip => sliceEp(ip, { node: true })) })
    const c = slice({ name: 'svc1-c', endpoints: ips.map(ip => sliceEp(ip, { node: false })) })
    for (const order of [[a, b, c], [c, b, a]]) {
      const eps = endpointsFromSlices(order, 'IPv4', NODE).get(KEY) ?? []
      t.equal(eps.length, n, `${n}: one entry per ip:port`)
      t.ok(eps.every(e => e.ready && e.isLocal), `${n}: the ready, local copy wins`)
      t.same(eps.map(e => e.ip), [...ips].sort((x, y) => compareEndpoints({ ip: x, port: 80 }, { ip: y, port: 80 })), `${n}: sorted`)
    }
  }
})
