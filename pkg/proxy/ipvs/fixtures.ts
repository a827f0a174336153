// Desired IPVS tables built the way the backend builds them (categorizeEndpoints -> planPort ->
// desiredVirtualServers), for tests and the bench. Address conventions are iptables/fixtures.ts's:
// ClusterIPs 172.30.0.0/16, pods 10.180.0.0/16, node 192.168.0.2.
import { resolveProxyOptions, type ProxyOptionsInput } from '../options.js'
import { planPort, type PortPlan } from '../plan.js'
import { categorized } from '../iptables/fixtures.js'
import type { EndpointInfo, ServicePortInfo } from '../types.js'
import { desiredVirtualServers, type DesiredVirtualServer } from './desired.js'
import type { IPFamily } from './types.js'

export const NODE_IP = '192.168.0.2'
export const NODE_IP6 = 'fd00:1::2'

/** The plan of one service port whose endpoints are categorized for this node. */
export function portPlan (info: ServicePortInfo, endpoints: readonly EndpointInfo[], opts: Partial<ProxyOptionsInput> = {}): PortPlan {
  const family = info.family
  const o = resolveProxyOptions({ family, clusterCIDR: family === 'IPv4' ? '10.0.0.0/8' : 'fd00:10::/48', nodeIPs: [family === 'IPv4' ? NODE_IP : NODE_IP6], ...opts })
  return planPort(categorized(info, endpoints), o)
}

export interface DesiredFixtureOptions {
  family?: IPFamily
  scheduler?: string
  nodePortIPs?: readonly string[]
}

/** The desired table of some plans (IPv4, rr, NodePorts on NODE_IP unless told). */
export function desiredOf (plans: Iterable<PortPlan>, o: DesiredFixtureOptions = {}): Map<string, DesiredVirtualServer> {
  const family = o.family ?? 'IPv4'
  return desiredVirtualServers(plans, {
    family,
    scheduler: o.scheduler ?? 'rr',
    nodePortIPs: o.nodePortIPs ?? [family === 'IPv4' ? NODE_IP : NODE_IP6],
  })
}
