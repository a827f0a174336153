// UDP through ferryd (PROXY.md §7 scenario 18): a flow pinned to one endpoint moves to the new one as
// soon as ferryd syncs, because ferryd deletes the stale conntrack entries after the rules change; once per
// proxy mode (iptables, then nftables), each in its own lab.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFerryd } from '../../pkg/lab/ferryd.js'
import { LAB } from '../../pkg/lab/lab.js'
import { sliceYAML, webLab, waitUntil, PROXY_MODES } from '../helpers/web-lab.js'

const dns = (ip: string): string => `apiVersion: v1
kind: Service
metadata: {name: dns, namespace: demo}
spec:
  clusterIP: 10.96.0.53
  ports: [{name: dns, port: 53, protocol: UDP, targetPort: 8080}]
---
${sliceYAML({ name: 'dns-1', service: 'dns', port: { name: 'dns', port: 8080, protocol: 'UDP' }, endpoints: [{ ip }] })}`

for (const mode of PROXY_MODES) t.test(`${mode}: a UDP flow follows its Service to the new endpoint`, async t => {
  const { lab, dir, client } = await webLab(t)
  await writeFile(join(dir, 'dns.yaml'), dns('10.244.0.11'))
  const ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'lab-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '100ms', '--proxy-mode', mode])
  t.teardown(async () => { await ferryd.stop() })
  await ferryd.waitReady()

  t.equal(await lab.udp('10.96.0.53', 53, 40000, client.ns), 'web-1 10.244.0.50', 'the flow reaches web-1')
  t.equal(await lab.udp('10.96.0.53', 53, 40000, client.ns), 'web-1 10.244.0.50', 'and stays there (one conntrack entry)')
  await writeFile(join(dir, 'dns.yaml'), dns('10.244.0.12'))
  await t.resolves(waitUntil('the same 5-tuple reaches web-2', async () => (await lab.udp('10.96.0.53', 53, 40000, client.ns)).startsWith('web-2')), 'the endpoint change moved the existing flow: its stale entry was deleted')
  const metrics = (await ferryd.http('/metrics')).body
  t.match(metrics, /kubeproxy_conntrack_reconciler_deleted_entries_total\{ip_family="IPv4"\} [1-9]/)
})
