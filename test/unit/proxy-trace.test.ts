// PROXY.md §7's scenarios as packet flows. Each expectation is checked against the neutral plan's tracer
// (the policy) and against a trace of the rules the iptables renderer writes for the same state (the
// rendering); the nftables renderer's rules, loaded into the ruleset model, must agree with the plan under
// that mode's options (it offers no localhost NodePorts). Then a battery of generated services and packets
// checks that plan and iptables rules always agree (test/unit/proxy-nftables-trace.test.ts has nft's).
import t, { type Test } from 'tap'
import { resolveProxyOptions, type ProxyOptionsInput } from '../../pkg/proxy/options.js'
import { planPort } from '../../pkg/proxy/plan.js'
import { tracePlan, type Packet, type TraceEnv, type TracedEndpoint } from '../../pkg/proxy/trace.js'
import { svcInfo, localEp as local, remoteEp as remote, categorized as svc } from '../../pkg/proxy/iptables/fixtures.js'
import { renderFull } from '../../pkg/proxy/iptables/render.js'
import { fullSyncExtras, jumps } from '../../pkg/proxy/iptables/restore.js'
import { loadRestore, traceIptables } from '../../pkg/proxy/iptables/trace.js'
import { NftModel } from '../../pkg/proxy/nftables/model.js'
import { resolveNftablesOptions } from '../../pkg/proxy/nftables/options.js'
import { renderFull as renderNft } from '../../pkg/proxy/nftables/render.js'
import { traceNft } from '../../pkg/proxy/nftables/trace.js'
import { expectFlow, fmtEps, type Want } from '../helpers/trace-flow.js'
import { generatedServices } from '../helpers/generated-services.js'
import { servicePortKey, type DesiredServicePort, type DesiredState, type ServicePortInfo } from '../../pkg/proxy/types.js'
import type { Protocol } from '../../pkg/api/types.js'

const ENV: TraceEnv = { localAddresses: ['192.168.0.2', '192.168.1.2', '127.0.0.1'] }
const BASE: ProxyOptionsInput = { family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2', '192.168.1.2'] }
const POD = '10.0.0.2'
const EXT = '203.0.113.2'
const BLOCKED = '203.0.113.130'
const NODE_IP = '192.168.0.2'

const terminating = { ready: false, serving: true, terminating: true }

function stateOf (...sps: DesiredServicePort[]): DesiredState {
  return { family: 'IPv4', services: new Map(sps.map(s => [servicePortKey(s.info), s])) }
}

/** Checks one packet against the plan tracer and the iptables rules of the same state (and nft's, below). */
function flow (t: Test, state: DesiredState, opts: ProxyOptionsInput, pkt: Packet, want: Want, name: string): void {
  const o = resolveProxyOptions(opts)
  const plans = [...state.services.values()].map(sp => planPort(sp, o))
  const byPlan = tracePlan(plans, o, ENV, pkt)
  const tables = loadRestore([renderFull(state, opts, new Set(), fullSyncExtras(jumps('IPv4'))).payload])
  expectFlow(t, pkt, want, name, [['plan', byPlan], ['iptables rules', traceIptables(tables, 'IPv4', ENV, pkt)]])
  nftFlow(t, state, opts, pkt, name)
}

/** The nftables rules of the same state against the plan under that mode's options, spread included. */
function nftFlow (t: Test, state: DesiredState, opts: ProxyOptionsInput, pkt: Packet, name: string): void {
  const o = resolveNftablesOptions(opts)
  const byPlan = tracePlan([...state.services.values()].map(sp => planPort(sp, o)), o, ENV, pkt)
  const model = new NftModel()
  model.apply(renderNft(state, o).text)
  const byNft = traceNft(model, 'IPv4', ENV, pkt)
  t.same([byNft.verdict, fmtEps(byNft.endpoints)], [byPlan.verdict, fmtEps(byPlan.endpoints)], `${name}: nft rules agree with the plan (${byPlan.verdict} ${fmtEps(byPlan.endpoints)})`, { paths: byNft.paths })
  if (byNft.verdict === 'forward') t.ok(byNft.shares.every(x => Math.abs(x - 1 / byNft.shares.length) < 1e-9), `${name}: nft spreads evenly`, { shares: byNft.shares })
}

const tcp = (src: string, dst: string, port: number, protocol: Protocol = 'TCP'): Packet => ({ src, dst, port, protocol })

t.test('1: ClusterIP with a local endpoint; hairpin is masqueraded', async t => {
  const s = stateOf(svc(svcInfo({ clusterIP: '172.30.0.41' }), [local('10.180.0.1')]))
  flow(t, s, BASE, tcp('10.180.0.2', '172.30.0.41', 80), { reach: ['10.180.0.1'], masq: false }, 'pod to VIP')
  flow(t, s, BASE, tcp('10.180.0.1', '172.30.0.41', 80), { reach: ['10.180.0.1'], masq: true }, 'endpoint to itself')
})

t.test('2: ports by name and protocol; other ports are not handled', async t => {
  const s = stateOf(
    svc(svcInfo({ name: 'svc2', clusterIP: '172.30.0.42', portName: 'https', port: 443 }), [local('10.180.0.1', 8443), remote('10.180.2.1', 8443)]),
    svc(svcInfo({ name: 'svc2', clusterIP: '172.30.0.42', portName: 'http', port: 80 }), [local('10.180.0.1', 8080)]),
    svc(svcInfo({ name: 'dns', clusterIP: '172.30.0.53', portName: 'dns-tcp', port: 53 }), [remote('10.180.3.1', 5353)]),
    svc(svcInfo({ name: 'dns', clusterIP: '172.30.0.53', portName: 'dns-udp', port: 53, protocol: 'UDP' }), [remote('10.180.3.1', 5354)]),
    svc(svcInfo({ name: 'dns', clusterIP: '172.30.0.53', portName: 'dns-sctp', port: 53, protocol: 'SCTP' }), [remote('10.180.3.1', 5355)]),
  )
  flow(t, s, BASE, tcp(POD, '172.30.0.42', 443), { reach: ['10.180.0.1:8443', '10.180.2.1:8443'], masq: false }, 'https')
  flow(t, s, BASE, tcp(POD, '172.30.0.42', 80, 'UDP'), { verdict: 'not-handled' }, 'UDP to a TCP port')
  flow(t, s, BASE, tcp(POD, '172.30.0.41', 443), { verdict: 'not-handled' }, 'another VIP')
  // The nftables mode, like kube-proxy's, rejects other ports and protocols of a live ClusterIP at once.
  for (const [pkt, verdict, name] of [
    [tcp(POD, '172.30.0.42', 80, 'UDP'), 'REJECT', 'UDP to a TCP port'],
    [tcp(POD, '172.30.0.42', 8080), 'REJECT', 'a port no Service defines'],
    [tcp(NODE_IP, '172.30.0.53', 54, 'UDP'), 'REJECT', 'from the node'],
    [tcp(POD, '172.30.0.41', 443), 'not-handled', 'an address that is no ClusterIP'],
  ] as const) {
    const model = new NftModel()
    model.apply(renderNft(s, resolveNftablesOptions(BASE)).text)
    t.equal(traceNft(model, 'IPv4', ENV, pkt).verdict, verdict, `nftables: ${name}`)
  }
  flow(t, s, BASE, tcp(POD, '172.30.0.53', 53), { reach: ['10.180.3.1:5353'], masq: false }, 'TCP 53')
  flow(t, s, BASE, tcp(POD, '172.30.0.53', 53, 'UDP'), { reach: ['10.180.3.1:5354'], masq: false }, 'UDP 53')
  flow(t, s, BASE, tcp(POD, '172.30.0.53', 53, 'SCTP'), { reach: ['10.180.3.1:5355'], masq: false }, 'SCTP 53')
})

const lbInfo = (o: Partial<ServicePortInfo> = {}): ServicePortInfo => svcInfo({
  clusterIP: '172.30.0.41', externalIPs: ['192.168.99.11'], nodePort: 3001, loadBalancerIPs: ['1.2.3.4'], ...o,
})

t.test('3: no endpoints: every entry point is rejected', async t => {
  const s = stateOf(svc(lbInfo(), []))
  for (const [src, dst, port] of [[POD, '172.30.0.41', 80], [EXT, '192.168.99.11', 80], [EXT, NODE_IP, 3001], [POD, '1.2.3.4', 80], [EXT, '1.2.3.4', 80]] as const) {
    flow(t, s, BASE, tcp(src, dst, port), { verdict: 'REJECT' }, `${src} -> ${dst}:${port}`)
  }
})

t.test('4: eTP=Cluster: internal traffic kept, external masqueraded', async t => {
  const s = stateOf(svc(lbInfo(), [remote('10.180.0.1'), local('10.180.2.1')]))
  const both = ['10.180.0.1', '10.180.2.1']
  flow(t, s, BASE, tcp(POD, '172.30.0.41', 80), { reach: both, masq: false }, 'pod to ClusterIP')
  for (const src of [POD, EXT]) {
    flow(t, s, BASE, tcp(src, '192.168.99.11', 80), { reach: both, masq: true }, `${src} to externalIP`)
    flow(t, s, BASE, tcp(src, '1.2.3.4', 80), { reach: both, masq: true }, `${src} to LB`)
    flow(t, s, BASE, tcp(src, NODE_IP, 3001), { reach: both, masq: true }, `${src} to NodePort`)
  }
})

const svc2Local = (o: Partial<ServicePortInfo> = {}): ServicePortInfo => svcInfo({
  name: 'svc2', clusterIP: '172.30.0.42', loadBalancerIPs: ['5.6.7.8'], nodePort: 3002, healthCheckNodePort: 30002, externalPolicyLocal: true, ...o,
})

t.test('5: eTP=Local: client IP kept off-node, short-circuit for pods and the node', async t => {
  const s = stateOf(svc(svc2Local(), [local('10.180.0.2'), remote('10.180.1.2')]))
  const both = ['10.180.0.2', '10.180.1.2']
  const lh = { ...BASE, localhostNodePorts: true }
  flow(t, s, lh, tcp(EXT, '5.6.7.8', 80), { reach: ['10.180.0.2'], masq: false }, 'external to LB')
  flow(t, s, lh, tcp(EXT, NODE_IP, 3002), { reach: ['10.180.0.2'], masq: false }, 'external to NodePort')
  flow(t, s, lh, tcp(POD, '5.6.7.8', 80), { reach: both, masq: false }, 'pod to LB')
  flow(t, s, lh, tcp(POD, NODE_IP, 3002), { reach: both, masq: false }, 'pod to NodePort')
  flow(t, s, lh, tcp(NODE_IP, '5.6.7.8', 80), { reach: both, masq: true }, 'node to LB')
  flow(t, s, lh, tcp('127.0.0.1', '127.0.0.1', 3002), { reach: both, masq: true }, 'localhost NodePort')
  flow(t, s, lh, tcp(POD, '172.30.0.42', 80), { reach: both, masq: false }, 'pod to ClusterIP')
  flow(t, s, lh, tcp(NODE_IP, '172.30.0.42', 80), { reach: both, masq: true }, 'node to ClusterIP')
  flow(t, s, lh, tcp(EXT, '172.30.0.42', 80), { reach: both, masq: true }, 'external to ClusterIP')
})

t.test('6: eTP=Local without a detector, and with masqueradeAll', async t => {
  const s = stateOf(svc(svc2Local(), [local('10.180.0.2'), remote('10.180.1.2')]))
  const both = ['10.180.0.2', '10.180.1.2']
  const noDetector: ProxyOptionsInput = { family: 'IPv4', nodeIPs: BASE.nodeIPs ?? [] }
  flow(t, s, noDetector, tcp(NODE_IP, '172.30.0.42', 80), { reach: both, masq: false }, 'node to ClusterIP, no detector')
  flow(t, s, noDetector, tcp(EXT, '172.30.0.42', 80), { reach: both, masq: false }, 'external to ClusterIP, no detector')
  flow(t, s, noDetector, tcp(POD, '5.6.7.8', 80), { reach: ['10.180.0.2'], masq: false }, 'pod to LB, no detector')
  flow(t, s, noDetector, tcp(POD, NODE_IP, 3002), { reach: ['10.180.0.2'], masq: false }, 'pod to NodePort, no detector')
  flow(t, s, { ...BASE, masqueradeAll: true }, tcp(POD, '172.30.0.42', 80), { reach: both, masq: true }, 'pod to ClusterIP, masqueradeAll')
})

t.test('7: eTP=Local with only remote endpoints drops external clients', async t => {
  const s = stateOf(svc(svc2Local({ externalIPs: ['192.168.99.12'] }), [remote('10.180.1.2')]))
  flow(t, s, BASE, tcp(EXT, '5.6.7.8', 80), { verdict: 'DROP' }, 'external to LB')
  flow(t, s, BASE, tcp(EXT, NODE_IP, 3002), { verdict: 'DROP' }, 'external to NodePort')
  flow(t, s, BASE, tcp(EXT, '192.168.99.12', 80), { verdict: 'DROP' }, 'external to externalIP')
  flow(t, s, BASE, tcp(POD, '5.6.7.8', 80), { reach: ['10.180.1.2'], masq: false }, 'pod to LB')
})

t.test('8, 9: iTP=Local', async t => {
  const info = svcInfo({ name: 'svc3', clusterIP: '172.30.0.43', loadBalancerIPs: ['9.10.11.12'], nodePort: 3003, internalPolicyLocal: true })
  const s = stateOf(svc(info, [local('10.180.0.3'), remote('10.180.1.3')]))
  flow(t, s, BASE, tcp(POD, '172.30.0.43', 80), { reach: ['10.180.0.3'], masq: false }, 'pod to ClusterIP')
  flow(t, s, BASE, tcp(NODE_IP, '172.30.0.43', 80), { reach: ['10.180.0.3'], masq: true }, 'node to ClusterIP')
  for (const src of [POD, EXT, NODE_IP]) {
    flow(t, s, BASE, tcp(src, NODE_IP, 3003), { reach: ['10.180.0.3', '10.180.1.3'], masq: true }, `${src} to NodePort`)
    flow(t, s, BASE, tcp(src, '9.10.11.12', 80), { reach: ['10.180.0.3', '10.180.1.3'], masq: true }, `${src} to LB`)
  }
  const onlyRemote = stateOf(svc(svcInfo({ name: 'svc3', clusterIP: '172.30.0.43', internalPolicyLocal: true }), [remote('10.180.1.3')]))
  flow(t, onlyRemote, BASE, tcp(POD, '172.30.0.43', 80), { verdict: 'DROP' }, 'only remote endpoints')
  const none = stateOf(svc(svcInfo({ name: 'svc3', clusterIP: '172.30.0.43', internalPolicyLocal: true }), []))
  flow(t, none, BASE, tcp(POD, '172.30.0.43', 80), { verdict: 'REJECT' }, 'no endpoints')
})

t.test('10: loadBalancerSourceRanges', async t => {
  const info = svcInfo({
    clusterIP: '172.30.0.41', loadBalancerIPs: ['1.2.3.4', '5.6.7.8'], nodePort: 3001, loadBalancerSourceRanges: ['192.168.0.0/24', ' 203.0.113.0/25'],
  })
  const s = stateOf(svc(info, [remote('10.180.0.1')]))
  flow(t, s, BASE, tcp(EXT, '1.2.3.4', 80), { reach: ['10.180.0.1'], masq: true }, 'allowed client')
  flow(t, s, BASE, tcp(BLOCKED, '1.2.3.4', 80), { verdict: 'DROP' }, 'blocked client')
  flow(t, s, BASE, tcp(POD, '1.2.3.4', 80), { verdict: 'DROP' }, 'pod')
  flow(t, s, BASE, tcp(NODE_IP, '1.2.3.4', 80), { reach: ['10.180.0.1'], masq: true }, 'node')
  flow(t, s, BASE, tcp('5.6.7.8', '1.2.3.4', 80), { reach: ['10.180.0.1'], masq: true }, 'LB IP as the source')
  flow(t, s, BASE, tcp(BLOCKED, NODE_IP, 3001), { reach: ['10.180.0.1'], masq: true }, 'NodePorts ignore source ranges')
  // The firewall is hooked from OUTPUT as well: a node address outside the ranges is dropped too.
  const narrow = stateOf(svc({ ...info, loadBalancerSourceRanges: ['203.0.113.0/25'] }, [remote('10.180.0.1')]))
  flow(t, narrow, BASE, tcp(NODE_IP, '1.2.3.4', 80), { verdict: 'DROP' }, 'node outside the ranges')
})

t.test('11: NodePort addresses and localhost', async t => {
  const s = stateOf(svc(svcInfo({ clusterIP: '172.30.0.41', nodePort: 3001 }), [remote('10.180.0.1'), local('10.180.2.1')]))
  const both = ['10.180.0.1', '10.180.2.1']
  flow(t, s, BASE, tcp(EXT, NODE_IP, 3001), { reach: both, masq: true }, 'primary IP')
  flow(t, s, BASE, tcp(EXT, '192.168.1.2', 3001), { reach: both, masq: true }, 'second IP, no nodePortAddresses')
  const limited = { ...BASE, nodePortAddresses: ['192.168.0.0/24', '127.0.0.1/32'] }
  flow(t, s, limited, tcp(EXT, '192.168.1.2', 3001), { verdict: 'not-handled' }, 'second IP outside nodePortAddresses')
  flow(t, s, limited, tcp(EXT, NODE_IP, 3001), { reach: both, masq: true }, 'primary IP inside nodePortAddresses')
  // Like kube-proxy, a family the list names no CIDR of takes NodePorts on every address (dual-stack nodes).
  const otherFamily = { ...BASE, nodePortAddresses: ['fd00::/64'] }
  flow(t, s, otherFamily, tcp(EXT, '192.168.1.2', 3001), { reach: both, masq: true }, 'only IPv6 nodePortAddresses: second IPv4 IP')
  flow(t, s, otherFamily, tcp(EXT, NODE_IP, 3001), { reach: both, masq: true }, 'only IPv6 nodePortAddresses: primary IPv4 IP')
  flow(t, s, BASE, tcp('127.0.0.1', '127.0.0.1', 3001), { verdict: 'not-handled' }, 'localhost NodePorts off')
  // The nftables mode offers no localhost NodePorts: its rules are held to the plan with them off (not-handled).
  flow(t, s, { ...BASE, localhostNodePorts: true }, tcp('127.0.0.1', '127.0.0.1', 3001), { reach: both, masq: true }, 'localhost NodePorts on')
})

t.test('VIP rules win over NodePorts on the same local address and port', async t => {
  const s = stateOf(
    svc(svcInfo({ name: 'np', clusterIP: '172.30.0.60', nodePort: 31005 }), [remote('10.180.6.1')]),
    svc(svcInfo({ name: 'eip', clusterIP: '172.30.0.61', port: 31005, externalIPs: ['192.168.1.2'] }), [remote('10.180.6.2')]),
  )
  flow(t, s, BASE, tcp(EXT, '192.168.1.2', 31005), { reach: ['10.180.6.2'], masq: true }, 'externalIP on a node address')
  flow(t, s, BASE, tcp(EXT, NODE_IP, 31005), { reach: ['10.180.6.1'], masq: true }, 'the NodePort elsewhere')
})

t.test('13, 14, 15: terminating endpoints', async t => {
  const info = svcInfo({ clusterIP: '172.30.1.1', loadBalancerIPs: ['1.2.3.4'], nodePort: 3004, externalPolicyLocal: true })
  const notServing = { ready: false, serving: false, terminating: true }
  const s13 = stateOf(svc(info, [local('10.0.1.1'), local('10.0.1.2'), local('10.0.1.3', 80, terminating), local('10.0.1.4', 80, notServing), remote('10.0.1.5')]))
  flow(t, s13, BASE, tcp(POD, '172.30.1.1', 80), { reach: ['10.0.1.1', '10.0.1.2', '10.0.1.5'], masq: false }, '13: pod to ClusterIP')
  flow(t, s13, BASE, tcp(EXT, '1.2.3.4', 80), { reach: ['10.0.1.1', '10.0.1.2'], masq: false }, '13: external to LB')
  const s14 = stateOf(svc(info, [local('10.0.1.2', 80, terminating), local('10.0.1.3', 80, terminating), local('10.0.1.4', 80, notServing), remote('10.0.1.5')]))
  flow(t, s14, BASE, tcp(POD, '172.30.1.1', 80), { reach: ['10.0.1.5'], masq: false }, '14: pod to ClusterIP')
  flow(t, s14, BASE, tcp(EXT, '1.2.3.4', 80), { reach: ['10.0.1.2', '10.0.1.3'], masq: false }, '14: external to LB')
  const s14b = stateOf(svc(info, [remote('10.0.1.5', 80, terminating)]))
  flow(t, s14b, BASE, tcp(POD, '172.30.1.1', 80), { reach: ['10.0.1.5'], masq: false }, '14: only a remote terminating endpoint, ClusterIP')
  flow(t, s14b, BASE, tcp(EXT, '1.2.3.4', 80), { verdict: 'DROP' }, '14: only a remote terminating endpoint, LB')
  const s14c = stateOf(svc(info, [local('10.0.1.4', 80, notServing)]))
  flow(t, s14c, BASE, tcp(POD, '172.30.1.1', 80), { verdict: 'REJECT' }, '14: nothing serving, ClusterIP')
  flow(t, s14c, BASE, tcp(EXT, '1.2.3.4', 80), { verdict: 'REJECT' }, '14: nothing serving, LB')
  const cluster = svcInfo({ clusterIP: '172.30.1.1', loadBalancerIPs: ['1.2.3.4'], nodePort: 3004 })
  const s15 = stateOf(svc(cluster, [local('10.0.1.2', 80, terminating), local('10.0.1.3', 80, terminating), remote('10.0.1.5', 80, terminating), local('10.0.1.4', 80, notServing)]))
  flow(t, s15, BASE, tcp(POD, '172.30.1.1', 80), { reach: ['10.0.1.2', '10.0.1.3', '10.0.1.5'], masq: false }, '15: pod')
  flow(t, s15, BASE, tcp(EXT, '1.2.3.4', 80), { reach: ['10.0.1.2', '10.0.1.3', '10.0.1.5'], masq: true }, '15: external')
})

t.test('generated services: the iptables rules agree with the plan on every packet', async t => {
  // No affinity: the iptables tracer does not model `-m recent`.
  const sps = generatedServices({ seed: 7, count: 40, prefix: 'g', endpointsBelow: 4, affinity: false })
  const state = stateOf(...sps)
  const sources = [POD, EXT, BLOCKED, NODE_IP, '127.0.0.1', '10.180.3.1', '198.51.100.4']
  let compared = 0
  for (const opts of [BASE, { family: 'IPv4' as const, nodeIPs: ['192.168.0.2'] }, { ...BASE, masqueradeAll: true, localhostNodePorts: true }]) {
    const o = resolveProxyOptions(opts)
    const plans = sps.map(sp => planPort(sp, o))
    const tables = loadRestore([renderFull(state, opts, new Set(), fullSyncExtras(jumps('IPv4'))).payload])
    for (const sp of sps) {
      const info = sp.info
      const dsts: Array<[string, number]> = [[info.clusterIP, info.port], ...info.externalIPs.map((ip): [string, number] => [ip, info.port]),
        ...info.loadBalancerIPs.map((ip): [string, number] => [ip, info.port])]
      if (info.nodePort !== 0) dsts.push([NODE_IP, info.nodePort], ['127.0.0.1', info.nodePort])
      for (const [dst, port] of dsts) {
        for (const src of [...sources, ...sp.allReachableEndpoints.map(e => e.ip)]) {
          // Only loopback reaches loopback (the kernel drops the rest as martians; ferry's guard too).
          if (dst === '127.0.0.1' && src !== '127.0.0.1') continue
          const pkt = { src, dst, port, protocol: info.protocol }
          const a = tracePlan(plans, o, ENV, pkt)
          const b = traceIptables(tables, 'IPv4', ENV, pkt)
          compared++
          if (a.verdict !== b.verdict || fmtEps(a.endpoints) !== fmtEps(b.endpoints)) {
            t.fail(`${info.spn} ${src} -> ${dst}:${port}/${info.protocol}: plan ${a.verdict} ${fmtEps(a.endpoints)}, iptables ${b.verdict} ${fmtEps(b.endpoints)}`, { paths: b.paths, reason: a.reason })
          }
        }
      }
    }
  }
  t.ok(compared > 1000, `${compared} packets compared`)
})
