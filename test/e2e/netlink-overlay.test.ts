// The real netlink layer (dist/pkg/netlink, so `npm run build` first) inside a throwaway network namespace
// (root only). A netlink socket belongs to its creating thread's netns, so each step runs in a child
// `ip netns exec fy… node <script>`; `ip -d link`, `ip neigh`, `bridge fdb` and `ip route` are the
// independent witnesses. A second scenario runs against the kernel and FakeNetlink alike and must give
// the same answers: the fake's semantics are measured here. The uplink is a veth pair (no dummy driver).
import { randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { FakeNetlink } from '../../pkg/netlink/fake.js'
import type { Netlink } from '../../pkg/netlink/netlink.js'
import { json, netnsChildKit, run, sh } from '../helpers/netns-child.js'

const kit = netnsChildKit('pkg/netlink/netlink.js', 'fy-netlink-')
const NS = `fynl${randomBytes(3).toString('hex')}`
const VTEP_MAC = '02:00:00:00:01:01'
const REMOTE_MAC = '02:00:00:00:02:02'

// The steps, as plain JS run by the child against the real layer (and, for `semantics`, by this process
// against the fake). Only names, addresses and errnos are reported: indices differ between the two.
const SCENARIO = `
const errnoOf = async f => { try { await f(); return 'ok' } catch (e) { return e?.details?.errno || String(e) } }
const byDst = (a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0

export async function create (nl) {
  const up = await nl.linkDetails('fyup')
  const vx = await nl.createVxlan({ name: 'fyvx.1', vni: 1, local: '192.168.91.1', link: up.index, learning: false, mac: '${VTEP_MAC}' })
  await nl.setUp(vx.index)
  await nl.addAddress(vx.index, '10.244.1.0', 32)
  await nl.replaceNeighbour({ dev: vx.index, ip: '10.244.2.0', mac: '${REMOTE_MAC}', permanent: true })
  await nl.replaceNeighbour({ dev: vx.index, ip: 'fd00:2::', mac: '${REMOTE_MAC}', permanent: true })
  await nl.appendFdb({ dev: vx.index, mac: '${REMOTE_MAC}', dst: '192.168.91.2' })
  await nl.appendFdb({ dev: vx.index, mac: '${REMOTE_MAC}', dst: '192.168.91.2' })
  await nl.replaceRoute({ dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: vx.index, onlink: true })
  await nl.replaceRoute({ dst: 'fd00:2::/64', gateway: 'fd00:2::', dev: vx.index, onlink: true })
  await nl.replaceRoute({ dst: '10.244.3.0/24', gateway: '192.168.91.3', dev: up.index, protocol: 77 })
  return {
    uplink: up,
    created: vx,
    link: await nl.linkDetails('fyvx.1'),
    names: (await nl.listLinks()).map(l => l.name).sort(),
    addresses: (await nl.addresses(vx.index)).filter(a => a.family === 'IPv4'), // IPv6 link-local is the kernel's
    neighbours: (await nl.neighbours(vx.index)).filter(n => n.permanent), // MLD leaves NOARP ff02:: entries
    fdb: await nl.fdb(vx.index),
    routes: await nl.routes('IPv4'),
    routes6: (await nl.routes('IPv6')).filter(r => r.dev === vx.index && r.protocol !== 2),
  }
}

export async function remove (nl) {
  const vx = await nl.linkDetails('fyvx.1')
  for (let i = 0; i < 2; i++) {
    await nl.deleteRoute({ dst: '10.244.2.0/24', dev: vx.index })
    await nl.deleteRoute({ dst: 'fd00:2::/64', dev: vx.index })
    await nl.deleteRoute({ dst: '10.244.3.0/24', gateway: '192.168.91.3' })
    await nl.deleteFdb({ dev: vx.index, mac: '${REMOTE_MAC}', dst: '192.168.91.2' })
    await nl.deleteNeighbour({ dev: vx.index, ip: '10.244.2.0' })
    await nl.deleteNeighbour({ dev: vx.index, ip: 'fd00:2::' })
  }
  const left = {
    neighbours: (await nl.neighbours(vx.index)).filter(n => n.permanent),
    fdb: await nl.fdb(vx.index),
    routes: (await nl.routes('IPv4')).map(r => r.dst),
    routes6: (await nl.routes('IPv6')).filter(r => r.dev === vx.index && r.protocol !== 2).map(r => r.dst),
  }
  await nl.deleteLink('fyvx.1')
  await nl.deleteLink('fyvx.1')
  return { ...left, link: await nl.linkDetails('fyvx.1') }
}

export async function semantics (nl) {
  const r = {}
  const up = await nl.linkDetails('fyup')
  const vx = await nl.createVxlan({ name: 'fysem.1', vni: 11, local: '192.168.91.1', link: up.index })
  r.vx = { mtu: vx.mtu, up: vx.up, kind: vx.kind, vxlan: { ...vx.vxlan, link: vx.vxlan.link === up.index } }
  r.sameName = await errnoOf(() => nl.createVxlan({ name: 'fysem.1', vni: 12, link: up.index }))
  r.sameVni = await errnoOf(() => nl.createVxlan({ name: 'fysem.2', vni: 11 }))
  r.sameVniOtherPort = await errnoOf(() => nl.createVxlan({ name: 'fysem.3', vni: 11, port: 4789 }))
  r.missingUplink = await errnoOf(() => nl.createVxlan({ name: 'fysem.4', vni: 13, link: 9999 }))
  r.clamped = (await nl.createVxlan({ name: 'fysem.5', vni: 14, link: up.index, mtu: 9000 })).mtu
  r.bare = (await nl.createVxlan({ name: 'fysem.6', vni: 15 })).mtu
  r.v6 = (await nl.createVxlan({ name: 'fysem.7', vni: 16, link: up.index, local: 'fd00:91::1' })).mtu
  r.mtuAbove = await errnoOf(() => nl.setMtu(vx.index, 1451))
  r.mtuOk = await errnoOf(() => nl.setMtu(vx.index, 1400))
  r.mtuAfter = (await nl.linkDetails('fysem.1')).mtu
  r.masterNonBridge = await errnoOf(() => nl.setMaster(vx.index, up.index))
  r.upMissing = await errnoOf(() => nl.setUp(9999))

  r.onlinkDown = await errnoOf(() => nl.replaceRoute({ dst: '10.250.0.0/24', gateway: '10.250.0.1', dev: vx.index, onlink: true }))
  r.directDown = await errnoOf(() => nl.replaceRoute({ dst: '10.250.0.0/24', dev: vx.index }))
  await nl.setUp(vx.index)
  r.offLink = await errnoOf(() => nl.replaceRoute({ dst: '10.250.0.0/24', gateway: '10.250.0.1', dev: vx.index }))
  r.onlinkUp = await errnoOf(() => nl.replaceRoute({ dst: '10.250.0.0/24', gateway: '10.250.0.1', dev: vx.index, onlink: true }))
  r.hostGwOff = await errnoOf(() => nl.replaceRoute({ dst: '10.250.1.0/24', gateway: '192.168.92.2', dev: up.index }))
  r.hostGw = await errnoOf(() => nl.replaceRoute({ dst: '10.250.1.0/24', gateway: '192.168.91.2', dev: up.index }))
  r.replaced = await errnoOf(() => nl.replaceRoute({ dst: '10.250.1.7/24', gateway: '192.168.91.3', dev: up.index, protocol: 42 }))
  r.direct = await errnoOf(() => nl.replaceRoute({ dst: '10.99.0.0/16', dev: up.index }))
  r.viaDirect = await errnoOf(() => nl.replaceRoute({ dst: '10.250.5.0/24', gateway: '10.99.1.1', dev: up.index }))
  r.routeMissingDev = await errnoOf(() => nl.replaceRoute({ dst: '10.250.6.0/24', dev: 9999 }))
  r.delOtherGw = await errnoOf(() => nl.deleteRoute({ dst: '10.250.1.0/24', gateway: '192.168.91.2' }))
  r.delMissing = await errnoOf(() => nl.deleteRoute({ dst: '10.250.9.0/24' }))
  const mine = rs => rs.filter(x => x.dst.startsWith('10.') || x.dst.startsWith('fd00:'))
    .map(x => [x.dst, x.gateway, x.onlink, x.scope, x.protocol, x.type, x.src]).sort(byDst)
  r.routes = mine(await nl.routes('IPv4'))

  const br = await nl.createBridge({ name: 'fysembr', mtu: 1400 })
  r.br = [br.kind, br.mtu, br.up]
  r.brAgain = (await nl.createBridge({ name: 'fysembr' })).index === br.index
  r.brClash = await errnoOf(() => nl.createBridge({ name: 'fysem.1' }))
  r.v6Down = await errnoOf(() => nl.replaceRoute({ dst: 'fd00:2::/64', gateway: 'fe80::1', dev: br.index }))
  await nl.setUp(br.index)
  r.v6LinkLocalGw = await errnoOf(() => nl.replaceRoute({ dst: 'fd00:2::/64', gateway: 'fe80::1', dev: br.index }))
  r.v6OffLink = await errnoOf(() => nl.replaceRoute({ dst: 'fd00:3::/64', gateway: 'fd00:9::2', dev: br.index }))
  r.v6Onlink = await errnoOf(() => nl.replaceRoute({ dst: 'fd00:3::/64', gateway: 'fd00:9::2', dev: br.index, onlink: true }))
  r.routes6 = mine(await nl.routes('IPv6')).map(x => x.slice(0, 3))
  const peer = await nl.linkDetails('fypeer')
  await nl.setMaster(peer.index, br.index)
  r.enslaved = (await nl.linkDetails('fypeer')).master === br.index
  await nl.deleteLink('fysembr')
  r.released = (await nl.linkDetails('fypeer')).master
  r.bridgeRoutesGone = mine(await nl.routes('IPv6')).length

  const a = '02:00:00:00:0a:0a'
  const b = '02:00:00:00:0b:0b'
  await nl.replaceNeighbour({ dev: vx.index, ip: '10.250.0.1', mac: a })
  await nl.replaceNeighbour({ dev: vx.index, ip: '10.250.0.1', mac: b.toUpperCase() })
  await nl.replaceNeighbour({ dev: vx.index, ip: 'fd00:9::1', mac: a, permanent: false })
  r.neighMissingDev = await errnoOf(() => nl.replaceNeighbour({ dev: 9999, ip: '10.250.0.1', mac: a }))
  r.delNeighMissing = await errnoOf(() => nl.deleteNeighbour({ dev: vx.index, ip: '10.250.0.77' }))
  r.neighbours = (await nl.neighbours(vx.index)).filter(n => n.ip.startsWith('10.250') || n.ip.startsWith('fd00:9')).map(n => [n.ip, n.mac, n.permanent]).sort(byDst)
  const z = '00:00:00:00:00:00'
  await nl.appendFdb({ dev: vx.index, mac: a, dst: '192.168.91.2' })
  await nl.appendFdb({ dev: vx.index, mac: a, dst: '192.168.91.9' })
  await nl.appendFdb({ dev: vx.index, mac: b, dst: '192.168.91.2' })
  await nl.appendFdb({ dev: vx.index, mac: z, dst: '192.168.91.2' })
  await nl.appendFdb({ dev: vx.index, mac: z, dst: '192.168.91.9' })
  const fdb = async () => (await nl.fdb(vx.index)).filter(f => [a, b, z].includes(f.mac)).map(f => [f.mac, f.dst, f.permanent, f.self]).sort((x, y) => (x[0] + x[1]) < (y[0] + y[1]) ? -1 : 1)
  r.fdbAppended = await fdb()
  r.fdbReplace = await errnoOf(() => nl.replaceFdb({ dev: vx.index, mac: a, dst: '192.168.91.9' }))
  r.fdbReplaceNew = await errnoOf(() => nl.replaceFdb({ dev: vx.index, mac: '02:00:00:00:0c:0c', dst: '192.168.91.4' }))
  r.fdbReplaceZero = await errnoOf(() => nl.replaceFdb({ dev: vx.index, mac: z, dst: '192.168.91.4' }))
  r.fdbReplaced = await fdb()
  await nl.deleteFdb({ dev: vx.index, mac: z, dst: '192.168.91.9' })
  r.fdbOneDst = await fdb()
  await nl.deleteFdb({ dev: vx.index, mac: a })
  await nl.deleteFdb({ dev: vx.index, mac: z })
  r.fdbMacGone = await fdb()
  r.delFdbMissing = await errnoOf(() => nl.deleteFdb({ dev: vx.index, mac: a, dst: '192.168.91.2' }))
  r.fdbMissingDev = await errnoOf(() => nl.appendFdb({ dev: 9999, mac: a, dst: '192.168.91.2' }))

  // Many address changes pipelined on one socket (the IPVS VIP binder's path): each change's errno.
  const errs = list => ({ ok: list.filter(e => e === 0).length, refused: list.flatMap((e, i) => e === 0 ? [] : [[i, e]]) })
  const many = Array.from({ length: 600 }, (_, i) => '10.251.' + (i >> 8) + '.' + (i & 255))
  const change = (op, ips, index = vx.index) => nl.changeAddresses(ips.map(ip => ({ op, index, ip, prefix: ip.includes(':') ? 128 : 32 })))
  r.batchAdd = errs(await change('add', [...many, many[0], 'fd00:99::1', 'fd00:99::1', 'not-an-ip']))
  const batchListed = async () => (await nl.addresses(vx.index)).filter(a => a.ip.startsWith('10.251.') || a.ip === 'fd00:99::1').map(a => a.ip + '/' + a.prefix)
  r.batchListed = (await batchListed()).length
  r.batchSample = (await batchListed()).filter(x => x === '10.251.2.87/32' || x === 'fd00:99::1/128')
  r.batchDel = errs(await change('delete', [...many.slice(0, 300), '10.251.200.1', 'fd00:99::1', 'fd00:99::1']))
  r.batchLeft = (await batchListed()).length
  r.batchMissingDev = errs(await change('add', ['10.251.9.9'], 9999))

  await nl.deleteLink('fysem.1')
  r.afterDelete = { neighbours: (await nl.neighbours(vx.index)).length, fdb: (await nl.fdb(vx.index)).length, routes: mine(await nl.routes('IPv4')).map(x => x[0]) }
  await nl.deleteLink('fyup')
  r.vxlanAfterUplink = (await nl.listLinks()).filter(l => l.kind === 'vxlan').map(l => l.name).sort()
  return r
}
`
const CHILD = `
const [dist, scenario, step] = process.argv.slice(2)
const { openNetlink } = await import(dist + '/pkg/netlink/netlink.js')
const steps = await import(scenario)
const nl = openNetlink()
try { process.stdout.write(JSON.stringify(await steps[step](nl))) } finally { nl.close() }
`
const SCENARIO_URL = pathToFileURL(kit.script('scenario.mjs', SCENARIO)).href
const CHILD_PATH = kit.script('child.mjs', CHILD)

const inNs = async <T>(step: string): Promise<T> =>
  await json<T>('ip', 'netns', 'exec', NS, process.execPath, CHILD_PATH, kit.dist, SCENARIO_URL, step)

async function uplink (): Promise<void> {
  for (const argv of [
    ['link', 'add', 'fyup', 'type', 'veth', 'peer', 'name', 'fypeer'],
    ['addr', 'add', '192.168.91.1/24', 'dev', 'fyup'],
    ['link', 'set', 'fyup', 'up'],
    ['link', 'set', 'fypeer', 'up'],
  ]) await sh('ip', '-n', NS, ...argv)
}

t.before(async () => {
  await sh('ip', 'netns', 'add', NS)
  await uplink()
})
t.teardown(async () => {
  await run('ip', ['netns', 'del', NS]).catch(() => {})
  kit.cleanup()
})

interface IpLink { ifindex: number, ifname: string, mtu: number, address: string, flags: string[], linkinfo?: { info_kind: string, info_data?: Record<string, unknown> } }
interface Created {
  uplink: { index: number }
  created: Record<string, unknown>
  link: { index: number, name: string, up: boolean, mtu: number, mac: string, kind: string, master: number, vxlan: Record<string, unknown> }
  names: string[]
  addresses: unknown[]
  neighbours: unknown[]
  fdb: unknown[]
  routes: unknown[]
  routes6: unknown[]
}

t.test('vxlan device, neighbour, FDB and onlink routes against the kernel', async t => {
  const got = await inNs<Created>('create')
  const idx = got.link.index
  t.same(got.link, {
    index: idx, name: 'fyvx.1', up: true, mtu: 1450, mac: VTEP_MAC, kind: 'vxlan', master: 0,
    vxlan: { vni: 1, port: 8472, local: '192.168.91.1', link: got.uplink.index, learning: false },
  }, 'linkDetails after setUp')
  t.same(got.created, { ...got.link, up: false }, 'createVxlan returns the device, still down')
  t.same(got.names, ['fypeer', 'fyup', 'fyvx.1', 'lo'], 'listLinks')

  const [l] = await json<IpLink[]>('ip', '-n', NS, '-d', '-j', 'link', 'show', 'fyvx.1')
  t.match(l, { ifindex: idx, ifname: 'fyvx.1', mtu: 1450, address: VTEP_MAC, linkinfo: { info_kind: 'vxlan', info_data: { id: 1, local: '192.168.91.1', link: 'fyup', port: 8472, learning: false } } }, 'ip -d link show agrees')
  t.ok(l?.flags.includes('UP'), 'ip link: UP')

  t.same(got.addresses, [{ index: idx, family: 'IPv4', ip: '10.244.1.0', prefix: 32 }])
  t.same(got.neighbours, [
    { dev: idx, family: 'IPv4', ip: '10.244.2.0', mac: REMOTE_MAC, permanent: true },
    { dev: idx, family: 'IPv6', ip: 'fd00:2::', mac: REMOTE_MAC, permanent: true },
  ])
  const neigh = await json<Array<{ dst: string, lladdr: string, state: string[] }>>('ip', '-n', NS, '-j', 'neigh', 'show', 'dev', 'fyvx.1')
  t.same(neigh.map(n => [n.dst, n.lladdr, n.state]).sort(), [['10.244.2.0', REMOTE_MAC, ['PERMANENT']], ['fd00:2::', REMOTE_MAC, ['PERMANENT']]], 'ip neigh agrees')

  t.same(got.fdb, [{ dev: idx, mac: REMOTE_MAC, dst: '192.168.91.2', permanent: true, self: true }], 'one FDB entry after two appends')
  const fdb = await json<Array<{ mac: string, dst?: string, flags: string[], state: string }>>('bridge', '-n', NS, '-j', 'fdb', 'show', 'dev', 'fyvx.1')
  t.same(fdb.map(f => [f.mac, f.dst, f.flags, f.state]), [[REMOTE_MAC, '192.168.91.2', ['self'], 'permanent']], 'bridge fdb agrees')

  t.same(got.routes, [
    { family: 'IPv4', dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: idx, onlink: true, scope: 0, protocol: 3, src: null, type: 1 },
    { family: 'IPv4', dst: '10.244.3.0/24', gateway: '192.168.91.3', dev: got.uplink.index, onlink: false, scope: 0, protocol: 77, src: null, type: 1 },
    { family: 'IPv4', dst: '192.168.91.0/24', gateway: null, dev: got.uplink.index, onlink: false, scope: 253, protocol: 2, src: '192.168.91.1', type: 1 },
  ], 'main-table IPv4 routes')
  t.match(got.routes6, [{ family: 'IPv6', dst: 'fd00:2::/64', gateway: 'fd00:2::', dev: idx, onlink: true }], 'the IPv6 onlink route')
  const routes = await json<Array<{ dst: string, gateway?: string, dev: string, flags: string[], protocol?: string }>>('ip', '-n', NS, '-j', 'route', 'show', 'table', 'main')
  t.same(routes.map(r => [r.dst, r.gateway, r.dev, r.flags, r.protocol]), [
    ['10.244.2.0/24', '10.244.2.0', 'fyvx.1', ['onlink'], undefined],
    ['10.244.3.0/24', '192.168.91.3', 'fyup', [], '77'],
    ['192.168.91.0/24', undefined, 'fyup', [], 'kernel'],
  ], 'ip route agrees (proto boot is not printed)')
  const r6 = await json<Array<{ dst: string, gateway?: string, flags: string[] }>>('ip', '-n', NS, '-6', '-j', 'route', 'show', 'dev', 'fyvx.1')
  t.same(r6.filter(r => r.dst === 'fd00:2::/64').map(r => [r.gateway, r.flags]), [['fd00:2::', ['onlink']]], 'ip -6 route agrees')
})

t.test('deleting, twice, leaves nothing behind', async t => {
  const left = await inNs<Record<string, unknown>>('remove')
  t.same(left, { neighbours: [], fdb: [], routes: ['192.168.91.0/24'], routes6: [], link: null })
  t.equal((await sh('ip', '-n', NS, 'neigh', 'show', 'to', '10.244.2.0')).trim(), '', 'ip neigh: gone')
  t.equal((await sh('bridge', '-n', NS, 'fdb', 'show')).includes(REMOTE_MAC), false, 'bridge fdb: gone')
  t.equal((await sh('ip', '-n', NS, 'route', 'show', 'table', 'main')).trim(), '192.168.91.0/24 dev fyup proto kernel scope link src 192.168.91.1', 'ip route: only the uplink subnet')
  await t.rejects(run('ip', ['-n', NS, 'link', 'show', 'fyvx.1']), 'ip link: device gone')
})

t.test('FakeNetlink answers as the kernel does', async t => {
  const real = await inNs<Record<string, unknown>>('semantics')
  const fake = new FakeNetlink()
  fake.addLink({ name: 'fyup', kind: 'veth', mtu: 1500 })
  fake.addLink({ name: 'fypeer', kind: 'veth', mtu: 1500 })
  await fake.addAddress((await fake.linkDetails('fyup'))?.index ?? 0, '192.168.91.1', 24)
  const steps = await import(SCENARIO_URL) as { semantics: (nl: Netlink) => Promise<Record<string, unknown>> }
  const emulated = await steps.semantics(fake)
  // The pipelined address batch against the kernel: duplicates EEXIST, absent deletes EADDRNOTAVAIL,
  // an unparsable address EINVAL without being sent, a missing device ENODEV; the rest applied.
  t.same(real.batchAdd, { ok: 601, refused: [[600, 17], [602, 17], [603, 22]] }, 'batch add: every errno as the kernel answered')
  t.equal(real.batchListed, 601, 'batch add: 601 addresses listed by the kernel')
  t.same(real.batchSample, ['10.251.2.87/32', 'fd00:99::1/128'])
  t.same(real.batchDel, { ok: 301, refused: [[300, 99], [302, 99]] }, 'batch delete')
  t.equal(real.batchLeft, 300)
  t.same(real.batchMissingDev, { ok: 0, refused: [[0, 19]] })
  for (const k of Object.keys(real)) t.same(emulated[k], real[k], k)
  t.same(Object.keys(emulated).sort(), Object.keys(real).sort(), 'same steps')
  t.equal((await sh('ip', 'netns', 'list')).includes(NS), true, 'only the throwaway netns was touched')
})
