// Endpoint selection (PROXY.md §1): which endpoints serve cluster-wide and Local-policy traffic. Pure.
import { externallyAccessible } from './serviceport.js'
import type { CategorizedEndpoints, EndpointInfo, NodeTopology, ServicePortInfo } from './types.js'

export type TopologyMode = 'PreferSameNode' | 'PreferSameZone' | ''

type PolicyInfo = Pick<ServicePortInfo, 'internalPolicyLocal' | 'externalPolicyLocal' | 'nodePort' | 'loadBalancerIPs' | 'externalIPs'>

/** Cluster endpoints serve iTP=Cluster ClusterIP traffic, and any external traffic (eTP=Local short-circuit). */
export function usesClusterEndpoints (svc: PolicyInfo): boolean {
  return !svc.internalPolicyLocal || externallyAccessible(svc)
}

/** Local endpoints serve iTP=Local ClusterIP traffic and eTP=Local external traffic. */
export function usesLocalEndpoints (svc: PolicyInfo): boolean {
  return svc.internalPolicyLocal || (svc.externalPolicyLocal && externallyAccessible(svc))
}

const servingTerminating = (e: EndpointInfo): boolean => e.serving && e.terminating

/**
 * The hint filter the cluster set uses, chosen from the ready endpoints' hints: PreferSameNode when every
 * ready endpoint has node hints and one names this node, else PreferSameZone when every ready endpoint has
 * zone hints and one names this node's zone, else none. Nothing ready, or no zone label, means none.
 */
export function topologyModeFromHints (endpoints: readonly EndpointInfo[], node: NodeTopology): TopologyMode {
  let anyReady = false
  let allNodeHinted = true
  let forThisNode = false
  let allZoneHinted = true
  let forThisZone = false
  for (const e of endpoints) {
    if (!e.ready) continue
    anyReady = true
    if (e.nodeHints === undefined || e.nodeHints.length === 0) allNodeHinted = false
    else if (e.nodeHints.includes(node.nodeName)) forThisNode = true
    if (e.zoneHints === undefined || e.zoneHints.length === 0) allZoneHinted = false
    else if (node.zone !== '' && e.zoneHints.includes(node.zone)) forThisZone = true
  }
  if (!anyReady) return ''
  if (allNodeHinted && forThisNode) return 'PreferSameNode'
  if (allZoneHinted && forThisZone) return 'PreferSameZone'
  return ''
}

function passesTopology (e: EndpointInfo, mode: TopologyMode, node: NodeTopology): boolean {
  switch (mode) {
    case 'PreferSameNode': return e.nodeHints?.includes(node.nodeName) ?? false
    case 'PreferSameZone': return e.zoneHints?.includes(node.zone) ?? false
    case '': return true
  }
}

/**
 * Splits a service port's endpoints into the cluster set and the local set (null when that policy does not
 * apply to the port), their union in input order, and whether anything is usable anywhere.
 */
export function categorizeEndpoints (endpoints: readonly EndpointInfo[], svc: ServicePortInfo, node: NodeTopology): CategorizedEndpoints {
  const hasAnyEndpoints = endpoints.some(e => e.ready || servingTerminating(e))

  let clusterEndpoints: EndpointInfo[] | null = null
  if (usesClusterEndpoints(svc)) {
    const mode = topologyModeFromHints(endpoints, node)
    clusterEndpoints = endpoints.filter(e => e.ready && passesTopology(e, mode, node))
    // A mode is only chosen when it keeps some ready endpoint, so an empty set means nothing is ready
    // anywhere: fall back to endpoints that still serve while terminating (KEP-1669).
    if (clusterEndpoints.length === 0) clusterEndpoints = endpoints.filter(servingTerminating)
  }

  let localEndpoints: EndpointInfo[] | null = null
  if (usesLocalEndpoints(svc)) {
    localEndpoints = endpoints.filter(e => e.isLocal && e.ready)
    if (localEndpoints.length === 0) localEndpoints = endpoints.filter(e => e.isLocal && servingTerminating(e))
  }

  return { clusterEndpoints, localEndpoints, allReachableEndpoints: union(endpoints, clusterEndpoints, localEndpoints), hasAnyEndpoints }
}

/** The endpoints in either set, in input order; with one set non-empty (most ports), that set itself. */
function union (endpoints: readonly EndpointInfo[], a: readonly EndpointInfo[] | null, b: readonly EndpointInfo[] | null): readonly EndpointInfo[] {
  // Both sets are filters of `endpoints`, so each is already in input order; all three are read-only.
  if (b === null || b.length === 0) return a ?? []
  if (a === null || a.length === 0) return b
  const inA = new Set(a)
  const inB = new Set(b)
  return endpoints.filter(e => inA.has(e) || inB.has(e))
}
