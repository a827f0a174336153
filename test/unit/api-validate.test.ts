import t from 'tap'
import { validateObject } from '../../pkg/api/validate.js'
import { FerryError } from '../../pkg/errors/errors.js'
import type { EndpointSlice, Service } from '../../pkg/api/types.js'

const svc = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}): unknown => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc1', namespace: 'ns1' }, spec, ...extra,
})

t.test('a valid Service is normalized', async t => {
  const s = validateObject(svc({
    clusterIP: '172.30.000.041',
    ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'dns', port: 53, protocol: 'UDP' }],
    externalIPs: ['192.168.099.011'],
    sessionAffinity: 'ClientIP',
  })) as Service
  t.equal(s.spec.type, 'ClusterIP')
  t.equal(s.spec.clusterIP, '172.30.0.41')
  t.same(s.spec.externalIPs, ['192.168.99.11'])
  t.equal(s.spec.ports[0]?.protocol, 'TCP', 'protocol defaults to TCP')
  t.equal(s.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds, 10800, 'affinity timeout defaults to 3h')
  t.equal(s.spec.internalTrafficPolicy, 'Cluster')
  t.equal(s.spec.externalTrafficPolicy, undefined, 'no eTP on a ClusterIP service')
})

t.test('namespace defaults to "default"; LB status and eTP are kept', async t => {
  const s = validateObject({
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'lb' },
    spec: { type: 'LoadBalancer', clusterIP: '10.96.0.5', externalTrafficPolicy: 'Local', healthCheckNodePort: 30002, ports: [{ port: 80, nodePort: 30080 }], loadBalancerSourceRanges: [' 203.0.113.0/25'] },
    status: { loadBalancer: { ingress: [{ ip: '5.6.7.8' }, { ip: '1.2.3.4', ipMode: 'Proxy' }] } },
  }) as Service
  t.equal(s.metadata.namespace, 'default')
  t.equal(s.spec.externalTrafficPolicy, 'Local')
  t.equal(s.spec.healthCheckNodePort, 30002)
  t.same(s.spec.loadBalancerSourceRanges, ['203.0.113.0/25'])
  t.same(s.status?.loadBalancer?.ingress, [{ ip: '5.6.7.8' }, { ip: '1.2.3.4', ipMode: 'Proxy' }])
})

t.test('errors name the object and the field', async t => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['port out of range', svc({ clusterIP: '10.96.0.1', ports: [{ port: 70000 }] }), /^Service "ns1\/svc1": spec\.ports\[0\]\.port: Invalid value: 70000: must be an integer between 1 and 65535/],
    ['bad clusterIP', svc({ clusterIP: '10.96.0.300', ports: [{ port: 80 }] }), /Service "ns1\/svc1": spec\.clusterIP: Invalid value: "10\.96\.0\.300"/],
    ['bad externalIP', svc({ ports: [{ port: 80 }], externalIPs: ['1.2.3.4', 'nope'] }), /spec\.externalIPs\[1\]: Invalid value: "nope": must be a valid IP address/],
    ['bad protocol', svc({ ports: [{ port: 80, protocol: 'ICMP' }] }), /spec\.ports\[0\]\.protocol: Invalid value: "ICMP": supported values: "TCP", "UDP", "SCTP"/],
    ['unnamed port among many', svc({ ports: [{ port: 80 }, { port: 81, name: 'b' }] }), /spec\.ports\[0\]\.name: Required value/],
    ['duplicate port names', svc({ ports: [{ port: 80, name: 'a' }, { port: 81, name: 'a' }] }), /spec\.ports\[1\]\.name: Invalid value: "a": duplicate port name/],
    ['nodePort on ClusterIP', svc({ ports: [{ port: 80, nodePort: 30000 }] }), /spec\.ports\[0\]\.nodePort: .*may not be used/],
    ['bad type', svc({ type: 'Ingress', ports: [{ port: 80 }] }), /spec\.type: Invalid value: "Ingress"/],
    ['eTP Local on ClusterIP', svc({ ports: [{ port: 80 }], externalTrafficPolicy: 'Local' }), /spec\.externalTrafficPolicy: .*externally-accessible/],
    ['ExternalName without a name', svc({ type: 'ExternalName' }), /spec\.externalName: Required value/],
    ['bad source range', svc({ type: 'LoadBalancer', ports: [{ port: 80 }], loadBalancerSourceRanges: ['1.2.3.4'] }), /spec\.loadBalancerSourceRanges\[0\]: .*must be a valid CIDR/],
    ['bad name', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'Bad_Name', namespace: 'ns1' }, spec: { ports: [{ port: 80 }] } }, /Service "ns1\/Bad_Name": metadata\.name: Invalid value: "Bad_Name": must be a DNS-1035 label/],
    ['missing metadata.name', { apiVersion: 'v1', kind: 'Service', metadata: {}, spec: {} }, /metadata\.name: Required value/],
    ['wrong apiVersion', { apiVersion: 'apps/v1', kind: 'Service', metadata: { name: 'a' }, spec: {} }, /apiVersion: Invalid value: "apps\/v1": must be "v1" for kind Service/],
    ['slice address of wrong family', { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'ns1' }, addressType: 'IPv4', endpoints: [{ addresses: ['fd00::1'] }], ports: [] }, /EndpointSlice "ns1\/s": endpoints\[0\]\.addresses\[0\]: Invalid value: "fd00::1": must be an IPv4 address/],
    ['slice ready not boolean', { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'ns1' }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: 'yes' } }], ports: [] }, /endpoints\[0\]\.conditions\.ready: Invalid value: "yes": must be a boolean/],
    ['slice port out of range', { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'ns1' }, addressType: 'IPv4', endpoints: [], ports: [{ port: 0 }] }, /ports\[0\]\.port: Invalid value: 0/],
    ['node bad podCIDR', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDR: '10.244.0.0' } }, /Node "n1": spec\.podCIDR: Invalid value: "10\.244\.0\.0": must be a valid CIDR/],
    ['pod bad IP', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'd' }, spec: {}, status: { podIP: 'x' } }, /Pod "d\/p": status\.podIP: Invalid value: "x"/],
  ]
  for (const [name, input, re] of cases) {
    t.throws(() => validateObject(input), { code: 'FERRY_ERR_INVALID_OBJECT', message: re }, name)
  }
})

t.test('several failing fields are all reported', async t => {
  try {
    validateObject(svc({ clusterIP: 'x', ports: [{ port: -1, protocol: 'FOO' }] }), 'svc.yaml')
    t.fail('should throw')
  } catch (e) {
    t.ok(e instanceof FerryError)
    const err = e as FerryError
    t.match(err.message, /^Service "ns1\/svc1" \(svc\.yaml\): /, 'origin is named')
    t.equal((err.details.fields as string[]).length, 3)
    t.same([err.details.kind, err.details.namespace, err.details.name], ['Service', 'ns1', 'svc1'])
  }
})

t.test('unknown kinds and non-objects are refused with their own codes', async t => {
  t.throws(() => validateObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } }), { code: 'FERRY_ERR_UNKNOWN_KIND', message: /unsupported kind "Deployment"/ })
  t.throws(() => validateObject('a string'), { code: 'FERRY_ERR_INVALID_OBJECT' })
  t.throws(() => validateObject([1, 2]), { code: 'FERRY_ERR_INVALID_OBJECT' })
})

t.test('an EndpointSlice keeps conditions, hints and topology fields', async t => {
  const s = validateObject({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'svc1-abc', namespace: 'ns1', labels: { 'kubernetes.io/service-name': 'svc1' } },
    addressType: 'IPv6',
    endpoints: [{ addresses: ['FD00::0001'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'n1', zone: 'a', hints: { forZones: [{ name: 'a' }] } }],
    ports: [{ name: 'http', port: 8080 }],
  }) as EndpointSlice
  t.same(s.endpoints[0], { addresses: ['fd00::1'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'n1', zone: 'a', hints: { forZones: [{ name: 'a' }], forNodes: [] } })
  t.same(s.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }])
})

t.test('a Service without ports is rejected unless headless or ExternalName, as Kubernetes does (found by the fuzz test)', async t => {
  const svc = (spec: Record<string, unknown>): unknown => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'n' }, spec })
  t.throws(() => validateObject(svc({ clusterIP: '10.96.0.4' })), /spec\.ports: Required value/)
  t.throws(() => validateObject(svc({ clusterIP: '10.96.0.4', ports: [] })), /spec\.ports: Required value/)
  t.doesNotThrow(() => validateObject(svc({ clusterIP: 'None' })))
  t.doesNotThrow(() => validateObject(svc({ type: 'ExternalName', externalName: 'example.com' })))
})

t.test('EndpointSlice endpoints: each field\'s error names its path; canonical IPv4 lists kept as given, others canonicalized', async t => {
  const slice = (addressType: unknown, endpoints: unknown[]): unknown => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's-1', namespace: 'n', labels: { 'kubernetes.io/service-name': 's' } }, addressType, endpoints, ports: [{ port: 80 }],
  })
  const ok = validateObject(slice('IPv4', [
    { addresses: ['10.0.0.1', '10.0.0.2'], conditions: { ready: true, serving: null }, nodeName: 'n1', zone: null },
    { addresses: ['10.0.0.010'], conditions: 'ignored', hostname: 'h-1' },
  ])) as EndpointSlice
  t.same(ok.endpoints, [
    { addresses: ['10.0.0.1', '10.0.0.2'], conditions: { ready: true }, nodeName: 'n1' },
    { addresses: ['10.0.0.10'], hostname: 'h-1' },
  ], 'null fields are absent, a legacy octet is canonicalized, a non-map conditions is ignored')
  const bad = (addressType: unknown, endpoints: unknown[]): string => {
    try { validateObject(slice(addressType, endpoints)) } catch (e) { return (e as Error).message }
    return 'no error'
  }
  const msg = bad('IPv4', [
    { addresses: ['10.0.0.1'] },
    'x',
    { addresses: [] },
    { addresses: ['10.0.0.1'], conditions: { ready: 'yes', serving: 1, terminating: [] }, hostname: 7, nodeName: false, zone: {} },
    { addresses: ['10.0.0.1', 'fd00::1', 'nope'], hostname: 'Not_A_Label' },
    { addresses: 'x' },
  ])
  for (const want of [
    'endpoints[1]: Invalid value: "x": must be an object',
    'endpoints[2].addresses: Required value',
    'endpoints[3].conditions.ready: Invalid value: "yes": must be a boolean',
    'endpoints[3].conditions.serving: Invalid value: 1: must be a boolean',
    'endpoints[3].conditions.terminating: Invalid value: []: must be a boolean',
    'endpoints[3].hostname: Invalid value: 7: must be a string',
    'endpoints[3].nodeName: Invalid value: false: must be a string',
    'endpoints[3].zone: Invalid value: {}: must be a string',
    'endpoints[4].addresses[1]: Invalid value: "fd00::1": must be an IPv4 address',
    'endpoints[4].addresses[2]: Invalid value: "nope": must be a valid IP address',
    'endpoints[4].hostname: Invalid value: "Not_A_Label": must be a DNS-1123 label',
    'endpoints[5].addresses: Invalid value: "x": must be a list',
    'endpoints[5].addresses: Required value',
  ]) t.ok(msg.includes(want), want)
  t.notMatch(msg, /endpoints\[0\]/, 'a valid endpoint adds nothing')
  t.match(bad('IPv6', [{ addresses: ['10.0.0.1'] }]), /endpoints\[0\]\.addresses\[0\]: Invalid value: "10.0.0.1": must be an IPv6 address/, 'IPv4 texts in an IPv6 slice')
  t.match(bad('FQDN', [{ addresses: ['10.0.0.1', 'a..b'] }]), /endpoints\[0\]\.addresses\[1\]: Invalid value: "a..b": must be a DNS-1123 subdomain/)
})

t.test('label maps: strings only, a "__proto__" key kept as a plain key, inherited keys not copied', async t => {
  const withLabels = (labels: unknown): unknown => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'n', labels }, spec: { clusterIP: 'None' } })
  const parsed = JSON.parse('{"__proto__":"x","a":"b"}') as Record<string, string>
  const s = validateObject(withLabels(parsed)) as Service
  t.same(Object.entries(s.metadata.labels ?? {}), [['__proto__', 'x'], ['a', 'b']])
  t.equal(Object.getPrototypeOf(s.metadata.labels), Object.prototype)
  const inherited = Object.create({ sneaky: 'y' }) as Record<string, string>
  inherited.a = 'b'
  t.same(Object.keys((validateObject(withLabels(inherited)) as Service).metadata.labels ?? {}), ['a'])
  t.throws(() => validateObject(withLabels({ a: 'b', c: 1 })), /metadata\.labels: Invalid value: \{"a":"b","c":1\}: must be a map of strings/)
  t.throws(() => validateObject(withLabels(['a'])), /metadata\.labels: Invalid value: \["a"\]: must be a map of strings/)
})

t.test('an empty clusterIP beside clusterIPs takes clusterIPs[0], as the API server defaults it', async t => {
  const s = validateObject(svc({ clusterIP: '', clusterIPs: ['fd00::a', '10.96.0.10'], ports: [{ port: 80 }] })) as Service
  t.equal(s.spec.clusterIP, 'fd00::a')
  t.same(s.spec.clusterIPs, ['fd00::a', '10.96.0.10'])
})
