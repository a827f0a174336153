// The overlay backends (dist/pkg/overlay/backend.js, so `npm run build` first) on the real kernel, as root:
// two throwaway netns "nodes" joined by a veth underlay (no dummy driver here). In each, a long-lived
// child `ip netns exec fy… node child.mjs` owns a netlink socket and a backend, and answers one JSON
// command per line, so reconcile runs in the same backend that programmed the kernel. Each node holds
// 10.244.<n>.1/32 on lo as the address of its pod subnet; a ping between those must cross the overlay.
// `ip`, `bridge`, `iptables` and the device counters are the independent witnesses.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import t from 'tap'
import { json, netnsChildKit, run, sh } from '../helpers/netns-child.js'

const kit = netnsChildKit('pkg/overlay/backend.js', 'fy-ovlbackend-')
const TAG = randomBytes(3).toString('hex')
const namespaces: string[] = []
const children: ChildProcessWithoutNullStreams[] = []

const CHILD = `
import { createInterface } from 'node:readline'
const [dist, type, uplinkName, publicIP] = process.argv.slice(2)
const { openNetlink } = await import(dist + '/pkg/netlink/netlink.js')
const { createOverlayBackend } = await import(dist + '/pkg/overlay/backend.js')
const { parseCidr } = await import(dist + '/pkg/net/cidr.js')
const nl = openNetlink()
const up = await nl.linkDetails(uplinkName)
const b = createOverlayBackend(type, { netlink: nl, uplink: { index: up.index, name: up.name, mtu: up.mtu }, publicIP }, {})
const ops = {
  prepare: () => b.prepare(),
  configure: subnets => b.configure({ subnets: subnets.map(s => parseCidr(s)) }),
  setPeers: peers => b.setPeers(peers.map(p => ({ ...p, subnet: parseCidr(p.subnet) }))),
  reconcile: () => b.reconcile(),
  state: async () => b.state(),
}
for await (const line of createInterface({ input: process.stdin })) {
  const { op, arg } = JSON.parse(line)
  try {
    process.stdout.write(JSON.stringify({ ok: true, value: (await ops[op](arg)) ?? null }) + '\\n')
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, code: e?.code, message: String(e?.message ?? e) }) + '\\n')
  }
}
nl.close()
`
const CHILD_PATH = kit.script('child.mjs', CHILD)

const ok = async (...argv: string[]): Promise<boolean> => await run(argv[0] ?? '', argv.slice(1)).then(() => true, () => false)

interface Reply { ok: boolean, value?: unknown, code?: string, message?: string }
interface Node {
  ns: string
  uplink: string
  publicIP: string
  subnet: string
  /** The address of its pod subnet, on lo. */
  pod: string
  call: (op: string, arg?: unknown) => Promise<Reply>
  must: <T>(op: string, arg?: unknown) => Promise<T>
}

function startChild (ns: string, type: string, uplink: string, publicIP: string): Node['call'] {
  const c = spawn('ip', ['netns', 'exec', ns, process.execPath, CHILD_PATH, kit.dist, type, uplink, publicIP])
  children.push(c)
  const lines = createInterface({ input: c.stdout })[Symbol.asyncIterator]()
  let stderr = ''
  c.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
  return async (op, arg) => {
    c.stdin.write(JSON.stringify({ op, arg }) + '\n')
    const next = await lines.next()
    if (next.done === true) throw new Error(`child in ${ns} exited: ${stderr}`)
    return JSON.parse(String(next.value)) as Reply
  }
}

/** Two netns joined by a veth pair on 192.168.<net>.0/24, each with its pod address on lo and a backend child. */
async function pair (type: 'vxlan' | 'host-gw', net: number): Promise<[Node, Node]> {
  const nodes: Node[] = []
  for (const i of [1, 2]) {
    const ns = `fyob${i}${TAG}`
    await sh('ip', 'netns', 'add', ns)
    namespaces.push(ns)
    await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
  }
  const [a, b] = namespaces.slice(-2) as [string, string]
  await sh('ip', 'link', 'add', 'fyobu1', 'netns', a, 'type', 'veth', 'peer', 'name', 'fyobu2', 'netns', b)
  for (const i of [1, 2]) {
    const ns = i === 1 ? a : b
    const uplink = `fyobu${i}`
    const publicIP = `192.168.${net}.${i}`
    await sh('ip', '-n', ns, 'addr', 'add', `${publicIP}/24`, 'dev', uplink)
    await sh('ip', '-n', ns, 'link', 'set', uplink, 'up')
    await sh('ip', '-n', ns, 'addr', 'add', `10.244.${i}.1/32`, 'dev', 'lo')
    const call = startChild(ns, type, uplink, publicIP)
    const must = async <T>(op: string, arg?: unknown): Promise<T> => {
      const r = await call(op, arg)
      if (!r.ok) throw new Error(`${op} in ${ns}: ${r.code ?? ''} ${r.message ?? ''}`)
      return r.value as T
    }
    nodes.push({ ns, uplink, publicIP, subnet: `10.244.${i}.0/24`, pod: `10.244.${i}.1`, call, must })
  }
  return nodes as [Node, Node]
}

async function unpair (): Promise<void> {
  for (const c of children.splice(0)) {
    c.stdin.end()
    if (c.exitCode === null) await new Promise(resolve => { c.once('exit', resolve); setTimeout(() => { c.kill(); resolve(null) }, 3000).unref() })
  }
  for (const ns of namespaces.splice(0)) await run('ip', ['netns', 'del', ns]).catch(() => {})
}

t.teardown(async () => {
  await unpair()
  kit.cleanup()
})

const ping = async (from: Node, to: Node, extra: string[] = []): Promise<boolean> =>
  await ok('ip', 'netns', 'exec', from.ns, 'ping', '-c1', '-W2', '-I', from.pod, ...extra, to.pod)

interface IpLink { ifindex: number, mtu: number, address: string, flags: string[], linkinfo?: { info_kind: string, info_data?: Record<string, unknown> }, stats64?: { rx: { packets: number }, tx: { packets: number } } }
const link = async (n: Node, dev: string): Promise<IpLink | undefined> => (await json<IpLink[]>('ip', '-n', n.ns, '-d', '-s', '-j', 'link', 'show', dev))[0]

/** Packets the iptables rule numbered 1 of INPUT counted (a rule without target counts and passes). */
async function udpIn (n: Node): Promise<number> {
  const out = await sh('ip', 'netns', 'exec', n.ns, 'iptables', '-w', '-nvxL', 'INPUT', '1')
  return Number(out.trim().split(/\s+/)[0])
}

/** Neighbour, FDB entry and route for `peer` on ferry.1 of `n`, as `ip`/`bridge` print them. */
async function entries (n: Node, peer: Node, mac: string): Promise<{ neigh: string, fdb: string, route: string }> {
  const gw = peer.subnet.replace('/24', '')
  return {
    neigh: (await sh('ip', '-n', n.ns, 'neigh', 'show', 'to', gw, 'dev', 'ferry.1')).trim(),
    fdb: (await sh('bridge', '-n', n.ns, 'fdb', 'show', 'dev', 'ferry.1')).split('\n').filter(l => l.startsWith(mac)).join('\n'),
    route: (await sh('ip', '-n', n.ns, 'route', 'show', peer.subnet)).trim(),
  }
}

t.test('vxlan: two nodes reach each other through ferry.1, and reconcile repairs what is deleted', async t => {
  const [a, b] = await pair('vxlan', 93)
  const prepA = await a.must<{ backendData: { vni: number, vtepMAC: string }, mtu: number }>('prepare')
  const prepB = await b.must<{ backendData: { vni: number, vtepMAC: string }, mtu: number }>('prepare')
  t.equal(prepA.mtu, 1450, 'pods MTU = 1500 − 50')
  const devA = await link(a, 'ferry.1')
  t.match(devA, { mtu: 1450, address: prepA.backendData.vtepMAC, linkinfo: { info_kind: 'vxlan', info_data: { id: 1, local: a.publicIP, link: a.uplink, port: 8472, learning: false } } }, 'ip -d link: the device as published')

  await a.must('configure', [a.subnet])
  await b.must('configure', [b.subnet])
  t.equal((await sh('ip', '-n', a.ns, '-4', '-o', 'addr', 'show', 'dev', 'ferry.1')).includes('inet 10.244.1.0/32'), true, 'ferry.1 holds 10.244.1.0/32')
  t.equal(await ping(a, b), false, 'no peers yet: no path')

  const peerOf = (n: Node, mac: string): Record<string, unknown> => ({ key: `/ferry/network/subnets/${n.subnet.replace('/', '-')}`, subnet: n.subnet, publicIP: n.publicIP, vtepMAC: mac })
  await a.must('setPeers', [peerOf(b, prepB.backendData.vtepMAC)])
  await b.must('setPeers', [peerOf(a, prepA.backendData.vtepMAC)])
  const want = {
    neigh: `10.244.2.0 lladdr ${prepB.backendData.vtepMAC} PERMANENT`,
    fdb: `${prepB.backendData.vtepMAC} dst ${b.publicIP} self permanent`,
    route: '10.244.2.0/24 via 10.244.2.0 dev ferry.1 onlink',
  }
  t.same(await entries(a, b, prepB.backendData.vtepMAC), want, 'ip neigh, bridge fdb, ip route on node A')

  await sh('ip', 'netns', 'exec', b.ns, 'iptables', '-w', '-I', 'INPUT', '-i', b.uplink, '-p', 'udp', '--dport', '8472')
  const before = { tx: (await link(a, 'ferry.1'))?.stats64?.tx.packets ?? 0, rx: (await link(b, 'ferry.1'))?.stats64?.rx.packets ?? 0, udp: await udpIn(b) }
  t.equal(await ping(a, b), true, 'ping 10.244.1.1 → 10.244.2.1')
  const after = { tx: (await link(a, 'ferry.1'))?.stats64?.tx.packets ?? 0, rx: (await link(b, 'ferry.1'))?.stats64?.rx.packets ?? 0, udp: await udpIn(b) }
  t.ok(after.tx > before.tx, `A's ferry.1 sent it (tx ${before.tx} → ${after.tx})`)
  t.ok(after.rx > before.rx, `B's ferry.1 received it (rx ${before.rx} → ${after.rx})`)
  t.ok(after.udp > before.udp, `B's underlay saw UDP 8472 (${before.udp} → ${after.udp})`)
  t.equal(await ping(a, b, ['-M', 'do', '-s', '1422']), true, 'a 1422-byte DF ping fits the 1450 MTU')
  t.equal(await ping(a, b, ['-M', 'do', '-s', '1423']), false, 'a 1423-byte DF ping does not')

  // Deleted behind the backend's back, one at a time: reconcile puts back exactly that.
  const damage: Array<[string, string[]]> = [
    ['route', ['ip', '-n', a.ns, 'route', 'del', b.subnet]],
    ['neighbour', ['ip', '-n', a.ns, 'neigh', 'del', '10.244.2.0', 'dev', 'ferry.1']],
    ['FDB entry', ['bridge', '-n', a.ns, 'fdb', 'del', prepB.backendData.vtepMAC, 'dev', 'ferry.1', 'dst', b.publicIP, 'self']],
  ]
  for (const [what, argv] of damage) {
    await sh(...argv)
    t.not(await entries(a, b, prepB.backendData.vtepMAC), want, `${what} deleted`)
    await a.must('reconcile')
    t.same(await entries(a, b, prepB.backendData.vtepMAC), want, `${what} restored`)
    t.equal(await ping(a, b), true, `ping after the ${what} came back`)
  }

  await sh('ip', '-n', a.ns, 'link', 'del', 'ferry.1')
  t.equal(await ping(a, b), false, 'device deleted: no path')
  await a.must('reconcile')
  t.match(await link(a, 'ferry.1'), { address: prepA.backendData.vtepMAC, mtu: 1450, flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'] }, 'recreated with the published MAC, up')
  t.same(await entries(a, b, prepB.backendData.vtepMAC), want, 'every peer replayed')
  t.equal(await ping(a, b), true, 'ping again, with no change on node B')
  t.match(await a.must('state'), { recreated: 1, vtepMAC: prepA.backendData.vtepMAC })

  // A restarted ferryd: a second backend in node A adopts the device, its MAC and the entries on it.
  const index = (await link(a, 'ferry.1'))?.ifindex
  const restarted = startChild(a.ns, 'vxlan', a.uplink, a.publicIP)
  t.match(await restarted('prepare'), { ok: true, value: { backendData: { vtepMAC: prepA.backendData.vtepMAC } } }, 'a restart publishes the same MAC')
  t.equal((await link(a, 'ferry.1'))?.ifindex, index, 'by keeping the device')
  t.match(await restarted('state'), { ok: true, value: { routes: [{ dst: b.subnet, via: '10.244.2.0', device: 'ferry.1', onlink: true }] } }, 'and taking over the entries on it')

  await a.must('setPeers', [])
  t.same(await entries(a, b, prepB.backendData.vtepMAC), { neigh: '', fdb: '', route: '' }, 'peer gone: its three entries gone')
  t.equal(await ping(a, b), false, 'and the path with them')
  await unpair()
})

t.test('host-gw: routes via the peer on the shared underlay; reconcile restores a deleted one; refusal off the uplink', async t => {
  const [a, b] = await pair('host-gw', 94)
  t.same(await a.must('prepare'), { mtu: 1500 }, "pods' MTU is the uplink's")
  await b.must('prepare')
  await a.must('configure', [a.subnet])
  await b.must('configure', [b.subnet])
  await a.must('setPeers', [{ key: 'b', subnet: b.subnet, publicIP: b.publicIP }])
  await b.must('setPeers', [{ key: 'a', subnet: a.subnet, publicIP: a.publicIP }])
  const route = `10.244.2.0/24 via ${b.publicIP} dev ${a.uplink} proto 240`
  t.equal((await sh('ip', '-n', a.ns, 'route', 'show', b.subnet)).trim(), route, 'ip route on node A')
  const rx = async (): Promise<number> => (await link(b, b.uplink))?.stats64?.rx.packets ?? 0
  const before = await rx()
  t.equal(await ping(a, b), true, 'ping 10.244.1.1 → 10.244.2.1')
  t.ok(await rx() > before, "over B's underlay")

  await sh('ip', '-n', a.ns, 'route', 'del', b.subnet)
  t.equal(await ping(a, b), false, 'route deleted: no path')
  await a.must('reconcile')
  t.equal((await sh('ip', '-n', a.ns, 'route', 'show', b.subnet)).trim(), route, 'reconcile restored it')
  t.equal(await ping(a, b), true, 'ping again')
  t.match(await a.must('state'), { restored: 1 })

  await a.must('setPeers', [])
  t.equal((await sh('ip', '-n', a.ns, 'route', 'show', b.subnet)).trim(), '', 'peer gone: route gone')
  await unpair()

  const [c] = await pair('host-gw', 95)
  await sh('ip', '-n', c.ns, 'addr', 'del', `${c.publicIP}/24`, 'dev', c.uplink)
  t.match(await c.call('prepare'), { ok: false, code: 'FERRY_ERR_CONFIG', message: /public IP 192\.168\.95\.1 is not an address of uplink fyobu1/ }, 'public IP not on the uplink: refused')
  await unpair()
  t.equal((await sh('ip', 'netns', 'list')).includes(`fyob1${TAG}`), false, 'namespaces removed')
})
