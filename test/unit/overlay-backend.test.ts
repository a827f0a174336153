// The overlay backends against FakeNetlink: vxlan (device, per-peer neighbour/FDB/route, diffs, reconcile)
// and host-gw (refusal, routes, reconcile). Kernel calls are recorded in order; a no-op makes none.
// Addresses: underlay 192.168.91.0/24 (node n is .n), pod subnets 10.244.n.0/24 and fd00:10:244:n::/64.
import t from 'tap'
import { parseCidr, type Cidr } from '../../pkg/net/cidr.js'
import { RTPROT_FERRY } from '../../pkg/netlink/routes.js'
import { FakeNetlink } from '../../pkg/netlink/fake.js'
import type { Netlink } from '../../pkg/netlink/netlink.js'
import { createOverlayBackend, type OverlayBackend, type OverlayPeer } from '../../pkg/overlay/backend.js'

function cidr (text: string): Cidr {
  const c = parseCidr(text)
  if (c === null) throw new Error(`bad CIDR ${text}`)
  return c
}

const mac = (n: number): string => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`

function peer (n: number, over: Partial<OverlayPeer> = {}): OverlayPeer {
  return { key: `/ferry/network/subnets/10.244.${n}.0-24`, subnet: cidr(`10.244.${n}.0/24`), publicIP: `192.168.91.${n}`, vtepMAC: mac(n), ...over }
}

function peer6 (n: number, over: Partial<OverlayPeer> = {}): OverlayPeer {
  return { key: `/ferry/network/subnets/fd00:10:244:${n}::-64`, subnet: cidr(`fd00:10:244:${n}::/64`), publicIP: `fd00:91::${n}`, vtepMAC: mac(n), ...over }
}

interface Node {
  fake: FakeNetlink
  /** The fake behind a recorder: every kernel call by name, in order, in `ops`. */
  nl: Netlink
  ops: string[]
  uplink: { index: number, name: string, mtu: number }
}

const READS = new Set(['linkByName', 'linkDetails', 'listLinks', 'addresses', 'routes', 'neighbours', 'fdb'])

async function node (opts: { mtu?: number, v6?: boolean } = {}): Promise<Node> {
  const fake = new FakeNetlink()
  const eth0 = fake.addLink({ name: 'eth0', mtu: opts.mtu ?? 1500 })
  await fake.addAddress(eth0.index, '192.168.91.1', 24)
  if (opts.v6 === true) await fake.addAddress(eth0.index, 'fd00:91::1', 64)
  const ops: string[] = []
  const nl = new Proxy(fake, {
    get (target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver)
      if (typeof v !== 'function') return v
      return (...args: unknown[]) => {
        ops.push(String(prop))
        return (v as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  }) as Netlink
  fake.calls.clear()
  return { fake, nl, ops, uplink: { index: eth0.index, name: 'eth0', mtu: opts.mtu ?? 1500 } }
}

/** The calls that change the kernel, in order. */
const writes = (ops: readonly string[]): string[] => ops.filter(o => !READS.has(o))

/** One device's permanent neighbours, FDB entries and gateway routes, sorted. */
async function tables (fake: FakeNetlink, dev: string): Promise<{ neigh: string[], fdb: string[], routes: string[] }> {
  const d = await fake.linkDetails(dev)
  if (d === null) return { neigh: [], fdb: [], routes: [] }
  const routes = [...await fake.routes('IPv4'), ...await fake.routes('IPv6')].filter(r => r.dev === d.index && r.gateway !== null)
  return {
    neigh: (await fake.neighbours(d.index)).filter(n => n.permanent).map(n => `${n.ip} ${n.mac ?? ''}`).sort(),
    fdb: (await fake.fdb(d.index)).map(f => `${f.mac} ${f.dst ?? ''}`).sort(),
    routes: routes.map(r => `${r.dst} via ${r.gateway ?? ''}${r.onlink ? ' onlink' : ''}`).sort(),
  }
}

async function vxlan (n: Node, opts: { vni?: number, port?: number, publicIPv6?: string, publicIP?: string } = {}): Promise<OverlayBackend> {
  return createOverlayBackend('vxlan', {
    netlink: n.nl,
    uplink: n.uplink,
    publicIP: opts.publicIP ?? '192.168.91.1',
    ...(opts.publicIPv6 !== undefined ? { publicIPv6: opts.publicIPv6 } : {}),
  }, { ...(opts.vni !== undefined ? { vni: opts.vni } : {}), ...(opts.port !== undefined ? { port: opts.port } : {}) })
}

/** A node with ferry.1 prepared, configured for 10.244.1.0/24 and peers 2 and 3 programmed. */
async function running (): Promise<{ n: Node, b: OverlayBackend, vtepMAC: string }> {
  const n = await node()
  const b = await vxlan(n)
  const { backendData } = await b.prepare()
  await b.configure({ subnets: [cidr('10.244.1.0/24')] })
  await b.setPeers([peer(2), peer(3)])
  n.ops.length = 0
  return { n, b, vtepMAC: backendData?.vtepMAC ?? '' }
}

const PEERS_2_3 = {
  neigh: [`10.244.2.0 ${mac(2)}`, `10.244.3.0 ${mac(3)}`],
  fdb: [`${mac(2)} 192.168.91.2`, `${mac(3)} 192.168.91.3`],
  routes: ['10.244.2.0/24 via 10.244.2.0 onlink', '10.244.3.0/24 via 10.244.3.0 onlink'],
}

t.test('vxlan prepare creates ferry.<vni> as the issue says and publishes its MAC', async t => {
  const n = await node()
  const b = await vxlan(n)
  const got = await b.prepare()
  const d = await n.fake.linkDetails('ferry.1')
  t.match(d, { kind: 'vxlan', mtu: 1450, up: false, vxlan: { vni: 1, port: 8472, local: '192.168.91.1', link: n.uplink.index, learning: false } })
  t.same(got, { backendData: { vni: 1, vtepMAC: d?.mac }, mtu: 1450 })
  t.match(d?.mac, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'random locally administered unicast MAC')
  t.same(writes(n.ops), ['createVxlan'])

  await b.configure({ subnets: [cidr('10.244.1.0/24')] })
  t.same((await n.fake.addresses(d?.index)).map(a => `${a.ip}/${a.prefix}`), ['10.244.1.0/32'], '<subnet>.0/32, no prefix route')
  t.equal((await n.fake.linkDetails('ferry.1'))?.up, true, 'up')

  const other = await node()
  const c = await vxlan(other, { vni: 42, port: 4789 })
  await c.prepare()
  t.match(await other.fake.linkDetails('ferry.42'), { vxlan: { vni: 42, port: 4789 } }, 'configured VNI and port')
})

t.test('vxlan MTU: uplink − 50 over IPv4, − 70 over IPv6; pods get the smaller', async t => {
  const cases = [
    { name: 'IPv4 underlay, 1500', mtu: 1500, want: { 'ferry.1': 1450 }, pods: 1450 },
    { name: 'IPv4 underlay, jumbo', mtu: 9000, want: { 'ferry.1': 8950 }, pods: 8950 },
    { name: 'IPv6-only underlay', mtu: 1500, publicIP: 'fd00:91::1', want: { 'ferry-v6.1': 1430 }, pods: 1430 },
    { name: 'dual-stack underlay', mtu: 1500, publicIPv6: 'fd00:91::1', want: { 'ferry.1': 1450, 'ferry-v6.1': 1430 }, pods: 1430 },
  ]
  for (const c of cases) {
    const n = await node({ mtu: c.mtu, v6: true })
    const b = await vxlan(n, { ...(c.publicIP !== undefined ? { publicIP: c.publicIP } : {}), ...(c.publicIPv6 !== undefined ? { publicIPv6: c.publicIPv6 } : {}) })
    const got = await b.prepare()
    t.equal(got.mtu, c.pods, `${c.name}: pods' MTU`)
    const devices = (await n.fake.listLinks()).filter(l => l.kind === 'vxlan')
    t.same(Object.fromEntries(devices.map(d => [d.name, d.mtu])), c.want, `${c.name}: devices`)
    t.same(new Set(devices.map(d => d.mac)), new Set([got.backendData?.vtepMAC]), `${c.name}: one MAC on every device, the published one`)
  }
  const tiny = await node({ mtu: 100 })
  t.throws(() => createOverlayBackend('vxlan', { netlink: tiny.nl, uplink: tiny.uplink, publicIP: '192.168.91.1' }, {}), { code: 'FERRY_ERR_CONFIG' }, 'uplink MTU too small')
})

t.test('vxlan prepare adopts a compatible device and keeps its MAC; recreates an incompatible one', async t => {
  const n = await node()
  const kept = await n.fake.createVxlan({ name: 'ferry.1', vni: 1, local: '192.168.91.1', link: n.uplink.index, learning: false, mtu: 1400, mac: '02:aa:00:00:00:01' })
  n.ops.length = 0
  const got = await (await vxlan(n)).prepare()
  t.equal(got.backendData?.vtepMAC, '02:aa:00:00:00:01')
  t.equal((await n.fake.linkDetails('ferry.1'))?.index, kept.index, 'same device')
  t.same(writes(n.ops), ['setMtu'], 'only its MTU fixed')
  t.equal((await n.fake.linkDetails('ferry.1'))?.mtu, 1450)

  const m = await node()
  await m.fake.createVxlan({ name: 'ferry.1', vni: 1, port: 4789, local: '192.168.91.1', link: m.uplink.index, mac: '02:aa:00:00:00:02' })
  m.ops.length = 0
  const again = await (await vxlan(m)).prepare()
  t.same(writes(m.ops), ['deleteLink', 'createVxlan'], 'another port: recreated')
  t.match(await m.fake.linkDetails('ferry.1'), { mac: '02:aa:00:00:00:02', vxlan: { port: 8472 } }, 'keeping the MAC it published')
  t.equal(again.backendData?.vtepMAC, '02:aa:00:00:00:02')

  const clash = await node()
  await clash.fake.createVxlan({ name: 'flannel.1', vni: 1, link: clash.uplink.index })
  await t.rejects((await vxlan(clash)).prepare(), { code: 'FERRY_ERR_CONFIG', message: /VNI 1 port 8472 is in use by flannel\.1/ })
})

t.test('vxlan setPeers programs neighbour, FDB, then route per peer; a repeat makes no kernel call', async t => {
  const n = await node()
  const b = await vxlan(n)
  await b.prepare()
  await b.configure({ subnets: [cidr('10.244.1.0/24')] })
  n.ops.length = 0
  await b.setPeers([peer(2), peer(3)])
  t.same(await tables(n.fake, 'ferry.1'), PEERS_2_3)
  t.same(writes(n.ops), ['replaceNeighbour', 'replaceNeighbour', 'replaceFdb', 'replaceFdb', 'replaceRoute', 'replaceRoute'], 'neighbours and FDB before any route')
  n.ops.length = 0
  const before = [...n.fake.calls]
  await b.setPeers([peer(3), peer(2)])
  t.same(n.ops, [], 'no-op: not even a read')
  t.same([...n.fake.calls], before, 'FakeNetlink.calls unchanged')
  t.match(b.state(), { type: 'vxlan', vni: 1, devices: [{ name: 'ferry.1', mtu: 1450 }], local: ['10.244.1.0/24'], peers: [{ key: peer(3).key }, { key: peer(2).key }], skipped: [] })
})

t.test('vxlan: a peer\'s VNI plays no part (as in flannel); another one is routed and warned about once', async t => {
  const n = await node()
  const logs: Array<[string, string, Record<string, unknown> | undefined]> = []
  const b = createOverlayBackend('vxlan', { netlink: n.nl, uplink: n.uplink, publicIP: '192.168.91.1', log: (level, msg, fields) => { logs.push([level, msg, fields]) } }, {})
  await b.prepare()
  await b.configure({ subnets: [cidr('10.244.1.0/24')] })
  const warns = (): Array<Record<string, unknown> | undefined> => logs.filter(([l, m]) => l === 'warn' && m.includes('another VNI')).map(([, , f]) => f)
  // Peer 2's lease names no VNI (flannel's older form), peer 3's VNI 7: both get all three entries.
  await b.setPeers([peer(2), peer(3, { vni: 7 })])
  t.same(await tables(n.fake, 'ferry.1'), PEERS_2_3, 'neighbour, FDB entry and route to both')
  t.same(warns(), [{ key: peer(3).key, vni: 7, ours: 1 }], 'one warning, for peer 3')
  t.match(b.state(), { otherVNI: [{ key: peer(3).key, vni: 7 }], skipped: [] })
  await b.setPeers([peer(2), peer(3, { vni: 7 })])
  await b.reconcile()
  t.equal(warns().length, 1, 'not repeated while it stays so')
  await b.setPeers([peer(2, { vni: 1 }), peer(3, { vni: 1 })])
  t.match(b.state(), { otherVNI: [] }, 'our VNI: nothing to say')
  await b.setPeers([peer(2), peer(3, { vni: 8 })])
  t.same(warns().map(f => f?.vni), [7, 8], 'warned again once it differs again')
  t.same(await tables(n.fake, 'ferry.1'), PEERS_2_3, 'the entries never moved')
  // A peer with no usable VtepMAC is skipped whatever its VNI, and not warned about for the VNI.
  await b.setPeers([peer(2), peer(4, { vtepMAC: 'ff:ff:ff:ff:ff:ff', vni: 9 })])
  t.same(warns().length, 2)
  t.match(b.state(), { skipped: [{ key: peer(4).key }], otherVNI: [] })
})

t.test('vxlan: with a VNI above 65535, a peer naming its low 16 bits is flagged as a 16-bit flannel node', async t => {
  const n = await node()
  const logs: Array<Record<string, unknown> | undefined> = []
  const b = createOverlayBackend('vxlan', { netlink: n.nl, uplink: n.uplink, publicIP: '192.168.91.1', log: (level, msg, fields) => { if (level === 'warn' && msg.includes('another VNI')) logs.push(fields) } }, { vni: 70000 })
  await b.prepare()
  await b.configure({ subnets: [cidr('10.244.1.0/24')] })
  // 70000 & 0xffff = 4464: what flannel on Windows or before v0.24.0 writes for VNI 70000.
  await b.setPeers([peer(2, { vni: 4464 }), peer(3, { vni: 7 })])
  t.match(logs, [{ key: peer(2).key, vni: 4464, ours: 70000, hint: /4464 is 70000 cut to 16 bits: a flannel node on Windows or older than v0\.24\.0/ }, { key: peer(3).key, vni: 7, ours: 70000 }])
  t.equal(logs[1]?.hint, undefined, 'another VNI, not ours cut: no hint')
})

t.test('vxlan setPeers diffs: removal, changed MAC, changed public IP, changed subnet', async t => {
  const { n, b } = await running()
  await b.setPeers([peer(2)])
  t.same(await tables(n.fake, 'ferry.1'), { neigh: [PEERS_2_3.neigh[0]], fdb: [PEERS_2_3.fdb[0]], routes: [PEERS_2_3.routes[0]] }, 'peer 3 gone: all three entries')
  t.same(writes(n.ops), ['deleteRoute', 'deleteFdb', 'deleteNeighbour'])

  n.ops.length = 0
  await b.setPeers([peer(2, { vtepMAC: '02:00:00:00:99:02' })])
  t.same(await tables(n.fake, 'ferry.1'), { neigh: ['10.244.2.0 02:00:00:00:99:02'], fdb: ['02:00:00:00:99:02 192.168.91.2'], routes: [PEERS_2_3.routes[0]] }, 'new MAC: old FDB entry deleted (flannel leaves it)')
  t.same(writes(n.ops), ['deleteFdb', 'replaceNeighbour', 'replaceFdb'], 'the route is untouched')

  n.ops.length = 0
  await b.setPeers([peer(2, { vtepMAC: '02:00:00:00:99:02', publicIP: '192.168.91.22' })])
  t.same((await tables(n.fake, 'ferry.1')).fdb, ['02:00:00:00:99:02 192.168.91.22'], 'the MAC moved to the new public IP')
  t.same(writes(n.ops), ['replaceFdb'])

  n.ops.length = 0
  await b.setPeers([peer(2, { vtepMAC: '02:00:00:00:99:02', publicIP: '192.168.91.22', subnet: cidr('10.244.20.0/24') })])
  t.same(await tables(n.fake, 'ferry.1'), { neigh: ['10.244.20.0 02:00:00:00:99:02'], fdb: ['02:00:00:00:99:02 192.168.91.22'], routes: ['10.244.20.0/24 via 10.244.20.0 onlink'] }, 'another subnet')
  await b.setPeers([])
  t.same(await tables(n.fake, 'ferry.1'), { neigh: [], fdb: [], routes: [] }, 'empty set: nothing left')
})

t.test('vxlan reconcile restores exactly what was deleted behind its back', async t => {
  const { n, b, vtepMAC } = await running()
  const dev = (await n.fake.linkDetails('ferry.1'))?.index ?? 0
  await b.reconcile()
  t.same(writes(n.ops), [], 'nothing missing: reads only')

  const cases: Array<{ name: string, damage: () => Promise<void>, want: string[] }> = [
    { name: 'route', damage: async () => { await n.fake.deleteRoute({ dst: '10.244.3.0/24', dev }) }, want: ['replaceRoute'] },
    { name: 'neighbour', damage: async () => { await n.fake.deleteNeighbour({ dev, ip: '10.244.2.0' }) }, want: ['replaceNeighbour'] },
    { name: 'FDB entry', damage: async () => { await n.fake.deleteFdb({ dev, mac: mac(3) }) }, want: ['replaceFdb'] },
    { name: 'FDB entry moved', damage: async () => { await n.fake.replaceFdb({ dev, mac: mac(3), dst: '192.168.91.77' }) }, want: ['replaceFdb'] },
    { name: 'route replaced elsewhere', damage: async () => { await n.fake.replaceRoute({ dst: '10.244.2.0/24', gateway: '192.168.91.9', dev: n.uplink.index }) }, want: ['replaceRoute'] },
    { name: 'neighbour made non-permanent', damage: async () => { await n.fake.replaceNeighbour({ dev, ip: '10.244.3.0', mac: mac(3), permanent: false }) }, want: ['replaceNeighbour'] },
    { name: 'address', damage: async () => { await n.fake.deleteAddress(dev, '10.244.1.0', 32) }, want: ['addAddress'] },
  ]
  for (const c of cases) {
    await c.damage()
    n.ops.length = 0
    await b.reconcile()
    t.same(writes(n.ops), c.want, `${c.name}: only that restored`)
    t.same(await tables(n.fake, 'ferry.1'), PEERS_2_3, `${c.name}: tables whole again`)
  }

  await n.fake.deleteLink('ferry.1')
  n.ops.length = 0
  await b.reconcile()
  const d = await n.fake.linkDetails('ferry.1')
  t.match(d, { mac: vtepMAC, up: true, mtu: 1450, vxlan: { vni: 1, learning: false } }, 'device recreated with the published MAC, up')
  t.same((await n.fake.addresses(d?.index)).map(a => a.ip), ['10.244.1.0'], 'its address')
  t.same(await tables(n.fake, 'ferry.1'), PEERS_2_3, 'every peer replayed')
  t.match(b.state(), { recreated: 1 })
  n.ops.length = 0
  await b.reconcile()
  t.same(writes(n.ops), [], 'and then steady')
})

t.test('vxlan: a failed step is retried by the next sync, and the route waits for its neighbour and FDB entry', async t => {
  const n = await node()
  const b = await vxlan(n)
  await b.prepare()
  await b.configure({ subnets: [cidr('10.244.1.0/24')] })
  n.fake.failNext('replaceFdb', 'ENOBUFS')
  await t.rejects(b.setPeers([peer(2), peer(3)]), { code: 'FERRY_ERR_APPLY', message: /FDB/ })
  t.same(await tables(n.fake, 'ferry.1'), { neigh: PEERS_2_3.neigh, fdb: [PEERS_2_3.fdb[1]], routes: [PEERS_2_3.routes[1]] }, 'peer 2 has no route without its FDB entry')
  n.ops.length = 0
  await b.setPeers([peer(2), peer(3)])
  t.same(writes(n.ops), ['replaceFdb', 'replaceRoute'], 'only what failed')
  t.same(await tables(n.fake, 'ferry.1'), PEERS_2_3)
})

t.test('vxlan: entries a previous run left on an adopted device are taken over, stale ones removed', async t => {
  const n = await node()
  const vx = await n.fake.createVxlan({ name: 'ferry.1', vni: 1, local: '192.168.91.1', link: n.uplink.index, learning: false, mac: '02:aa:00:00:00:01' })
  await n.fake.setUp(vx.index)
  for (const p of [peer(2), peer(9)]) {
    const gw = p.subnet.text.replace('/24', '')
    await n.fake.replaceNeighbour({ dev: vx.index, ip: gw, mac: p.vtepMAC ?? '' })
    await n.fake.appendFdb({ dev: vx.index, mac: p.vtepMAC ?? '', dst: p.publicIP })
    await n.fake.replaceRoute({ dst: p.subnet.text, gateway: gw, dev: vx.index, onlink: true })
  }
  const b = await vxlan(n)
  await b.prepare()
  await b.configure({ subnets: [cidr('10.244.1.0/24')] })
  n.ops.length = 0
  await b.setPeers([peer(2), peer(3)])
  t.same(await tables(n.fake, 'ferry.1'), PEERS_2_3, 'peer 9 (gone while ferry was down) removed')
  t.same(writes(n.ops), ['deleteRoute', 'deleteFdb', 'deleteNeighbour', 'replaceNeighbour', 'replaceFdb', 'replaceRoute'], 'peer 2 was already there: only peer 3 added')
})

t.test('vxlan: configure replaces an older subnet address; dual stack puts each family on its device', async t => {
  const n = await node({ v6: true })
  const b = await vxlan(n, { publicIPv6: 'fd00:91::1' })
  await b.prepare()
  const v4 = await n.fake.linkDetails('ferry.1')
  await n.fake.addAddress(v4?.index ?? 0, '10.244.9.0', 32)
  await b.configure({ subnets: [cidr('10.244.1.0/24'), cidr('fd00:10:244:1::/64')] })
  const v6 = await n.fake.linkDetails('ferry-v6.1')
  t.same((await n.fake.addresses(v4?.index)).map(a => `${a.ip}/${a.prefix}`), ['10.244.1.0/32'], 'the old subnet address went')
  t.same((await n.fake.addresses(v6?.index)).map(a => `${a.ip}/${a.prefix}`), ['fd00:10:244:1::/128'])
  t.equal(v6?.mac, v4?.mac, 'one VtepMAC for both')

  await b.setPeers([peer(2), peer6(2), peer(4, { vtepMAC: undefined }), peer6(5, { publicIP: '192.168.91.5' })])
  t.same(await tables(n.fake, 'ferry-v6.1'), { neigh: [`fd00:10:244:2:: ${mac(2)}`], fdb: [`${mac(2)} fd00:91::2`], routes: ['fd00:10:244:2::/64 via fd00:10:244:2:: onlink'] })
  t.same(await tables(n.fake, 'ferry.1'), {
    neigh: [`10.244.2.0 ${mac(2)}`, `fd00:10:244:5:: ${mac(5)}`],
    fdb: [`${mac(2)} 192.168.91.2`, `${mac(5)} 192.168.91.5`],
    routes: ['10.244.2.0/24 via 10.244.2.0 onlink', 'fd00:10:244:5::/64 via fd00:10:244:5:: onlink'],
  }, 'a v6 subnet over an IPv4 public IP rides ferry.1')
  t.match(b.state(), { skipped: [{ key: peer(4).key, reason: /VtepMAC/ }] }, 'a peer without VtepMAC is skipped and said so')

  const only4 = await node()
  const c = await vxlan(only4)
  await c.prepare()
  await c.configure({ subnets: [cidr('10.244.1.0/24'), cidr('fd00:10:244:1::/64')] })
  await c.setPeers([peer6(2), peer(3), peer6(3, { publicIP: '192.168.91.3' }), peer(4, { vtepMAC: mac(3) })])
  t.match(c.state(), { skipped: [{ key: peer6(2).key, reason: /no IPv6 underlay device/ }, { key: peer(4).key, reason: /already goes to another node/ }] })
  t.same(await tables(only4.fake, 'ferry.1'), {
    neigh: [`10.244.3.0 ${mac(3)}`, `fd00:10:244:3:: ${mac(3)}`],
    fdb: [`${mac(3)} 192.168.91.3`],
    routes: ['10.244.3.0/24 via 10.244.3.0 onlink', 'fd00:10:244:3::/64 via fd00:10:244:3:: onlink'],
  }, "one node's two leases over one public IP share the FDB entry")
  t.same((await only4.fake.addresses((await only4.fake.linkDetails('ferry.1'))?.index)).map(a => `${a.ip}/${a.prefix}`).sort(), ['10.244.1.0/32', 'fd00:10:244:1::/128'], 'both families on ferry.1 without ferry-v6.1')
  await c.setPeers([peer6(3, { publicIP: '192.168.91.3' })])
  t.same((await tables(only4.fake, 'ferry.1')).fdb, [`${mac(3)} 192.168.91.3`], 'the v4 lease gone, the FDB entry stays for the v6 one')
})

t.test('host-gw refuses a public IP that is not on the uplink', async t => {
  const n = await node()
  const bad = createOverlayBackend('host-gw', { netlink: n.nl, uplink: n.uplink, publicIP: '192.168.92.1' }, {})
  await t.rejects(bad.prepare(), { code: 'FERRY_ERR_CONFIG', message: /public IP 192\.168\.92\.1 is not an address of uplink eth0/ })
  const bad6 = createOverlayBackend('host-gw', { netlink: n.nl, uplink: n.uplink, publicIP: '192.168.91.1', publicIPv6: 'fd00:91::1' }, {})
  await t.rejects(bad6.prepare(), { code: 'FERRY_ERR_CONFIG', message: /fd00:91::1/ })
  const ok = createOverlayBackend('host-gw', { netlink: n.nl, uplink: { ...n.uplink, mtu: 9000 }, publicIP: '192.168.91.1' }, {})
  t.same(await ok.prepare(), { mtu: 9000 }, "no backend data; pods' MTU is the uplink's")
})

t.test('host-gw routes via the peers, diffed; reconcile restores deleted or changed ones', async t => {
  const n = await node()
  const b = createOverlayBackend('host-gw', { netlink: n.nl, uplink: n.uplink, publicIP: '192.168.91.1' }, {})
  await b.prepare()
  await b.configure({ subnets: [cidr('10.244.1.0/24')] })
  const mine = async (): Promise<string[]> => (await n.fake.routes('IPv4')).filter(r => r.gateway !== null).map(r => `${r.dst} via ${r.gateway ?? ''} dev ${r.dev}`).sort()
  const u = n.uplink.index
  n.ops.length = 0
  await b.setPeers([peer(2), peer(3), peer6(4, { publicIP: '192.168.91.4' })])
  t.same(await mine(), [`10.244.2.0/24 via 192.168.91.2 dev ${u}`, `10.244.3.0/24 via 192.168.91.3 dev ${u}`])
  t.same(writes(n.ops), ['replaceRoute', 'replaceRoute'])
  t.match(b.state(), { skipped: [{ key: peer6(4).key }] }, 'a v6 subnet needs a v6 gateway')
  n.ops.length = 0
  await b.setPeers([peer(3), peer(2), peer6(4, { publicIP: '192.168.91.4' })])
  t.same(n.ops, [], 'no-op')
  await b.setPeers([peer(2, { publicIP: '192.168.91.12' })])
  t.same(await mine(), [`10.244.2.0/24 via 192.168.91.12 dev ${u}`], 'peer 3 gone, peer 2 moved')

  await b.setPeers([peer(2), peer(3)])
  n.ops.length = 0
  await b.reconcile()
  t.same(writes(n.ops), [], 'steady: reads only')
  await n.fake.deleteRoute({ dst: '10.244.3.0/24' })
  await n.fake.replaceRoute({ dst: '10.244.2.0/24', gateway: '192.168.91.99', dev: u })
  n.ops.length = 0
  await b.reconcile()
  t.same(writes(n.ops), ['replaceRoute', 'replaceRoute'], 'the two damaged routes, nothing else')
  t.same(await mine(), [`10.244.2.0/24 via 192.168.91.2 dev ${u}`, `10.244.3.0/24 via 192.168.91.3 dev ${u}`])
  t.match(b.state(), { type: 'host-gw', restored: 2, routes: [{ dst: '10.244.2.0/24' }, { dst: '10.244.3.0/24' }] })
})

t.test('createOverlayBackend checks its options', async t => {
  const n = await node()
  const deps = { netlink: n.nl, uplink: n.uplink, publicIP: '192.168.91.1' }
  for (const [name, f] of [
    ['VNI out of range', () => createOverlayBackend('vxlan', deps, { vni: 1 << 24 })],
    ['port out of range', () => createOverlayBackend('vxlan', deps, { port: 70000 })],
    ['public IP', () => createOverlayBackend('vxlan', { ...deps, publicIP: 'eth0' }, {})],
    ['public IPv6', () => createOverlayBackend('vxlan', { ...deps, publicIPv6: '10.0.0.1' }, {})],
    ['unknown backend', () => createOverlayBackend('udp' as 'vxlan', deps, {})],
    ['device name too long', () => createOverlayBackend('vxlan', { ...deps, publicIPv6: 'fd00:91::1' }, { vni: 1234567 })],
  ] as const) t.throws(f, { code: 'FERRY_ERR_CONFIG' }, name)
  t.equal(createOverlayBackend('vxlan', deps, { port: 0 }).state().port, 8472, 'port 0 is the default')
})

t.test('host-gw tags its routes, and after a restart removes its own routes to peers that left, never others\'', async t => {
  const n = await node()
  const u = n.uplink.index
  const first = createOverlayBackend('host-gw', { netlink: n.nl, uplink: n.uplink, publicIP: '192.168.91.1' }, {})
  await first.prepare()
  await first.setPeers([peer(2), peer(3)])
  t.same((await n.fake.routes('IPv4')).filter(r => r.gateway !== null).map(r => r.protocol), [RTPROT_FERRY, RTPROT_FERRY], 'tagged RTPROT_FERRY')
  await n.fake.replaceRoute({ dst: '10.244.9.0/24', gateway: '192.168.91.9', dev: u }) // an operator's, protocol boot
  // ferryd restarts while peer 3 leaves: a new backend over the same kernel.
  const again = createOverlayBackend('host-gw', { netlink: n.nl, uplink: n.uplink, publicIP: '192.168.91.1' }, {})
  await again.prepare()
  await again.reconcile()
  t.equal((await n.fake.routes('IPv4')).filter(r => r.gateway !== null).length, 3, 'nothing removed before the peer set is known')
  await again.setPeers([peer(2)])
  await again.reconcile()
  const left = (await n.fake.routes('IPv4')).filter(r => r.gateway !== null).map(r => `${r.dst} via ${r.gateway ?? ''}`).sort()
  t.same(left, ['10.244.2.0/24 via 192.168.91.2', '10.244.9.0/24 via 192.168.91.9'], 'the departed peer\'s route went; the operator\'s stayed')
  t.match(again.state(), { adopted: 1 })
})
