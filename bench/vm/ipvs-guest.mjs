// IPVS mode as a black box, inside the test VM (bench/ipvs-vm.sh boots it): the real ferryd started on
// N Services x 5 endpoints (200 JSON List files, a NodePort on every 20th), timed from process start
// until /readyz answers (readiness follows the first sync in the kernel), the virtual servers counted;
// then, beside it, `ipvsadm -R` restoring the identical table (ferryd's own, saved with `ipvsadm -S -n`)
// into a cleared one. Then one-endpoint edits: manifest write to the new destination in the kernel (read
// over netlink in this process, no tool spawned per poll), and ferryd's own sync time for each.
//   node ipvs-guest.mjs [1000,10000] [--edits 7]
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const DIST = process.env.FERRY_DIST ?? '/ferry/dist'
const { openIpvsKernel } = await import(`${DIST}/pkg/proxy/ipvs/kernel.js`)
const argv = process.argv.slice(2)
const sizes = (argv.find(a => /^\d/.test(a)) ?? '10000').split(',').map(Number)
const edits = Number(argv[argv.indexOf('--edits') + 1] ?? 7) || 7
const FILES = 200
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const sh = (cmd, args, input) => execFileSync(cmd, args, { input, maxBuffer: 1 << 30 }).toString()

const clusterIP = i => `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
const podIP = seq => `10.${(seq >> 16) & 255}.${(seq >> 8) & 255}.${seq & 255}`
function fileOf (n, f, edit) {
  const items = []
  for (let i = f; i < n; i += FILES) {
    const nodePort = i % 20 === 0
    items.push({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: `svc${i}`, namespace: `ns${i % 100}` },
      spec: { type: nodePort ? 'NodePort' : 'ClusterIP', clusterIP: clusterIP(i), ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, ...(nodePort ? { nodePort: 30000 + (i / 20) % 2768 } : {}) }] },
    })
    const endpoints = []
    for (let j = 0; j < 5; j++) endpoints.push({ addresses: [j === 0 && edit?.i === i ? edit.ip : podIP(i * 5 + j)], conditions: { ready: true }, nodeName: `node${j}` })
    items.push({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `svc${i}-x1`, namespace: `ns${i % 100}`, labels: { 'kubernetes.io/service-name': `svc${i}` } }, addressType: 'IPv4', endpoints, ports: [{ name: 'http', protocol: 'TCP', port: 8080 }] })
  }
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 1)
}
const fileName = f => `list-${String(f).padStart(3, '0')}.json`

async function ready (ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    try { if ((await fetch('http://127.0.0.1:10249/readyz')).status === 200) return true } catch {}
    await sleep(50)
  }
  return false
}
const vmHWM = pid => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
const median = xs => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)] }

// A node address, so NodePort virtual servers exist too.
try { sh('ip', ['link', 'add', 'fy-b0', 'type', 'veth', 'peer', 'name', 'fy-b1']); sh('ip', ['addr', 'add', '192.168.50.1/24', 'dev', 'fy-b0']); sh('ip', ['link', 'set', 'fy-b0', 'up']); sh('ip', ['link', 'set', 'fy-b1', 'up']) } catch {}

const rows = []
for (const n of sizes) {
  const dir = `/tmp/bench-${n}`
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  for (let f = 0; f < FILES; f++) writeFileSync(join(dir, fileName(f)), fileOf(n, f))
  sh('ipvsadm', ['-C'])
  const t0 = performance.now()
  // The real binary (bin/ferryd execs node with ferryd's own flags; the pid stays node's).
  const ferryd = spawn(join(DIST, '..', 'bin', 'ferryd'), ['--proxy-mode', 'ipvs', '--manifests', dir, '--node-name', 'bench', '--http-listen', '127.0.0.1:10249', '--log-level', 'debug'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  ferryd.stderr.on('data', b => { log += b.toString() })
  const ok = await ready(1_200_000)
  const ferryMs = performance.now() - t0
  const rss = vmHWM(ferryd.pid)
  const vsCount = (sh('ipvsadm', ['-Ln']).match(/^TCP/gm) ?? []).length
  const want = n + Math.ceil(n / 20)
  console.error(`# ${n}: ferryd ready ${ok} after ${Math.round(ferryMs)} ms, ${vsCount} virtual servers (want ${want}), VmHWM ${Math.round(rss)} MiB`)

  // One-endpoint edits: file write -> new destination listed by the kernel.
  const kernel = await openIpvsKernel()
  const lat = []
  const syncMs = []
  for (let e = 0; e < edits; e++) {
    const i = (e * 37 + 5) % n
    const ip = `10.250.${e}.${(i % 200) + 1}`
    const vs = { family: 'IPv4', protocol: 'TCP', address: clusterIP(i), port: 80 }
    const before = log.length
    // The file's text is made before the clock starts (under TCG, 10-30 ms of JSON.stringify): the edit is the write.
    const text = fileOf(n, i % FILES, { i, ip })
    const s = performance.now()
    writeFileSync(join(dir, fileName(i % FILES)), text)
    for (;;) {
      if ((await kernel.listDestinations(vs)).some(d => d.address === ip)) break
      if (performance.now() - s > 60_000) break
      await sleep(2)
    }
    lat.push(performance.now() - s)
    // With --log: the write's wall time, to line up with ferryd's log timestamps.
    if (argv.includes('--log')) { const l = lat[lat.length - 1]; console.error(`# edit ${e}: written ${new Date(Date.now() - (performance.now() - s)).toISOString()}, in the kernel after ${Math.round(l)} ms`) }
    await sleep(300)
    const m = /"msg":"synced","kind":"partial","changed":\d+,"durationMs":(\d+)/.exec(log.slice(before))
    if (m !== null) syncMs.push(Number(m[1]))
    await sleep(700)
  }
  kernel.close()
  ferryd.kill('SIGTERM')
  await new Promise(resolve => ferryd.on('exit', resolve))
  if (argv.includes('--log')) for (const l of log.split('\n')) if (/synced|source|mode|variant|ready|sysctl/.test(l)) console.error(l.slice(0, 400))

  // The peer: ipvsadm -R of the identical table into a cleared one.
  const saved = sh('ipvsadm', ['-S', '-n'])
  sh('ipvsadm', ['-C'])
  const b0 = performance.now()
  sh('ipvsadm', ['-R'], saved)
  const bareMs = performance.now() - b0
  const bareCount = (sh('ipvsadm', ['-Ln']).match(/^TCP/gm) ?? []).length
  rows.push({ n, ferryMs, bareMs, vsCount, bareCount, rss, lat, syncMs })
  sh('ipvsadm', ['-C'])
  rmSync(dir, { recursive: true, force: true })
}
try { sh('ip', ['link', 'del', 'fy-b0']) } catch {}

console.log('| services | virtual servers | ferryd start to ready ms | ipvsadm -R ms | ferry/bare | edit to kernel p50 / max ms | ferryd sync p50 / max ms | VmHWM MiB |')
console.log('|---|---|---|---|---|---|---|---|')
for (const r of rows) {
  console.log(`| ${r.n} | ${r.vsCount} (bare ${r.bareCount}) | ${Math.round(r.ferryMs)} | ${Math.round(r.bareMs)} | ${(r.ferryMs / r.bareMs).toFixed(2)} | ${Math.round(median(r.lat))} / ${Math.round(Math.max(...r.lat))} | ${r.syncMs.length > 0 ? `${median(r.syncMs)} / ${Math.max(...r.syncMs)}` : '-'} | ${Math.round(r.rss)} |`)
}
console.log(`edits: ${rows.map(r => r.lat.map(Math.round).join(' ')).join(' ; ')}`)
