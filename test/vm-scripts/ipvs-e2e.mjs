// IPVS mode end to end, run inside the test VM (test/e2e/ipvs-vm.test.ts boots it): the real ferryd on a
// manifest directory with --proxy-mode ipvs, client and backends in network namespaces, real traffic.
// Prints one line per check, "CHECK ok|fail NAME :: detail", which the host test asserts one by one.
import { rm, writeFile } from 'node:fs/promises'
import { execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'

const DIST = process.env.FERRY_DIST ?? '/ferry/dist'
const { Lab, LAB } = await import(`${DIST}/pkg/lab/lab.js`)
const { startFerryd } = await import(`${DIST}/pkg/lab/ferryd.js`)
const { check, sleep, until, svc, slice, webLab, runChecks } = await import('./vm-lib.mjs')

const WEB = ['10.244.0.11', '10.244.0.12', '10.244.0.13'].map(ip => ({ ip }))
const files = (web = WEB) => ({
  'web.yaml': svc('web', '10.96.0.10', { nodePort: 30080 }) + '---\n' + slice('web-1', 'web', web),
  'empty.yaml': svc('empty', '10.96.0.20'),
  'sticky.yaml': svc('sticky', '10.96.0.30', { sticky: true }) + '---\n' + slice('sticky-1', 'sticky', WEB),
  'local.yaml': svc('local', '10.96.0.40', { nodePort: 30090, local: true }) + '---\n' + slice('local-1', 'local', [{ ip: '10.244.0.11' }, { ip: '10.244.0.12', node: 'other-node' }]),
  'drain.yaml': svc('drain', '10.96.0.50') + '---\n' + slice('drain-1', 'drain', WEB),
})
async function writeAll (dir, map) { for (const [f, text] of Object.entries(map)) await writeFile(join(dir, f), text) }

const { lab, client, dir } = await webLab(Lab, 'ferry-ipvs-')
let ferryd
await runChecks(async () => {
  await writeAll(dir, files())
  const args = ['--manifests', dir, '--node-name', 'lab-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '100ms', '--ipvs-graceful-termination', '60s']
  ferryd = startFerryd(lab, ['--proxy-mode', 'ipvs', ...args])
  const t0 = Date.now()
  await ferryd.waitReady(120_000)
  check('ready in ipvs mode', /"msg":"proxy mode","mode":"ipvs"/.test(ferryd.logs()), `ready after ${Date.now() - t0} ms`)
  const metrics = (await ferryd.http('/metrics')).body
  check('ferry_proxy_mode gauge says ipvs', /ferry_proxy_mode\{mode="ipvs"\} 1/.test(metrics), metrics.split('\n').filter(l => l.startsWith('ferry_proxy_mode')).join(' '))

  const ipvsadm = () => lab.sh(['ipvsadm', '-Ln'])
  const table = await ipvsadm()
  const spread = await lab.spread('http://10.96.0.10/', 30, client.ns)
  check('pod -> ClusterIP reaches every endpoint', [...spread.keys()].sort().join(',') === 'web-1,web-2,web-3', JSON.stringify([...spread]))
  const one = await lab.get('http://10.96.0.10/', client.ns)
  check('pod -> ClusterIP keeps the client IP', one.ok && / 10\.244\.0\.50$/.test(one.body), JSON.stringify(one))
  const ext = await lab.spread(`http://${LAB.nodeExternalIP}:30080/`, 30)
  check('external -> NodePort reaches every endpoint', [...ext.keys()].sort().join(',') === 'web-1,web-2,web-3', JSON.stringify([...ext]))
  const extOne = await lab.get(`http://${LAB.nodeExternalIP}:30080/`)
  check('external -> NodePort is masqueraded', extOne.ok && !extOne.body.endsWith(LAB.clientIP), JSON.stringify(extOne))

  const state = JSON.parse((await ferryd.http('/debug/state')).body)
  const webVS = /TCP {2}10\.96\.0\.10:80 rr\n((?: {2}-> .*\n)+)/.exec(table + '\n')
  const dests = (webVS?.[1] ?? '').split('\n').filter(l => l.includes('->')).map(l => l.trim().split(/\s+/)[1]).sort()
  const want = (state.proxiers?.[0]?.servicePorts ?? []).find(s => s.clusterIP === '10.96.0.10')?.cluster?.sort() ?? []
  check('ipvsadm agrees with /debug/state', dests.length === 3 && JSON.stringify(dests) === JSON.stringify(want), `ipvsadm ${JSON.stringify(dests)} debug ${JSON.stringify(want)}`)
  const bound = await lab.sh(['ip', '-o', 'addr', 'show', 'dev', 'ferry-ipvs0'])
  check('ClusterIPs bound to ferry-ipvs0', ['10.96.0.10', '10.96.0.20', '10.96.0.30', '10.96.0.40'].every(ip => bound.includes(`${ip}/32`)), bound)

  const empty = await lab.get('http://10.96.0.20/', client.ns, 5)
  check('a Service without endpoints is refused at once', !empty.ok && empty.error === 'refused' && empty.ms < 1500, JSON.stringify(empty))
  const unused = await lab.get('http://10.96.0.10:81/', client.ns, 5)
  check('a bound VIP on a port no Service uses is refused', !unused.ok && unused.error === 'refused' && unused.ms < 1500, JSON.stringify(unused))

  const sticky = await lab.spread('http://10.96.0.30/', 12, client.ns)
  check('ClientIP affinity sticks to one endpoint', sticky.size === 1, JSON.stringify([...sticky]))

  const local = await lab.spread(`http://${LAB.nodeExternalIP}:30090/`, 12)
  const localOne = await lab.get(`http://${LAB.nodeExternalIP}:30090/`)
  check('eTP=Local: external clients reach only the local endpoint', [...local.keys()].join(',') === 'web-1', JSON.stringify([...local]))
  check('eTP=Local keeps the client IP', localOne.ok && localOne.body.endsWith(LAB.clientIP), JSON.stringify(localOne))
  const podLocal = await lab.spread(`http://${LAB.nodeExternalIP}:30090/`, 24, client.ns)
  check('eTP=Local: pods reach every endpoint (short-circuit)', [...podLocal.keys()].sort().join(',') === 'web-1,web-2', JSON.stringify([...podLocal]))

  // Drain, on a Service nothing else uses: its one established connection keeps a removed endpoint at
  // weight 0; once that connection ends (a reset: IPVS keeps it 10 s in CLOSE) the endpoint is deleted,
  // well before the 60 s cap.
  const flow = spawn('ip', ['netns', 'exec', client.ns, 'node', '-e', `
    const c = require('net').connect(80, '10.96.0.50', () => console.log('connected'))
    process.on('SIGUSR1', () => { c.resetAndDestroy(); setTimeout(() => process.exit(0), 200) })`], { stdio: ['ignore', 'pipe', 'inherit'] })
  let conns = ''
  await until(async () => { conns = await lab.sh(['ipvsadm', '-Lnc']); return /ESTABLISHED .*10\.96\.0\.50:80/.test(conns) }, 15_000)
  // "TCP 14:58  ESTABLISHED 10.244.0.50:41234 10.96.0.50:80 10.244.0.13:8080": the last column is the destination.
  const pinned = (conns.split('\n').find(l => l.includes('ESTABLISHED') && l.includes('10.96.0.50:80')) ?? '').trim().split(/\s+/).at(-1)?.replace(/:8080$/, '')
  const drainBlock = (text) => (/TCP {2}10\.96\.0\.50:80 rr\n((?: {2}-> .*\n)*)/.exec(text + '\n')?.[1] ?? '')
  await writeAll(dir, { 'drain.yaml': svc('drain', '10.96.0.50') + '---\n' + slice('drain-1', 'drain', WEB.filter(e => e.ip !== pinned)) })
  const drained = await until(async () => new RegExp(`-> ${pinned?.replace(/\./g, '\\.')}:8080 +Masq +0 +1`).test(drainBlock(await ipvsadm())), 10_000)
  check('a removed endpoint drains with weight 0 while its connection lives', pinned !== undefined && drained, `pinned ${pinned} | ${drainBlock(await ipvsadm())}`)
  const newOnes = await lab.spread('http://10.96.0.50/', 12, client.ns)
  check('new connections avoid the draining endpoint', pinned !== undefined && newOnes.size > 0 && !newOnes.has(`web-${Number(pinned.split('.')[3]) - 10}`), JSON.stringify([...newOnes]))
  const closedAt = Date.now()
  flow.kill('SIGUSR1')
  const gone = await until(async () => !drainBlock(await ipvsadm()).includes(`${pinned}:8080`), 50_000)
  const tookMs = Date.now() - closedAt
  check('the drained endpoint is deleted once its connection ends (before the 60 s cap)', gone && tookMs < 45_000, `${tookMs} ms after the reset | ${drainBlock(await ipvsadm())}`)

  // Deleting a Service removes its virtual servers and its VIP.
  await rm(join(dir, 'sticky.yaml'))
  const vsGone = await until(async () => !(await ipvsadm()).includes('10.96.0.30:80'))
  const vipGone = await until(async () => !(await lab.sh(['ip', '-o', 'addr', 'show', 'dev', 'ferry-ipvs0'])).includes('10.96.0.30/32'))
  check('deleting a Service removes its virtual server and its VIP', vsGone && vipGone)

  // Restart: the kernel state stays while ferryd is down, and the new ferryd adopts it without a flush.
  await until(async () => (await ipvsadm()).match(/-> 10\.244\.0\.1\d:8080/g)?.length >= 3)
  const before = (await ipvsadm()).split('\n').filter(l => l.includes('->') || l.startsWith('TCP')).map(l => l.trim().split(/\s+/).slice(0, 3).join(' '))
  await ferryd.stop()
  const during = await lab.spread('http://10.96.0.10/', 15, client.ns)
  check('traffic flows while ferryd is stopped', during.size >= 2, JSON.stringify([...during]))
  ferryd = startFerryd(lab, ['--proxy-mode', 'auto', ...args])
  await ferryd.waitReady(120_000)
  const after = (await ipvsadm()).split('\n').filter(l => l.includes('->') || l.startsWith('TCP')).map(l => l.trim().split(/\s+/).slice(0, 3).join(' '))
  check('auto picks IPVS where the kernel has it', /"msg":"proxy mode","mode":"ipvs","reason":"auto: /.test(ferryd.logs()), ferryd.logs().split('\n').find(l => l.includes('proxy mode')))
  check('the restarted ferryd adopts the kernel state unchanged', JSON.stringify(after.sort()) === JSON.stringify(before.sort()), `before ${before.length} after ${after.length}`)
  const afterRestart = await lab.spread('http://10.96.0.10/', 30, client.ns)
  check('traffic flows after the restart', afterRestart.size === 3, JSON.stringify([...afterRestart]))
  const synced = JSON.parse((await ferryd.http('/debug/state')).body)
  check('the first sync after a restart sent only what differed', (synced.proxiers?.[0]?.lastSync?.summary?.ops ?? -1) <= 2, JSON.stringify(synced.proxiers?.[0]?.lastSync))

  await ferryd.stop()
  const cleanup = spawn('ip', ['netns', 'exec', lab.nodeNs, 'node', `${DIST}/cmd/ferryd.js`, '--cleanup'], { stdio: 'inherit' })
  const code = await new Promise(resolve => cleanup.on('exit', resolve))
  const leftover = await ipvsadm()
  const dev = await lab.sh(['ip', '-o', 'link', 'show', 'ferry-ipvs0']).catch(() => '')
  const sets = await lab.sh(['ipset', 'list', '-n'])
  check('ferryd --cleanup removes ferry\'s virtual servers, device and sets', code === 0 && !/TCP|UDP/.test(leftover) && dev === '' && !/FERRY/i.test(sets), `code ${code} | ${leftover} | ${dev} | ${sets}`)
}, async () => {
  await ferryd?.stop().catch(() => {})
  await lab.close().catch(() => {})
  await rm(dir, { recursive: true, force: true })
  try { execFileSync('ipvsadm', ['-C']) } catch {}
})
