// The local demo cluster, in two parts. 1: ferryd serves examples/demo in a network-namespace "node";
// pods and an external client send real traffic to a ClusterIP and a NodePort, a pod uses cluster DNS.
// 2: two nodes on one underlay, each running ferryd with the vxlan overlay against a real etcd; pods get
// their IPs from bin/ferry-cni, and a pod on node-a reaches a Service whose pods run on node-b.
// Run as root: npm run demo [-- --keep]
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from '../pkg/exec/exec.js'
import { startFerryd } from '../pkg/lab/ferryd.js'
import { Lab, LAB } from '../pkg/lab/lab.js'
import { serviceManifest } from '../pkg/lab/manifests.js'
import { OverlayCluster, OVERLAY_LAB, type OverlayPod } from '../pkg/lab/overlay-cluster.js'
import { Teardown } from '../pkg/lab/teardown.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const FERRYCTL_JS = join(root, 'dist', 'cmd', 'ferryctl.js')
const say = (s: string): void => { process.stdout.write(s + '\n') }
const fmt = (m: Map<string, number>): string => [...m].sort().map(([k, v]) => `${k}=${v}`).join(' ')

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) { if (await check()) return; await new Promise(resolve => setTimeout(resolve, 100)) }
  throw new Error(`timed out waiting for ${what}`)
}

/** Part 1: one node serving examples/demo from manifests. Returns what to try when the run is kept. */
async function oneNode (td: Teardown): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-demo-'))
  td.add(async () => { await rm(dir, { recursive: true, force: true }) })
  await cp(join(root, 'examples', 'demo'), dir, { recursive: true })
  const lab = await Lab.create()
  td.add(async () => { await lab.close() })
  say(`== part 1: one node serving ${dir}`)
  say(`== lab ${lab.id}: node netns ${lab.nodeNs}, external client ${lab.clientNs} (${LAB.clientIP})`)
  for (const [i, name] of ['web-1', 'web-2', 'web-3'].entries()) await lab.addPod(name, `10.244.0.${11 + i}`)
  const client = await lab.addPod('client', '10.244.0.50', [])
  say('== pods web-1..3 (10.244.0.11-13:8080) and a client pod (10.244.0.50) are up')
  // The client pod's resolver, as kubelet writes it, pointing at ferry's DNS on the node.
  const podEtc = `/etc/netns/${client.ns}`
  td.add(async () => { await rm(podEtc, { recursive: true, force: true }) })
  await mkdir(podEtc, { recursive: true })
  await writeFile(join(podEtc, 'resolv.conf'), `nameserver ${LAB.podGateway}\nsearch demo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`)

  const ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'demo-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '200ms', '--log-format', 'text',
    '--dns-listen', `${LAB.podGateway}:53`])
  td.add(async () => { await ferryd.stop() })
  await ferryd.waitReady()
  say(`== ferryd is ready, serving ${dir}`)
  const state = JSON.parse((await ferryd.http('/debug/state')).body) as { proxyMode?: { mode: string, reason: string } }
  say(`== proxy mode: ${state.proxyMode?.mode ?? '?'} (${state.proxyMode?.reason ?? ''})`)
  say(await lab.sh(['sh', '-c', 'iptables-legacy-save -t nat 2>/dev/null | grep -c "^-A FERRY-" || iptables-save -t nat | grep -c "^-A FERRY-"']).then(n => `   ${n.trim()} nat rules programmed`))

  say('\n-- pod -> ClusterIP 10.96.0.10:80, 30 new connections:')
  say('   ' + fmt(await lab.spread('http://10.96.0.10/', 30, client.ns)))
  say(`-- external client -> NodePort ${LAB.nodeExternalIP}:30080, 30 new connections:`)
  say('   ' + fmt(await lab.spread(`http://${LAB.nodeExternalIP}:30080/`, 30)))
  const r = await lab.get('http://10.96.0.20/', client.ns)
  say(`-- pod -> ClusterIP 10.96.0.20 (no endpoints): ${r.ok ? 'answered?!' : `${r.error} after ${r.ms} ms`}`)

  say(`\n-- cluster DNS on ${LAB.podGateway}:53, asked from the client pod (search demo.svc.cluster.local ..., ndots:5):`)
  say(`   getent hosts web          -> ${(await lab.sh(['getent', 'hosts', 'web'], client.ns)).trim()}`)
  say(`   curl http://web/          -> ${(await lab.sh(['curl', '-sS', '--max-time', '3', 'http://web/'], client.ns)).trim()}`)
  const dig = async (args: string[]): Promise<string> => (await lab.sh(['dig', `@${LAB.podGateway}`, '+short', ...args], client.ns)).trim().split('\n').join(', ')
  say(`   dig SRV _http._tcp.web... -> ${await dig(['SRV', '_http._tcp.web.demo.svc.cluster.local'])}`)
  say(`   dig PTR 10.96.0.10        -> ${await dig(['-x', '10.96.0.10'])}`)

  say('\n-- scaling web down to web-1 and web-2 (editing web.yaml)...')
  const web = join(dir, 'web.yaml')
  const text = await readFile(web, 'utf8')
  await writeFile(web, text.replace(/ {2}- addresses: \[10\.244\.0\.13\][\s\S]*$/, ''))
  await waitFor('web-3 to leave', async () => (await lab.spread('http://10.96.0.10/', 6, client.ns)).get('web-3') === undefined)
  say('   ' + fmt(await lab.spread('http://10.96.0.10/', 20, client.ns)))

  say('\n-- metrics (excerpt):')
  const m = await ferryd.http('/metrics')
  for (const line of m.body.split('\n')) if (/^(kubeproxy_(sync_proxy_rules_(last_timestamp|duration_seconds_count|iptables_total)|network_programming_duration_seconds_count)|coredns_dns_requests_total)/.test(line)) say('   ' + line)
  say(`-- /healthz: ${(await ferryd.http('/healthz')).body}`)
  return [`ip netns exec ${client.ns} curl http://10.96.0.10/`, `ip netns exec ${lab.clientNs} curl http://${LAB.nodeExternalIP}:30080/`, `edit ${dir}/*.yaml and watch ferryd follow`]
}

/** Part 2: two nodes joined over vxlan, pods from ferry-cni, a Service on node-b used from node-a. */
async function twoNodes (td: Teardown): Promise<string[]> {
  const cluster = new OverlayCluster('vxlan')
  td.add(async () => { await cluster.close() })
  await cluster.setUp(['a', 'b'])
  const [a, b] = cluster.nodes
  if (a === undefined || b === undefined || cluster.etcd === undefined) throw new Error('overlay cluster: no nodes')
  say(`\n== part 2: two nodes over vxlan, pod IPs from ferry-cni, a Service crossing nodes`)
  say(`== etcd (pid ${cluster.etcd.pid ?? '?'}) on ${cluster.etcd.endpoint} and on the underlay at ${cluster.etcdEndpoint}`)
  say(`   ${OVERLAY_LAB.etcdPrefix}/network/config = ${JSON.stringify(cluster.networkConfig())}`)
  say(`== underlay: host bridge ${cluster.bridge} ${OVERLAY_LAB.underlayHostIP}/24; ` +
    cluster.nodes.map(n => `${n.name} netns ${n.ns} ${n.ip} (${n.uplink})`).join(', '))
  await Promise.all(cluster.nodes.map(async n => await cluster.startFerryd(n)))
  say(`== ferryd --overlay --proxy-mode iptables is ready on ${cluster.nodes.map(n => n.name).join(' and ')}`)

  const leases = await cluster.leases()
  say(`\n-- subnets leased in etcd (${OVERLAY_LAB.etcdPrefix}/network/subnets/):`)
  for (const l of leases) say(`   ${l.subnet.padEnd(15)} ${cluster.nodes.find(n => n.ip === l.publicIP)?.name ?? '?'} PublicIP ${l.publicIP} ${l.backendType} ${JSON.stringify(l.backendData)}`)
  say('-- node files (--subnet-file, read by ferry-cni):')
  for (const n of cluster.nodes) say(`   ${n.name}: ${(await cluster.nodeFile(n)).trim().split('\n').join(' ')}`)

  say('\n-- pods from bin/ferry-cni ADD, called as a runtime does (CNI_NETNS=/run/netns/<pod>, CNI_IFNAME=eth0):')
  const webs = [await cluster.addPod(b, 'hello-1'), await cluster.addPod(b, 'hello-2')]
  const client = await cluster.addPod(a, 'client')
  const showPod = (p: OverlayPod): string => `   ${p.name.padEnd(8)} on ${p.node.name}: ${p.result.ips?.[0]?.address ?? '?'} gw ${p.result.ips?.[0]?.gateway ?? '?'} (netns ${p.ns}, container ${p.containerId})`
  for (const p of [...webs, client]) say(showPod(p))
  for (const w of webs) await cluster.serve(w)

  const dir = await mkdtemp(join(tmpdir(), 'ferry-demo-svc-'))
  td.add(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'hello.yaml')
  await writeFile(file, serviceManifest({ namespace: 'demo', name: 'hello', clusterIP: '10.96.0.30', port: 80, targetPort: 8080, pods: webs.map(w => ({ name: w.name, ip: w.ip, nodeName: w.node.name })) }))
  say(`\n-- Service demo/hello, ClusterIP 10.96.0.30:80 -> ${webs.map(w => `${w.name} ${w.ip}:8080`).join(', ')} on ${b.name}:`)
  say(`   $ ferryctl apply -f ${file} --etcd-endpoints ${cluster.etcd.endpoint}`)
  for (const line of (await run([process.execPath, FERRYCTL_JS, 'apply', '-f', file, '--etcd-endpoints', cluster.etcd.endpoint])).trim().split('\n')) say('   ' + line)

  for (const n of cluster.nodes) await cluster.countUdpOut(n)
  const url = 'http://10.96.0.30/'
  await waitFor(`${url} to answer from ${a.name}`, async () => (await cluster.get(url, client.ns)).ok, 20_000)
  const bSubnet = leases.find(l => l.publicIP === b.ip)?.subnet ?? ''
  say(`-- ${a.name}'s route to ${b.name}'s pods: ${(await cluster.sh(['ip', 'route', 'show', bSubnet], a.ns)).trim()}`)
  say(`\n-- client pod on ${a.name} (${client.ip}) -> ClusterIP 10.96.0.30:80, 20 new connections:`)
  say('   ' + fmt(await cluster.spread(url, 20, client.ns)))
  const one = await cluster.get(url, client.ns)
  say(`   one answer: "${one.ok ? one.body : one.error}" (the pod on ${b.name} sees the client pod's own address)`)
  say('-- vxlan on the underlay:')
  for (const n of cluster.nodes) {
    const { tx, rx } = await cluster.linkPackets(n)
    say(`   ${n.name}: ${await cluster.udpOut(n)} UDP/${OVERLAY_LAB.vxlanPort} packets out of ${n.uplink}; ${OVERLAY_LAB.vxlanDevice} tx ${tx} rx ${rx} packets`)
  }
  return [`ip netns exec ${client.ns} curl ${url}`, `ip netns exec ${a.ns} ip route; ip netns exec ${a.ns} bridge fdb show dev ${OVERLAY_LAB.vxlanDevice}`,
    `bin/ferryctl get endpointslices -n demo --etcd-endpoints ${cluster.etcd.endpoint}`]
}

async function demo (keep: boolean): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo creates network namespaces: run it as root')
  const td = new Teardown()
  td.onSignals()
  try {
    const tries = [...await oneNode(td), ...await twoNodes(td)]
    if (keep) {
      say(`\nkept running. Try:\n${tries.map(s => `  ${s}`).join('\n')}\nCtrl-C tears everything down.`)
      await new Promise(() => {})
    }
    say('\n== done; tearing down')
  } finally {
    await td.run()
  }
}

demo(process.argv.includes('--keep')).catch((e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`)
  process.exit(1)
})
