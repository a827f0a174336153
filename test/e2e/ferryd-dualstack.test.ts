// Dual-stack: one ferryd, one proxier per family, a Service with an IPv4 and an IPv6 ClusterIP; once per
// proxy mode (iptables, then nftables), each in its own lab.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FERRYD_JS, startFerryd } from '../../pkg/lab/ferryd.js'
import { LAB } from '../../pkg/lab/lab.js'
import { sliceYAML, webLab, webManifests, waitUntil, PROXY_MODES, proxyRules, iptablesState, nftState } from '../helpers/web-lab.js'

const WEB6_SLICE = (ips: string[]): string => `---
${sliceYAML({ name: 'web-v6', service: 'web', addressType: 'IPv6', port: { name: 'http', port: 8080 }, endpoints: ips.map(ip => ({ ip })) })}`

const EMPTY6 = `apiVersion: v1
kind: Service
metadata: {name: empty6, namespace: demo}
spec:
  ipFamilies: [IPv6]
  clusterIP: fd00:96::20
  ports: [{port: 80}]
`

for (const mode of PROXY_MODES) t.test(`${mode}: IPv4 and IPv6 ClusterIPs and NodePorts through one ferryd`, async t => {
  const { lab, dir, client } = await webLab(t)
  const ip6s = lab.pods.filter(p => p.name.startsWith('web-')).map(p => p.ip6)
  const dual = webManifests(['10.244.0.11', '10.244.0.12', '10.244.0.13'])
    .replace('  clusterIP: 10.96.0.10\n', '  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10, "fd00:96::10"]\n  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n')
  await writeFile(join(dir, 'web.yaml'), dual + WEB6_SLICE(ip6s))
  await writeFile(join(dir, 'empty6.yaml'), EMPTY6)
  const ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'lab-node', '--ip-families', 'IPv4,IPv6',
    '--cluster-cidr', `${LAB.podCIDR},${LAB.podCIDR6}`, '--min-sync-period', '100ms',
    '--dns-listen', `[${LAB.podGateway6}]:53`, '--dns-upstream', '127.0.0.1:53', '--proxy-mode', mode,
    // IPv4 CIDRs only: as with kube-proxy, IPv6 NodePorts stay open on every IPv6 address.
    '--nodeport-addresses', `${LAB.nodeExternalIP}/32`])
  t.teardown(async () => { await ferryd.stop() })
  await ferryd.waitReady()

  const v6 = await lab.spread('http://[fd00:96::10]/', 45, client.ns)
  t.same([...v6.keys()].sort(), ['web-1', 'web-2', 'web-3'], 'pod -> IPv6 ClusterIP reaches every endpoint')
  t.match(await lab.get('http://[fd00:96::10]/', client.ns), { ok: true, body: new RegExp(` ${client.ip6}$`) }, 'not masqueraded')
  const np6 = await lab.spread(`http://[${LAB.nodeExternalIP6}]:30080/`, 45)
  t.same([...np6.keys()].sort(), ['web-1', 'web-2', 'web-3'], 'external client -> IPv6 NodePort reaches every endpoint (--nodeport-addresses names no IPv6 CIDR)')
  t.match(await lab.get(`http://[${LAB.nodeExternalIP6}]:30080/`), { ok: true, body: new RegExp(` ${LAB.podGateway6}$`) }, 'masqueraded to the node')
  const v4 = await lab.spread('http://10.96.0.10/', 45, client.ns)
  t.same([...v4.keys()].sort(), ['web-1', 'web-2', 'web-3'], 'IPv4 keeps working beside it')

  const r = await lab.get('http://[fd00:96::20]/', client.ns, 5)
  t.match(r, { ok: false, error: 'refused' }, 'an IPv6 Service without endpoints is refused')
  // In the lab the first ICMPv6 error arrives while connect() still holds the socket lock (veth delivers
  // synchronously in the sender's softirq), so the kernel drops it (TcpExtLockDroppedIcmps) and the
  // client acts on the answer to its 1 s SYN retransmission. A timeout would take 5 s.
  if (!r.ok) t.ok(r.ms < 3500, `refused after ${r.ms} ms, not a 5 s timeout`)

  await writeFile(join(dir, 'web.yaml'), dual + WEB6_SLICE(ip6s.slice(0, 1)))
  await waitUntil('only web-1 over IPv6', async () => { const s = await lab.spread('http://[fd00:96::10]/', 8, client.ns); return s.size === 1 && s.has('web-1') })
  t.same([...(await lab.spread('http://10.96.0.10/', 45, client.ns)).keys()].sort(), ['web-1', 'web-2', 'web-3'], 'an IPv6 slice change leaves IPv4 alone')

  // DNS over IPv6 from the pod: the dual-stack Service answers A and AAAA by its clusterIPs, the
  // IPv6-only one AAAA only, and the AAAA connects.
  const dig = async (...args: string[]): Promise<string> => (await lab.sh(['dig', `@${LAB.podGateway6}`, '+short', '+time=2', '+tries=1', ...args], client.ns)).trim()
  t.equal(await dig('web.demo.svc.cluster.local', 'AAAA'), 'fd00:96::10', 'AAAA over IPv6 transport')
  t.equal(await dig('+tcp', 'web.demo.svc.cluster.local', 'A'), '10.96.0.10', 'A over IPv6 TCP')
  t.equal(await dig('empty6.demo.svc.cluster.local', 'AAAA'), 'fd00:96::20')
  t.equal(await dig('empty6.demo.svc.cluster.local', 'A'), '', 'NODATA for the family it lacks')
  t.equal(await dig('-x', 'fd00:96::10'), 'web.demo.svc.cluster.local.', 'PTR under ip6.arpa')
  const addr = await dig('web.demo.svc.cluster.local', 'AAAA')
  t.match(await lab.get(`http://[${addr}]/`, client.ns), { ok: true, body: /^web-1 / }, 'the AAAA answer connects')

  const metrics = (await ferryd.http('/metrics')).body
  t.match(metrics, /coredns_dns_requests_total\{[^}]*proto="udp",family="2",type="AAAA"\} [1-9]/, 'counted as family 2')
  t.match(metrics, /kubeproxy_sync_proxy_rules_last_timestamp_seconds\{ip_family="IPv6"\} \d/)
  t.match(metrics, /kubeproxy_sync_proxy_rules_last_timestamp_seconds\{ip_family="IPv4"\} \d/)
  const hz = JSON.parse((await ferryd.http('/healthz')).body) as { status: Record<string, { healthy: boolean }> }
  t.same(Object.keys(hz.status).sort(), ['IPv4', 'IPv6'], '/healthz reports both families')

  // Each family's rules are in the kernel in the mode's own form, and --cleanup removes both.
  const rules = await proxyRules(lab, mode)
  if (mode === 'iptables') {
    t.match(rules, /-A FERRY-SERVICES -d fd00:96::10\/128 .*--dport 80 /, 'ip6tables holds the IPv6 ClusterIP')
    t.match(rules, /-A FERRY-SERVICES -d 10\.96\.0\.10\/32 .*--dport 80 /, 'iptables holds the IPv4 ClusterIP')
  } else {
    t.match(rules, /table ip6 ferry \{[\s\S]*fd00:96::10 \. tcp \. 80 : goto /, 'table ip6 ferry dispatches the IPv6 ClusterIP')
    t.match(rules, /table ip ferry \{[\s\S]*10\.96\.0\.10 \. tcp \. 80 : goto /, 'table ip ferry dispatches the IPv4 ClusterIP')
  }
  t.equal(await ferryd.stop(), 0)
  await lab.sh(['node', FERRYD_JS, '--cleanup'])
  t.notMatch(await iptablesState(lab), /FERRY-/, 'no FERRY- chain is left in either family or variant')
  t.equal(await nftState(lab), '', 'no table ip ferry or ip6 ferry is left')
  t.match(await lab.get('http://[fd00:96::10]/', client.ns, 1), { ok: false }, 'the IPv6 ClusterIP is no longer handled')
})
