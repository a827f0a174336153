// UDP conntrack cleanup against the real kernel (root only): PROXY.md §7 scenario 18.
//
//   client pod (10.244.1.3) --veth-- node (rules: IptablesBackend; conntrack: ConntrackCleaner) --veth-- e1, e2 (UDP+TCP :5353)
//   external client (192.168.77.2) --veth--'
//
// A client sends datagrams from a fixed source port, so every datagram has the same 5-tuple and rides
// the same conntrack entry. The tests drive the backend and the cleaner directly, as the Proxier does
// after each successful sync (rules first, then cleanup), and show the entry pinning the flow without
// cleanup and released with it.
import t, { type Test } from 'tap'
import { netnsExec } from '../../pkg/exec/exec.js'
import { Lab, LAB, type Pod } from '../../pkg/lab/lab.js'
import { ConntrackCleaner } from '../../pkg/proxy/conntrack/cleanup.js'
import { IptablesBackend } from '../../pkg/proxy/iptables/backend.js'
import { desired, ep, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import { servicePortKey, type DesiredServicePort, type DesiredState, type EndpointInfo, type ServicePortInfo } from '../../pkg/proxy/types.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

const E1 = '10.244.1.1'
const E2 = '10.244.1.2'
const CLIENT = '10.244.1.3'
const DNS_VIP = '172.30.0.10'
const NODE_PORT = 30053

interface Setup { lab: Lab, client: Pod, backend: IptablesBackend, cleaner: ConntrackCleaner }

async function setup (t: Test): Promise<Setup> {
  const lab = await Lab.create()
  t.teardown(async () => { await lab.close() })
  await lab.addPod('e1', E1, [5353])
  await lab.addPod('e2', E2, [5353])
  const client = await lab.addPod('client', CLIENT, [])
  const exec = netnsExec(lab.nodeNs)
  const backend = new IptablesBackend({ family: 'IPv4', exec, variant: 'legacy', clusterCIDR: LAB.podCIDR })
  const cleaner = new ConntrackCleaner({ family: 'IPv4', exec })
  return { lab, client, backend, cleaner }
}

/** One datagram from `ns`, source port `sport`, to addr:port; the answer's first word names the pod. */
async function ask (lab: Lab, ns: string, addr: string, port: number, sport: number): Promise<string> {
  return await lab.udp(addr, port, sport, ns)
}

const at = (ip: string): EndpointInfo => ep(ip, 5353)
const dnsUDP = svcInfo({ name: 'dns', portName: 'dns', protocol: 'UDP', clusterIP: DNS_VIP, port: 53, nodePort: NODE_PORT })
const dnsTCP = svcInfo({ name: 'dns', portName: 'dns-tcp', protocol: 'TCP', clusterIP: DNS_VIP, port: 53 })

/** The desired state and the Proxier's unfiltered endpoints map for `ports`, each served by `ips`. */
function world (ports: Array<[ServicePortInfo, string[]]>): { state: DesiredState, endpoints: Map<string, EndpointInfo[]> } {
  const list: DesiredServicePort[] = []
  const endpoints = new Map<string, EndpointInfo[]>()
  for (const [info, ips] of ports) {
    const eps = ips.map(at)
    list.push(desired(info, { cluster: eps }))
    endpoints.set(servicePortKey(info), eps)
  }
  return { state: stateOf(list), endpoints }
}

/** What the Proxier does after its state changed: rules into the kernel, then (optionally) the hook. */
async function sync (s: Setup, w: ReturnType<typeof world>, changed: ReadonlySet<string> | null, clean: boolean): Promise<number> {
  await s.backend.sync(w.state, changed)
  if (!clean) return 0
  return (await s.cleaner.reconcile(w.state, changed, w.endpoints)).deleted
}

t.test('scenario 18: a UDP flow pinned to E1 moves to E2 only after cleanup; TCP entries stay', async t => {
  const s = await setup(t)
  const { lab, client } = s
  const ALL = new Set([servicePortKey(dnsUDP), servicePortKey(dnsTCP)])
  await sync(s, world([[dnsUDP, [E1]], [dnsTCP, [E1]]]), null, true)

  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40053), `e1 ${CLIENT}`, 'pod → ClusterIP from a fixed port reaches E1')
  t.match(await ask(lab, lab.clientNs, LAB.nodeExternalIP, NODE_PORT, 40054), /^e1 /, 'external → NodePort from a fixed port reaches E1')
  t.match(await lab.get(`http://${DNS_VIP}:53/`, client.ns), { ok: true, body: `e1 ${CLIENT}` }, 'TCP to the same VIP:port reaches E1')

  // E1 is replaced by E2; the rules change, the conntrack entries do not.
  const afterE2 = world([[dnsUDP, [E2]], [dnsTCP, [E2]]])
  await sync(s, afterE2, ALL, false)
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40055), `e2 ${CLIENT}`, 'the new rules are live: a new 5-tuple reaches E2')
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40053), `e1 ${CLIENT}`, 'without cleanup the old 5-tuple still reaches E1 (stale entry)')
  t.match(await ask(lab, lab.clientNs, LAB.nodeExternalIP, NODE_PORT, 40054), /^e1 /, 'so does the NodePort flow')

  const deleted = await s.cleaner.reconcile(afterE2.state, ALL, afterE2.endpoints)
  t.ok(deleted.deleted >= 2, `cleanup deleted the ClusterIP and NodePort entries (${JSON.stringify(deleted)})`)
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40053), `e2 ${CLIENT}`, 'after cleanup the same 5-tuple reaches E2')
  t.match(await ask(lab, lab.clientNs, LAB.nodeExternalIP, NODE_PORT, 40054), /^e2 /, 'and the NodePort flow too')

  const tcp = await lab.sh(['conntrack', '-L', '-p', 'tcp', '--orig-dst', DNS_VIP, '--reply-src', E1])
  t.match(tcp, /dport=53 .*sport=5353/, "the TCP entry to E1 is still there (TCP is never touched)")

  const again = await s.cleaner.reconcile(afterE2.state, null, afterE2.endpoints)
  t.equal(again.deleted, 0, 'a second run finds nothing stale: live E2 flows are kept')
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40053), `e2 ${CLIENT}`, 'and the flow still reaches E2')
  await s.backend.cleanup()
})

t.test('0 → 1 → 0: refused, then answered by E1, then refused again once cleanup drops the entry to E1', async t => {
  const s = await setup(t)
  const { lab, client } = s
  await sync(s, world([[dnsUDP, []]]), null, true)
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40063), 'refused', 'no endpoints: REJECT (ICMP port unreachable)')
  const deleted = await sync(s, world([[dnsUDP, [E1]]]), new Set([servicePortKey(dnsUDP)]), true)
  t.comment(`cleanup deleted ${deleted} entries (a REJECTed datagram's entry is never confirmed)`)
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40063), `e1 ${CLIENT}`, 'the same 5-tuple now reaches E1')

  // 1 → 0 (kubernetes#139628): the REJECT rule sees only NEW packets, so the entry to E1 must go.
  const none = world([[dnsUDP, []]])
  await sync(s, none, new Set([servicePortKey(dnsUDP)]), false)
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40063), `e1 ${CLIENT}`, 'back to no endpoints: without cleanup the 5-tuple still reaches E1 (a deleted pod, in real life)')
  const gone = await s.cleaner.reconcile(none.state, new Set([servicePortKey(dnsUDP)]), none.endpoints)
  t.equal(gone.deleted, 1, 'cleanup deletes the entry of a port left with no endpoints')
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40063), 'refused', 'after cleanup the same 5-tuple is refused at once')
  await s.backend.cleanup()
})

t.test('0 → 1 black hole: datagrams sent before the service had rules pin an un-DNATed entry until cleanup', async t => {
  const s = await setup(t)
  const { lab, client } = s
  const other = svcInfo({ name: 'other', portName: 'dns', protocol: 'UDP', clusterIP: '172.30.0.20', port: 53 })
  await sync(s, world([[other, [E2]]]), null, true)
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40073), 'timeout', 'no rules for the VIP yet: forwarded into the black hole')
  const entry = await lab.sh(['conntrack', '-L', '-p', 'udp', '--orig-dst', DNS_VIP, '--reply-src', DNS_VIP])
  t.match(entry, /sport=40073 dport=53/, 'an un-DNATed entry (reply-src = the VIP) is in the table')

  const w = world([[other, [E2]], [dnsUDP, [E1]]])
  await sync(s, w, new Set([servicePortKey(dnsUDP)]), false)
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40074), `e1 ${CLIENT}`, 'the new rules are live: a new 5-tuple reaches E1')
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40073), 'timeout', 'without cleanup the old 5-tuple still goes into the black hole')
  const r = await s.cleaner.reconcile(w.state, new Set([servicePortKey(dnsUDP)]), w.endpoints)
  t.equal(r.deleted, 1, 'cleanup deleted the un-DNATed entry')
  t.equal(await ask(lab, client.ns, DNS_VIP, 53, 40073), `e1 ${CLIENT}`, 'after cleanup the same 5-tuple reaches E1')
  await s.backend.cleanup()
})

t.test('IPv6: E1 → E2 on a ClusterIP and a NodePort, through conntrack -f ipv6', async t => {
  const lab = await Lab.create()
  t.teardown(async () => { await lab.close() })
  const e1 = await lab.addPod('e1', E1, [5353])
  const e2 = await lab.addPod('e2', E2, [5353])
  const client = await lab.addPod('client', CLIENT, [])
  const exec = netnsExec(lab.nodeNs)
  const backend = new IptablesBackend({ family: 'IPv6', exec, variant: 'legacy', clusterCIDR: LAB.podCIDR6 })
  const cleaner = new ConntrackCleaner({ family: 'IPv6', exec })
  const VIP6 = 'fd00:30::10'
  const info = svcInfo({ name: 'dns', portName: 'dns', protocol: 'UDP', family: 'IPv6', clusterIP: VIP6, port: 53, nodePort: NODE_PORT })
  const at6 = (p: Pod): DesiredState => stateOf([desired(info, { cluster: [ep(p.ip6, 5353)] })], 'IPv6')
  const eps6 = (p: Pod): Map<string, EndpointInfo[]> => new Map([[servicePortKey(info), [ep(p.ip6, 5353)]]])
  const changed = new Set([servicePortKey(info)])

  await backend.sync(at6(e1), null)
  t.equal(await ask(lab, client.ns, VIP6, 53, 40083), `e1 ${client.ip6}`, 'pod → IPv6 ClusterIP reaches E1')
  t.match(await ask(lab, lab.clientNs, LAB.nodeExternalIP6, NODE_PORT, 40084), /^e1 /, 'external → IPv6 NodePort reaches E1')
  await backend.sync(at6(e2), changed)
  t.equal(await ask(lab, client.ns, VIP6, 53, 40083), `e1 ${client.ip6}`, 'without cleanup the 5-tuple still reaches E1')
  const r = await cleaner.reconcile(at6(e2), changed, eps6(e2))
  t.equal(r.deleted, 2, 'cleanup deleted the ClusterIP and NodePort entries')
  t.equal(await ask(lab, client.ns, VIP6, 53, 40083), `e2 ${client.ip6}`, 'after cleanup the same 5-tuple reaches E2')
  t.match(await ask(lab, lab.clientNs, LAB.nodeExternalIP6, NODE_PORT, 40084), /^e2 /, 'and the NodePort flow too')
  await backend.cleanup()
})
