// Kubernetes object shapes ferry reads, with Kubernetes' field names. Only the fields ferry uses.

export type Protocol = 'TCP' | 'UDP' | 'SCTP'
export type Kind = 'Service' | 'EndpointSlice' | 'Node' | 'Pod'
export const KINDS: readonly Kind[] = ['Service', 'EndpointSlice', 'Node', 'Pod']

export interface ObjectMeta {
  name: string
  namespace?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  uid?: string
  resourceVersion?: string
  deletionTimestamp?: string
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName'
export type TrafficPolicy = 'Cluster' | 'Local'

export interface ServicePort {
  name?: string
  protocol: Protocol
  port: number
  targetPort?: number | string
  nodePort?: number
}

export interface SessionAffinityConfig { clientIP?: { timeoutSeconds?: number } }

export interface ServiceSpec {
  type: ServiceType
  clusterIP?: string
  clusterIPs?: string[]
  ports: ServicePort[]
  selector?: Record<string, string>
  externalIPs?: string[]
  externalName?: string
  sessionAffinity: 'None' | 'ClientIP'
  sessionAffinityConfig?: SessionAffinityConfig
  externalTrafficPolicy?: TrafficPolicy
  internalTrafficPolicy?: TrafficPolicy
  healthCheckNodePort?: number
  loadBalancerSourceRanges?: string[]
  ipFamilies?: Array<'IPv4' | 'IPv6'>
  trafficDistribution?: string
  /** DNS publishes every endpoint of the Service, ready or not (headless records, SRV, PTR). */
  publishNotReadyAddresses?: boolean
}

export interface LoadBalancerIngress { ip?: string, hostname?: string, ipMode?: 'VIP' | 'Proxy' }

export interface Service {
  apiVersion: 'v1'
  kind: 'Service'
  metadata: ObjectMeta & { namespace: string }
  spec: ServiceSpec
  status?: { loadBalancer?: { ingress?: LoadBalancerIngress[] } }
}

export interface EndpointConditions { ready?: boolean, serving?: boolean, terminating?: boolean }
export interface EndpointHints { forZones?: Array<{ name: string }>, forNodes?: Array<{ name: string }> }

export interface Endpoint {
  addresses: string[]
  conditions?: EndpointConditions
  hostname?: string
  nodeName?: string
  zone?: string
  hints?: EndpointHints
  targetRef?: { kind?: string, namespace?: string, name?: string, uid?: string }
}

export interface EndpointPort { name?: string, protocol: Protocol, port?: number, appProtocol?: string }

export interface EndpointSlice {
  apiVersion: 'discovery.k8s.io/v1'
  kind: 'EndpointSlice'
  metadata: ObjectMeta & { namespace: string }
  addressType: 'IPv4' | 'IPv6' | 'FQDN'
  endpoints: Endpoint[]
  ports: EndpointPort[]
}

export interface NodeAddress { type: string, address: string }

export interface Node {
  apiVersion: 'v1'
  kind: 'Node'
  metadata: ObjectMeta
  spec: { podCIDR?: string, podCIDRs?: string[], taints?: Array<{ key: string, value?: string, effect: string }>, unschedulable?: boolean }
  status?: { addresses?: NodeAddress[] }
}

export interface ContainerPort { name?: string, containerPort: number, protocol?: Protocol }

export interface Pod {
  apiVersion: 'v1'
  kind: 'Pod'
  metadata: ObjectMeta & { namespace: string }
  spec: { nodeName?: string, hostname?: string, subdomain?: string, hostNetwork?: boolean, containers?: Array<{ name: string, ports?: ContainerPort[] }> }
  status?: { podIP?: string, podIPs?: Array<{ ip: string }>, phase?: string }
}

export type KObject = Service | EndpointSlice | Node | Pod

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name'
export const HEADLESS_LABEL = 'service.kubernetes.io/headless'
export const ZONE_LABEL = 'topology.kubernetes.io/zone'

/** "Kind/namespace/name" (cluster-scoped kinds: "Kind/name"); unique across a source. */
export function objectKey (o: { kind: Kind, metadata: ObjectMeta }): string {
  return o.metadata.namespace !== undefined && o.metadata.namespace !== ''
    ? `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`
    : `${o.kind}/${o.metadata.name}`
}

export function namespacedName (o: { metadata: ObjectMeta }): string {
  return o.metadata.namespace !== undefined ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name
}
