import t from 'tap'
import { HEADLESS_LABEL, SERVICE_PROXY_NAME_LABEL } from '../../pkg/api/types.js'
import { clusterIPOf, externallyAccessible, servicePortName, servicePortsOf } from '../../pkg/proxy/serviceport.js'
import { servicePortKey } from '../../pkg/proxy/types.js'
import { svc } from '../helpers/fixtures.js'
import type { SvcOptions } from '../helpers/fixtures.js'

t.test('skipped Services get no ports (scenario 20)', async t => {
  const rows: Array<[string, SvcOptions]> = [
    ['clusterIP None', { clusterIP: 'None' }],
    ['clusterIP empty', { clusterIP: '' }],
    ['clusterIPs [None]', { clusterIP: 'None', clusterIPs: ['None'] }],
    ['ExternalName', { type: 'ExternalName', externalName: 'example.com' }],
    ['ExternalName with a clusterIP-looking field', { type: 'ExternalName', clusterIP: '172.30.0.9', externalName: 'example.com' }],
    ['service-proxy-name label', { labels: { [SERVICE_PROXY_NAME_LABEL]: 'other-proxy' } }],
    ['service-proxy-name label, empty value', { labels: { [SERVICE_PROXY_NAME_LABEL]: '' } }],
    ['headless label', { labels: { [HEADLESS_LABEL]: '' } }],
    ['LB with proxy-name label gets no HC port either', { type: 'LoadBalancer', eTP: 'Local', healthCheckNodePort: 30000, lbIngress: ['1.2.3.4'], labels: { [SERVICE_PROXY_NAME_LABEL]: 'x' } }],
    ['IPv6-only ClusterIP on the IPv4 proxier', { clusterIP: 'fd00::41', clusterIPs: ['fd00::41'] }],
  ]
  for (const [name, o] of rows) t.same(servicePortsOf(svc(o), 'IPv4'), [], name)
  t.same(servicePortsOf(svc(), 'IPv6'), [], 'IPv4 ClusterIP on the IPv6 proxier')
})

t.test('a plain ClusterIP port', async t => {
  t.same(servicePortsOf(svc(), 'IPv4'), [{
    spn: 'ns1/svc1:p80',
    namespace: 'ns1',
    name: 'svc1',
    portName: 'p80',
    protocol: 'TCP',
    family: 'IPv4',
    clusterIP: '172.30.0.41',
    port: 80,
    nodePort: 0,
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    stickyMaxAgeSeconds: 0,
    externalPolicyLocal: false,
    internalPolicyLocal: false,
    healthCheckNodePort: 0,
  }])
})

t.test('spn and keys', async t => {
  const ports = servicePortsOf(svc({
    name: 'svc2',
    clusterIP: '172.30.0.42',
    ports: [{ name: 'http', port: 80 }, { name: 'https', port: 443 }, { name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53 }],
  }), 'IPv4')
  t.same(ports.map(p => p.spn), ['ns1/svc2:http', 'ns1/svc2:https', 'ns1/svc2:dns', 'ns1/svc2:dns-tcp'])
  t.same(ports.map(servicePortKey), ['ns1/svc2:http/tcp', 'ns1/svc2:https/tcp', 'ns1/svc2:dns/udp', 'ns1/svc2:dns-tcp/tcp'])
  const unnamed = servicePortsOf(svc({ ports: [{ port: 80 }] }), 'IPv4')
  t.same(unnamed.map(p => [p.spn, p.portName]), [['ns1/svc1', '']], 'unnamed port: no ":" part')
  t.equal(servicePortName('a', 'b', ''), 'a/b')
  t.equal(servicePortName('a', 'b', 'c'), 'a/b:c')
})

t.test('nodePort only for NodePort and LoadBalancer', async t => {
  const rows: Array<[SvcOptions['type'], number]> = [['ClusterIP', 0], ['NodePort', 3001], ['LoadBalancer', 3001]]
  for (const [type, want] of rows) {
    const [p] = servicePortsOf(svc({ type, ports: [{ name: 'p80', port: 80, nodePort: 3001 }] }), 'IPv4')
    t.equal(p?.nodePort, want, String(type))
  }
  const [lbNoNP] = servicePortsOf(svc({ type: 'LoadBalancer' }), 'IPv4')
  t.equal(lbNoNP?.nodePort, 0, 'LB without allocated NodePorts')
})

t.test('externalIPs, LB ingress and source ranges are filtered to the family', async t => {
  const dual: SvcOptions = {
    type: 'LoadBalancer',
    clusterIP: '172.30.0.41',
    clusterIPs: ['172.30.0.41', 'fd00:30::41'],
    externalIPs: ['192.168.99.11', '2001:db8::11', '192.168.099.012'],
    lbIngress: ['1.2.3.4', '2001:db8::1:4', { ip: '5.6.7.8', ipMode: 'VIP' }, { ip: '9.9.9.9', ipMode: 'Proxy' }, { hostname: 'lb.example.com' }, { ip: '2001:db8::9', ipMode: 'Proxy' }],
    sourceRanges: ['192.168.0.0/24', ' 203.0.113.0/25', '2001:db8::/64'],
  }
  const [v4] = servicePortsOf(svc(dual), 'IPv4')
  t.equal(v4?.clusterIP, '172.30.0.41')
  t.same(v4?.externalIPs, ['192.168.99.11', '192.168.99.12'], 'legacy leading zeros read as decimal')
  t.same(v4?.loadBalancerIPs, ['1.2.3.4', '5.6.7.8'], 'ipMode Proxy and hostname-only ingress skipped')
  t.same(v4?.loadBalancerSourceRanges, ['192.168.0.0/24', '203.0.113.0/25'])
  const [v6] = servicePortsOf(svc(dual), 'IPv6')
  t.equal(v6?.clusterIP, 'fd00:30::41')
  t.equal(v6?.family, 'IPv6')
  t.same(v6?.externalIPs, ['2001:db8::11'])
  t.same(v6?.loadBalancerIPs, ['2001:db8::1:4'])
  t.same(v6?.loadBalancerSourceRanges, ['2001:db8::/64'])
})

t.test('clusterIPOf', async t => {
  t.equal(clusterIPOf(svc({ clusterIP: '172.30.0.41', clusterIPs: ['172.30.0.41', 'fd00::1'] }), 'IPv6'), 'fd00::1')
  t.equal(clusterIPOf(svc({ clusterIP: 'fd00::1', clusterIPs: ['fd00::1', '172.30.0.41'] }), 'IPv4'), '172.30.0.41', 'IPv6-primary dual stack')
  t.equal(clusterIPOf(svc({ clusterIP: '172.30.0.41', clusterIPs: [] }), 'IPv4'), '172.30.0.41', 'clusterIP alone')
  t.equal(clusterIPOf(svc({ clusterIP: 'None' }), 'IPv4'), '')
})

t.test('session affinity', async t => {
  t.equal(servicePortsOf(svc(), 'IPv4')[0]?.stickyMaxAgeSeconds, 0, 'None')
  t.equal(servicePortsOf(svc({ affinity: true }), 'IPv4')[0]?.stickyMaxAgeSeconds, 10800, 'ClientIP default')
  t.equal(servicePortsOf(svc({ affinity: 60 }), 'IPv4')[0]?.stickyMaxAgeSeconds, 60, 'ClientIP 60s')
  const raw = svc()
  raw.spec.sessionAffinity = 'ClientIP' // not normalized: no config
  t.equal(servicePortsOf(raw, 'IPv4')[0]?.stickyMaxAgeSeconds, 10800, 'ClientIP without config falls back to 10800')
})

t.test('traffic policies and health check port', async t => {
  interface Row { name: string, o: SvcOptions, eLocal: boolean, iLocal: boolean, hc: number, accessible: boolean }
  const np = [{ name: 'p80', port: 80, nodePort: 3001 }]
  const rows: Row[] = [
    { name: 'ClusterIP', o: {}, eLocal: false, iLocal: false, hc: 0, accessible: false },
    { name: 'ClusterIP iTP=Local', o: { iTP: 'Local' }, eLocal: false, iLocal: true, hc: 0, accessible: false },
    { name: 'NodePort eTP=Local', o: { type: 'NodePort', eTP: 'Local', ports: np }, eLocal: true, iLocal: false, hc: 0, accessible: true },
    { name: 'NodePort eTP=Cluster', o: { type: 'NodePort', ports: np }, eLocal: false, iLocal: false, hc: 0, accessible: true },
    { name: 'externalIPs eTP=Local', o: { externalIPs: ['192.168.99.11'], eTP: 'Local' }, eLocal: true, iLocal: false, hc: 0, accessible: true },
    { name: 'externalIPs of the other family only, eTP=Local', o: { externalIPs: ['2001:db8::11'], eTP: 'Local' }, eLocal: false, iLocal: false, hc: 0, accessible: false },
    { name: 'LB eTP=Local', o: { type: 'LoadBalancer', eTP: 'Local', ports: np, lbIngress: ['1.2.3.4'], healthCheckNodePort: 30000 }, eLocal: true, iLocal: false, hc: 30000, accessible: true },
    { name: 'LB eTP=Local, LB IPs only (no NodePort)', o: { type: 'LoadBalancer', eTP: 'Local', lbIngress: ['1.2.3.4'], healthCheckNodePort: 30000 }, eLocal: true, iLocal: false, hc: 30000, accessible: true },
    { name: 'LB eTP=Local, nothing external yet', o: { type: 'LoadBalancer', eTP: 'Local', healthCheckNodePort: 30000 }, eLocal: false, iLocal: false, hc: 30000, accessible: false },
    { name: 'LB eTP=Local, only a Proxy-mode ingress', o: { type: 'LoadBalancer', eTP: 'Local', lbIngress: [{ ip: '1.2.3.4', ipMode: 'Proxy' }], healthCheckNodePort: 30000 }, eLocal: false, iLocal: false, hc: 30000, accessible: false },
    { name: 'LB eTP=Cluster', o: { type: 'LoadBalancer', ports: np, lbIngress: ['1.2.3.4'] }, eLocal: false, iLocal: false, hc: 0, accessible: true },
    { name: 'LB both Local', o: { type: 'LoadBalancer', eTP: 'Local', iTP: 'Local', ports: np, healthCheckNodePort: 30001 }, eLocal: true, iLocal: true, hc: 30001, accessible: true },
    { name: 'NodePort eTP=Local with a stray healthCheckNodePort', o: { type: 'NodePort', eTP: 'Local', ports: np, healthCheckNodePort: 30000 }, eLocal: true, iLocal: false, hc: 0, accessible: true },
  ]
  for (const r of rows) {
    const [p] = servicePortsOf(svc(r.o), 'IPv4')
    if (p === undefined) { t.fail(r.name); continue }
    t.same({ eLocal: p.externalPolicyLocal, iLocal: p.internalPolicyLocal, hc: p.healthCheckNodePort, accessible: externallyAccessible(p) },
      { eLocal: r.eLocal, iLocal: r.iLocal, hc: r.hc, accessible: r.accessible }, r.name)
  }
})

t.test('every port of a multi-port Service shares the Service-level fields', async t => {
  const ports = servicePortsOf(svc({
    type: 'LoadBalancer',
    eTP: 'Local',
    healthCheckNodePort: 30000,
    lbIngress: ['1.2.3.4'],
    ports: [{ name: 'a', port: 80, nodePort: 3001 }, { name: 'b', port: 81, nodePort: 3002, protocol: 'UDP' }],
  }), 'IPv4')
  t.same(ports.map(p => [p.port, p.nodePort, p.protocol, p.healthCheckNodePort, p.loadBalancerIPs]), [[80, 3001, 'TCP', 30000, ['1.2.3.4']], [81, 3002, 'UDP', 30000, ['1.2.3.4']]])
})

t.test('pure: the Service is not modified', async t => {
  const s = svc({ type: 'LoadBalancer', externalIPs: ['192.168.99.11'], lbIngress: ['1.2.3.4'] })
  const before = JSON.stringify(s)
  servicePortsOf(s, 'IPv4')
  t.equal(JSON.stringify(s), before)
})
