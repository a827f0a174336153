// ferry-cni end to end as root, run exactly as a runtime does (env + stdin JSON), inside a throwaway
// "node" netns so the bridge lives there; two pod netns; the real disk IPAM in a temp dir.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { spawnExec } from '../../pkg/exec/exec.js'
import { hostVethName, masqChainName } from '../../cni-plugin/names.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

const ROOT = resolve(import.meta.dirname, '../..')
const NODE = 'fycniN'
const PODS = ['fycniP1', 'fycniP2']
const sh = async (...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await spawnExec(argv)

interface Run { code: number, out: Record<string, unknown> | null, raw: string }

type Plugin = string[]

async function cni (plugin: Plugin, command: string, env: Record<string, string>, conf: Record<string, unknown>): Promise<Run> {
  const [cmd, ...args] = ['ip', 'netns', 'exec', NODE, ...plugin]
  return await new Promise((done, fail) => {
    const child = spawn(cmd ?? 'ip', args, {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin', ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    let raw = ''
    child.stdout.on('data', (b: Buffer) => { raw += b.toString() })
    child.on('error', fail)
    child.on('close', (code) => { done({ code: code ?? 1, raw, out: raw === '' ? null : JSON.parse(raw) as Record<string, unknown> }) })
    child.stdin.end(JSON.stringify(conf))
  })
}

async function setup (t: Test): Promise<{ dir: string, conf: Record<string, unknown> }> {
  for (const ns of [NODE, ...PODS]) { await sh('ip', 'netns', 'del', ns); await sh('ip', 'netns', 'add', ns) }
  const dir = mkdtempSync(join(tmpdir(), 'fy-cni-'))
  t.teardown(async () => {
    for (const ns of [NODE, ...PODS]) await sh('ip', 'netns', 'del', ns)
    rmSync(dir, { recursive: true, force: true })
  })
  writeFileSync(join(dir, 'subnet.env'), 'FERRY_NETWORK=10.99.0.0/16\nFERRY_SUBNET=10.99.1.1/24\nFERRY_MTU=1400\nFERRY_IPMASQ=false\n')
  return { dir, conf: { cniVersion: '1.0.0', name: 'fytest', type: 'ferry-cni', bridge: 'fybr0', subnetFile: join(dir, 'subnet.env'), dataDir: join(dir, 'ipam') } }
}

const podEnv = (i: number): Record<string, string> => ({ CNI_CONTAINERID: `fycid${i}`, CNI_NETNS: `/run/netns/${PODS[i] ?? ''}`, CNI_IFNAME: 'eth0' })
const inNs = async (ns: string, ...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await sh('ip', 'netns', 'exec', ns, ...argv)

async function scenario (t: Test, p: Plugin): Promise<void> {
  const { conf } = await setup(t)
  const masqConf = { ...conf, ipMasq: true }
  const results: Array<Record<string, unknown>> = []
  for (const i of [0, 1]) {
    const r = await cni(p, 'ADD', podEnv(i), i === 1 ? masqConf : conf)
    t.equal(r.code, 0, `ADD pod ${i}: ${r.raw}`)
    results.push(r.out ?? {})
  }
  const ipOf = (r: Record<string, unknown>): string => String((r.ips as Array<{ address: string }>)[0]?.address).split('/')[0] ?? ''
  const [ip0, ip1] = results.map(ipOf)
  t.not(ip0, ip1, 'distinct pod IPs')
  t.match(results[0], { cniVersion: '1.0.0', interfaces: [{ name: 'fybr0' }, { name: hostVethName('fycid0', 'eth0') }, { name: 'eth0', sandbox: '/run/netns/fycniP1' }] })

  // The bridge is in the node netns, not here.
  t.equal((await sh('ip', 'link', 'show', 'fybr0')).code, 1, 'no bridge in the host netns')
  t.match((await inNs(NODE, 'ip', '-br', 'addr', 'show', 'fybr0')).stdout, /10\.99\.1\.1\/24/, 'bridge has the gateway')
  const link = await inNs(PODS[0] ?? '', 'ip', '-j', 'link', 'show', 'eth0')
  t.equal((JSON.parse(link.stdout) as Array<{ mtu: number }>)[0]?.mtu, 1400, 'pod MTU from the node file')
  t.match((await inNs(PODS[0] ?? '', 'ip', 'route', 'show', 'default')).stdout, /default via 10\.99\.1\.1 dev eth0/)

  t.equal((await inNs(PODS[0] ?? '', 'ping', '-c1', '-W2', ip1 ?? '')).code, 0, 'pod 0 pings pod 1')
  t.equal((await inNs(PODS[1] ?? '', 'ping', '-c1', '-W2', ip0 ?? '')).code, 0, 'pod 1 pings pod 0')
  t.equal((await inNs(PODS[0] ?? '', 'ping', '-c1', '-W2', '10.99.1.1')).code, 0, 'pod pings the gateway')

  const check = await cni(p, 'CHECK', podEnv(0), { ...conf, prevResult: results[0] })
  t.equal(check.code, 0, `CHECK passes: ${check.raw}`)
  const again = await cni(p, 'ADD', podEnv(0), conf)
  t.equal(again.out?.code, 101, 'second ADD of the same attachment refused')

  const chain = masqChainName('fytest', 'fycid1', 'eth0')
  t.match((await inNs(NODE, 'iptables-save', '-t', 'nat')).stdout, new RegExp(`-A POSTROUTING -s ${ip1 ?? ''}/32 .*-j ${chain}`), 'masquerade chain for pod 1')

  t.equal((await cni(p, 'DEL', podEnv(0), conf)).code, 0, 'DEL pod 0')
  t.equal((await inNs(NODE, 'ip', 'link', 'show', hostVethName('fycid0', 'eth0'))).code, 1, 'host veth gone')
  t.equal((await inNs(PODS[0] ?? '', 'ip', 'link', 'show', 'eth0')).code, 1, 'pod interface gone')
  t.equal((await cni(p, 'DEL', podEnv(0), conf)).code, 0, 'DEL is idempotent')
  const failedCheck = await cni(p, 'CHECK', podEnv(0), { ...conf, prevResult: results[0] })
  t.equal(failedCheck.out?.code, 102, 'CHECK after DEL fails')

  await sh('ip', 'netns', 'del', PODS[1] ?? '')
  const del = await cni(p, 'DEL', podEnv(1), masqConf)
  t.equal(del.code, 0, `DEL with the netns already deleted: ${del.raw}`)
  t.equal((await inNs(NODE, 'ip', 'link', 'show', hostVethName('fycid1', 'eth0'))).code, 1, 'its host veth is gone')
  t.notMatch((await inNs(NODE, 'iptables-save', '-t', 'nat')).stdout, chain, 'its masquerade chain is gone')
  // A repeated DEL succeeds whatever the node file holds (DEL does not read it), and with a null prevResult
  // (Go's decoder, hence bridge, reads null as absent).
  writeFileSync(String(conf.subnetFile), 'garbage\n')
  const again1 = await cni(p, 'DEL', podEnv(1), { ...masqConf, prevResult: null })
  t.same([again1.code, again1.raw], [0, ''], 'DEL again with a broken node file and prevResult null')

  const ver = await cni(p, 'VERSION', {}, { cniVersion: '1.1.0' })
  t.same(ver.out, { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] })
}

t.test('bin/ferry-cni with the disk IPAM, run as a runtime runs it', async t => {
  await scenario(t, [join(ROOT, 'bin/ferry-cni')])
})

t.test('50 parallel ADDs get 50 distinct IPs; 50 parallel DELs leave the pool empty', async t => {
  const { dir, conf } = await setup(t)
  const pods = Array.from({ length: 50 }, (_, i) => `fycniM${i}`)
  for (const ns of pods) { await sh('ip', 'netns', 'del', ns); await sh('ip', 'netns', 'add', ns) }
  t.teardown(async () => { for (const ns of pods) await sh('ip', 'netns', 'del', ns) })
  const env = (i: number): Record<string, string> => ({ CNI_CONTAINERID: `fymany${i}`, CNI_NETNS: `/run/netns/${pods[i] ?? ''}`, CNI_IFNAME: 'eth0' })
  const plugin = [join(ROOT, 'bin/ferry-cni')]
  const adds = await Promise.all(pods.map(async (_, i) => await cni(plugin, 'ADD', env(i), conf)))
  t.same(adds.filter(r => r.code !== 0).map(r => r.raw), [], 'every ADD succeeded')
  const ips = adds.map(r => String((r.out?.ips as Array<{ address: string }> | undefined)?.[0]?.address ?? ''))
  t.equal(new Set(ips).size, 50, '50 distinct addresses')
  t.notOk(ips.some(ip => ip.startsWith('10.99.1.1/')), 'never the gateway')
  const ports = (await inNs(NODE, 'ip', '-o', 'link', 'show', 'master', 'fybr0')).stdout.trim().split('\n').filter(l => l !== '')
  t.equal(ports.length, 50, '50 host veths on the bridge')
  const dels = await Promise.all(pods.map(async (_, i) => await cni(plugin, 'DEL', env(i), conf)))
  t.same(dels.filter(r => r.code !== 0).map(r => r.raw), [], 'every DEL succeeded')
  const store = join(dir, 'ipam', 'fytest')
  const left = readdirSync(store).filter(f => /^\d+\.\d+\.\d+\.\d+$/.test(f))
  t.same(left, [], 'no IP reserved in the store')
  t.same(readdirSync(join(store, 'attachments')), [], 'no ownership record left')
  t.equal((await inNs(NODE, 'ip', '-o', 'link', 'show', 'master', 'fybr0')).stdout.trim(), '', 'no host veth left')
})

t.test('a second attachment in a pod netns that already has a default route (eth0 and eth1 on one network)', async t => {
  // The bridge plugin appends its default route (RouteAddEcmp); ferry-cni's `route add` failed with
  // "File exists" (code 999) and undid the whole ADD. Dual-stack: the IPv6 default becomes one multipath
  // route, which CHECK must still find.
  const { dir, conf } = await setup(t)
  writeFileSync(join(dir, 'subnet.env'), 'FERRY_NETWORK=10.99.0.0/16\nFERRY_SUBNET=10.99.1.1/24\nFERRY_MTU=1400\nFERRY_IPMASQ=false\n' +
    'FERRY_NETWORK_IPV6=fd00:99::/56\nFERRY_SUBNET_IPV6=fd00:99:0:1::1/64\n')
  const plugin = [join(ROOT, 'bin/ferry-cni')]
  const e = (ifname: string): Record<string, string> => ({ ...podEnv(0), CNI_IFNAME: ifname })
  for (const ifname of ['eth0', 'eth1']) {
    const r = await cni(plugin, 'ADD', e(ifname), conf)
    t.equal(r.code, 0, `ADD ${ifname}: ${r.raw}`)
    const check = await cni(plugin, 'CHECK', e(ifname), { ...conf, prevResult: r.out })
    t.equal(check.code, 0, `CHECK ${ifname}: ${check.raw}`)
  }
  const routes = (await inNs(PODS[0] ?? '', 'ip', 'route', 'show', 'default')).stdout
  t.match(routes, /default via 10\.99\.1\.1 dev eth0/)
  t.match(routes, /default via 10\.99\.1\.1 dev eth1/)
  const routes6 = (await inNs(PODS[0] ?? '', 'ip', '-6', 'route', 'show', 'default')).stdout
  t.match(routes6, /via fd00:99:0:1::1 dev eth0/)
  t.match(routes6, /via fd00:99:0:1::1 dev eth1/)
  for (const ifname of ['eth1', 'eth0']) t.equal((await cni(plugin, 'DEL', e(ifname), conf)).code, 0, `DEL ${ifname}`)
})

t.test('interface names ip -batch misreads: "help" and its prefixes, "#", quotes, a trailing backslash', async t => {
  // ip -batch read "help" (and "h") standing as a device name as the keyword, cut a line at "#" (quoted or
  // not) and joined a line ending in "\" to the next: each ADD failed with code 999. Linux allows them all.
  const { dir, conf } = await setup(t)
  const names = ['help', 'h', 'a#b', 'q"x', "'x", 'a\\']
  const plugin = [join(ROOT, 'bin/ferry-cni')]
  const dual = 'FERRY_NETWORK_IPV6=fd00:99::/56\nFERRY_SUBNET_IPV6=fd00:99:0:1::1/64\n'
  // Pod 0 IPv4 only (ip -n NAME), pod 1 dual-stack (nsenter, DAD off first); the bridge is named "help" too.
  for (const [i, v6] of [[0, false], [1, true]] as const) {
    if (v6) writeFileSync(join(dir, 'subnet.env'), `FERRY_NETWORK=10.99.0.0/16\nFERRY_SUBNET=10.99.1.1/24\nFERRY_MTU=1400\nFERRY_IPMASQ=false\n${dual}`)
    const c = { ...conf, bridge: 'help' }
    const e = (ifname: string): Record<string, string> => ({ ...podEnv(i), CNI_IFNAME: ifname })
    for (const ifname of names) {
      const add = await cni(plugin, 'ADD', e(ifname), c)
      t.equal(add.code, 0, `pod ${i} ADD ${ifname}: ${add.raw}`)
      const check = await cni(plugin, 'CHECK', e(ifname), { ...c, prevResult: add.out })
      t.equal(check.code, 0, `pod ${i} CHECK ${ifname}: ${check.raw}`)
    }
    const ns = PODS[i] ?? ''
    const links = JSON.parse((await inNs(ns, 'ip', '-j', 'addr', 'show')).stdout) as Array<{ ifname: string, flags: string[], addr_info: Array<{ family: string, scope: string }> }>
    for (const ifname of names) {
      const l = links.find(x => x.ifname === ifname)
      t.ok(l?.flags.includes('UP'), `pod ${i}: ${ifname} is up`)
      t.same(l?.addr_info.filter(a => a.scope === 'global').map(a => a.family), v6 ? ['inet', 'inet6'] : ['inet'], `pod ${i}: ${ifname} has its addresses`)
    }
    t.equal((await inNs(ns, 'ping', '-c1', '-W2', '-I', 'a#b', '10.99.1.1')).code, 0, `pod ${i}: the gateway answers through a#b`)
    for (const ifname of names) t.equal((await cni(plugin, 'DEL', e(ifname), c)).code, 0, `pod ${i} DEL ${ifname}`)
    t.same((JSON.parse((await inNs(ns, 'ip', '-j', 'link', 'show')).stdout) as Array<{ ifname: string }>).map(l => l.ifname), ['lo'], `pod ${i}: only lo left`)
  }
  t.equal((await inNs(NODE, 'ip', '-o', 'link', 'show', 'master', 'help')).stdout.trim(), '', 'no host veth left on the bridge "help"')
})
