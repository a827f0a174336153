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

/**
 * A lab (pkg/lab) with pods web-1..3 (10.244.0.11-13) answering HTTP and a client pod (10.244.0.50), and
 * a temp directory for manifests; the lab is closed again if building it fails.
 */
export async function webLab (Lab, dirPrefix) {
  const { mkdtemp } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const lab = await Lab.create()
  try {
    for (let i = 1; i <= 3; i++) await lab.addPod(`web-${i}`, `10.244.0.${10 + i}`)
    const client = await lab.addPod('client', '10.244.0.50', [])
    return { lab, client, dir: await mkdtemp(join(tmpdir(), dirPrefix)) }
  } catch (e) {
    await lab.close().catch(() => {})
    throw e
  }
}

/** Runs a script's checks: a throw is one failed check; `cleanup` always runs, then DONE is printed. */
export async function runChecks (body, cleanup) {
  try {
    await body()
  } catch (e) {
    check('script ran to the end', false, e instanceof Error ? e.stack : String(e))
  } finally {
    await cleanup()
    console.log('DONE')
  }
}
