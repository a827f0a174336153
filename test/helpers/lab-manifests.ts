// Manifests for the lab's web pods (10.244.0.11-13:8080) and a wait helper for e2e tests.

/** Service demo/web: ClusterIP 10.96.0.10:80, NodePort 30080, over the given endpoint IPs on 8080. */
export function webManifests (ips: string[], opts: { nodeName?: string } = {}): string {
  const eps = ips.map(ip => `  - addresses: [${ip}]\n    conditions: {ready: true}\n    nodeName: ${opts.nodeName ?? 'lab-node'}\n`).join('')
  return `apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: demo
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:${ips.length === 0 ? ' []' : ''}
${eps}`
}

/** Service demo/empty: ClusterIP 10.96.0.20:80 with no endpoints. */
export const EMPTY_SVC = `apiVersion: v1
kind: Service
metadata: {name: empty, namespace: demo}
spec:
  clusterIP: 10.96.0.20
  ports: [{port: 80}]
`

export async function waitUntil (what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 150))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
}
