// ADD, DEL, CHECK, GC and STATUS policy over the fake dataplane and fake IPAM.
import t from 'tap'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CID_A, CID_B, conf, env, harness, NETNS_A, NETNS_B, NODE_FILE, NODE_V4 } from './fixtures/cni.js'
import { makeFuncs } from '../../cni-plugin/commands.js'
import { FakeDataplane } from '../../cni-plugin/dataplane-fake.js'
import { hostVethName, masqChainName } from '../../cni-plugin/names.js'
import { dispatch } from '../../cni-plugin/skel.js'
import { openDiskIpam } from '../../pkg/ipam/disk.js'

const HOST_A = hostVethName(CID_A, 'eth0')
const envB = (cmd: string): Record<string, string> => env(cmd, { CNI_CONTAINERID: CID_B, CNI_NETNS: NETNS_B })

t.test('names depend on the attachment only and fit the kernel limits', async t => {
  t.match(HOST_A, /^fy[0-9a-f]{11}$/)
  t.equal(hostVethName(CID_A, 'eth0'), HOST_A, 'stable')
  t.not(hostVethName(CID_A, 'eth1'), HOST_A, 'another ifname is another attachment')
  t.equal(masqChainName('ferry', CID_A, 'eth0').length, 27)
  t.not(masqChainName('other', CID_A, 'eth0'), masqChainName('ferry', CID_A, 'eth0'))
})

t.test('ADD: bridge with the gateway, veth into the netns, address, route, MTU, IPAM ranges from the node file', async t => {
  const h = harness()
  const r = await h.run(env('ADD'), conf('1.0.0', { hairpinMode: true }))
  t.equal(r.code, 0, r.raw)
  t.same(h.ipamOpens[0], { dataDir: '/var/lib/cni/networks', network: 'ferry', ranges: [{ subnet: '10.244.1.0/24', gateway: '10.244.1.1' }] })
  const br = h.dp.link('', 'ferry0')
  t.same([br?.addresses, br?.mtu], [['10.244.1.1/24'], 1450])
  const host = h.dp.link('', HOST_A)
  t.same([host?.master, host?.hairpin, host?.mtu], ['ferry0', true, 1450])
  const pod = h.dp.link(NETNS_A, 'eth0')
  t.same(pod?.addresses, ['10.244.1.2/24'])
  t.same(pod?.routes, [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }])
  t.equal(pod?.up, true)
  t.same(r.out?.interfaces, [
    { name: 'ferry0', mac: '02:00:00:00:00:03' },
    { name: HOST_A, mac: '02:00:00:00:00:01' },
    { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: NETNS_A },
  ])
  t.equal(h.dp.chains.size, 0, 'FERRY_IPMASQ=false: no masquerade')
})

t.test('ADD: config overrides the node file (mtu, ipMasq, bridge, dataDir)', async t => {
  const h = harness()
  const r = await h.run(env('ADD'), conf('1.1.0', { mtu: 1400, ipMasq: true, bridge: 'br-x', dataDir: '/tmp/ipam' }))
  t.equal(r.code, 0, r.raw)
  t.equal(h.dp.link('', 'br-x')?.mtu, 1400)
  t.equal(h.dp.link(NETNS_A, 'eth0')?.mtu, 1400)
  t.equal(h.ipamOpens[0]?.dataDir, '/tmp/ipam')
  const chain = h.dp.chains.get(masqChainName('ferry', CID_A, 'eth0'))
  t.same(chain?.clusterNetworks, ['10.244.0.0/16'])
  t.same(chain?.sources.map(s => s.ip), ['10.244.1.2'])
})

t.test('ADD fails when the attachment already exists, without touching the live pod', async t => {
  const h = harness()
  t.equal((await h.run(env('ADD'), conf())).code, 0)
  const r = await h.run(env('ADD'), conf())
  t.same([r.code, r.out?.code], [1, 101])
  t.same(h.dp.link(NETNS_A, 'eth0')?.addresses, ['10.244.1.2/24'], 'pod untouched')
  t.same(await h.ipam().reserved({ containerID: CID_A, ifname: 'eth0' }).then(a => a.map(x => x.ip)), ['10.244.1.2'], 'reservation kept')
  // CNI_IFNAME already present in the netns (made by someone else).
  h.dp.ns.get(NETNS_B)?.set('eth0', { mac: 'x', mtu: 1500, up: true, master: '', hairpin: false, addresses: [], routes: [] })
  const r2 = await h.run(envB('ADD'), conf())
  t.same([r2.code, r2.out?.code], [1, 101])
  t.match(r2.out?.msg, /"eth0" already exists/)
  t.same(await h.ipam().reserved({ containerID: CID_B, ifname: 'eth0' }), [], 'IP released on failure')
})

t.test('ADD undoes IPAM and the veth when a later step fails', async t => {
  for (const op of ['setupPod', 'enableForwarding', 'masquerade', 'setupHost'] as const) {
    const h = harness()
    h.dp.failOn = op
    const r = await h.run(env('ADD'), conf('1.1.0', { ipMasq: true }))
    t.equal(r.code, 1, `${op}: fails`)
    t.equal(r.out?.code, 999, `${op}: internal error code`)
    t.equal(h.dp.link('', HOST_A), undefined, `${op}: no host veth left`)
    t.equal(h.dp.chains.size, 0, `${op}: no chain left`)
    t.same(await h.ipam().available(), [253], `${op}: IP released`)
  }
})

t.test('ADD chained: prevResult interfaces kept, our ips indexed after them', async t => {
  const h = harness()
  const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'lo0' }], ips: [{ address: '192.0.2.9/32', interface: 0 }], routes: [], dns: { nameservers: ['10.96.0.10'] } }
  const r = await h.run(env('ADD'), conf('1.0.0', { prevResult }))
  t.equal(r.code, 0, r.raw)
  t.same((r.out?.interfaces as Array<{ name: string }>).map(i => i.name), ['lo0', 'ferry0', HOST_A, 'eth0'])
  t.same(r.out?.ips, [{ address: '192.0.2.9/32', interface: 0 }, { address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 3 }])
  t.same(r.out?.dns, { nameservers: ['10.96.0.10'] })
})

t.test('ADD chained at 1.1.0: the previous result\'s socketPath, pciID and route fields are passed on, not dropped', async t => {
  const h = harness()
  const prevResult = {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'vhu0', mtu: 9000, socketPath: '/run/vhost/vhu0.sock', pciID: '0000:00:1f.6', sandbox: NETNS_A }],
    ips: [],
    routes: [{ dst: '192.0.2.0/24', gw: '10.1.1.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 }],
    dns: {},
  }
  const r = await h.run(env('ADD'), conf('1.1.0', { prevResult }))
  t.equal(r.code, 0, r.raw)
  t.same((r.out?.interfaces as unknown[])[0], prevResult.interfaces[0])
  t.same((r.out?.routes as unknown[])[0], prevResult.routes[0])
  const old = await h.run(env('ADD', { CNI_CONTAINERID: CID_B, CNI_NETNS: NETNS_B }), conf('1.0.0', { prevResult: { ...prevResult, cniVersion: '1.0.0' } }))
  t.same((old.out?.interfaces as unknown[])[0], { name: 'vhu0', sandbox: NETNS_A }, '1.0.0 has none of them')
  t.same((old.out?.routes as unknown[])[0], { dst: '192.0.2.0/24', gw: '10.1.1.1' })
})

t.test('ADD result serves portmap: ips[].interface points at CNI_IFNAME with a sandbox', async t => {
  const h = harness()
  const r = await h.run(env('ADD'), conf('1.0.0', { dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] } }))
  const ifs = r.out?.interfaces as Array<{ name: string, sandbox?: string }>
  const ips = r.out?.ips as Array<{ interface: number }>
  const target = ifs[ips[0]?.interface ?? -1]
  t.same([target?.name, target?.sandbox], ['eth0', NETNS_A])
  t.same(r.out?.dns, { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] })
})

t.test('DEL: removes veth, chain and reservation; idempotent; works with the netns gone and without the node file', async t => {
  const h = harness()
  const c = conf('1.0.0', { ipMasq: true })
  t.equal((await h.run(env('ADD'), c)).code, 0)
  t.equal((await h.run(envB('ADD'), c)).code, 0)
  t.equal(h.dp.chains.size, 2)
  const d = await h.run(env('DEL'), c)
  t.same([d.code, d.raw], [0, ''], 'DEL prints nothing')
  t.equal(h.dp.link('', HOST_A), undefined)
  t.equal(h.dp.link(NETNS_A, 'eth0'), undefined, 'pod end went with the host end')
  t.notOk(h.dp.chains.has(masqChainName('ferry', CID_A, 'eth0')))
  t.same(await h.ipam().reserved({ containerID: CID_A, ifname: 'eth0' }), [])
  t.equal((await h.run(env('DEL'), c)).code, 0, 'second DEL succeeds')
  t.equal((await h.run(env('DEL', { CNI_NETNS: '' }), c)).code, 0, 'DEL with CNI_NETNS empty')
  // B: netns deleted first, node file gone too; DEL still cleans everything keyed by the attachment.
  h.dp.deleteNetns(NETNS_B)
  h.files.delete(NODE_FILE)
  const db = await h.run(envB('DEL'), c)
  t.equal(db.code, 0, db.raw)
  t.equal(h.dp.link('', hostVethName(CID_B, 'eth0')), undefined)
  t.equal(h.dp.chains.size, 0)
  t.same(await h.ipam().available(), [253])
})

t.test('CHECK: passes on a healthy attachment, fails on each kind of drift', async t => {
  const h = harness()
  const add = await h.run(env('ADD'), conf('1.1.0'))
  const prevResult = add.out ?? {}
  const check = async (): Promise<{ code: number, out: Record<string, unknown> | null }> => await h.run(env('CHECK'), conf('1.1.0', { prevResult }))
  t.same((await check()).code, 0, 'healthy')
  const pod = h.dp.link(NETNS_A, 'eth0')
  if (pod === undefined) throw new Error('no pod link')
  const drifts: Array<[string, () => () => void, RegExp]> = [
    ['address removed', () => { const a = pod.addresses; pod.addresses = []; return () => { pod.addresses = a } }, /lacks address 10\.244\.1\.2\/24/],
    ['route removed', () => { const r = pod.routes; pod.routes = []; return () => { pod.routes = r } }, /route 0\.0\.0\.0\/0 via 10\.244\.1\.1 is missing/],
    ['link down', () => { pod.up = false; return () => { pod.up = true } }, /is down/],
    ['MAC changed', () => { const m = pod.mac; pod.mac = '02:ff:ff:ff:ff:ff'; return () => { pod.mac = m } }, /has MAC/],
    ['MTU changed', () => { const m = pod.mtu; pod.mtu = 9000; return () => { pod.mtu = m } }, /has MTU 9000, prevResult says 1450/],
    ['host veth detached', () => { const l = h.dp.link('', HOST_A); if (l !== undefined) l.master = ''; return () => { if (l !== undefined) l.master = 'ferry0' } }, /not attached to ferry0/],
    ['reservation lost', () => { void h.ipam().release({ containerID: CID_A, ifname: 'eth0' }); return () => { h.ipam().held[0]?.set('10.244.1.2', `${CID_A}\neth0`) } }, /not reserved/],
  ]
  for (const [name, breakIt, msg] of drifts) {
    const restore = breakIt()
    const r = await check()
    t.same([r.code, r.out?.code], [1, 102], `${name}: fails`)
    t.match(r.out?.msg, msg, `${name}: says why`)
    restore()
    t.equal((await check()).code, 0, `${name}: healthy again`)
  }
  await h.run(env('DEL'), conf('1.1.0'))
  const gone = await check()
  t.match(gone.out?.msg, /host veth .* is missing/, 'after DEL the veth is missing')
})

t.test('GC: releases attachments not listed, removes their veths and chains, keeps the listed ones', async t => {
  const h = harness()
  const c = conf('1.1.0', { ipMasq: true })
  for (const e of [env('ADD'), envB('ADD')]) t.equal((await h.run(e, c)).code, 0)
  // A leftover host veth of ours on the bridge with no reservation (crash before IPAM), and someone else's port.
  h.dp.ns.get('')?.set('fy0123456789a', { mac: 'm', mtu: 1450, up: true, master: 'ferry0', hairpin: false, addresses: [], routes: [] })
  h.dp.ns.get('')?.set('vethforeign', { mac: 'm', mtu: 1450, up: true, master: 'ferry0', hairpin: false, addresses: [], routes: [] })
  const list = [{ containerID: CID_A, ifname: 'eth0' }]
  for (const key of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
    const r = await h.run({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf('1.1.0', { ipMasq: true, [key]: list }))
    t.same([r.code, r.raw], [0, ''], key)
  }
  t.same((await h.dp.bridgePorts('ferry0')).sort(), [HOST_A, 'vethforeign'].sort())
  t.same([...h.dp.chains.keys()], [masqChainName('ferry', CID_A, 'eth0')])
  t.same(await h.ipam().reserved({ containerID: CID_B, ifname: 'eth0' }), [])
  t.same((await h.ipam().reserved({ containerID: CID_A, ifname: 'eth0' })).map(a => a.ip), ['10.244.1.2'])
})

t.test('STATUS: 0 when the node file exists and the pool has room', async t => {
  const h = harness()
  const r = await h.run({ CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' }, conf())
  t.same([r.code, r.raw], [0, ''])
})

t.test('DEL and GC without the node file release the reservation in the real disk store', async t => {
  // The fake IPAM takes any range list; the disk one refused an empty list ("no IPAM range configured", 999),
  // so DEL failed and the address stayed reserved whenever ferryd had not (re)written the node file.
  const dir = mkdtempSync(join(tmpdir(), 'fy-cni-disk-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const dp = new FakeDataplane()
  dp.addNetns(NETNS_A)
  dp.addNetns(NETNS_B)
  const files = new Map([[NODE_FILE, NODE_V4]])
  const funcs = makeFuncs({
    dataplane: dp,
    openIpam: (o) => openDiskIpam({ ...o, dataDir: dir }),
    readFile: async (path) => {
      const text = files.get(path)
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' })
      return text
    },
  })
  const run = async (e: Record<string, string>, c: Record<string, unknown>): Promise<{ code: number, raw: string }> => {
    let raw = ''
    const code = await dispatch(funcs, { getenv: (k) => e[k], stdin: async () => JSON.stringify(c), stdout: (s) => { raw += s } })
    return { code, raw }
  }
  const reserved = (): string[] => readdirSync(join(dir, 'ferry')).filter(f => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort()
  t.equal((await run(env('ADD'), conf())).code, 0)
  t.equal((await run(envB('ADD'), conf())).code, 0)
  t.same(reserved(), ['10.244.1.2', '10.244.1.3'])
  files.delete(NODE_FILE)
  t.same(await run(env('DEL'), conf()), { code: 0, raw: '' }, 'DEL succeeds')
  t.same(reserved(), ['10.244.1.3'], 'DEL released A\'s address')
  const gc = await run({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf('1.1.0', { 'cni.dev/valid-attachments': [] }))
  t.same(gc, { code: 0, raw: '' }, 'GC succeeds')
  t.same(reserved(), [], 'GC released B\'s address')
})

t.test('DEL and GC succeed, every time, with a node file that cannot be read or parsed: they need nothing from it', async t => {
  // SPEC (DEL): a repeated DEL returns success once the attachment's resources are gone. DEL and GC used to read
  // the node file and report its error after cleaning up, so a hand-broken or unreadable file failed every DEL.
  for (const [what, text] of [['garbage', 'garbage\n'], ['a bad value', NODE_V4.replace('FERRY_MTU=1450', 'FERRY_MTU=abc')]]) {
    const h = harness()
    const c = conf('1.1.0', { ipMasq: true })
    for (const e of [env('ADD'), envB('ADD')]) t.equal((await h.run(e, c)).code, 0)
    h.files.set(NODE_FILE, text ?? '')
    for (const n of [1, 2]) t.same(await h.run(env('DEL'), c), { code: 0, raw: '', out: null }, `${what}: DEL #${n}`)
    t.equal(h.dp.link('', HOST_A), undefined, `${what}: veth gone`)
    t.notOk(h.dp.chains.has(masqChainName('ferry', CID_A, 'eth0')), `${what}: chain gone`)
    t.same(await h.ipam().reserved({ containerID: CID_A, ifname: 'eth0' }), [], `${what}: A's address released`)
    const gc = await h.run({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf('1.1.0', { 'cni.dev/valid-attachments': [] }))
    t.same(gc, { code: 0, raw: '', out: null }, `${what}: GC`)
    t.same(await h.ipam().available(), [253], `${what}: GC released B's address`)
  }
})

t.test('GC with the list null (how libcni sends a nil Go slice: no attachment is valid) releases everything', async t => {
  const h = harness()
  for (const e of [env('ADD'), envB('ADD')]) t.equal((await h.run(e, conf())).code, 0)
  const r = await h.run({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf('1.1.0', { 'cni.dev/valid-attachments': null, 'cni.dev/attachments': null }))
  t.same([r.code, r.raw], [0, ''])
  t.same(await h.dp.bridgePorts('ferry0'), [])
  t.same(await h.ipam().available(), [253])
})

t.test('DEL and GC remove the masquerade chain ADD made when the setting changed in between (config or node file)', async t => {
  const on = NODE_V4.replace('FERRY_IPMASQ=false', 'FERRY_IPMASQ=true')
  const cases: Array<{ name: string, addNode: string, addConf: Record<string, unknown>, delNode: string, delConf: Record<string, unknown> }> = [
    { name: 'config ipMasq true → false', addNode: NODE_V4, addConf: { ipMasq: true }, delNode: NODE_V4, delConf: { ipMasq: false } },
    { name: 'config ipMasq true → unset, node file off', addNode: NODE_V4, addConf: { ipMasq: true }, delNode: NODE_V4, delConf: {} },
    { name: 'FERRY_IPMASQ true → false', addNode: on, addConf: {}, delNode: NODE_V4, delConf: {} },
    { name: 'FERRY_IPMASQ true, config ipMasq false at DEL', addNode: on, addConf: {}, delNode: on, delConf: { ipMasq: false } },
  ]
  for (const c of cases) {
    const h = harness({ nodeFile: c.addNode })
    for (const e of [env('ADD'), envB('ADD')]) t.equal((await h.run(e, conf('1.1.0', c.addConf))).code, 0, `${c.name}: ADD`)
    const chainA = masqChainName('ferry', CID_A, 'eth0')
    const chainB = masqChainName('ferry', CID_B, 'eth0')
    t.same([...h.dp.chains.keys()].sort(), [chainA, chainB].sort(), `${c.name}: ADD masqueraded both`)
    h.files.set(NODE_FILE, c.delNode)
    const d = await h.run(env('DEL'), conf('1.1.0', c.delConf))
    t.same([d.code, d.raw], [0, ''], `${c.name}: DEL`)
    t.same([...h.dp.chains.keys()], [chainB], `${c.name}: DEL removed A's chain, and only A's`)
    const g = await h.run({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf('1.1.0', { ...c.delConf, 'cni.dev/valid-attachments': [] }))
    t.same([g.code, g.raw], [0, ''], `${c.name}: GC`)
    t.same([...h.dp.chains.keys()], [], `${c.name}: GC removed B's chain`)
  }
})

t.test('CHECK verifies every prevResult address of the pod interface, not only those indexed at its first entry', async t => {
  const h = harness()
  const add = await h.run(env('ADD'), conf('1.1.0'))
  const prev = add.out ?? {}
  const ifs = prev.interfaces as Array<Record<string, unknown>>
  const ips = prev.ips as Array<Record<string, unknown>>
  const pod = h.dp.link(NETNS_A, 'eth0')
  if (pod === undefined) throw new Error('no pod link')
  const { interface: _, ...unindexed } = ips[0] ?? {}
  // Ways a valid prevResult can point at the pod interface other than by ips[].interface = its first index.
  const variants: Array<[string, Record<string, unknown>]> = [
    ['ips without "interface" (optional in the SPEC)', { ...prev, ips: [unindexed] }],
    ['pod interface listed again by a later plugin, address on that entry', { ...prev, interfaces: [...ifs, { name: 'eth0', sandbox: NETNS_A }], ips: [{ ...ips[0], interface: ifs.length }] }],
    ['interface index past the list', { ...prev, ips: [{ ...ips[0], interface: 9 }] }],
  ]
  for (const [name, prevResult] of variants) {
    const check = async (): Promise<{ code: number, out: Record<string, unknown> | null, raw: string }> => await h.run(env('CHECK'), conf('1.1.0', { prevResult }))
    t.equal((await check()).code, 0, `${name}: healthy passes`)
    const addrs = pod.addresses
    pod.addresses = []
    const r = await check()
    t.same([r.code, r.out?.code], [1, 102], `${name}: missing address fails`)
    t.match(r.out?.msg, /lacks address 10\.244\.1\.2\/24/, `${name}: names the address`)
    pod.addresses = addrs
    await h.ipam().release({ containerID: CID_A, ifname: 'eth0' })
    const r2 = await check()
    t.same([r2.code, r2.out?.code], [1, 102], `${name}: lost reservation fails`)
    t.match(r2.out?.msg, /10\.244\.1\.2\/24 is not reserved/, `${name}: names the reservation`)
    h.ipam().held[0]?.set('10.244.1.2', `${CID_A}\neth0`)
  }
  // Chaining: an address a plugin before us put on another interface is not ours to find on eth0.
  const chained = { ...prev, interfaces: [{ name: 'net1', sandbox: NETNS_A }, ...ifs], ips: [{ address: '192.0.2.9/32', interface: 0 }, ...ips.map(ip => ({ ...ip, interface: Number(ip.interface) + 1 }))] }
  const c = await h.run(env('CHECK'), conf('1.1.0', { prevResult: chained }))
  t.equal(c.code, 0, `another interface's address is not checked on eth0: ${c.raw}`)
})
