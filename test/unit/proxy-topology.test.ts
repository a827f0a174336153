import t from 'tap'
import type { Test } from 'tap'
import { categorizeEndpoints, topologyModeFromHints, usesClusterEndpoints, usesLocalEndpoints } from '../../pkg/proxy/topology.js'
import type { EndpointInfo, ServicePortInfo } from '../../pkg/proxy/types.js'
import { NODE, NOT_SERVING, SERVING_TERMINATING, ZONE_A, ZONE_B, ZONE_C, ep, ips, portInfo, topo } from '../helpers/fixtures.js'

// Service shapes of PROXY.md §1's table.
const clusterIP = portInfo()
const clusterIPLocal = portInfo({ iTP: 'Local' })
const nodePortCluster = portInfo({ type: 'NodePort', ports: [{ name: 'p80', port: 80, nodePort: 3001 }] })
const lbCluster = portInfo({ type: 'LoadBalancer', ports: [{ name: 'p80', port: 80, nodePort: 3001 }], lbIngress: ['1.2.3.4'] })
const lbLocal = portInfo({ type: 'LoadBalancer', eTP: 'Local', ports: [{ name: 'p80', port: 80, nodePort: 3002 }], lbIngress: ['5.6.7.8'], healthCheckNodePort: 30002 })
const extIPLocal = portInfo({ externalIPs: ['192.168.99.11'], eTP: 'Local' })
const extIPCluster = portInfo({ externalIPs: ['192.168.99.11'] })
const lbBothLocal = portInfo({ type: 'LoadBalancer', eTP: 'Local', iTP: 'Local', ports: [{ name: 'p80', port: 80, nodePort: 3003 }], lbIngress: ['9.10.11.12'] })
const lbITPLocal = portInfo({ type: 'LoadBalancer', iTP: 'Local', ports: [{ name: 'p80', port: 80, nodePort: 3003 }], lbIngress: ['9.10.11.12'] })
// eTP=Local on a NodePort-less LB (allocateLoadBalancerNodePorts=false) with no ingress yet: not externally accessible.
const lbLocalNoEntry = portInfo({ type: 'LoadBalancer', eTP: 'Local' })

const node = topo()

interface Expect {
  cluster: string[] | null
  local: string[] | null
  all: string[]
  any: boolean
}

function check (tt: Test, eps: EndpointInfo[], svc: ServicePortInfo, want: Expect, n = node): void {
  const got = categorizeEndpoints(eps, svc, n)
  tt.same({ cluster: ips(got.clusterEndpoints), local: ips(got.localEndpoints), all: ips(got.allReachableEndpoints), any: got.hasAnyEndpoints }, want)
}

t.test('which sets a service port uses (iTP/eTP/externally accessible)', async t => {
  const rows: Array<[string, ServicePortInfo, boolean, boolean]> = [
    ['ClusterIP iTP=Cluster', clusterIP, true, false],
    ['ClusterIP iTP=Local', clusterIPLocal, false, true],
    ['NodePort eTP=Cluster', nodePortCluster, true, false],
    ['LB eTP=Cluster', lbCluster, true, false],
    ['LB eTP=Local (short-circuit needs the cluster set)', lbLocal, true, true],
    ['externalIP eTP=Local', extIPLocal, true, true],
    ['externalIP eTP=Cluster', extIPCluster, true, false],
    ['LB iTP=Local eTP=Cluster', lbITPLocal, true, true],
    ['LB iTP=Local eTP=Local', lbBothLocal, true, true],
    ['LB eTP=Local without NodePort or ingress', lbLocalNoEntry, true, false],
  ]
  for (const [name, svc, cluster, local] of rows) {
    t.equal(usesClusterEndpoints(svc), cluster, `${name}: cluster`)
    t.equal(usesLocalEndpoints(svc), local, `${name}: local`)
  }
  t.equal(lbLocalNoEntry.externalPolicyLocal, false, 'eTP=Local only counts when externally accessible')
})

t.test('PROXY.md §1 table', async t => {
  const localReady = ep('.1', { local: true })
  const remoteReady = ep('.2')
  const rows: Array<[string, EndpointInfo[], ServicePortInfo, Expect]> = [
    // ClusterIP, iTP=Cluster → cluster set; empty → REJECT (hasAnyEndpoints false).
    ['ClusterIP iTP=Cluster, endpoints', [localReady, remoteReady], clusterIP, { cluster: ['10.180.0.1', '10.180.0.2'], local: null, all: ['10.180.0.1', '10.180.0.2'], any: true }],
    ['ClusterIP iTP=Cluster, none', [], clusterIP, { cluster: [], local: null, all: [], any: false }],
    ['ClusterIP iTP=Cluster, only non-serving', [ep('.3', NOT_SERVING)], clusterIP, { cluster: [], local: null, all: [], any: false }],
    // ClusterIP, iTP=Local → local set; empty: DROP if hasAnyEndpoints else REJECT.
    ['ClusterIP iTP=Local, local+remote', [localReady, remoteReady], clusterIPLocal, { cluster: null, local: ['10.180.0.1'], all: ['10.180.0.1'], any: true }],
    ['ClusterIP iTP=Local, only remote (DROP)', [remoteReady], clusterIPLocal, { cluster: null, local: [], all: [], any: true }],
    ['ClusterIP iTP=Local, none (REJECT)', [], clusterIPLocal, { cluster: null, local: [], all: [], any: false }],
    // External, eTP=Cluster → cluster set, masqueraded; empty → REJECT.
    ['NodePort eTP=Cluster', [localReady, remoteReady], nodePortCluster, { cluster: ['10.180.0.1', '10.180.0.2'], local: null, all: ['10.180.0.1', '10.180.0.2'], any: true }],
    ['LB eTP=Cluster, none', [], lbCluster, { cluster: [], local: null, all: [], any: false }],
    ['externalIP eTP=Cluster', [remoteReady], extIPCluster, { cluster: ['10.180.0.2'], local: null, all: ['10.180.0.2'], any: true }],
    // External, eTP=Local → local set off-node, cluster set for the short-circuit.
    ['LB eTP=Local, local+remote', [localReady, remoteReady], lbLocal, { cluster: ['10.180.0.1', '10.180.0.2'], local: ['10.180.0.1'], all: ['10.180.0.1', '10.180.0.2'], any: true }],
    ['LB eTP=Local, only remote (DROP off-node, short-circuit works)', [remoteReady], lbLocal, { cluster: ['10.180.0.2'], local: [], all: ['10.180.0.2'], any: true }],
    ['LB eTP=Local, none (REJECT)', [], lbLocal, { cluster: [], local: [], all: [], any: false }],
    ['externalIP eTP=Local, only local', [localReady], extIPLocal, { cluster: ['10.180.0.1'], local: ['10.180.0.1'], all: ['10.180.0.1'], any: true }],
    // iTP=Local with external entry points: external traffic (eTP=Cluster) still needs the cluster set.
    ['LB iTP=Local eTP=Cluster', [localReady, remoteReady], lbITPLocal, { cluster: ['10.180.0.1', '10.180.0.2'], local: ['10.180.0.1'], all: ['10.180.0.1', '10.180.0.2'], any: true }],
    ['LB iTP=Local eTP=Local, only remote', [remoteReady], lbBothLocal, { cluster: ['10.180.0.2'], local: [], all: ['10.180.0.2'], any: true }],
  ]
  for (const [name, eps, svc, want] of rows) t.test(name, async t => { check(t, eps, svc, want) })
})

t.test('scenario 13: eTP=Local, some local ready', async t => {
  const eps = [
    ep('.1', { local: true }), ep('.2', { local: true }), ep('.3', { local: true, ...SERVING_TERMINATING }),
    ep('.4', { local: true, ...NOT_SERVING }), ep('.5'),
  ]
  // pod → ClusterIP: cluster set; external → LB: local set.
  check(t, eps, lbLocal, { cluster: ['10.180.0.1', '10.180.0.2', '10.180.0.5'], local: ['10.180.0.1', '10.180.0.2'], all: ['10.180.0.1', '10.180.0.2', '10.180.0.5'], any: true })
})

t.test('scenario 14: eTP=Local terminating fallbacks', async t => {
  t.test('local serving+terminating, remote ready', async t => {
    const eps = [ep('.2', { local: true, ...SERVING_TERMINATING }), ep('.3', { local: true, ...SERVING_TERMINATING }), ep('.4', { local: true, ...NOT_SERVING }), ep('.5')]
    check(t, eps, lbLocal, { cluster: ['10.180.0.5'], local: ['10.180.0.2', '10.180.0.3'], all: ['10.180.0.2', '10.180.0.3', '10.180.0.5'], any: true })
    const got = categorizeEndpoints(eps, lbLocal, node)
    t.equal(got.localEndpoints?.filter(e => e.ready).length, 0, 'no local ready endpoint: HC answers 503')
  })
  t.test('only a remote serving+terminating endpoint', async t => {
    check(t, [ep('.5', SERVING_TERMINATING)], lbLocal, { cluster: ['10.180.0.5'], local: [], all: ['10.180.0.5'], any: true })
  })
  t.test('only non-serving terminating endpoints', async t => {
    check(t, [ep('.2', { local: true, ...NOT_SERVING }), ep('.5', NOT_SERVING)], lbLocal, { cluster: [], local: [], all: [], any: false })
  })
  t.test('slice deleted', async t => {
    check(t, [], lbLocal, { cluster: [], local: [], all: [], any: false })
  })
})

t.test('scenario 15: eTP=Cluster, nothing ready', async t => {
  const eps = [ep('.2', { local: true, ...SERVING_TERMINATING }), ep('.3', { local: true, ...SERVING_TERMINATING }), ep('.4', { local: true, ...NOT_SERVING }), ep('.5', SERVING_TERMINATING)]
  check(t, eps, lbCluster, { cluster: ['10.180.0.2', '10.180.0.3', '10.180.0.5'], local: null, all: ['10.180.0.2', '10.180.0.3', '10.180.0.5'], any: true })
  t.test('once any endpoint is ready, only ready ones are used', async t => {
    const withReady = [...eps, ep('.6')]
    check(t, withReady, lbCluster, { cluster: ['10.180.0.6'], local: null, all: ['10.180.0.6'], any: true })
  })
  t.test('ready but not serving is impossible in practice; ready wins', async t => {
    check(t, [ep('.7', { ready: true, serving: false })], clusterIP, { cluster: ['10.180.0.7'], local: null, all: ['10.180.0.7'], any: true })
  })
  t.test('not ready, serving, not terminating is never used', async t => {
    check(t, [ep('.8', { ready: false, serving: true, terminating: false })], clusterIP, { cluster: [], local: null, all: [], any: false })
  })
})

t.test('scenario 17: zone hints', async t => {
  const zoned = [ep('.3', { zoneHints: [ZONE_A] }), ep('.4', { zoneHints: [ZONE_B] }), ep('.5', { zoneHints: [ZONE_C] }), ep('.6', { zoneHints: [ZONE_A] })]
  const all = ['10.180.0.3', '10.180.0.4', '10.180.0.5', '10.180.0.6']
  const rows: Array<[string, EndpointInfo[], string, string[]]> = [
    ['node in zone-a uses zone-a hinted endpoints', zoned, ZONE_A, ['10.180.0.3', '10.180.0.6']],
    ['node in zone-b', zoned, ZONE_B, ['10.180.0.4']],
    ['a ready endpoint without hints disables filtering', [...zoned.slice(0, 3), ep('.6')], ZONE_A, all],
    ['a ready endpoint with empty zone hints disables filtering', [...zoned.slice(0, 3), ep('.6', { zoneHints: [] })], ZONE_A, all],
    ['a non-ready endpoint without hints does not', [...zoned, ep('.7', NOT_SERVING)], ZONE_A, ['10.180.0.3', '10.180.0.6']],
    ['no endpoint hinted for our zone', zoned, 'zone-d', all],
    ['node has no zone label', zoned, '', all],
    ['multi-zone hints', [ep('.3', { zoneHints: [ZONE_A, ZONE_B] }), ep('.4', { zoneHints: [ZONE_B] })], ZONE_A, ['10.180.0.3']],
    ['hints only on non-ready endpoints: nothing ready → fallback ignores hints', [ep('.3', { ...SERVING_TERMINATING, zoneHints: [ZONE_B] }), ep('.4', { ...SERVING_TERMINATING, zoneHints: [ZONE_A] })], ZONE_A, ['10.180.0.3', '10.180.0.4']],
  ]
  for (const [name, eps, zone, want] of rows) {
    t.test(name, async t => {
      const got = categorizeEndpoints(eps, clusterIP, topo(zone))
      t.same(ips(got.clusterEndpoints), want)
    })
  }
})

t.test('scenario 17: PreferSameNode', async t => {
  const rows: Array<[string, EndpointInfo[], string, string[]]> = [
    ['every ready endpoint node-hinted, some for this node', [ep('.3', { local: true, nodeHints: [NODE] }), ep('.4', { nodeHints: ['n2'] }), ep('.5', { nodeHints: [NODE, 'n3'] })], ZONE_A, ['10.180.0.3', '10.180.0.5']],
    ['node hints win over zone hints', [ep('.3', { nodeHints: [NODE], zoneHints: [ZONE_B] }), ep('.4', { nodeHints: ['n2'], zoneHints: [ZONE_A] })], ZONE_A, ['10.180.0.3']],
    ['a ready endpoint without node hints: fall back to zone hints', [ep('.3', { nodeHints: [NODE], zoneHints: [ZONE_B] }), ep('.4', { zoneHints: [ZONE_A] })], ZONE_A, ['10.180.0.4']],
    ['no endpoint hinted for this node: fall back to zone hints', [ep('.3', { nodeHints: ['n2'], zoneHints: [ZONE_A] }), ep('.4', { nodeHints: ['n3'], zoneHints: [ZONE_B] })], ZONE_A, ['10.180.0.3']],
    ['no node or zone match: everything', [ep('.3', { nodeHints: ['n2'] }), ep('.4', { nodeHints: ['n3'] })], ZONE_A, ['10.180.0.3', '10.180.0.4']],
    ['node hints work without a zone label', [ep('.3', { nodeHints: [NODE] }), ep('.4', { nodeHints: ['n2'] })], '', ['10.180.0.3']],
  ]
  for (const [name, eps, zone, want] of rows) {
    t.test(name, async t => {
      t.same(ips(categorizeEndpoints(eps, clusterIP, topo(zone)).clusterEndpoints), want)
    })
  }
})

t.test('topologyModeFromHints', async t => {
  t.equal(topologyModeFromHints([], topo(ZONE_A)), '', 'nothing ready')
  t.equal(topologyModeFromHints([ep('.1', { zoneHints: [ZONE_A] })], topo(ZONE_A)), 'PreferSameZone')
  t.equal(topologyModeFromHints([ep('.1', { nodeHints: [NODE], zoneHints: [ZONE_A] })], topo(ZONE_A)), 'PreferSameNode')
  t.equal(topologyModeFromHints([ep('.1', { zoneHints: [ZONE_A] })], topo('')), '', 'no zone label')
  t.equal(topologyModeFromHints([ep('.1', { ...SERVING_TERMINATING, zoneHints: [ZONE_A] })], topo(ZONE_A)), '', 'only terminating')
})

t.test('the local set is never topology-filtered', async t => {
  const eps = [ep('.1', { local: true, zoneHints: [ZONE_B] }), ep('.2', { zoneHints: [ZONE_A] })]
  check(t, eps, lbLocal, { cluster: ['10.180.0.2'], local: ['10.180.0.1'], all: ['10.180.0.1', '10.180.0.2'], any: true }, topo(ZONE_A))
  check(t, eps, clusterIPLocal, { cluster: null, local: ['10.180.0.1'], all: ['10.180.0.1'], any: true }, topo(ZONE_A))
})

t.test('hasAnyEndpoints', async t => {
  const rows: Array<[string, EndpointInfo[], boolean]> = [
    ['empty', [], false],
    ['a ready endpoint', [ep('.1')], true],
    ['a serving+terminating endpoint', [ep('.1', SERVING_TERMINATING)], true],
    ['only not serving', [ep('.1', NOT_SERVING)], false],
    ['not ready, serving, not terminating', [ep('.1', { ready: false, serving: true })], false],
  ]
  for (const [name, eps, want] of rows) {
    for (const svc of [clusterIP, clusterIPLocal, lbLocal, lbCluster]) {
      t.equal(categorizeEndpoints(eps, svc, node).hasAnyEndpoints, want, `${name} (${svc.internalPolicyLocal ? 'iTP=Local' : 'iTP=Cluster'}, eTPLocal=${String(svc.externalPolicyLocal)})`)
    }
  }
})

t.test('allReachableEndpoints keeps input order and each endpoint once', async t => {
  const eps = [ep('.9'), ep('.1', { local: true }), ep('.5', { local: true })]
  const got = categorizeEndpoints(eps, lbLocal, node)
  t.same(ips(got.allReachableEndpoints), ['10.180.0.9', '10.180.0.1', '10.180.0.5'])
  t.equal(got.allReachableEndpoints[1], eps[1], 'same objects, not copies')
})

t.test('pure: input is not modified', async t => {
  const eps = Object.freeze([ep('.1', { local: true }), ep('.2', SERVING_TERMINATING)])
  const before = JSON.stringify(eps)
  categorizeEndpoints(eps, lbLocal, topo(ZONE_A))
  t.equal(JSON.stringify(eps), before)
})
