// Manifests for Services whose endpoints are known only at run time (pod IPs handed out by ferry-cni):
// a ClusterIP Service and its EndpointSlice, as YAML ferryctl applies.
import { stringify } from 'yaml'

export interface EndpointPod { readonly name: string, readonly ip: string, readonly nodeName: string }

export interface ServiceSpec {
  readonly namespace: string
  readonly name: string
  readonly clusterIP: string
  readonly port: number
  readonly targetPort: number
  readonly pods: readonly EndpointPod[]
}

/** A Service (selector app=<name>, one TCP port "http") and one EndpointSlice listing `pods` as ready. */
export function serviceManifest (s: ServiceSpec): string {
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace },
    spec: { clusterIP: s.clusterIP, selector: { app: s.name }, ports: [{ name: 'http', port: s.port, targetPort: s.targetPort }] },
  }
  const slice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${s.name}-1`, namespace: s.namespace, labels: { 'kubernetes.io/service-name': s.name } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: s.targetPort, protocol: 'TCP' }],
    endpoints: s.pods.map(p => ({
      addresses: [p.ip],
      conditions: { ready: true },
      nodeName: p.nodeName,
      targetRef: { kind: 'Pod', namespace: s.namespace, name: p.name },
    })),
  }
  return `${stringify(service)}---\n${stringify(slice)}`
}
