// The iptables backend against the real kernel, inside throwaway network namespaces (root only).
//
//   client (192.168.77.2) --veth-- node (192.168.77.1; 10.99.0.1 on each pod veth) --veth-- pod1..3 (10.99.1.N)
//
// The node netns gets the rules through IptablesBackend (exec wrapped in `ip netns exec`); each pod runs a
// tiny HTTP server on :8080 that answers its name. ClusterIPs (172.30.0.0/16) route to a sink veth on
// the node, so traffic to a service without rules is forwarded (and REJECTed by ferry's filter rules).
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { IptablesBackend } from '../../pkg/proxy/iptables/backend.js'
import { desired, ep, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import { netnsExec, spawnExec, type Variant } from '../../pkg/proxy/iptables/restore.js'
import { servicePortKey, type DesiredServicePort } from '../../pkg/proxy/types.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

const sfx = randomBytes(3).toString('hex')
const NODE = `fe-node-${sfx}`
const CLIENT = `fe-cli-${sfx}`
const PODS = [1, 2, 3].map(i => ({ ns: `fe-pod${i}-${sfx}`, name: `pod${i}`, ip: `10.99.1.${i}` }))
const ALL_NS = [NODE, CLIENT, ...PODS.map(p => p.ns)]
const servers: ChildProcess[] = []

async function sh (...argv: string[]): Promise<string> {
  const r = await spawnExec(argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}: ${r.stderr}`)
  return r.stdout
}

t.teardown(async () => {
  for (const s of servers) {
    if (s.exitCode === null && s.signalCode === null) {
      const gone = new Promise(resolve => s.once('exit', resolve))
      s.kill('SIGKILL')
      await gone
    }
  }
  for (const ns of ALL_NS) await spawnExec(['ip', 'netns', 'del', ns])
})

async function setup (): Promise<void> {
  for (const ns of ALL_NS) {
    await sh('ip', 'netns', 'add', ns)
    await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
  }
  await sh('ip', 'netns', 'exec', NODE, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
  for (const [i, p] of PODS.entries()) {
    const dev = `vp${i + 1}`
    await sh('ip', '-n', NODE, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p.ns)
    await sh('ip', '-n', NODE, 'addr', 'add', '10.99.0.1/32', 'dev', dev)
    await sh('ip', '-n', NODE, 'link', 'set', dev, 'up')
    await sh('ip', '-n', NODE, 'route', 'add', `${p.ip}/32`, 'dev', dev)
    await sh('ip', '-n', p.ns, 'addr', 'add', `${p.ip}/32`, 'dev', 'eth0')
    await sh('ip', '-n', p.ns, 'link', 'set', 'eth0', 'up')
    await sh('ip', '-n', p.ns, 'route', 'add', '10.99.0.1', 'dev', 'eth0')
    await sh('ip', '-n', p.ns, 'route', 'add', 'default', 'via', '10.99.0.1', 'dev', 'eth0')
  }
  await sh('ip', '-n', NODE, 'link', 'add', 'vc', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', CLIENT)
  await sh('ip', '-n', NODE, 'addr', 'add', '192.168.77.1/24', 'dev', 'vc')
  await sh('ip', '-n', NODE, 'link', 'set', 'vc', 'up')
  await sh('ip', '-n', CLIENT, 'addr', 'add', '192.168.77.2/24', 'dev', 'eth0')
  await sh('ip', '-n', CLIENT, 'link', 'set', 'eth0', 'up')
  await sh('ip', '-n', CLIENT, 'route', 'add', 'default', 'via', '192.168.77.1')
  // A veth pair as a sink (the kernel here has no dummy driver).
  await sh('ip', '-n', NODE, 'link', 'add', 'svc0', 'type', 'veth', 'peer', 'name', 'svc0p')
  await sh('ip', '-n', NODE, 'link', 'set', 'svc0p', 'up')
  await sh('ip', '-n', NODE, 'link', 'set', 'svc0', 'up')
  await sh('ip', '-n', NODE, 'route', 'add', '172.30.0.0/16', 'dev', 'svc0')

  const server = "require('http').createServer((q,s)=>{s.setHeader('connection','close');s.end(process.env.NAME)}).listen(8080,'0.0.0.0',()=>console.log('up'))"
  await Promise.all(PODS.map(async p => {
    const child = spawn('ip', ['netns', 'exec', p.ns, process.execPath, '-e', server], { env: { ...process.env, NAME: p.name }, stdio: ['ignore', 'pipe', 'inherit'] })
    servers.push(child)
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => { resolve() })
      child.once('exit', code => { reject(new Error(`server in ${p.ns} exited ${String(code)}`)) })
    })
  }))
}

interface CurlResult { code: number, body: string, ms: number }
async function curl (url: string): Promise<CurlResult> {
  const t0 = performance.now()
  const r = await spawnExec(['ip', 'netns', 'exec', CLIENT, 'curl', '-s', '--connect-timeout', '3', '-m', '4', url])
  return { code: r.code, body: r.stdout, ms: performance.now() - t0 }
}
async function hits (url: string, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const r = await curl(url)
    const k = r.code === 0 ? r.body : `curl exit ${r.code}`
    seen.set(k, (seen.get(k) ?? 0) + 1)
  }
  return seen
}
async function natSave (variant: Variant): Promise<string> {
  return await sh('ip', 'netns', 'exec', NODE, `iptables-${variant}-save`)
}

const pod = (i: number): ReturnType<typeof ep> => ep(PODS[i]?.ip ?? '', 8080)
const web = desired(svcInfo({ name: 'web', clusterIP: '172.30.0.10', nodePort: 30080 }), { cluster: [pod(0), pod(1), pod(2)] })
const api = desired(svcInfo({ name: 'api', clusterIP: '172.30.0.11' }), { cluster: [pod(0)] })
const empty = desired(svcInfo({ name: 'empty', clusterIP: '172.30.0.12', nodePort: 30082 }), { cluster: [], hasAny: false })
const sticky = desired(svcInfo({ name: 'sticky', clusterIP: '172.30.0.13', stickyMaxAgeSeconds: 10800 }), { cluster: [pod(0), pod(1), pod(2)] })
const key = (s: DesiredServicePort): string => servicePortKey(s.info)

t.before(setup)

for (const variant of ['legacy', 'nft'] as const) {
  t.test(`${variant}: traffic through ferry's rules`, async t => {
    const be = new IptablesBackend({ family: 'IPv4', exec: netnsExec(NODE), variant, clusterCIDR: '10.99.0.0/16' })
    const r = await be.sync(stateOf([web, api, empty, sticky]), null)
    t.equal(r.kind, 'full')

    const everyPod = new Set(PODS.map(p => p.name))
    t.same(new Set((await hits('http://172.30.0.10/', 24)).keys()), everyPod, 'ClusterIP reaches every backend')
    t.same(new Set((await hits('http://192.168.77.1:30080/', 24)).keys()), everyPod, 'NodePort reaches every backend')

    for (const url of ['http://172.30.0.12/', 'http://192.168.77.1:30082/']) {
      const c = await curl(url)
      t.equal(c.code, 7, `${url} is refused (curl exit 7)`)
      t.ok(c.ms < 1500, `${url} refused fast (${c.ms.toFixed(0)} ms)`)
    }

    const stuck = await hits('http://172.30.0.13/', 10)
    t.equal(stuck.size, 1, `ClientIP affinity sticks to one backend: ${JSON.stringify([...stuck])}`)
    t.ok([...stuck.keys()].every(k => everyPod.has(k)))

    // Partial sync: api moves from pod1 to pod2; web must keep working throughout.
    const before = await natSave(variant)
    const api2 = desired(api.info, { cluster: [pod(1)] })
    const p = await be.sync(stateOf([web, api2, empty, sticky]), new Set([key(api)]))
    t.equal(p.kind, 'partial')
    t.same([...(await hits('http://172.30.0.11/', 5)).keys()], ['pod2'], 'changed service follows its new endpoint')
    t.same(new Set((await hits('http://172.30.0.10/', 15)).keys()), everyPod, 'unchanged service still reaches every backend')
    const after = await natSave(variant)
    const webChains = (text: string): string[] => text.split('\n').filter(l => /^-A FERRY-(SVC|SEP)-/.test(l) && l.includes('ns1/web'))
    t.same(webChains(after), webChains(before), "the unchanged service's chains are untouched")

    // Deleting a service removes its chains.
    const svcChain = `FERRY-SVC-${/-A FERRY-SERVICES .*-d 172\.30\.0\.10\/32 .*-j FERRY-SVC-(\w+)/.exec(after)?.[1] ?? 'missing'}`
    t.match(after, `:${svcChain} `)
    await be.sync(stateOf([api2, empty, sticky]), new Set([key(web)]))
    const gone = await natSave(variant)
    t.notMatch(gone, svcChain, 'deleted service chain removed')
    t.notMatch(gone, /ns1\/web/, 'no rule mentions the deleted service')
    t.match(gone, /ns1\/api/)

    await be.cleanup()
    const clean = await natSave(variant)
    t.notMatch(clean, /FERRY-/, 'cleanup leaves no FERRY- chain or jump')
    t.notMatch(await sh('ip', 'netns', 'exec', NODE, `iptables-${variant}-save`, '-t', 'mangle'), /FERRY-/)
  })
}

t.test('a restarted backend deletes leftovers without a gap', async t => {
  const old = new IptablesBackend({ family: 'IPv4', exec: netnsExec(NODE), variant: 'legacy', clusterCIDR: '10.99.0.0/16' })
  await old.sync(stateOf([web, api]), null)
  const fresh = new IptablesBackend({ family: 'IPv4', exec: netnsExec(NODE), variant: 'legacy', clusterCIDR: '10.99.0.0/16' })
  await fresh.sync(stateOf([web]), null)
  const text = await natSave('legacy')
  t.notMatch(text, /ns1\/api/, 'leftover chains of a service gone while the daemon was down are deleted')
  t.equal(text.split('\n').filter(l => l.startsWith('-A PREROUTING') && l.includes('FERRY-SERVICES')).length, 1, 'jumps are not duplicated')
  t.same(new Set((await hits('http://172.30.0.10/', 12)).keys()), new Set(PODS.map(p => p.name)))
  await fresh.cleanup()
  t.notMatch(await natSave('legacy'), /FERRY-/)
})
