// Pod networking end to end on the lab's overlay cluster (pkg/lab/overlay-cluster.ts): two nodes in
// network namespaces on one underlay bridge, each running ferryd with the overlay against one real etcd,
// pods created by calling bin/ferry-cni exactly as a runtime does. Over vxlan and over host-gw: pod to pod
// across nodes (ping, HTTP), the vxlan traffic on the underlay as UDP 8472, the MTU, a route deleted by
// hand, a node restarted, a lease deleted.
import t, { type Test } from 'tap'
import { Etcd3 } from 'etcd3'
import { OVERLAY_LAB, OverlayCluster, type OverlayNode } from '../../pkg/lab/overlay-cluster.js'
import { waitUntil } from '../helpers/wait.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 20000): Promise<void> => { await waitUntil(what, check, timeoutMs) }

async function scenario (t: Test, backend: 'vxlan' | 'host-gw'): Promise<void> {
  const c = await OverlayCluster.create(['a', 'b'], backend)
  t.teardown(async () => { await c.close() })
  const [a, b] = c.nodes as [OverlayNode, OverlayNode]
  const etcd = new Etcd3({ hosts: c.etcdEndpoint })
  t.teardown(() => { etcd.close() })
  const ok = async (argv: string[], ns: string): Promise<boolean> => await c.sh(argv, ns).then(() => true, () => false)
  const subnetOf = async (n: OverlayNode): Promise<string> => /FERRY_SUBNET=([\d./]+)/.exec(await c.nodeFile(n))?.[1] ?? ''
  const network = async (n: OverlayNode): Promise<string> => (await subnetOf(n)).replace(/\.1\//, '.0/')
  const routeTo = async (n: OverlayNode, dst: string): Promise<string> => (await c.sh(['ip', 'route', 'show', dst], n.ns)).trim()
  for (const n of c.nodes) await c.startFerryd(n, ['--subnet-lease-ttl', '60s'])

  t.not(await subnetOf(a), await subnetOf(b), `each node leased its own subnet (${await subnetOf(a)}, ${await subnetOf(b)})`)
  t.match(await c.nodeFile(a), new RegExp(`^FERRY_NETWORK=10\\.244\\.0\\.0/16\\nFERRY_SUBNET=10\\.244\\.\\d+\\.1/24\\nFERRY_MTU=${backend === 'vxlan' ? 1450 : 1500}\\nFERRY_IPMASQ=false\\n$`), 'the node file, exactly its keys')
  const pa = await c.addPod(a, 'x')
  const pb = await c.addPod(b, 'y')
  await c.serve(pb)

  if (backend === 'vxlan') await c.countUdpOut(a)
  await t.resolves(waitFor('pod on A reaches pod on B', async () => await ok(['ping', '-c1', '-W1', pb.ip], pa.ns)), `pod ${pa.ip} on node a pings pod ${pb.ip} on node b`)
  t.match(await c.get(`http://${pb.ip}:8080/`, pa.ns), { ok: true, body: `y ${pa.ip}` }, 'and fetches over HTTP from it, unmasqueraded')
  if (backend === 'vxlan') {
    const packets = await c.udpOut(a)
    t.ok(packets > 0, `the traffic crossed the underlay as UDP ${OVERLAY_LAB.vxlanPort} (${packets} packets)`)
    t.equal(await ok(['ping', '-c1', '-W2', '-M', 'do', '-s', '1422', pb.ip], pa.ns), true, 'a 1422-byte DF ping fits the overlay MTU')
    t.equal(await ok(['ping', '-c1', '-W2', '-M', 'do', '-s', '1423', pb.ip], pa.ns), false, 'a 1423-byte one does not')
  } else {
    t.match(await routeTo(a, await network(b)), new RegExp(`via ${b.ip} dev ${a.uplink}`), 'host-gw: a route via node b\'s address')
    // A vxlan node's lease (a cluster mid-migration): flannel ignores it; a route via its address would send
    // pods' traffic there unencapsulated, and it has no way back.
    await etcd.put(`${OVERLAY_LAB.etcdPrefix}/network/subnets/10.244.250.0-24`).value(JSON.stringify({ PublicIP: '192.168.92.50', BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02:00:00:00:00:50' } }))
    await waitFor('a warns about the vxlan lease', async () => (a.ferryd?.logs() ?? '').includes('ignoring a vxlan lease'))
    t.equal(await routeTo(a, '10.244.250.0/24'), '', 'no route to another backend\'s subnet')
    await etcd.delete().key(`${OVERLAY_LAB.etcdPrefix}/network/subnets/10.244.250.0-24`)
  }

  const bNet = await network(b)
  await c.sh(['ip', 'route', 'del', bNet], a.ns)
  await t.resolves(waitFor('the deleted route restored', async () => await routeTo(a, bNet) !== '', 25_000), 'a route to node b deleted by hand is restored by the slow-period check')

  const before = await subnetOf(b)
  await b.ferryd?.stop()
  await c.startFerryd(b, ['--subnet-lease-ttl', '60s'])
  t.equal(await subnetOf(b), before, 'node b\'s restart reuses its subnet')
  await t.resolves(waitFor('pods reach each other after the restart', async () => await ok(['ping', '-c1', '-W1', pb.ip], pa.ns)), 'and the pods still reach each other')

  // Deleted by hand while node b runs (its etcd lease lives on): b writes it again at once, same subnet.
  const bKey = `${OVERLAY_LAB.etcdPrefix}/network/subnets/${bNet.replace('/', '-')}`
  await etcd.delete().key(bKey)
  await t.resolves(waitFor('node b claimed its lease again', async () => (await etcd.get(bKey).string()) !== null), 'node b writes its deleted lease again, with the same subnet')
  await t.resolves(waitFor('a routes to b again', async () => await routeTo(a, bNet) !== ''), 'node a routes to it again')
  await t.resolves(waitFor('pods reach each other after the re-claim', async () => await ok(['ping', '-c1', '-W1', pb.ip], pa.ns)), 'and the pods reach each other')

  await b.ferryd?.stop()
  await etcd.delete().key(bKey)
  await t.resolves(waitFor('routes to b removed on a', async () => await routeTo(a, bNet) === ''), 'deleting node b\'s lease removes its route on node a')
  if (backend === 'vxlan') {
    t.notMatch(await c.sh(['bridge', 'fdb', 'show', 'dev', OVERLAY_LAB.vxlanDevice], a.ns), b.ip, 'and its FDB entry')
  }
  await c.delPod(pa)
}

t.test('two nodes over vxlan', async t => { await scenario(t, 'vxlan') })
t.test('two nodes over host-gw', async t => { await scenario(t, 'host-gw') })

// Node a cut off from etcd past its lease's TTL; meanwhile another node takes a's subnet. Back online, a
// leases a new subnet, and must route to its old one, now the other node's: the lease event for it came
// while a still held that subnet (its own, so skipped), and nothing re-read the peers after the change.
t.test('a node that lost its subnet while cut off routes to the node that took it', async t => {
  const c = await OverlayCluster.create(['a'], 'vxlan')
  t.teardown(async () => { await c.close() })
  const [a] = c.nodes as [OverlayNode]
  const etcd = new Etcd3({ hosts: c.etcdEndpoint })
  t.teardown(() => { etcd.close() })
  await c.startFerryd(a, ['--subnet-lease-ttl', '3s'])
  const subnetOf = async (): Promise<string> => (/FERRY_SUBNET=([\d./]+)/.exec(await c.nodeFile(a))?.[1] ?? '').replace(/\.1\//, '.0/')
  const old = await subnetOf()
  const port = new URL(c.etcdEndpoint).port
  const cut = ['OUTPUT', '-p', 'tcp', '--dport', port, '-j', 'DROP']
  await c.sh(['iptables', '-w', '-I', ...cut], a.ns)
  const oldKey = `${OVERLAY_LAB.etcdPrefix}/network/subnets/${old.replace('/', '-')}`
  await waitFor('a\'s lease expires', async () => (await etcd.get(oldKey).string()) === null)
  await etcd.put(oldKey).value(JSON.stringify({ PublicIP: '192.168.92.50', BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02:00:00:00:00:50' } }))
  await new Promise(resolve => setTimeout(resolve, 2000))
  await c.sh(['iptables', '-w', '-D', ...cut], a.ns)
  await t.resolves(waitFor('a leases a new subnet', async () => await subnetOf() !== old, 90_000), 'a leases a new subnet')
  await t.resolves(waitFor('a routes to its old subnet', async () => /via .* dev ferry\.1 .*onlink/.test((await c.sh(['ip', 'route', 'show', old], a.ns)).trim()), 15_000),
    `a routes ${old} to the node that took it`)
})

// flannel routes to a vxlan peer by its lease's VtepMAC and PublicIP alone: every node's device uses the
// network's VNI, so a lease without one (flannel's older form, one written by hand) or naming another is
// still a peer. Node b's lease is rewritten without its VNI before node a starts (a reads it in its first
// list); three more leases arrive by the watch once a runs: one naming VNI 7, one with a dashed VtepMAC, one
// without a VtepMAC.
t.test('a vxlan peer whose lease carries no VNI, or another VNI, is routed to; one without a VtepMAC is not', async t => {
  const c = await OverlayCluster.create(['a', 'b'], 'vxlan')
  t.teardown(async () => { await c.close() })
  const [a, b] = c.nodes as [OverlayNode, OverlayNode]
  const etcd = new Etcd3({ hosts: c.etcdEndpoint })
  t.teardown(() => { etcd.close() })
  const ok = async (argv: string[], ns: string): Promise<boolean> => await c.sh(argv, ns).then(() => true, () => false)
  const dev = OVERLAY_LAB.vxlanDevice
  const subnets = `${OVERLAY_LAB.etcdPrefix}/network/subnets/`
  await c.startFerryd(b, ['--subnet-lease-ttl', '60s'])
  const [bLease] = await c.leases()
  const bNet = bLease?.subnet ?? ''
  const bMAC = String(bLease?.backendData.VtepMAC ?? '')
  t.match(bLease?.backendData, { VNI: 1, VtepMAC: /^[0-9a-f:]{17}$/ }, `node b leased ${bNet} with VNI 1 and its VtepMAC`)
  // ignoreLease: the key stays on b's etcd lease, so b keeps renewing it and never rewrites it.
  await etcd.put(`${subnets}${bNet.replace('/', '-')}`).value(JSON.stringify({ PublicIP: b.ip, BackendType: 'vxlan', BackendData: { VtepMAC: bMAC } })).ignoreLease()
  t.same((await c.leases())[0]?.backendData, { VtepMAC: bMAC }, 'b\'s lease now has no VNI')

  await c.startFerryd(a, ['--subnet-lease-ttl', '60s'])
  const bBase = bNet.replace(/\/24$/, '')
  await t.resolves(waitFor('a routes to b', async () => (await c.sh(['ip', 'route', 'show', bNet], a.ns)).trim() !== '', 10_000), 'node a routes to b\'s subnet')
  t.match((await c.sh(['ip', 'route', 'show', bNet], a.ns)).trim(), new RegExp(`^${bNet.replace(/\./g, '\\.')} via ${bBase.replace(/\./g, '\\.')} dev ${dev.replace('.', '\\.')} .*onlink`), 'the route: via b\'s subnet base, onlink on the vxlan device')
  t.match(await c.sh(['ip', 'neigh', 'show', 'dev', dev], a.ns), new RegExp(`^${bBase.replace(/\./g, '\\.')} lladdr ${bMAC} PERMANENT`, 'm'), 'a permanent neighbour entry: b\'s subnet base at b\'s VtepMAC')
  t.match(await c.sh(['bridge', 'fdb', 'show', 'dev', dev], a.ns), new RegExp(`^${bMAC} dst ${b.ip.replace(/\./g, '\\.')} self permanent`, 'm'), 'an FDB entry: b\'s VtepMAC to b\'s address')
  const pa = await c.addPod(a, 'x')
  const pb = await c.addPod(b, 'y')
  await c.serve(pb)
  await t.resolves(waitFor('pod on a reaches pod on b', async () => await ok(['ping', '-c1', '-W1', pb.ip], pa.ns)), `pod ${pa.ip} on a pings pod ${pb.ip} on b`)
  t.match(await c.get(`http://${pb.ip}:8080/`, pa.ns), { ok: true, body: `y ${pa.ip}` }, 'and fetches over HTTP from it')

  await etcd.put(`${subnets}10.244.250.0-24`).value(JSON.stringify({ PublicIP: '192.168.92.50', BackendType: 'vxlan', BackendData: { VNI: 7, VtepMAC: '02:00:00:00:00:50' } }))
  await etcd.put(`${subnets}10.244.251.0-24`).value(JSON.stringify({ PublicIP: '192.168.92.51', BackendType: 'vxlan', BackendData: { VNI: 1 } }))
  await t.resolves(waitFor('a routes to the VNI 7 peer', async () => (await c.sh(['ip', 'route', 'show', '10.244.250.0/24'], a.ns)).trim() !== '', 10_000), 'a lease naming VNI 7 is routed to, as flannel does')
  t.match(await c.sh(['bridge', 'fdb', 'show', 'dev', dev], a.ns), /^02:00:00:00:00:50 dst 192\.168\.92\.50 self permanent/m, 'with its FDB entry')
  const logs = (): string => a.ferryd?.logs() ?? ''
  t.equal(logs().split('\n').filter(l => l.includes('another VNI') && l.includes('10.244.250.0-24')).length, 1, 'and one warning that it names another VNI')
  // flannel reads VtepMAC with Go's net.ParseMAC, so a dashed (or dotted) one is a peer too; the kernel gets the colon form.
  await etcd.put(`${subnets}10.244.252.0-24`).value(JSON.stringify({ PublicIP: '192.168.92.52', BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02-00-00-00-00-5A' } }))
  await t.resolves(waitFor('a routes to the dashed-MAC peer', async () => (await c.sh(['ip', 'route', 'show', '10.244.252.0/24'], a.ns)).trim() !== '', 10_000), 'a lease with a dashed VtepMAC is routed to')
  t.match(await c.sh(['bridge', 'fdb', 'show', 'dev', dev], a.ns), /^02:00:00:00:00:5a dst 192\.168\.92\.52 self permanent/m, 'with its FDB entry')
  t.match(await c.sh(['ip', 'neigh', 'show', 'dev', dev], a.ns), /^10\.244\.252\.0 lladdr 02:00:00:00:00:5a PERMANENT/m, 'and its neighbour entry')
  await t.resolves(waitFor('a reports the lease without a VtepMAC', async () => /10\.244\.251\.0-24: BackendData\.VtepMAC: want a MAC address/.test(logs()), 10_000), 'a lease without a VtepMAC is reported, naming its key')
  t.equal((await c.sh(['ip', 'route', 'show', '10.244.251.0/24'], a.ns)).trim(), '', 'and not routed to')
  await c.delPod(pa)
})
