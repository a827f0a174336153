// externalTrafficPolicy: Local end to end (PROXY.md §7 scenarios 5, 7, 12): client IP preserved,
// only local endpoints for external traffic, pods short-circuit to all endpoints, and the
// healthCheckNodePort tells a load balancer whether this node has a local ready endpoint.
import t from 'tap'
import { writeFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { startFerryd } from '../../pkg/lab/ferryd.js'
import { LAB } from '../../pkg/lab/lab.js'
import { sliceYAML, webLab, waitUntil } from '../helpers/web-lab.js'

const LB_IP = '5.6.7.8'
const manifests = (web1Ready: boolean): string => `apiVersion: v1
kind: Service
metadata: {name: lb, namespace: demo}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.30
  externalTrafficPolicy: Local
  healthCheckNodePort: 30002
  ports: [{name: http, port: 80, nodePort: 30081}]
status:
  loadBalancer: {ingress: [{ip: ${LB_IP}}]}
---
${sliceYAML({ name: 'lb-1', service: 'lb', port: { name: 'http', port: 8080 }, endpoints: [{ ip: '10.244.0.11', ready: web1Ready }, { ip: '10.244.0.12', node: 'other-node' }] })}`

t.test('eTP=Local: local endpoints, client IP preserved, health-check node port', async t => {
  const { lab, dir, client } = await webLab(t)
  const file = join(dir, 'lb.yaml')
  await writeFile(file, manifests(true))
  const ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'lab-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '100ms'])
  t.teardown(async () => { await ferryd.stop() })
  await ferryd.waitReady()
  const hc = `http://${LAB.nodeExternalIP}:30002/anything`

  const healthy = await lab.sh(['curl', '-sS', '-i', hc], lab.clientNs)
  t.match(healthy, /^HTTP\/1\.1 200/)
  t.match(healthy, /X-Load-Balancing-Endpoint-Weight: 1/i)
  t.match(healthy, /\{"service":\{"namespace":"demo","name":"lb"\},"localEndpoints":1,"serviceProxyHealthy":true\}/)

  for (const url of [`http://${LB_IP}/`, `http://${LAB.nodeExternalIP}:30081/`]) {
    const s = await lab.spread(url, 20)
    t.same([...s.keys()], ['web-1'], `external -> ${url} reaches only the local endpoint`)
    t.match(await lab.get(url), { ok: true, body: `web-1 ${LAB.clientIP}` }, 'client IP preserved')
  }
  const fromPod = await lab.spread(`http://${LB_IP}/`, 30, client.ns)
  t.same([...fromPod.keys()].sort(), ['web-1', 'web-2'], 'a pod -> LB IP short-circuits to every endpoint')

  await writeFile(file, manifests(false))
  await waitUntil('health check fails', async () => { const r = await lab.get(hc); return r.ok && r.body.includes('"localEndpoints":0') })
  const sick = await lab.sh(['curl', '-sS', '-i', hc], lab.clientNs)
  t.match(sick, /^HTTP\/1\.1 503/)
  t.match(sick, /"localEndpoints":0/)
  const dropped = await lab.get(`http://${LAB.nodeExternalIP}:30081/`, lab.clientNs, 1)
  t.match(dropped, { ok: false, error: 'timeout' }, 'no local endpoint but some elsewhere: external traffic is dropped, not refused')
  const metrics = (await ferryd.http('/metrics')).body
  t.match(metrics, /kubeproxy_sync_proxy_rules_no_local_endpoints_total\{ip_family="IPv4",traffic_policy="external"\} 1/)

  await unlink(file)
  await t.resolves(waitUntil('listener closed', async () => { const r = await lab.get(hc, lab.clientNs, 1); return !r.ok && r.error === 'refused' }), 'the health-check port closes with its Service')
})
