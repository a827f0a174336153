// The backend-neutral proxy model. Trackers build ServicePortInfo/EndpointInfo from the cache,
// categorizeEndpoints (pure) picks the sets, and every backend only renders DesiredServicePort.
import type { Protocol } from '../api/types.js'
import type { IPFamily } from '../net/ip.js'

/** One Service port for one IP family; kube-proxy's ServicePort. */
export interface ServicePortInfo {
  /** "namespace/name:portName" (no ":portName" when the port is unnamed). */
  readonly spn: string
  readonly namespace: string
  readonly name: string
  readonly portName: string
  readonly protocol: Protocol
  readonly family: IPFamily
  readonly clusterIP: string
  readonly port: number
  /** 0 when the port has no NodePort. */
  readonly nodePort: number
  readonly externalIPs: readonly string[]
  /** status.loadBalancer.ingress IPs of this family, ipMode Proxy excluded. */
  readonly loadBalancerIPs: readonly string[]
  readonly loadBalancerSourceRanges: readonly string[]
  /** ClientIP affinity timeout in seconds; 0 when sessionAffinity is None. */
  readonly stickyMaxAgeSeconds: number
  readonly externalPolicyLocal: boolean
  readonly internalPolicyLocal: boolean
  /** 0 unless eTP=Local on a LoadBalancer. */
  readonly healthCheckNodePort: number
}

/** One endpoint of one service port; kube-proxy's Endpoint. */
export interface EndpointInfo {
  readonly ip: string
  readonly port: number
  readonly ready: boolean
  readonly serving: boolean
  readonly terminating: boolean
  readonly isLocal: boolean
  readonly nodeName?: string
  readonly zone?: string
  /** undefined when the slice gives no zone hints. */
  readonly zoneHints?: readonly string[]
  readonly nodeHints?: readonly string[]
}

export interface CategorizedEndpoints {
  /** Endpoints for cluster-wide traffic, or null when no cluster traffic policy applies. */
  readonly clusterEndpoints: readonly EndpointInfo[] | null
  /** Endpoints for Local-policy traffic, or null when no Local policy applies. */
  readonly localEndpoints: readonly EndpointInfo[] | null
  /** Union of both sets: each gets per-endpoint rules. */
  readonly allReachableEndpoints: readonly EndpointInfo[]
  /** Some endpoint anywhere is ready, or serving and terminating. */
  readonly hasAnyEndpoints: boolean
}

export interface NodeTopology {
  readonly nodeName: string
  /** topology.kubernetes.io/zone of this node, '' when unset. */
  readonly zone: string
}

/** What the kernel should do for one service port. Backends render only this. */
export interface DesiredServicePort extends CategorizedEndpoints {
  readonly info: ServicePortInfo
}

export interface DesiredState {
  readonly family: IPFamily
  /** Keyed by servicePortKey(info). */
  readonly services: ReadonlyMap<string, DesiredServicePort>
}

export interface SyncResult {
  /** 'full' rewrote everything the backend owns; 'partial' only what changed services own. */
  readonly kind: 'full' | 'partial'
  /** What the sync wrote, in the backend's own terms (rules per table, virtual servers...), for /debug/state. */
  readonly summary: Readonly<Record<string, number>>
}

export interface Backend {
  readonly name: string
  /**
   * Make the kernel match `state`. `changed` lists servicePortKeys whose desired state changed since
   * the last successful sync, or null to demand a full sync. A rejected promise means nothing was
   * half-applied that a later full sync cannot repair.
   */
  sync: (state: DesiredState, changed: ReadonlySet<string> | null) => Promise<SyncResult>
  /** Remove every rule this backend owns. */
  cleanup: () => Promise<void>
  /**
   * Cheap check that the rules of the last sync are still in the kernel (a firewall reload or a flush
   * removes them). False makes the backend's next sync full.
   */
  rulesIntact?: () => Promise<boolean>
  /** Optional: start reading what the first sync needs from the kernel, while the source loads. */
  prepare?: () => void
  /** Optional: stop background work (timers); the kernel state stays. */
  stop?: () => void
}

export function servicePortKey (info: Pick<ServicePortInfo, 'spn' | 'protocol'>): string {
  return `${info.spn}/${info.protocol.toLowerCase()}`
}
