// Shared by the scripts the VM suite runs (test/e2e/ipvs-vm.test.ts): the CHECK line format the host test
// reads, waiting, and the Service and EndpointSlice manifests they write.
export const check = (name, ok, detail = '') => { console.log(`CHECK ${ok ? 'ok' : 'fail'} ${name}${detail !== '' ? ' :: ' + String(detail).replace(/\n/g, ' | ') : ''}`) }
export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `fn` until it gives a truthy value (true) or `ms` pass (false); a rejection counts as false. */
export async function until (fn, ms = 20_000, every = 200) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn().catch(() => false)
    if (v) return true
    if (Date.now() > end) return false
    await sleep(every)
  }
}

/** A Service in namespace demo, port 80 to 8080; o: { nodePort, local (eTP=Local), sticky (ClientIP) }. */
export const svc = (name, ip, o = {}) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: demo}
spec:
  type: ${o.nodePort !== undefined ? 'NodePort' : 'ClusterIP'}
  clusterIP: ${ip}
${o.local === true ? '  externalTrafficPolicy: Local\n' : ''}${o.sticky === true ? '  sessionAffinity: ClientIP\n' : ''}  ports:
  - {name: http, port: 80, targetPort: 8080${o.nodePort !== undefined ? `, nodePort: ${o.nodePort}` : ''}}
`

/** An EndpointSlice of `service` with ready endpoints `eps` ({ ip, node = lab-node }). */
export const slice = (name, service, eps) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}, namespace: demo, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:${eps.length === 0 ? ' []' : ''}
${eps.map(e => `  - {addresses: ["${e.ip}"], nodeName: ${e.node ?? 'lab-node'}, conditions: {ready: true}}`).join('\n')}
`
