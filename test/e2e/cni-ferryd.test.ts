// ferry-cni handed to ferryd (--cni-listen) end to end as root: a real ferryd in a throwaway node netns,
// bin/ferry-cni run exactly as a runtime runs it. The verbs must go through ferryd (its counter moves, no
// node is exec'd), answer byte for byte as the node path does, and the front must fall back to node when
// the token is wrong or ferryd is gone.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { spawnExec } from '../../pkg/exec/exec.js'
import { FERRYD_JS } from '../../pkg/lab/ferryd.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

const ROOT = resolve(import.meta.dirname, '../..')
const FRONT = join(ROOT, 'bin/ferry-cni')
const NODE = 'fycdN'
const sh = async (...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await spawnExec(argv)
const inNs = async (ns: string, ...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await sh('ip', 'netns', 'exec', ns, ...argv)
const hasStrace = existsSync('/usr/bin/strace')

interface Run { code: number, raw: string, out: Record<string, unknown> | null, execs: string[] }

interface Ctx { dir: string, serverFile: string, conf: Record<string, unknown>, ferryd: ChildProcess, logs: () => string }

/** Runs the front in the node netns as a runtime would; with strace, also the programs it exec'd. */
async function cni (serverFile: string, command: string, env: Record<string, string>, conf: Record<string, unknown> | string, trace = false): Promise<Run> {
  const traceFile = trace ? join(tmpdir(), `fy-cnid-strace-${process.pid}-${Math.random().toString(36).slice(2)}`) : ''
  const argv = ['ip', 'netns', 'exec', NODE, ...(trace ? ['strace', '-f', '-qq', '-e', 'trace=execve', '-o', traceFile] : []), FRONT]
  return await new Promise((done, fail) => {
    const child = spawn(argv[0] ?? 'ip', argv.slice(1), {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', FERRY_CNI_SERVER_FILE: serverFile, CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin', ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    let raw = ''
    child.stdout.on('data', (b: Buffer) => { raw += b.toString() })
    child.on('error', fail)
    child.on('close', (code) => {
      let execs: string[] = []
      if (trace) {
        execs = readFileSync(traceFile, 'utf8').split('\n').map(l => /execve\("([^"]+)"/.exec(l)?.[1] ?? '').filter(p => p !== '')
        rmSync(traceFile, { force: true })
      }
      let out: Record<string, unknown> | null = null
      try { out = raw === '' ? null : JSON.parse(raw) as Record<string, unknown> } catch {}
      done({ code: code ?? 1, raw, out, execs })
    })
    child.stdin.end(typeof conf === 'string' ? conf : JSON.stringify(conf))
  })
}

async function served (): Promise<number> {
  await new Promise(resolve => setTimeout(resolve, 1100)) // /metrics reuses a render for 1 s (pkg/http/metrics-render.ts)
  const r = await inNs(NODE, 'curl', '-s', '--max-time', '3', 'http://127.0.0.1:10249/metrics')
  return r.stdout.split('\n').filter(l => l.startsWith('ferry_cni_requests_total{')).reduce((n, l) => n + Number(l.split(' ').pop()), 0)
}

async function startFerryd (dir: string, serverFile: string): Promise<{ proc: ChildProcess, logs: () => string }> {
  // Defaults for --cni-listen (127.0.0.1:10251) and --http-listen: both in this netns's own loopback.
  const proc = spawn('ip', ['netns', 'exec', NODE, 'node', FERRYD_JS, '--manifests', join(dir, 'manifests'), '--proxy-mode', 'iptables',
    '--cni-server-file', serverFile, '--log-level', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout?.on('data', (b: Buffer) => { out += b.toString() })
  proc.stderr?.on('data', (b: Buffer) => { out += b.toString() })
  const end = Date.now() + 20_000
  while (!existsSync(serverFile)) {
    if (proc.exitCode !== null || Date.now() > end) { proc.kill('SIGKILL'); throw new Error(`ferryd did not publish ${serverFile}:\n${out}`) }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return { proc, logs: () => out }
}

async function stop (p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return
  p.kill('SIGTERM')
  await new Promise(resolve => { p.once('exit', resolve) })
}

async function setup (t: Test, pods: string[]): Promise<Ctx> {
  for (const ns of [NODE, ...pods]) { await sh('ip', 'netns', 'del', ns); await sh('ip', 'netns', 'add', ns) }
  await inNs(NODE, 'ip', 'link', 'set', 'lo', 'up')
  const dir = mkdtempSync(join(tmpdir(), 'fy-cnid-'))
  mkdirSync(join(dir, 'manifests'))
  writeFileSync(join(dir, 'subnet.env'), 'FERRY_NETWORK=10.96.0.0/16\nFERRY_SUBNET=10.96.1.1/24\nFERRY_MTU=1400\nFERRY_IPMASQ=false\n')
  const serverFile = join(dir, 'run', 'cni-server.env')
  let f: Awaited<ReturnType<typeof startFerryd>> | undefined
  // Registered before ferryd starts: a start that gives up still leaves no namespace or directory.
  t.teardown(async () => {
    if (f !== undefined) await stop(f.proc)
    for (const ns of [NODE, ...pods]) await sh('ip', 'netns', 'del', ns)
    rmSync(dir, { recursive: true, force: true })
  })
  f = await startFerryd(dir, serverFile)
  const conf = { cniVersion: '1.0.0', name: 'fycnid', type: 'ferry-cni', bridge: 'fybr0', subnetFile: join(dir, 'subnet.env'), dataDir: join(dir, 'ipam') }
  return { dir, serverFile, conf, ferryd: f.proc, logs: f.logs }
}

const podEnv = (cid: string, ns: string): Record<string, string> => ({ CNI_CONTAINERID: cid, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0' })
/** A result with its random MACs and its address masked: what stays is the shape and every other byte. */
const masked = (raw: string): string => raw.replace(/"mac":"[0-9a-f:]{17}"/g, '"mac":"M"').replace(/10\.96\.1\.\d+\/24/g, 'IP')

t.test('ADD, CHECK and DEL go through ferryd, with no node started, and answer as the node path does', async t => {
  const c = await setup(t, ['fycdP1', 'fycdP2'])
  const none = join(c.dir, 'no-server.env')
  t.equal(readFileSync(c.serverFile, 'utf8').split('\n').filter(l => l !== '').map(l => l.split('=')[0]).join(','), 'FERRY_CNI_HOST,FERRY_CNI_PORT,FERRY_CNI_TOKEN')
  const before = await served()
  const add = await cni(c.serverFile, 'ADD', podEnv('fycd1', 'fycdP1'), c.conf, hasStrace)
  t.equal(add.code, 0, `ADD via ferryd: ${add.raw}`)
  if (hasStrace) t.same(add.execs, [FRONT], 'only the front itself was exec\'d: no node, no helper')
  t.equal(await served(), before + 1, 'ferryd counted the ADD')
  t.match(c.logs(), /"msg":"CNI request served","command":"ADD","containerID":"fycd1","code":0/)
  t.match((await inNs('fycdP1', 'ip', '-br', 'addr', 'show', 'eth0')).stdout, /10\.96\.1\.\d+\/24/, 'the pod got its address')

  const node = await cni(none, 'ADD', podEnv('fycd2', 'fycdP2'), c.conf, hasStrace)
  t.equal(node.code, 0, `ADD via node: ${node.raw}`)
  if (hasStrace) t.ok(node.execs.some(p => p.endsWith('/node') || p.endsWith('ferry-cni.node')), 'without a server file the front starts node')
  t.equal(masked(add.raw).replace('fycdP1', 'P').replace(/"name":"fy[0-9a-f]{11}"/, '"name":"V"'),
    masked(node.raw).replace('fycdP2', 'P').replace(/"name":"fy[0-9a-f]{11}"/, '"name":"V"'), 'same result bytes but for MACs, address and names')
  t.equal((await inNs('fycdP1', 'ping', '-c1', '-W2', String((node.out?.ips as Array<{ address: string }>)[0]?.address).split('/')[0] ?? '')).code, 0, 'the two pods reach each other')

  const check = await cni(c.serverFile, 'CHECK', podEnv('fycd1', 'fycdP1'), { ...c.conf, prevResult: add.out })
  t.equal(check.code, 0, `CHECK via ferryd: ${check.raw}`)
  t.equal(check.raw, '')

  // Failures are deterministic: byte for byte the same from both paths.
  const cases: Array<[string, Record<string, string>, Record<string, unknown> | string]> = [
    ['ADD', podEnv('fycd1', 'fycdP1'), c.conf], // exists already
    ['ADD', podEnv('fycd3', 'fycdP1'), c.conf], // another attachment, but eth0 is taken in the netns: 101
    ['ADD', podEnv('fycd3', 'fycdGone'), c.conf], // netns missing
    ['ADD', { CNI_IFNAME: 'eth0' }, c.conf], // env missing
    ['ADD', podEnv('fycd3', 'fycdP1'), '{"cniVersion":'], // bad JSON
    ['ADD', podEnv('fycd3', 'fycdP1'), { ...c.conf, cniVersion: '9.9.9' }],
    ['CHECK', podEnv('fycd3', 'fycdP1'), { ...c.conf, prevResult: add.out }],
    ['FROB', {}, c.conf],
  ]
  for (const [cmd, env, conf] of cases) {
    const viaD = await cni(c.serverFile, cmd, env, conf)
    const viaN = await cni(none, cmd, env, conf)
    t.same([viaD.code, viaD.raw], [viaN.code, viaN.raw], `${cmd} ${JSON.stringify(env)}: ${viaD.raw}`)
  }
  const mid = await served()
  // All but the missing netns: ferryd cannot see it as the caller's namespace, so the front ran it.
  t.equal(mid, before + 2 + cases.length - 1, `each went through ferryd but the missing netns: ${c.logs().split('\n').filter(l => l.includes('left to the front')).join('\n')}`)

  for (const [cid, ns] of [['fycd1', 'fycdP1'], ['fycd2', 'fycdP2']] as const) {
    const del = await cni(c.serverFile, 'DEL', podEnv(cid, ns), c.conf, hasStrace)
    t.same([del.code, del.raw], [0, ''], `DEL ${cid} via ferryd`)
    if (hasStrace) t.same(del.execs, [FRONT])
  }
  t.same(readdirSync(join(c.dir, 'ipam', 'fycnid')).filter(f => /^\d/.test(f)), [], 'pool empty')
  t.equal((await inNs(NODE, 'ip', '-o', 'link', 'show', 'master', 'fybr0')).stdout.trim(), '', 'no host veth left')
})

t.test('dual-stack and hairpin through ferryd: the bridge reconciled, both ends as the node path makes them', async t => {
  const c = await setup(t, ['fycdP1', 'fycdP2'])
  writeFileSync(join(c.dir, 'subnet.env'), 'FERRY_NETWORK=10.96.0.0/16\nFERRY_SUBNET=10.96.1.1/24\nFERRY_MTU=1400\nFERRY_IPMASQ=false\n' +
    'FERRY_NETWORK_IPV6=fd96::/48\nFERRY_SUBNET_IPV6=fd96:0:0:1::1/64\n')
  // A bridge left with another subnet's address and the wrong MTU, down.
  await inNs(NODE, 'ip', 'link', 'add', 'fybr0', 'mtu', '1500', 'type', 'bridge')
  await inNs(NODE, 'ip', 'addr', 'add', '10.9.0.1/24', 'dev', 'fybr0')
  const conf = { ...c.conf, hairpinMode: true }
  const add = await cni(c.serverFile, 'ADD', podEnv('fycd1', 'fycdP1'), conf)
  t.equal(add.code, 0, `ADD via ferryd: ${add.raw}`)
  const none = join(c.dir, 'no-server.env')
  const node = await cni(none, 'ADD', podEnv('fycd2', 'fycdP2'), conf)
  t.equal(node.code, 0, `ADD via node: ${node.raw}`)
  const mask = (raw: string, ns: string): string => masked(raw).replace(ns, 'P').replace(/"name":"fy[0-9a-f]{11}"/, '"name":"V"').replace(/fd96:0:0:1::[0-9a-f]+\/64/, 'IP6')
  t.equal(mask(add.raw, 'fycdP1'), mask(node.raw, 'fycdP2'), 'same result bytes but for MACs, addresses and names')

  const br = JSON.parse((await inNs(NODE, 'ip', '-j', 'addr', 'show', 'dev', 'fybr0')).stdout) as Array<{ mtu: number, flags: string[], addr_info: Array<{ local: string, prefixlen: number, scope: string }> }>
  t.same(br[0]?.addr_info.filter(a => a.scope === 'global').map(a => `${a.local}/${a.prefixlen}`).sort(), ['10.96.1.1/24', 'fd96:0:0:1::1/64'], 'stale address gone, both gateways on')
  t.same([br[0]?.mtu, br[0]?.flags.includes('UP')], [1400, true], 'bridge MTU from the node file, up')
  for (const [r, ns] of [[add, 'fycdP1'], [node, 'fycdP2']] as const) {
    const host = String((r.out?.interfaces as Array<{ name: string }>)[1]?.name)
    const l = JSON.parse((await inNs(NODE, 'ip', '-d', '-j', 'link', 'show', 'dev', host)).stdout) as Array<{ mtu: number, master: string, flags: string[], linkinfo: { info_slave_data?: { hairpin?: boolean } } }>
    t.same([l[0]?.mtu, l[0]?.master, l[0]?.flags.includes('UP'), l[0]?.linkinfo.info_slave_data?.hairpin], [1400, 'fybr0', true, true], `${ns}: host end enslaved, up, hairpin`)
    const pod = JSON.parse((await inNs(ns, 'ip', '-j', 'addr', 'show', 'dev', 'eth0')).stdout) as Array<{ mtu: number, address: string, addr_info: Array<{ local: string, scope: string }> }>
    t.equal(pod[0]?.mtu, 1400)
    t.equal(pod[0]?.address, (r.out?.interfaces as Array<{ mac: string }>)[2]?.mac, `${ns}: the pod end has the MAC of the result`)
    t.same(pod[0]?.addr_info.filter(a => a.scope === 'global').map(a => a.local.includes(':') ? 'v6' : 'v4').sort(), ['v4', 'v6'])
  }
  const p2v6 = String((node.out?.ips as Array<{ address: string }>)[1]?.address).split('/')[0] ?? ''
  t.equal((await inNs('fycdP1', 'ping', '-6', '-c1', '-W2', p2v6)).code, 0, 'IPv6 between the two pods')
  for (const [cid, ns] of [['fycd1', 'fycdP1'], ['fycd2', 'fycdP2']] as const) {
    const del = await cni(c.serverFile, 'DEL', podEnv(cid, ns), conf)
    t.same([del.code, del.raw], [0, ''], `DEL ${cid} via ferryd`)
  }
  t.equal((await inNs(NODE, 'ip', '-o', 'link', 'show', 'master', 'fybr0')).stdout.trim(), '', 'no host veth left')
})

t.test('a wrong token is refused and the front falls back to node; so does a stopped ferryd', async t => {
  const c = await setup(t, ['fycdP1'])
  const bad = join(c.dir, 'bad.env')
  writeFileSync(bad, readFileSync(c.serverFile, 'utf8').replace(/TOKEN=[0-9a-f]+/, `TOKEN=${'0'.repeat(64)}`), { mode: 0o600 })
  const before = await served()
  const add = await cni(bad, 'ADD', podEnv('fycd1', 'fycdP1'), c.conf, hasStrace)
  t.equal(add.code, 0, `ADD with a wrong token still works, through node: ${add.raw}`)
  if (hasStrace) t.ok(add.execs.length > 1, 'node was started')
  t.equal(await served(), before, 'ferryd ran nothing')
  t.match(c.logs(), /wrong token refused/)

  const stale = join(c.dir, 'stale.env')
  copyFileSync(c.serverFile, stale)
  await stop(c.ferryd)
  t.notOk(existsSync(c.serverFile), 'ferryd removed its server file on exit')
  const del = await cni(stale, 'DEL', podEnv('fycd1', 'fycdP1'), c.conf)
  t.same([del.code, del.raw], [0, ''], 'DEL with ferryd gone (a stale file, nothing listening) falls back to node')
  t.same(readdirSync(join(c.dir, 'ipam', 'fycnid')).filter(f => /^\d/.test(f)), [], 'pool empty')
})

t.test('50 parallel ADDs via ferryd get 50 distinct IPs; 50 parallel DELs empty the pool', async t => {
  const pods = Array.from({ length: 50 }, (_, i) => `fycdM${i}`)
  const c = await setup(t, pods)
  const before = await served()
  const adds = await Promise.all(pods.map(async (ns, i) => await cni(c.serverFile, 'ADD', podEnv(`fymany${i}`, ns), c.conf)))
  t.same(adds.filter(r => r.code !== 0).map(r => r.raw), [], 'every ADD succeeded')
  const ips = adds.map(r => String((r.out?.ips as Array<{ address: string }> | undefined)?.[0]?.address ?? ''))
  t.equal(new Set(ips).size, 50, '50 distinct addresses')
  t.notOk(ips.some(ip => ip.startsWith('10.96.1.1/')), 'never the gateway')
  t.equal(await served(), before + 50, 'all 50 through ferryd')
  const dels = await Promise.all(pods.map(async (ns, i) => await cni(c.serverFile, 'DEL', podEnv(`fymany${i}`, ns), c.conf)))
  t.same(dels.filter(r => r.code !== 0).map(r => r.raw), [], 'every DEL succeeded')
  const store = join(c.dir, 'ipam', 'fycnid')
  t.same(readdirSync(store).filter(f => /^\d+\.\d+\.\d+\.\d+$/.test(f)), [], 'no IP reserved in the store')
  t.same(readdirSync(join(store, 'attachments')), [], 'no ownership record left')
  t.equal((await inNs(NODE, 'ip', '-o', 'link', 'show', 'master', 'fybr0')).stdout.trim(), '', 'no host veth left')
  t.equal(await served(), before + 100)
})

t.test('interface names ip -batch misreads ("help", "#", a quote) work through ferryd too', async t => {
  // ferryd makes the host side over rtnetlink, but the pod side is still an `ip -batch -` in the pod's netns.
  const c = await setup(t, ['fycdP1'])
  const names = ['help', 'a#b', 'q"x']
  const before = await served()
  const e = (ifname: string): Record<string, string> => ({ ...podEnv('fycd1', 'fycdP1'), CNI_IFNAME: ifname })
  for (const ifname of names) {
    const add = await cni(c.serverFile, 'ADD', e(ifname), c.conf)
    t.equal(add.code, 0, `ADD ${ifname}: ${add.raw}`)
    const check = await cni(c.serverFile, 'CHECK', e(ifname), { ...c.conf, prevResult: add.out })
    t.equal(check.code, 0, `CHECK ${ifname}: ${check.raw}`)
  }
  const links = JSON.parse((await inNs('fycdP1', 'ip', '-j', 'addr', 'show')).stdout) as Array<{ ifname: string, flags: string[], addr_info: Array<{ scope: string }> }>
  for (const ifname of names) {
    const l = links.find(x => x.ifname === ifname)
    t.same([l?.flags.includes('UP'), l?.addr_info.filter(a => a.scope === 'global').length], [true, 1], `${ifname} is up with its address`)
  }
  for (const ifname of names) t.same(await cni(c.serverFile, 'DEL', e(ifname), c.conf).then(r => [r.code, r.raw]), [0, ''], `DEL ${ifname}`)
  t.equal(await served(), before + 3 * names.length, 'every verb went through ferryd')
  t.same((JSON.parse((await inNs('fycdP1', 'ip', '-j', 'link', 'show')).stdout) as Array<{ ifname: string }>).map(l => l.ifname), ['lo'], 'only lo left')
})
