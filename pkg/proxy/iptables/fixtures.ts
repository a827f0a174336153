// Hand-built DesiredState for tests and the bench: desired() takes the cluster and local sets as given,
// categorized() derives them for TEST_NODE as the proxier does. Address conventions follow PROXY.md §7: ClusterIPs 172.30.0.0/16,
// pods 10.180.0.0/16 (pod CIDR 10.0.0.0/8), node 192.168.0.2, external clients 203.0.113.0/24.
import { categorizeEndpoints } from '../topology.js'
import type { DesiredServicePort, DesiredState, EndpointInfo, ServicePortInfo } from '../types.js'
import { servicePortKey } from '../types.js'
import type { IPFamily } from '../../net/ip.js'

export function svcInfo (o: Partial<ServicePortInfo> & { namespace?: string, name?: string }): ServicePortInfo {
  const namespace = o.namespace ?? 'ns1'
  const name = o.name ?? 'svc1'
  const portName = o.portName ?? 'p80'
  return {
    spn: o.spn ?? `${namespace}/${name}${portName === '' ? '' : ':' + portName}`,
    namespace,
    name,
    portName,
    protocol: o.protocol ?? 'TCP',
    family: o.family ?? 'IPv4',
    clusterIP: o.clusterIP ?? '172.30.0.41',
    port: o.port ?? 80,
    nodePort: o.nodePort ?? 0,
    externalIPs: o.externalIPs ?? [],
    loadBalancerIPs: o.loadBalancerIPs ?? [],
    loadBalancerSourceRanges: o.loadBalancerSourceRanges ?? [],
    stickyMaxAgeSeconds: o.stickyMaxAgeSeconds ?? 0,
    externalPolicyLocal: o.externalPolicyLocal ?? false,
    internalPolicyLocal: o.internalPolicyLocal ?? false,
    healthCheckNodePort: o.healthCheckNodePort ?? 0,
  }
}

export function ep (ip: string, port = 80, o: Partial<EndpointInfo> = {}): EndpointInfo {
  return { ip, port, ready: true, serving: true, terminating: false, isLocal: false, ...o }
}

export interface Sets {
  /** Cluster set; null when no cluster policy applies. Defaults to every endpoint given in `all`. */
  cluster?: readonly EndpointInfo[] | null
  local?: readonly EndpointInfo[] | null
  /** Defaults to "the union of both sets is non-empty". */
  hasAny?: boolean
}

export function desired (info: ServicePortInfo, sets: Sets = {}): DesiredServicePort {
  const cluster = sets.cluster === undefined ? [] : sets.cluster
  const local = sets.local === undefined ? null : sets.local
  const all: EndpointInfo[] = []
  const seen = new Set<string>()
  for (const e of [...(cluster ?? []), ...(local ?? [])]) {
    const k = `${e.ip}:${e.port}`
    if (!seen.has(k)) { seen.add(k); all.push(e) }
  }
  return {
    info,
    clusterEndpoints: cluster,
    localEndpoints: local,
    allReachableEndpoints: all,
    hasAnyEndpoints: sets.hasAny ?? all.length > 0,
  }
}

export function stateOf (services: readonly DesiredServicePort[], family: IPFamily = 'IPv4'): DesiredState {
  const m = new Map<string, DesiredServicePort>()
  for (const s of services) m.set(servicePortKey(s.info), s)
  return { family, services: m }
}

/**
 * `n` ClusterIP services with `perService` endpoints each, every twentieth also with a NodePort; for the
 * bench and scale tests. Service i gets 172.16.0.0/12-range VIPs and 10.x pod IPs, all distinct.
 */
export function syntheticState (n: number, perService: number): DesiredState {
  const list: DesiredServicePort[] = []
  let podSeq = 0
  for (let i = 0; i < n; i++) {
    const vip = `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
    const info = svcInfo({ namespace: `ns${i % 100}`, name: `svc${i}`, portName: 'http', clusterIP: vip, nodePort: i % 20 === 0 ? 30000 + (i / 20) % 2768 : 0 })
    const eps: EndpointInfo[] = []
    for (let j = 0; j < perService; j++, podSeq++) eps.push(ep(`10.${(podSeq >> 16) & 255}.${(podSeq >> 8) & 255}.${podSeq & 255}`, 8080))
    list.push(desired(info, { cluster: eps }))
  }
  return stateOf(list)
}

/** `state` with service `index`'s first endpoint moved to a new pod IP; returns the new state and the changed key. */
export function withEndpointChanged (state: DesiredState, index: number, newIP: string): { state: DesiredState, key: string } {
  const entries = [...state.services.entries()]
  const entry = entries[index]
  if (entry === undefined) throw new Error(`no service at index ${index}`)
  const [key, sp] = entry
  const cluster = [...(sp.clusterEndpoints ?? [])]
  const first = cluster[0]
  if (first !== undefined) cluster[0] = { ...first, ip: newIP }
  const m = new Map(state.services)
  m.set(key, desired(sp.info, { cluster, local: sp.localEndpoints }))
  return { state: { family: state.family, services: m }, key }
}

/** PROXY.md §7's node: endpoints whose nodeName is test-node are local. */
export const TEST_NODE = { nodeName: 'test-node', zone: '' } as const

/** An endpoint on TEST_NODE. */
export function localEp (ip: string, port = 80, o: Partial<EndpointInfo> = {}): EndpointInfo {
  return ep(ip, port, { isLocal: true, nodeName: TEST_NODE.nodeName, ...o })
}

/** An endpoint on another node. */
export function remoteEp (ip: string, port = 80, o: Partial<EndpointInfo> = {}): EndpointInfo {
  return ep(ip, port, { nodeName: 'other', ...o })
}

/** A service port with its endpoints categorized for TEST_NODE, as the proxier does (no hand-set sets). */
export function categorized (info: ServicePortInfo, eps: readonly EndpointInfo[]): DesiredServicePort {
  return { info, ...categorizeEndpoints(eps, info, TEST_NODE) }
}
