// The overlay component without etcd (--pod-cidr), over the stateful netlink fake: the device and its
// address, the node file, readiness, debug state, and a device deleted behind its back.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, type Config } from '../../pkg/config/config.js'
import { silentLogger } from '../../pkg/log/log.js'
import { FakeNetlink } from '../../pkg/netlink/fake.js'
import { OverlayComponent, leasePeer, peersFor } from '../../pkg/overlay/component.js'
import { parseCidr, type Cidr } from '../../pkg/net/cidr.js'
import type { Lease } from '../../pkg/overlay/lease-codec.js'

function config (dir: string, extra: string[]): Config {
  const c = loadConfig(['--overlay', '--pod-cidr', '10.244.7.0/24', '--cluster-cidr', '10.244.0.0/16', '--overlay-iface', 'eth0',
    '--subnet-file', join(dir, 'subnet.env'), ...extra])
  if (c === 'help') throw new Error('help')
  return c
}

function fakeNode (): FakeNetlink {
  const nl = new FakeNetlink()
  const eth0 = nl.addLink({ name: 'eth0', mtu: 1500, up: true })
  void nl.addAddress(eth0.index, '192.168.50.7', 24)
  return nl
}

t.test('vxlan: device, address, node file, ready; a deleted device comes back with its MAC', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-ovc-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const nl = fakeNode()
  const c = new OverlayComponent({ config: config(dir, ['--ip-masq']), log: silentLogger, netlink: nl, reconcileMs: 20 })
  t.same(c.ready(), { ready: false, reason: 'no subnet lease yet' })
  await c.start()
  t.teardown(async () => { await c.stop() })
  t.same(c.ready(), { ready: true, reason: '' })
  t.equal(readFileSync(join(dir, 'subnet.env'), 'utf8'), 'FERRY_NETWORK=10.244.0.0/16\nFERRY_SUBNET=10.244.7.1/24\nFERRY_MTU=1450\nFERRY_IPMASQ=true\n')
  const dev = await nl.linkDetails('ferry.1')
  t.match(dev, { kind: 'vxlan', up: true, mtu: 1450, vxlan: { vni: 1, port: 8472, local: '192.168.50.7', learning: false } })
  t.same((await nl.addresses(dev?.index)).map(a => `${a.ip}/${a.prefix}`), ['10.244.7.0/32'], 'the subnet\'s network address, /32')
  const state = c.debugState() as { overlay: { subnets: string[], uplink: { name: string, publicIP: string } } }
  t.same([state.overlay.subnets, state.overlay.uplink.name, state.overlay.uplink.publicIP], [['10.244.7.0/24'], 'eth0', '192.168.50.7'])
  const mac = dev?.mac
  await nl.deleteLink('ferry.1')
  const end = Date.now() + 5000
  while (await nl.linkDetails('ferry.1') === null && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal((await nl.linkDetails('ferry.1'))?.mac, mac, 'the slow-period check recreated the device with the MAC its lease published')
})

t.test('host-gw: the uplink MTU, no device', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-ovc-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const nl = fakeNode()
  const c = new OverlayComponent({ config: config(dir, ['--overlay-backend', 'host-gw']), log: silentLogger, netlink: nl })
  await c.start()
  t.teardown(async () => { await c.stop() })
  t.match(readFileSync(join(dir, 'subnet.env'), 'utf8'), /^FERRY_NETWORK=10\.244\.0\.0\/16\nFERRY_SUBNET=10\.244\.7\.1\/24\nFERRY_MTU=1500\nFERRY_IPMASQ=false\n$/)
  t.equal(await nl.linkDetails('ferry.1'), null)
})

t.test('a missing uplink is a clear error', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-ovc-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const c = new OverlayComponent({ config: config(dir, []), log: silentLogger, netlink: new FakeNetlink() })
  await t.rejects(c.start(), /--overlay-iface eth0: no such link/)
})

t.test('dual-stack: --public-ipv6 picks the IPv6 underlay address; a device per family; the node file\'s _IPV6 keys', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-ovc-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const nl = fakeNode()
  const eth0 = await nl.linkDetails('eth0')
  await nl.addAddress(eth0?.index ?? 0, 'fd00:50::7', 64)
  await nl.addAddress(eth0?.index ?? 0, 'fd00:50::77', 64)
  const cfg = loadConfig(['--overlay', '--pod-cidr', '10.244.7.0/24,fd00:10:244:7::/64', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/56',
    '--overlay-iface', 'eth0', '--public-ipv6', 'fd00:50::77', '--subnet-file', join(dir, 'subnet.env')])
  if (cfg === 'help') throw new Error('help')
  const c = new OverlayComponent({ config: cfg, log: silentLogger, netlink: nl })
  await c.start()
  t.teardown(async () => { await c.stop() })
  t.equal(readFileSync(join(dir, 'subnet.env'), 'utf8'), 'FERRY_NETWORK=10.244.0.0/16\nFERRY_SUBNET=10.244.7.1/24\nFERRY_MTU=1430\nFERRY_IPMASQ=false\n' +
    'FERRY_NETWORK_IPV6=fd00:10:244::/56\nFERRY_SUBNET_IPV6=fd00:10:244:7::1/64\n', 'both families; the MTU leaves room for the IPv6 outer header')
  const v6 = await nl.linkDetails('ferry-v6.1')
  t.match(v6, { kind: 'vxlan', mtu: 1430, vxlan: { vni: 1, port: 8472, local: 'fd00:50::77' } }, 'the IPv6 device sends from --public-ipv6, not the first address')
  t.same((await nl.addresses(v6?.index)).map(a => `${a.ip}/${a.prefix}`), ['fd00:10:244:7::/128'])
  t.match(await nl.linkDetails('ferry.1'), { vxlan: { local: '192.168.50.7' } })
  const state = c.debugState() as { overlay: { subnets: string[], uplink: { publicIPv6: string } } }
  t.same([state.overlay.subnets, state.overlay.uplink.publicIPv6], [['10.244.7.0/24', 'fd00:10:244:7::/64'], 'fd00:50::77'])
})

t.test('leasePeer: an IPv6 subnet goes to PublicIPv6 only when both ends have an IPv6 underlay', async t => {
  const cidr = (s: string): Cidr => parseCidr(s) ?? (() => { throw new Error(s) })()
  const lease = (subnet: string, publicIPv6?: string): Lease => ({
    key: `/ferry/network/subnets/${subnet.replace('/', '-')}`, subnet: cidr(subnet), leaseId: '7', modRevision: '3',
    attrs: { publicIP: '192.168.92.11', ...(publicIPv6 !== undefined ? { publicIPv6 } : {}), backendType: 'vxlan', backendData: { vni: 1, vtepMAC: '02:00:00:00:00:0b' } },
  })
  const cases: Array<{ name: string, subnet: string, peer6?: string, ours6: boolean, want: string }> = [
    { name: 'IPv4 subnet', subnet: '10.244.3.0/24', peer6: 'fd00:92::11', ours6: true, want: '192.168.92.11' },
    { name: 'IPv6 subnet, both have an IPv6 underlay', subnet: 'fd00:10:244:3::/64', peer6: 'fd00:92::11', ours6: true, want: 'fd00:92::11' },
    // The bug: these two were dropped, so IPv6 pods had no route to that node at all.
    { name: 'IPv6 subnet, the peer has no IPv6 underlay', subnet: 'fd00:10:244:3::/64', ours6: true, want: '192.168.92.11' },
    { name: 'IPv6 subnet, this node has no IPv6 underlay', subnet: 'fd00:10:244:3::/64', peer6: 'fd00:92::11', ours6: false, want: '192.168.92.11' },
  ]
  for (const c of cases) {
    const p = leasePeer(lease(c.subnet, c.peer6), c.ours6)
    t.same({ publicIP: p.publicIP, subnet: p.subnet.text, vtepMAC: p.vtepMAC }, { publicIP: c.want, subnet: c.subnet, vtepMAC: '02:00:00:00:00:0b' }, c.name)
  }
  const hg: Lease = { ...lease('10.244.3.0/24'), attrs: { publicIP: '192.168.92.11', backendType: 'host-gw' } }
  t.notOk('vtepMAC' in leasePeer(hg, true), 'host-gw leases carry no MAC')
  t.equal(leasePeer(lease('10.244.3.0/24'), false).vni, 1, 'the lease\'s VNI goes along, for the backend to compare')
  const noVNI: Lease = { ...lease('10.244.3.0/24'), attrs: { publicIP: '192.168.92.11', backendType: 'vxlan', backendData: { vtepMAC: '02:00:00:00:00:0b' } } }
  t.same(leasePeer(noVNI, false), { key: noVNI.key, subnet: noVNI.subnet, publicIP: '192.168.92.11', vtepMAC: '02:00:00:00:00:0b' }, 'a VNI-less lease is a peer by its VtepMAC')
})

t.test('peersFor: this node\'s leases and other backends\' leases are not programmed (flannel ignores them)', async t => {
  const cidr = (s: string): Cidr => parseCidr(s) ?? (() => { throw new Error(s) })()
  const vx = (subnet: string, ip: string): Lease => ({
    key: `/ferry/network/subnets/${subnet.replace('/', '-')}`, subnet: cidr(subnet), leaseId: '7', modRevision: '3',
    attrs: { publicIP: ip, backendType: 'vxlan', backendData: { vni: 1, vtepMAC: '02:00:00:00:00:0b' } },
  })
  const hg = (subnet: string, ip: string): Lease => ({ ...vx(subnet, ip), attrs: { publicIP: ip, backendType: 'host-gw' } })
  const leases = [vx('10.244.1.0/24', '192.168.92.11'), hg('10.244.2.0/24', '192.168.92.12'), vx('10.244.3.0/24', '192.168.92.13'), hg('10.244.4.0/24', '192.168.92.14')]
  const own = (l: Lease): boolean => l.subnet.text === '10.244.3.0/24' || l.subnet.text === '10.244.4.0/24'
  const hgView = peersFor(leases, { own, backendType: 'host-gw', ipv6Underlay: false })
  t.same(hgView.peers.map(p => p.subnet.text), ['10.244.2.0/24'], 'host-gw: no route via a vxlan node\'s address')
  t.same(hgView.ignored.map(l => l.subnet.text), ['10.244.1.0/24'])
  const vxView = peersFor(leases, { own, backendType: 'vxlan', ipv6Underlay: false })
  t.same(vxView.peers.map(p => p.subnet.text), ['10.244.1.0/24'])
  t.same(vxView.ignored.map(l => l.subnet.text), ['10.244.2.0/24'])
})
