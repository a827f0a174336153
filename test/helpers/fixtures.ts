// Shared fixture builders and the address conventions of PROXY.md §7. Objects come out in the shape
// pkg/api/validate.ts produces (protocol defaulted, IPs canonical, policies and affinity timeout defaulted).
import { SERVICE_NAME_LABEL } from '../../pkg/api/types.js'
import type {
  Endpoint, EndpointPort, EndpointSlice, LoadBalancerIngress, Protocol, Service, ServicePort, ServiceType, TrafficPolicy,
} from '../../pkg/api/types.js'
import type { IPFamily } from '../../pkg/net/ip.js'
import { servicePortsOf } from '../../pkg/proxy/serviceport.js'
import type { EndpointInfo, NodeTopology, ServicePortInfo } from '../../pkg/proxy/types.js'

// ---- Address conventions (PROXY.md §7) ----
export const NODE = 'test-node'
export const OTHER_NODE = 'other-node'
export const NODE_IP = '192.168.0.2'
export const NODE_IP_2 = '192.168.1.2'
export const LOCALHOST = '127.0.0.1'
export const POD_CIDR = '10.0.0.0/8'
export const SERVICE_CIDR = '172.30.0.0/16'
export const CLIENT_POD = '10.0.0.2'
export const CLIENT_EXTERNAL = '203.0.113.2'
export const CLIENT_BLOCKED = '203.0.113.130'
export const ZONE_A = 'zone-a'
export const ZONE_B = 'zone-b'
export const ZONE_C = 'zone-c'

/** This node's topology; zone '' means the node has no zone label. */
export function topo (zone = '', nodeName = NODE): NodeTopology {
  return { nodeName, zone }
}

// ---- Services ----
export interface SvcOptions {
  ns?: string
  name?: string
  type?: ServiceType
  /** Default '172.30.0.41'; '' or 'None' for headless. */
  clusterIP?: string
  clusterIPs?: string[]
  /** Default one TCP port named p80 on 80. */
  ports?: Array<Partial<ServicePort> & { port: number }>
  externalIPs?: string[]
  /** LB ingress: plain IPs (ipMode VIP) or full entries. */
  lbIngress?: Array<string | LoadBalancerIngress>
  eTP?: TrafficPolicy
  iTP?: TrafficPolicy
  /** ClientIP affinity with this timeout (true: the 10800 s default). */
  affinity?: number | true
  healthCheckNodePort?: number
  sourceRanges?: string[]
  labels?: Record<string, string>
  externalName?: string
}

export function svc (o: SvcOptions = {}): Service {
  const type = o.type ?? 'ClusterIP'
  const spec: Service['spec'] = {
    type,
    ports: (o.ports ?? [{ name: 'p80', port: 80 }]).map(p => ({ ...p, protocol: p.protocol ?? 'TCP' })),
    sessionAffinity: 'None',
  }
  const clusterIP = o.clusterIP ?? (type === 'ExternalName' ? undefined : '172.30.0.41')
  if (clusterIP !== undefined) spec.clusterIP = clusterIP
  if (o.clusterIPs !== undefined) spec.clusterIPs = o.clusterIPs
  else if (clusterIP !== undefined && clusterIP !== '') spec.clusterIPs = [clusterIP]
  if (o.externalIPs !== undefined) spec.externalIPs = o.externalIPs
  if (o.affinity !== undefined) {
    spec.sessionAffinity = 'ClientIP'
    spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: o.affinity === true ? 10800 : o.affinity } }
  }
  if (o.eTP !== undefined) spec.externalTrafficPolicy = o.eTP
  else if (type === 'NodePort' || type === 'LoadBalancer') spec.externalTrafficPolicy = 'Cluster'
  if (type !== 'ExternalName') spec.internalTrafficPolicy = o.iTP ?? 'Cluster'
  if (o.healthCheckNodePort !== undefined) spec.healthCheckNodePort = o.healthCheckNodePort
  if (o.sourceRanges !== undefined) spec.loadBalancerSourceRanges = o.sourceRanges
  if (o.externalName !== undefined) spec.externalName = o.externalName
  const s: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: o.ns ?? 'ns1', name: o.name ?? 'svc1' },
    spec,
  }
  if (o.labels !== undefined) s.metadata.labels = o.labels
  if (o.lbIngress !== undefined) {
    s.status = { loadBalancer: { ingress: o.lbIngress.map(i => typeof i === 'string' ? { ip: i } : i) } }
  }
  return s
}

/** The first ServicePortInfo of svc(o) for `family`; throws if the Service has none. */
export function portInfo (o: SvcOptions = {}, family: IPFamily = 'IPv4'): ServicePortInfo {
  const p = servicePortsOf(svc(o), family)[0]
  if (p === undefined) throw new Error('fixture Service has no port for this family')
  return p
}

// ---- EndpointSlices ----
export interface SliceEndpointOptions {
  ready?: boolean
  serving?: boolean
  terminating?: boolean
  /** true: this node; false: OTHER_NODE; a string: that node; undefined: no nodeName. */
  node?: boolean | string
  zone?: string
  forZones?: string[]
  forNodes?: string[]
  /** Extra addresses after the first. */
  more?: string[]
  /** Omit conditions entirely. */
  noConditions?: boolean
}

/** One EndpointSlice endpoint. Conditions default to ready (all three stated explicitly). */
export function sliceEp (ip: string, o: SliceEndpointOptions = {}): Endpoint {
  const e: Endpoint = { addresses: [ip, ...(o.more ?? [])] }
  if (o.noConditions !== true) {
    e.conditions = {}
    if (o.ready !== undefined) e.conditions.ready = o.ready
    if (o.serving !== undefined) e.conditions.serving = o.serving
    if (o.terminating !== undefined) e.conditions.terminating = o.terminating
  }
  const nodeName = o.node === true ? NODE : o.node === false ? OTHER_NODE : o.node
  if (nodeName !== undefined) e.nodeName = nodeName
  if (o.zone !== undefined) e.zone = o.zone
  if (o.forZones !== undefined || o.forNodes !== undefined) {
    e.hints = { forZones: (o.forZones ?? []).map(name => ({ name })), forNodes: (o.forNodes ?? []).map(name => ({ name })) }
  }
  return e
}

export interface SliceOptions {
  ns?: string
  /** Default `${service}-abcde`. */
  name?: string
  /** Value of kubernetes.io/service-name; null for no label. Default 'svc1'. */
  service?: string | null
  addressType?: EndpointSlice['addressType']
  /** Default one TCP port named p80 on 80. */
  ports?: Array<{ name?: string, port?: number, protocol?: Protocol }>
  endpoints?: Endpoint[]
}

export function slice (o: SliceOptions = {}): EndpointSlice {
  const service = o.service === undefined ? 'svc1' : o.service
  const labels: Record<string, string> = {}
  if (service !== null) labels[SERVICE_NAME_LABEL] = service
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: o.ns ?? 'ns1', name: o.name ?? `${service ?? 'orphan'}-abcde`, labels },
    addressType: o.addressType ?? 'IPv4',
    endpoints: o.endpoints ?? [],
    ports: (o.ports ?? [{ name: 'p80', port: 80 }]).map(p => {
      const out: EndpointPort = { protocol: p.protocol ?? 'TCP' }
      if (p.name !== undefined && p.name !== '') out.name = p.name
      if (p.port !== undefined) out.port = p.port
      return out
    }),
  }
}

// ---- EndpointInfo (the proxy model) ----
export interface EpOptions {
  port?: number
  ready?: boolean
  /** Default: ready. */
  serving?: boolean
  terminating?: boolean
  /** true: this node (default false: OTHER_NODE). */
  local?: boolean
  zone?: string
  zoneHints?: string[]
  nodeHints?: string[]
}

/** An endpoint in the model; short forms: ep('.1') is 10.180.0.1. */
export function ep (ip: string, o: EpOptions = {}): EndpointInfo {
  const ready = o.ready ?? true
  const local = o.local ?? false
  const e: { -readonly [K in keyof EndpointInfo]: EndpointInfo[K] } = {
    ip: ip.startsWith('.') ? `10.180.0${ip}` : ip,
    port: o.port ?? 80,
    ready,
    serving: o.serving ?? ready,
    terminating: o.terminating ?? false,
    isLocal: local,
    nodeName: local ? NODE : OTHER_NODE,
  }
  if (o.zone !== undefined) e.zone = o.zone
  if (o.zoneHints !== undefined) e.zoneHints = o.zoneHints
  if (o.nodeHints !== undefined) e.nodeHints = o.nodeHints
  return e
}

/** Condition shorthands for ep(): serving but terminating, and terminating not serving. */
export const SERVING_TERMINATING: EpOptions = { ready: false, serving: true, terminating: true }
export const NOT_SERVING: EpOptions = { ready: false, serving: false, terminating: true }

/** IPs of a set (null stays null), for compact set-membership assertions. */
export function ips (eps: readonly EndpointInfo[] | null): string[] | null {
  return eps === null ? null : eps.map(e => e.ip)
}
