// Dual-stack pod networking end to end on the lab's overlay cluster (pkg/lab/overlay-cluster.ts with
// { dualStack: true }): the network config in etcd adds an IPv6 network, the underlay carries IPv4 and
// IPv6, ferryd runs with --public-ipv6, pods come from bin/ferry-cni. Over vxlan and over host-gw: a
// subnet lease per family, the node file's _IPV6 keys, one pod IP and one default route per family, pod to
// pod across nodes over both families (ping, HTTP), vxlan's IPv6 pod traffic on the IPv6 underlay as UDP
// 8472, and node b's IPv6 lease deleted: its IPv6 routes go on node a, its IPv4 ones stay.
import t, { type Test } from 'tap'
import { Etcd3 } from 'etcd3'
import { OVERLAY_LAB, OverlayCluster, type OverlayNode } from '../../pkg/lab/overlay-cluster.js'
import { waitUntil } from '../helpers/wait.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 30000): Promise<void> => { await waitUntil(what, check, timeoutMs) }

async function scenario (t: Test, backend: 'vxlan' | 'host-gw'): Promise<void> {
  const c = await OverlayCluster.create(['a', 'b'], backend, { dualStack: true })
  t.teardown(async () => { await c.close() })
  const [a, b] = c.nodes as [OverlayNode, OverlayNode]
  const etcd = new Etcd3({ hosts: c.etcdEndpoint })
  t.teardown(() => { etcd.close() })
  const ok = async (argv: string[], ns: string): Promise<boolean> => await c.sh(argv, ns).then(() => true, () => false)
  const key = async (n: OverlayNode, k: string): Promise<string> => new RegExp(`^${k}=(.*)$`, 'm').exec(await c.nodeFile(n))?.[1] ?? ''
  // gateway/prefix → the subnet: 10.244.3.1/24 → 10.244.3.0/24, fd00:10:244:3::1/64 → fd00:10:244:3::/64.
  const subnet4 = async (n: OverlayNode): Promise<string> => (await key(n, 'FERRY_SUBNET')).replace(/\.1\//, '.0/')
  const subnet6 = async (n: OverlayNode): Promise<string> => (await key(n, 'FERRY_SUBNET_IPV6')).replace(/::1\//, '::/')
  const routeTo = async (n: OverlayNode, dst: string): Promise<string> => (await c.sh(['ip', dst.includes(':') ? '-6' : '-4', 'route', 'show', dst], n.ns)).trim()
  for (const n of c.nodes) await c.startFerryd(n, ['--subnet-lease-ttl', '60s'])

  // Leases: one key per family per node, each carrying both public addresses.
  const leases = await c.leases()
  const [a4, b4, a6, b6] = [await subnet4(a), await subnet4(b), await subnet6(a), await subnet6(b)]
  t.same(leases.map(l => l.subnet).sort(), [a4, b4, a6, b6].sort(), `a subnet lease per family per node in etcd (${a4} ${a6}, ${b4} ${b6})`)
  t.ok(a6.startsWith('fd00:10:244:') && a6.endsWith('::/64') && a6 !== b6, 'the IPv6 subnets: distinct /64s of the IPv6 network')
  for (const [n, s] of [[a, a6], [b, b6]] as const) {
    t.match(leases.find(l => l.subnet === s), { publicIP: n.ip, publicIPv6: n.ipv6, backendType: backend }, `${n.name}'s IPv6 lease publishes its IPv6 underlay address`)
  }
  const mtu = backend === 'vxlan' ? 1430 : 1500
  t.match(await c.nodeFile(a), new RegExp('^FERRY_NETWORK=10\\.244\\.0\\.0/16\\nFERRY_SUBNET=10\\.244\\.\\d+\\.1/24\\n' +
    `FERRY_MTU=${mtu}\\nFERRY_IPMASQ=false\\nFERRY_NETWORK_IPV6=fd00:10:244::/56\\nFERRY_SUBNET_IPV6=fd00:10:244:[0-9a-f]+::1/64\\n$`),
  `the node file, exactly its keys with the _IPV6 ones (MTU ${mtu}${backend === 'vxlan' ? ': room for the IPv6 outer header' : ''})`)

  const pa = await c.addPod(a, 'x')
  const pb = await c.addPod(b, 'y')
  t.match(pa.result.ips?.map(i => i.address), [new RegExp(`^${pa.ip.replace(/\./g, '\\.')}/24$`), new RegExp(`^${pa.ipv6}/64$`)], `ferry-cni gave the pod an IPv4 and an IPv6 address (${pa.ip}, ${pa.ipv6})`)
  t.ok(pa.ipv6.startsWith(a6.replace('::/64', '::')), 'the IPv6 one from node a\'s IPv6 subnet')
  const gw6 = (await key(a, 'FERRY_SUBNET_IPV6')).split('/')[0] ?? ''
  t.match(await c.sh(['ip', '-6', 'route', 'show', 'default'], pa.ns), new RegExp(`^default via ${gw6} dev eth0`), 'an IPv6 default route via the bridge gateway in the pod')
  t.match(await c.sh(['ip', '-4', 'route', 'show', 'default'], pa.ns), /^default via 10\.244\.\d+\.1 dev eth0/, 'and an IPv4 one')
  await c.serve(pb)

  if (backend === 'vxlan') await c.countUdpOut(a, OVERLAY_LAB.vxlanPort, 'IPv6')
  await t.resolves(waitFor('pod on a reaches pod on b over IPv6', async () => await ok(['ping', '-6', '-c1', '-W1', pb.ipv6], pa.ns)), `pod ${pa.ipv6} on node a pings pod ${pb.ipv6} on node b`)
  t.match(await c.get(`http://[${pb.ipv6}]:8080/`, pa.ns), { ok: true, body: `y ${pa.ipv6}` }, 'and fetches over HTTP from it over IPv6, unmasqueraded')
  await t.resolves(waitFor('pod on a reaches pod on b over IPv4', async () => await ok(['ping', '-4', '-c1', '-W1', pb.ip], pa.ns)), `pod ${pa.ip} pings pod ${pb.ip} over IPv4 too`)
  t.match(await c.get(`http://${pb.ip}:8080/`, pa.ns), { ok: true, body: `y ${pa.ip}` }, 'and fetches over HTTP over IPv4')

  if (backend === 'vxlan') {
    const packets = await c.udpOut(a, OVERLAY_LAB.vxlanPort, 'IPv6')
    t.ok(packets > 0, `the IPv6 pod traffic crossed the IPv6 underlay as UDP ${OVERLAY_LAB.vxlanPort} (${packets} packets)`)
    const v6dev = await c.linkPackets(a, OVERLAY_LAB.vxlanDeviceV6)
    t.ok(v6dev.tx > 0 && v6dev.rx > 0, `through ${OVERLAY_LAB.vxlanDeviceV6} (tx ${v6dev.tx}, rx ${v6dev.rx})`)
    t.match(await routeTo(a, b6), new RegExp(`via ${b6.replace('/64', '')} dev ${OVERLAY_LAB.vxlanDeviceV6} .*onlink`), 'node a routes b\'s IPv6 subnet onto the IPv6 device')
    t.match(await c.sh(['bridge', 'fdb', 'show', 'dev', OVERLAY_LAB.vxlanDeviceV6], a.ns), `dst ${b.ipv6 ?? '?'}`, 'its FDB entry goes to b\'s IPv6 underlay address')
    // 1430 − 40 (IPv6) − 8 (ICMPv6) = 1382 bytes of payload fit; one more does not.
    t.equal(await ok(['ping', '-6', '-c1', '-W2', '-M', 'do', '-s', '1382', pb.ipv6], pa.ns), true, 'a 1382-byte DF IPv6 ping fits the overlay MTU')
    t.equal(await ok(['ping', '-6', '-c1', '-W2', '-M', 'do', '-s', '1383', pb.ipv6], pa.ns), false, 'a 1383-byte one does not')
  } else {
    t.match(await routeTo(a, b6), new RegExp(`via ${b.ipv6 ?? '?'} dev ${a.uplink}`), 'host-gw: an IPv6 route via node b\'s IPv6 address')
    t.match(await routeTo(a, b4), new RegExp(`via ${b.ip} dev ${a.uplink}`), 'and an IPv4 one via its IPv4 address')
  }

  await c.sh(['ip', '-6', 'route', 'del', b6], a.ns)
  await t.resolves(waitFor('the deleted IPv6 route restored', async () => await routeTo(a, b6) !== ''), 'an IPv6 route to node b deleted by hand is restored by the slow-period check')

  await b.ferryd?.stop()
  await etcd.delete().key(`${OVERLAY_LAB.etcdPrefix}/network/subnets/${b6.replace('/', '-')}`)
  await t.resolves(waitFor('IPv6 routes to b removed on a', async () => await routeTo(a, b6) === ''), 'deleting node b\'s IPv6 lease removes its IPv6 route on node a')
  t.not(await routeTo(a, b4), '', 'its IPv4 route stays (that lease is still there)')
  if (backend === 'vxlan') {
    t.notMatch(await c.sh(['bridge', 'fdb', 'show', 'dev', OVERLAY_LAB.vxlanDeviceV6], a.ns), b.ipv6 ?? '?', 'and its IPv6 FDB entry')
    t.notMatch(await c.sh(['ip', '-6', 'neigh', 'show', 'dev', OVERLAY_LAB.vxlanDeviceV6], a.ns), b6.replace('/64', ''), 'and its IPv6 neighbour entry')
    t.match(await c.sh(['bridge', 'fdb', 'show', 'dev', OVERLAY_LAB.vxlanDevice], a.ns), `dst ${b.ip}`, 'while the IPv4 FDB entry stays')
  }
  await t.resolves(waitFor('pod on a still reaches b over IPv4', async () => await ok(['ping', '-4', '-c1', '-W1', pb.ip], pa.ns)), 'the pods still reach each other over IPv4')
  await c.delPod(pa)
  await c.delPod(pb)
}

// No IPv6 on the underlay: no IPv6 device, no PublicIPv6 in the leases; vxlan carries the IPv6 pod
// traffic over the IPv4 device, as the backend has always done for a family without a device of its own.
async function overIPv4Underlay (t: Test): Promise<void> {
  const c = await OverlayCluster.create(['a', 'b'], 'vxlan', { dualStack: true, ipv6Underlay: false })
  t.teardown(async () => { await c.close() })
  const [a, b] = c.nodes as [OverlayNode, OverlayNode]
  const ok = async (argv: string[], ns: string): Promise<boolean> => await c.sh(argv, ns).then(() => true, () => false)
  for (const n of c.nodes) await c.startFerryd(n, ['--subnet-lease-ttl', '60s'])
  const leases = await c.leases()
  t.equal(leases.length, 4, 'a lease per family per node')
  t.same(leases.map(l => l.publicIPv6), ['', '', '', ''], 'none publishes an IPv6 underlay address')
  t.match(await c.nodeFile(a), /^FERRY_MTU=1450$/m, 'the MTU of the IPv4 underlay')
  t.equal(await c.sh(['ip', 'link', 'show', OVERLAY_LAB.vxlanDeviceV6], a.ns).then(() => true, () => false), false, 'no IPv6 device')
  const pa = await c.addPod(a, 'x')
  const pb = await c.addPod(b, 'y')
  await c.serve(pb)
  await c.countUdpOut(a)
  await t.resolves(waitFor('pod on a reaches pod on b over IPv6', async () => await ok(['ping', '-6', '-c1', '-W1', pb.ipv6], pa.ns)), `pod ${pa.ipv6} on node a pings pod ${pb.ipv6} on node b`)
  t.match(await c.get(`http://[${pb.ipv6}]:8080/`, pa.ns), { ok: true, body: `y ${pa.ipv6}` }, 'and fetches over HTTP from it over IPv6')
  const packets = await c.udpOut(a)
  t.ok(packets > 0, `inside IPv4 UDP ${OVERLAY_LAB.vxlanPort} (${packets} packets)`)
  t.match(await c.sh(['ip', '-6', 'route', 'show', pb.ipv6.replace(/::[0-9a-f]+$/, '::/64')], a.ns), new RegExp(`dev ${OVERLAY_LAB.vxlanDevice} .*onlink`), `over ${OVERLAY_LAB.vxlanDevice}`)
  await c.delPod(pa)
  await c.delPod(pb)
}

t.test('two dual-stack nodes over vxlan', async t => { await scenario(t, 'vxlan') })
t.test('two dual-stack nodes over vxlan on an IPv4-only underlay', async t => { await overIPv4Underlay(t) })
t.test('two dual-stack nodes over host-gw', async t => { await scenario(t, 'host-gw') })

// An IPv6-only network config ("EnableIPv4": false): ferry-cni's node file needs an IPv4 subnet, so ferryd
// must say so and stop, not lease an IPv6 subnet, report ready and never write the file.
t.test('an IPv6-only network config is refused with a clear error', async t => {
  const c = await OverlayCluster.create(['a'], 'vxlan', { dualStack: true })
  t.teardown(async () => { await c.close() })
  const [a] = c.nodes as [OverlayNode]
  const etcd = new Etcd3({ hosts: c.etcdEndpoint })
  t.teardown(() => { etcd.close() })
  await etcd.put(`${OVERLAY_LAB.etcdPrefix}/network/config`).value(JSON.stringify({ EnableIPv4: false, EnableIPv6: true, IPv6Network: OVERLAY_LAB.networkIPv6, Backend: { Type: 'vxlan' } }))
  const err = await c.startFerryd(a).then(() => '', (e: unknown) => String(e))
  t.match(err, /ferryd exited [1-9]/, 'ferryd exits')
  t.match(err, /"level":"error","msg":"[^"]*IPv4[^\n]*"code":"FERRY_ERR_CONFIG"/, 'naming the missing IPv4 network')
  t.equal((await c.leases()).length, 0, 'and leases nothing')
})
