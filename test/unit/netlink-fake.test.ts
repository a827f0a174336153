// The in-memory netlink the overlay's unit tests run against: the vxlan backend's sequence, the kernel's
// refusals callers branch on (as measured by test/e2e/netlink-overlay.test.ts), replace/append semantics,
// and what goes with a deleted link.
import t from 'tap'
import { FakeNetlink, FakeLinks } from '../../pkg/netlink/fake.js'
import type { Netlink } from '../../pkg/netlink/netlink.js'

const REMOTE_MAC = '02:11:22:33:44:55'

async function node (): Promise<{ nl: FakeNetlink, eth0: number }> {
  const nl = new FakeNetlink()
  const eth0 = nl.addLink({ name: 'eth0', mtu: 1500 }).index
  await nl.addAddress(eth0, '192.168.91.1', 24)
  return { nl, eth0 }
}

const refused = (errno: string): { name: string, code: string, details: { errno: string } } => ({ name: 'FerryError', code: 'FERRY_ERR_NETLINK', details: { errno } })

t.test('the vxlan backend sequence', async t => {
  const { nl, eth0 } = await node()
  const vx = await nl.createVxlan({ name: 'flannel.1', vni: 1, local: '192.168.91.1', link: eth0, learning: false })
  t.match(vx, { name: 'flannel.1', kind: 'vxlan', up: false, mtu: 1450, master: 0, vxlan: { vni: 1, port: 8472, local: '192.168.91.1', link: eth0, learning: false } })
  t.match(vx.mac, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'random locally administered unicast MAC')
  t.same(await nl.linkDetails('flannel.1'), vx)
  await nl.setUp(vx.index)
  await nl.addAddress(vx.index, '10.244.1.0', 32)
  await nl.replaceNeighbour({ dev: vx.index, ip: '10.244.2.0', mac: REMOTE_MAC, permanent: true })
  await nl.appendFdb({ dev: vx.index, mac: REMOTE_MAC, dst: '192.168.91.2' })
  await nl.appendFdb({ dev: vx.index, mac: REMOTE_MAC, dst: '192.168.91.2' })
  await nl.replaceRoute({ dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: vx.index, onlink: true })

  t.same(await nl.neighbours(vx.index), [{ dev: vx.index, family: 'IPv4', ip: '10.244.2.0', mac: REMOTE_MAC, permanent: true }])
  t.same(await nl.fdb(vx.index), [{ dev: vx.index, mac: REMOTE_MAC, dst: '192.168.91.2', permanent: true, self: true }], 'a repeated append adds nothing')
  t.same(await nl.routes('IPv4'), [
    { family: 'IPv4', dst: '192.168.91.0/24', gateway: null, dev: eth0, onlink: false, scope: 253, protocol: 2, src: '192.168.91.1', type: 1 },
    { family: 'IPv4', dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: vx.index, onlink: true, scope: 0, protocol: 3, src: null, type: 1 },
  ], 'the connected route of the uplink (no route for the /32), then ours')
  t.same(await nl.routes('IPv6'), [])

  // Lease removed: each of the three deleted on its own, twice without error.
  for (let i = 0; i < 2; i++) {
    await nl.deleteRoute({ dst: '10.244.2.0/24', dev: vx.index })
    await nl.deleteFdb({ dev: vx.index, mac: REMOTE_MAC, dst: '192.168.91.2' })
    await nl.deleteNeighbour({ dev: vx.index, ip: '10.244.2.0' })
  }
  t.same((await nl.routes('IPv4')).map(r => r.dst), ['192.168.91.0/24'])
  t.same(await nl.fdb(), [])
  t.same(await nl.neighbours(), [])
  t.equal(nl.calls.get('appendFdb'), 2)
})

t.test('refusals', async t => {
  const cases: Array<{ name: string, errno: string, run: (nl: FakeNetlink, eth0: number, vx: number, down: number) => Promise<unknown> }> = [
    { name: 'a name in use', errno: 'EEXIST', run: async (nl, eth0) => await nl.createVxlan({ name: 'flannel.1', vni: 2, link: eth0 }) },
    { name: 'a VNI in use on the port', errno: 'EEXIST', run: async nl => await nl.createVxlan({ name: 'other', vni: 1 }) },
    { name: 'a missing uplink', errno: 'ENODEV', run: async nl => await nl.createVxlan({ name: 'other', vni: 3, link: 99 }) },
    { name: 'a VNI above 24 bits', errno: 'ERANGE', run: async nl => await nl.createVxlan({ name: 'other', vni: 1 << 24 }) },
    { name: 'a malformed MAC', errno: 'EINVAL', run: async nl => await nl.createVxlan({ name: 'other', vni: 4, mac: '02:00' }) },
    { name: 'an MTU above uplink − 50', errno: 'EINVAL', run: async (nl, _e, vx) => { await nl.setMtu(vx, 1451) } },
    { name: 'enslaving to a non-bridge', errno: 'ENOTSUP', run: async (nl, eth0, vx) => { await nl.setMaster(vx, eth0) } },
    { name: 'setting up a missing link', errno: 'ENODEV', run: async nl => { await nl.setUp(99) } },
    { name: 'a route on a missing link', errno: 'ENODEV', run: async nl => { await nl.replaceRoute({ dst: '10.244.2.0/24', dev: 99 }) } },
    { name: 'an IPv4 route on a down link', errno: 'ENETDOWN', run: async (nl, _e, _v, down) => { await nl.replaceRoute({ dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: down, onlink: true }) } },
    { name: 'an off-link gateway without onlink', errno: 'ENETUNREACH', run: async (nl, _e, vx) => { await nl.replaceRoute({ dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: vx }) } },
    { name: 'a host-gw gateway outside the uplink subnet', errno: 'ENETUNREACH', run: async (nl, eth0) => { await nl.replaceRoute({ dst: '10.244.2.0/24', gateway: '192.168.92.2', dev: eth0 }) } },
    { name: 'a gateway of the other family', errno: 'EINVAL', run: async (nl, eth0) => { await nl.replaceRoute({ dst: '10.244.2.0/24', gateway: 'fd00::1', dev: eth0 }) } },
    { name: 'a neighbour on a missing link', errno: 'ENODEV', run: async nl => { await nl.replaceNeighbour({ dev: 99, ip: '10.244.2.0', mac: REMOTE_MAC }) } },
    { name: 'an FDB entry on a missing link', errno: 'ENODEV', run: async nl => { await nl.appendFdb({ dev: 99, mac: REMOTE_MAC, dst: '192.168.91.2' }) } },
    { name: 'an FDB entry with a bad MAC', errno: 'EINVAL', run: async (nl, _e, vx) => { await nl.appendFdb({ dev: vx, mac: 'nope', dst: '192.168.91.2' }) } },
  ]
  for (const c of cases) {
    const { nl, eth0 } = await node()
    const vx = (await nl.createVxlan({ name: 'flannel.1', vni: 1, local: '192.168.91.1', link: eth0 })).index
    await nl.setUp(vx)
    const down = (await nl.createBridge({ name: 'br0' })).index
    await t.rejects(c.run(nl, eth0, vx, down), refused(c.errno), c.name)
  }
})

t.test('routes: replace by dst, host-gw gateways, IPv6', async t => {
  const { nl, eth0 } = await node()
  await nl.replaceRoute({ dst: '10.244.2.0/24', gateway: '192.168.91.2', dev: eth0 })
  await nl.replaceRoute({ dst: '10.244.2.7/24', gateway: '192.168.91.3', dev: eth0, protocol: 42 })
  t.same((await nl.routes('IPv4')).filter(r => r.protocol !== 2), [
    { family: 'IPv4', dst: '10.244.2.0/24', gateway: '192.168.91.3', dev: eth0, onlink: false, scope: 0, protocol: 42, src: null, type: 1 },
  ], 'one route per dst, the later gateway wins, dst masked')
  await nl.deleteRoute({ dst: '10.244.2.0/24', gateway: '192.168.91.2' })
  t.equal((await nl.routes('IPv4')).length, 2, 'a delete naming another gateway removes nothing')
  await nl.deleteRoute({ dst: '10.244.2.0/24', gateway: '192.168.91.3' })
  t.equal((await nl.routes('IPv4')).length, 1)

  await nl.replaceRoute({ dst: '10.99.0.0/16', dev: eth0 })
  await nl.replaceRoute({ dst: '10.244.5.0/24', gateway: '10.99.1.1', dev: eth0 })
  t.ok((await nl.routes('IPv4')).some(r => r.gateway === '10.99.1.1'), 'a gateway covered by a direct route is on-link')

  const br = await nl.createBridge({ name: 'br0' })
  await t.rejects(nl.replaceRoute({ dst: 'fd00:2::/64', gateway: 'fe80::1', dev: br.index }), refused('ENETDOWN'), 'IPv6 refuses a down link too')
  await nl.setUp(br.index)
  await t.rejects(nl.replaceRoute({ dst: 'fd00:3::/64', gateway: 'fd00:9::2', dev: br.index }), refused('EHOSTUNREACH'), 'IPv6 off-link gateway')
  await nl.replaceRoute({ dst: 'fd00:2::/64', gateway: 'fe80::1', dev: br.index })
  await nl.replaceRoute({ dst: 'FD00:3:0::/64', gateway: 'fd00:9::2', dev: br.index, onlink: true })
  t.same((await nl.routes('IPv6')).map(r => [r.dst, r.gateway, r.onlink]), [['fd00:2::/64', 'fe80::1', false], ['fd00:3::/64', 'fd00:9::2', true]],
    'IPv6: a link-local gateway needs no covering route; onlink needs none either')
})

t.test('neighbours and FDB: replace and append semantics', async t => {
  const { nl, eth0 } = await node()
  const vx = (await nl.createVxlan({ name: 'flannel.1', vni: 1, link: eth0 })).index
  await nl.replaceNeighbour({ dev: vx, ip: '10.244.2.0', mac: REMOTE_MAC })
  await nl.replaceNeighbour({ dev: vx, ip: '10.244.2.0', mac: '02:AA:BB:CC:DD:EE' })
  await nl.replaceNeighbour({ dev: vx, ip: 'fd00:2::', mac: REMOTE_MAC, permanent: false })
  t.same((await nl.neighbours(vx)).map(n => [n.ip, n.mac, n.permanent]), [['10.244.2.0', '02:aa:bb:cc:dd:ee', true], ['fd00:2::', REMOTE_MAC, false]])

  // A changed VtepMAC: the old MAC's entry stays until deleted (the kernel keys the FDB by MAC).
  const ZERO = '00:00:00:00:00:00'
  const list = async (): Promise<string[]> => (await nl.fdb(vx)).map(f => `${f.mac} ${f.dst ?? ''}`)
  await nl.appendFdb({ dev: vx, mac: REMOTE_MAC, dst: '192.168.91.2' })
  await nl.appendFdb({ dev: vx, mac: '02:aa:bb:cc:dd:ee', dst: '192.168.91.2' })
  await nl.appendFdb({ dev: vx, mac: REMOTE_MAC, dst: '192.168.91.9' })
  t.same(await list(), [`${REMOTE_MAC} 192.168.91.2`, '02:aa:bb:cc:dd:ee 192.168.91.2'], 'append to a unicast MAC: silently nothing')
  await nl.replaceFdb({ dev: vx, mac: REMOTE_MAC, dst: '192.168.91.9' })
  t.same(await list(), ['02:aa:bb:cc:dd:ee 192.168.91.2', `${REMOTE_MAC} 192.168.91.9`], 'replace moves a unicast MAC')
  await nl.appendFdb({ dev: vx, mac: ZERO, dst: '192.168.91.2' })
  await nl.appendFdb({ dev: vx, mac: ZERO, dst: '192.168.91.3' })
  t.equal((await nl.fdb(vx)).filter(f => f.mac === ZERO).length, 2, 'the all-zeros MAC takes several remotes')
  await t.rejects(nl.replaceFdb({ dev: vx, mac: ZERO, dst: '192.168.91.4' }), refused('ENOTSUP'), 'and refuses replace')
  await nl.deleteFdb({ dev: vx, mac: ZERO, dst: '192.168.91.3' })
  t.equal((await nl.fdb(vx)).filter(f => f.mac === ZERO).length, 1, 'delete with dst: that remote only')
  await nl.deleteFdb({ dev: vx, mac: ZERO })
  await nl.deleteFdb({ dev: vx, mac: REMOTE_MAC.toUpperCase() })
  t.same((await nl.fdb(vx)).map(f => f.mac), ['02:aa:bb:cc:dd:ee'], 'without dst: every remote of the MAC')
  await nl.deleteFdb({ dev: vx, mac: REMOTE_MAC })
  await nl.deleteNeighbour({ dev: vx, ip: '10.9.9.9' })
  t.equal((await nl.neighbours(vx)).length, 2, 'deleting a missing entry is no error and removes nothing')
})

t.test('links: MTU, bridges, masters', async t => {
  const { nl, eth0 } = await node()
  t.equal((await nl.createVxlan({ name: 'big', vni: 2, link: eth0, mtu: 9000 })).mtu, 1450, 'an MTU above uplink − 50 is clamped at creation')
  t.equal((await nl.createVxlan({ name: 'v6', vni: 3, link: eth0, local: 'fd00::1' })).mtu, 1430, 'IPv6 underlay: uplink − 70')
  t.equal((await nl.createVxlan({ name: 'bare', vni: 4 })).mtu, 1500, 'no uplink: the kernel keeps 1500')
  const mac = '02:00:00:00:00:0a'
  t.equal((await nl.createVxlan({ name: 'again', vni: 5, port: 4789, mac: mac.toUpperCase() })).mac, mac, 'a published MAC is kept')
  await nl.setMtu((await nl.linkDetails('big'))?.index ?? 0, 1400)
  t.equal((await nl.linkDetails('big'))?.mtu, 1400)

  const br = await nl.createBridge({ name: 'ferry0', mtu: 1450 })
  t.match(br, { kind: 'bridge', mtu: 1450, up: false, master: 0 })
  t.same(await nl.createBridge({ name: 'ferry0' }), br, 'an existing bridge is returned as it is')
  await t.rejects(nl.createBridge({ name: 'eth0' }), refused('EEXIST'), 'the name of another kind of link')
  const port = nl.addLink({ name: 'veth1', kind: 'veth' })
  await nl.setMaster(port.index, br.index)
  t.equal((await nl.linkDetails('veth1'))?.master, br.index)
  await nl.setMaster(port.index, 0)
  t.equal((await nl.linkDetails('veth1'))?.master, 0, 'master 0 releases')
  await nl.setMaster(port.index, br.index)
  await nl.deleteLink('ferry0')
  t.equal((await nl.linkDetails('veth1'))?.master, 0, 'deleting the bridge releases its ports')
  t.same((await nl.listLinks()).map(l => l.name), ['eth0', 'big', 'v6', 'bare', 'again', 'veth1'])
  t.equal(await nl.linkDetails('ferry0'), null)
  t.equal(await nl.linkByName('ferry0'), null)
})

t.test('a deleted link takes its entries, and its vxlan devices, with it', async t => {
  const { nl, eth0 } = await node()
  const vx = (await nl.createVxlan({ name: 'flannel.1', vni: 1, link: eth0 })).index
  await nl.setUp(vx)
  await nl.addAddress(vx, '10.244.1.0', 32)
  await nl.replaceNeighbour({ dev: vx, ip: '10.244.2.0', mac: REMOTE_MAC })
  await nl.appendFdb({ dev: vx, mac: REMOTE_MAC, dst: '192.168.91.2' })
  await nl.replaceRoute({ dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: vx, onlink: true })
  await nl.replaceRoute({ dst: '10.244.3.0/24', gateway: '192.168.91.3', dev: eth0 })

  await nl.deleteLink('flannel.1')
  await nl.deleteLink('flannel.1')
  t.same(await nl.addresses(vx), [])
  t.same(await nl.neighbours(), [])
  t.same(await nl.fdb(), [])
  t.same((await nl.routes('IPv4')).map(r => r.dst), ['192.168.91.0/24', '10.244.3.0/24'], 'routes of other links stay')
  const again = await nl.createVxlan({ name: 'flannel.1', vni: 1, link: eth0 })
  t.not(again.index, vx, 'a recreated device gets a new index')

  await nl.deleteLink('eth0')
  t.same(await nl.listLinks(), [], 'the uplink takes the vxlan device riding on it')
  t.same(await nl.routes('IPv4'), [])
})

t.test('injected failures, call counts, the IPVS-mode name', async t => {
  const { nl, eth0 } = await node()
  nl.failNext('appendFdb', 'ENOBUFS')
  await t.rejects(nl.appendFdb({ dev: eth0, mac: REMOTE_MAC, dst: '192.168.91.2' }), refused('ENOBUFS'))
  await nl.appendFdb({ dev: eth0, mac: REMOTE_MAC, dst: '192.168.91.2' })
  t.equal((await nl.fdb(eth0)).length, 1, 'only the next call fails')
  t.equal(nl.calls.get('appendFdb'), 2)

  const links = new FakeLinks()
  const as: Netlink = links
  links.dummyAvailable = false
  await t.rejects(as.createDummy('kube-ipvs0'), refused('ENOTSUP'))
  links.dummyAvailable = true
  const d = await as.createDummy('kube-ipvs0')
  t.same(await as.createDummy('kube-ipvs0'), d, 'an existing dummy is reused')
  t.match(await as.linkDetails('kube-ipvs0'), { kind: 'dummy', up: false })
})
