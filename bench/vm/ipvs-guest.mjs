// IPVS mode as a black box, inside the test VM (bench/ipvs-vm.sh boots it): the real ferryd started on
// N Services x 5 endpoints (200 JSON List files, a NodePort on every 20th), timed from process start
// until /readyz answers (readiness follows the first sync in the kernel), the virtual servers counted;
// then, beside it, `ipvsadm -R` restoring the identical table (ferryd's own, saved with `ipvsadm -S -n`)
// into a cleared one. Then one-endpoint edits: manifest write to the new destination in the kernel (read
// over netlink in this process, no tool spawned per poll); for each, ferryd's own partial-sync time and
// its hand-off (network programming latency: from the change reaching the proxy to the end of the sync),
// both from its /metrics. Then 10 s of idle CPU beside a bare rescan of the same files.
//   node ipvs-guest.mjs [1000,10000] [--edits 7] [--log] [--profile] [--node-flags=--always-sparkplug,...] [--no-peer]
//   [--compare='F,G|H' --rounds=K]
// --no-peer: no `ipvsadm -R` (2-3 minutes at 10k under TCG); for iterating on the edit figures, never for the table.
// --log: ferryd at debug level, its sync lines printed (each line is a write on the path it times).
// --profile: ferryd runs with --cpu-prof (a sample each 0.5 ms), and the samples that fall between each
// edit's write and its destination in the kernel, and those of each hand-off, are summed by function,
// self and inclusive (the first edit left out): where an edit's time goes.
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const DIST = process.env.FERRY_DIST ?? '/ferry/dist'
const { openIpvsKernel } = await import(`${DIST}/pkg/proxy/ipvs/kernel.js`)
const { FERRYD_JS } = await import(`${DIST}/pkg/lab/ferryd.js`)
const argv = process.argv.slice(2)
const sizes = (argv.find(a => /^\d/.test(a)) ?? '10000').split(',').map(Number)
const edits = Number(argv[argv.indexOf('--edits') + 1] ?? 7) || 7
const profile = argv.includes('--profile')
/** --node-flags=F,G: V8/node flags for ferryd (node on the entry point, as bin/ferryd execs it). */
const flagList = v => v.split(',').filter(f => f !== '')
const nodeFlags = flagList(argv.find(a => a.startsWith('--node-flags='))?.slice('--node-flags='.length) ?? '')
/**
 * --compare=F,G|H|: one ferryd run per flag set (`|` between sets, an empty set is none), each on every
 * size, the sets taking turns (--rounds=K times over): flags measured side by side in one boot.
 */
const flagSets = (argv.find(a => a.startsWith('--compare='))?.slice('--compare='.length).split('|') ?? [null]).map(v => v === null ? nodeFlags : flagList(v))
const PROF_DIR = '/tmp/ferryd-prof'
/** CLOCK_MONOTONIC in µs: the clock of a .cpuprofile's startTime and timeDeltas. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n)
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

async function ready (ms, gone) {
  const end = Date.now() + ms
  while (Date.now() < end && !gone()) {
    try { if ((await fetch('http://127.0.0.1:10249/readyz')).status === 200) return true } catch {}
    await sleep(50)
  }
  return false
}
const IDLE_MS = 10_000
/** A process's user + system CPU in ms (/proc/PID/stat fields 14 and 15, in 10 ms ticks). */
const cpuMs = pid => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10 }
const vmHWM = pid => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
const median = xs => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)] }
const pm = xs => xs.length > 0 ? `${Math.round(median(xs))} / ${Math.round(Math.max(...xs))}` : '-'
/**
 * ferryd's own sums, in ms, from /metrics (kube-proxy's names): partial syncs' time, and network
 * programming latency, which runs from the moment a change reached the proxy's trackers to the end of
 * the sync that programmed it (the hand-off to the kernel). Read between edits, never inside one, and
 * more than a second apart: ferryd renders /metrics at most once a second.
 */
async function syncSums () {
  let text
  // A kept-alive connection that the server has just closed fails once (ECONNRESET): ask again.
  for (let tries = 0; text === undefined; tries++) {
    try { text = await (await fetch('http://127.0.0.1:10249/metrics')).text() } catch (e) { if (tries >= 2) throw e; await sleep(50) }
  }
  // No line yet (no partial sync so far) is 0.
  const sum = name => Number(new RegExp(`^${name}_sum\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0) * 1000
  return { sync: sum('kubeproxy_sync_partial_proxy_rules_duration_seconds'), handOff: sum('kubeproxy_network_programming_duration_seconds') }
}

// A node address, so NodePort virtual servers exist too.
try { sh('ip', ['link', 'add', 'fy-b0', 'type', 'veth', 'peer', 'name', 'fy-b1']); sh('ip', ['addr', 'add', '192.168.50.1/24', 'dev', 'fy-b0']); sh('ip', ['link', 'set', 'fy-b0', 'up']); sh('ip', ['link', 'set', 'fy-b1', 'up']) } catch {}

/**
 * ferryd's CPU samples inside the windows (one per edit), by function: self time and inclusive time, in
 * ms per edit. `what` names the windows.
 */
function printProfile (all, what) {
  // The first edit after start warms the JIT and lazy indexes: its samples would swamp the steady ones.
  const windows = all.length > 1 ? all.slice(1) : all
  const file = readdirSync(PROF_DIR).find(f => f.endsWith('.cpuprofile'))
  if (file === undefined) { console.error('# profile: none written'); return }
  const prof = JSON.parse(readFileSync(join(PROF_DIR, file), 'utf8'))
  const byId = new Map(prof.nodes.map(n => [n.id, n]))
  const parent = new Map()
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const label = n => { const f = n.callFrame; return `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/(dist|node_modules)\//, '')}:${f.lineNumber + 1}` }
  const self = new Map()
  const incl = new Map()
  let t = prof.startTime
  let inside = 0
  for (let k = 0; k < prof.samples.length; k++) {
    const dt = prof.timeDeltas[k] ?? 0
    t += dt
    if (!windows.some(([a, b]) => t >= a && t <= b)) continue
    inside += dt
    let id = prof.samples[k]
    const first = byId.get(id)
    self.set(label(first), (self.get(label(first)) ?? 0) + dt)
    const seen = new Set()
    while (id !== undefined) {
      const l = label(byId.get(id))
      if (!seen.has(l)) { seen.add(l); incl.set(l, (incl.get(l) ?? 0) + dt) }
      id = parent.get(id)
    }
  }
  const per = us => (us / 1000 / windows.length).toFixed(2)
  const edgeUs = windows.reduce((a, [x, y]) => a + y - x, 0)
  console.error(`# profile of ${what}, edits 2-${all.length}: ${per(edgeUs)} ms per edit in the windows, ${per(inside)} ms of it sampled in ferryd (idle included)`)
  for (const [name, m] of [['self', self], ['inclusive', incl]]) {
    console.error(`# ${name}, ms per edit:`)
    for (const [l, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, name === 'self' ? 30 : 45)) console.error(`#   ${per(us).padStart(7)}  ${l}`)
  }
}

const rows = []
const rounds = Number(argv.find(a => a.startsWith('--rounds='))?.slice('--rounds='.length) ?? 1) || 1
const runs = []
for (let k = 0; k < rounds; k++) for (const n of sizes) for (const flags of flagSets) runs.push({ n, flags })
for (const { n, flags: setFlags } of runs) {
  const dir = `/tmp/bench-${n}`
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  for (let f = 0; f < FILES; f++) writeFileSync(join(dir, fileName(f)), fileOf(n, f))
  sh('ipvsadm', ['-C'])
  const t0 = performance.now()
  // The real binary (bin/ferryd execs node with ferryd's own flags; the pid stays node's).
  if (profile) { rmSync(PROF_DIR, { recursive: true, force: true }); mkdirSync(PROF_DIR) }
  // ferryd's default log level, as a node runs it; --log asks for the debug lines (each costs a write).
  const args = ['--proxy-mode', 'ipvs', '--manifests', dir, '--node-name', 'bench', '--http-listen', '127.0.0.1:10249', '--log-level', argv.includes('--log') ? 'debug' : 'info']
  // --cpu-prof is refused in NODE_OPTIONS: the profiled ferryd is node on the entry point bin/ferryd
  // would exec (FERRYD_JS: the bundle while it is newer than the ESM entry).
  const flags = [...setFlags, ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`, '--cpu-prof-interval=500'] : [])]
  const ferryd = flags.length > 0
    ? spawn(process.execPath, [...flags, FERRYD_JS, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(join(DIST, '..', 'bin', 'ferryd'), args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let exited = false
  ferryd.on('exit', () => { exited = true })
  let log = ''
  ferryd.stderr.on('data', b => { log += b.toString() })
  const ok = await ready(1_200_000, () => exited)
  if (!ok) { console.error(`# ${n}: ferryd not ready (exited: ${exited}); its log ends:\n${log.slice(-3000)}`); process.exit(1) }
  const ferryMs = performance.now() - t0
  const rss = vmHWM(ferryd.pid)
  const vsCount = (sh('ipvsadm', ['-Ln']).match(/^TCP/gm) ?? []).length
  const want = n + Math.ceil(n / 20)
  console.error(`# ${n}: ferryd ready ${ok} after ${Math.round(ferryMs)} ms, ${vsCount} virtual servers (want ${want}), VmHWM ${Math.round(rss)} MiB`)

  // One-endpoint edits: file write -> new destination listed by the kernel.
  const kernel = await openIpvsKernel()
  const lat = []
  const syncMs = []
  const handOffMs = []
  let sums = await syncSums()
  /** Each edit's window on the monotonic clock, µs: from the write to the destination seen. */
  const windows = []
  for (let e = 0; e < edits; e++) {
    const i = (e * 37 + 5) % n
    const ip = `10.250.${e}.${(i % 200) + 1}`
    const vs = { family: 'IPv4', protocol: 'TCP', address: clusterIP(i), port: 80 }
    // The file's text is made before the clock starts (under TCG, 10-30 ms of JSON.stringify): the edit is the write.
    const text = fileOf(n, i % FILES, { i, ip })
    const s = performance.now()
    const w0 = monoUs()
    writeFileSync(join(dir, fileName(i % FILES)), text)
    for (;;) {
      if ((await kernel.listDestinations(vs)).some(d => d.address === ip)) break
      if (performance.now() - s > 60_000) break
      await sleep(2)
    }
    lat.push(performance.now() - s)
    windows.push([w0, monoUs()])
    // With --log: the write's wall time, to line up with ferryd's log timestamps.
    if (argv.includes('--log')) { const l = lat[lat.length - 1]; console.error(`# edit ${e}: written ${new Date(Date.now() - (performance.now() - s)).toISOString()}, in the kernel after ${Math.round(l)} ms`) }
    await sleep(1100)
    const now = await syncSums()
    syncMs.push(now.sync - sums.sync)
    handOffMs.push(now.handOff - sums.handOff)
    sums = now
  }
  kernel.close()
  // Idle: ferryd's CPU over 10 s with nothing changing (its 2 s rescan of the files is what runs), beside
  // a bare rescan in this process: readdir and a stat of every file, every 2 s, over the same 10 s.
  const cpu0 = cpuMs(ferryd.pid)
  const own0 = process.cpuUsage()
  const idleEnd = Date.now() + IDLE_MS
  while (Date.now() < idleEnd) {
    for (const name of readdirSync(dir)) statSync(join(dir, name))
    await sleep(Math.min(2000, Math.max(0, idleEnd - Date.now())))
  }
  const own = process.cpuUsage(own0)
  const idle = { ferryd: (cpuMs(ferryd.pid) - cpu0) / (IDLE_MS / 1000), bare: (own.user + own.system) / 1000 / (IDLE_MS / 1000) }
  console.error(`# ${n}: idle CPU, ms per second: ferryd ${idle.ferryd.toFixed(1)}, a bare rescan ${idle.bare.toFixed(1)}`)
  ferryd.kill('SIGTERM')
  if (!exited) await new Promise(resolve => ferryd.on('exit', resolve))
  if (argv.includes('--log')) for (const l of log.split('\n')) if (/synced|source|mode|variant|ready|sysctl|manifest pass|drained/.test(l)) console.error(l.slice(0, 400))
  if (profile) {
    printProfile(windows, 'write to kernel')
    // The hand-off (from the metrics) ends with the sync, about when the destination was seen (±2 ms).
    printProfile(windows.map(([, b], k) => [b - (handOffMs[k] ?? 0) * 1000 - 2000, b + 2000]), 'hand-off to kernel')
  }

  // The peer: ipvsadm -R of the identical table into a cleared one.
  let bareMs = NaN
  let bareCount = 0
  if (!argv.includes('--no-peer')) {
    const saved = sh('ipvsadm', ['-S', '-n'])
    sh('ipvsadm', ['-C'])
    const b0 = performance.now()
    sh('ipvsadm', ['-R'], saved)
    bareMs = performance.now() - b0
    bareCount = (sh('ipvsadm', ['-Ln']).match(/^TCP/gm) ?? []).length
  }
  rows.push({ n, flags: setFlags.join(' '), ferryMs, bareMs, vsCount, bareCount, rss, lat, syncMs, handOffMs, idle })
  sh('ipvsadm', ['-C'])
  rmSync(dir, { recursive: true, force: true })
}
try { sh('ip', ['link', 'del', 'fy-b0']) } catch {}

console.log('| services | virtual servers | ferryd start to ready ms | ipvsadm -R ms | ferry/bare | edit to kernel p50 / max ms | ferryd sync p50 / max ms | hand-off to kernel p50 / max ms | idle CPU ms/s (bare rescan) | VmHWM MiB |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const r of rows) {
  console.log(`| ${r.n}${r.flags !== '' ? ` \`${r.flags}\`` : ''} | ${r.vsCount} (bare ${r.bareCount}) | ${Math.round(r.ferryMs)} | ${Math.round(r.bareMs)} | ${(r.ferryMs / r.bareMs).toFixed(2)} | ${Math.round(median(r.lat))} / ${Math.round(Math.max(...r.lat))} | ${pm(r.syncMs)} | ${pm(r.handOffMs)} | ${r.idle.ferryd.toFixed(1)} (${r.idle.bare.toFixed(1)}) | ${Math.round(r.rss)} |`)
}
console.log(`edits: ${rows.map(r => r.lat.map(Math.round).join(' ')).join(' ; ')}`)
console.log(`hand-off: ${rows.map(r => r.handOffMs.map(Math.round).join(' ')).join(' ; ')}`)
