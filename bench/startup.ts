// Start-up path as a black box: the real bin/ferryd, started in a throwaway netns on generated state
// (200 JSON `kind: List` manifest files, or the same objects in a real etcd loaded before the clock
// starts), timed from process start until ferryd declares readiness (its "ready" log line, written as it
// notifies systemd, once the first sync is in the kernel; /readyz is then checked once); then the rule
// count is checked once. The peer: a bare `iptables-legacy-restore --noflush --counters` of the same
// rules (the iptables-legacy-save of ferryd's netns) into a fresh netns, the whole `ip netns exec ...
// restore` process timed. Rounds alternate which side goes first; the table shows medians, the median
// of per-round ratios, and ferryd's peak RSS (VmHWM). At every size (manifests, first round) it also
// times endpoint edits to the new rule. Root only.
// With `--modes nftables` ferryd runs `--proxy-mode nftables`, and the peer is a bare `nft -f` of the
// `nft list ruleset` of ferryd's netns; edits are seen in the kernel's commit notifications (nft-watch.ts).
//
//   node dist/bench/startup.js [1000,10000,50000] [--sources manifests,etcd] [--rounds 3] [--big-rounds 1]
//                              [--no-edit] [--edits 5] [--modes iptables,nftables] [--ferryd-arg ARG]...
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnExec } from '../pkg/exec/exec.js'

type SourceKind = 'manifests' | 'etcd'
const FILES = 200
const ENDPOINTS = 5
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const FERRYD = join(ROOT, 'bin', 'ferryd')
const WATCH = join(ROOT, 'dist', 'bench', 'nft-watch.js')
const HTTP_PORT = 10249
const ETCD_IP = '169.254.77.1'

type Mode = 'iptables' | 'nftables'
interface Args { sizes: number[], sources: SourceKind[], rounds: number, bigRounds: number, edit: boolean, edits: number, modes: Mode[], ferrydArgs: string[] }

function args (): Args {
  const argv = process.argv.slice(2)
  const a: Args = { sizes: [1000, 10000, 50000], sources: ['manifests', 'etcd'], rounds: 3, bigRounds: 1, edit: true, edits: 5, modes: ['iptables'], ferrydArgs: [] }
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i] ?? ''
    if (x === '--sources') a.sources = (argv[++i] ?? '').split(',') as SourceKind[]
    else if (x === '--rounds') a.rounds = Number(argv[++i])
    else if (x === '--big-rounds') a.bigRounds = Number(argv[++i])
    else if (x === '--no-edit') a.edit = false
    else if (x === '--edits') a.edits = Number(argv[++i])
    else if (x === '--modes') {
      a.modes = (argv[++i] ?? '').split(',') as Mode[]
      if (a.modes.some(m => m !== 'iptables' && m !== 'nftables')) throw new Error('--modes lists iptables and/or nftables')
    }
    else if (x === '--ferryd-arg') a.ferrydArgs.push(argv[++i] ?? '')
    else a.sizes = x.split(',').map(s => Number(s.trim())).filter(n => n > 0)
  }
  return a
}

// ---- generated state: Service i (every 20th a NodePort) and one EndpointSlice with 5 endpoints ----

function service (i: number): Record<string, unknown> {
  const nodePort = i % 20 === 0
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `svc${i}`, namespace: `ns${i % 100}`, labels: { app: `svc${i}` } },
    spec: {
      type: nodePort ? 'NodePort' : 'ClusterIP',
      clusterIP: `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
      selector: { app: `svc${i}` },
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, ...(nodePort ? { nodePort: 30000 + (i / 20) % 2768 } : {}) }],
    },
  }
}

function podIP (seq: number): string { return `10.${(seq >> 16) & 255}.${(seq >> 8) & 255}.${seq & 255}` }

function slice (i: number, first = podIP(i * ENDPOINTS)): Record<string, unknown> {
  const endpoints = []
  for (let j = 0; j < ENDPOINTS; j++) {
    endpoints.push({ addresses: [j === 0 ? first : podIP(i * ENDPOINTS + j)], conditions: { ready: true }, nodeName: `node${j}` })
  }
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `svc${i}-x1`, namespace: `ns${i % 100}`, labels: { 'kubernetes.io/service-name': `svc${i}` } },
    addressType: 'IPv4',
    endpoints,
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  }
}

function fileOf (n: number, f: number, edit?: { i: number, ip: string }): string {
  const items: unknown[] = []
  for (let i = f; i < n; i += FILES) items.push(service(i), edit?.i === i ? slice(i, edit.ip) : slice(i))
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 1)
}

const fileName = (f: number): string => `list-${String(f).padStart(3, '0')}.json`

function writeManifests (dir: string, n: number): void {
  mkdirSync(dir, { recursive: true })
  for (let f = 0; f < FILES; f++) writeFileSync(join(dir, fileName(f)), fileOf(n, f))
}

// ---- processes and namespaces ----

async function sh (...argv: string[]): Promise<string> {
  const r = await spawnExec(argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}

const made: string[] = []
async function netnsAdd (name: string): Promise<void> {
  await sh('ip', 'netns', 'add', name)
  made.push(name)
  await sh('ip', 'netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up')
}
async function netnsDel (name: string): Promise<void> {
  const i = made.indexOf(name)
  if (i >= 0) made.splice(i, 1)
  await spawnExec(['ip', 'netns', 'del', name])
}

function waitExit (child: ChildProcess): Promise<number | null> {
  return new Promise(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(child.exitCode); return }
    child.on('exit', code => { resolve(code) })
  })
}

/** A peak-RSS reading of a live process, in MiB. */
function vmHWM (pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m?.[1] !== undefined ? Number(m[1]) / 1024 : NaN
}

/** Milliseconds per clock tick of /proc/PID/stat's CPU fields (USER_HZ: 100 on Linux). */
const TICK_MS = 10

/**
 * CPU a process used, all its threads, and what its reaped children used (`ip netns exec` execs, so a
 * tool it runs is a direct child), in ms, from /proc/PID/stat (fields 14-17, after the command name).
 */
function cpuMs (pid: number | 'self'): { own: number, children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number)
  // f[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
  const at = (field: number): number => f[field - 3] ?? NaN
  return { own: (at(14) + at(15)) * TICK_MS, children: (at(16) + at(17)) * TICK_MS }
}

interface FerrydRun { ms: number, sourceSyncedMs: number, rssMiB: number, cpuMs: number, childCpuMs: number, child: ChildProcess, stderr: () => string }

/**
 * ferryd's environment as its systemd unit gives it: without the shell's NODE_OPTIONS and
 * NODE_EXTRA_CA_CERTS (this host sets the latter: node then parses a CA bundle at every start, ~40 ms).
 */
const UNIT_ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && k !== 'NODE_EXTRA_CA_CERTS'))

/** ferryd's log line at the moment it declares readiness (and notifies systemd): the first sync is in the kernel. */
const READY_LINE = 'first sync applied; ready'

/**
 * Starts bin/ferryd in `ns` and resolves when it declares readiness: its "ready" log line, written as it
 * notifies systemd, read from its stderr pipe. /readyz is then asked once and must answer 200. Until
 * 2026-12-02 a shell loop polled /readyz with curl every 50 ms: 25 ms late on average, and a process
 * start every 50 ms on the core that the kernel load uses.
 */
async function startFerryd (ns: string, sourceArgs: string[], extra: string[], limitMs: number): Promise<FerrydRun> {
  const t0 = performance.now()
  const child = spawn('ip', ['netns', 'exec', ns, FERRYD, '--node-name', 'node0', '--cluster-cidr', '10.0.0.0/8',
    '--http-listen', `127.0.0.1:${HTTP_PORT}`, '--log-level', 'info', ...sourceArgs, ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env: UNIT_ENV })
  let err = ''
  let sourceSyncedAt = NaN
  let ready: (at: number) => void = () => {}
  const readyP = new Promise<number>(resolve => { ready = resolve })
  child.stderr?.on('data', (b: Buffer) => {
    const now = performance.now()
    const s = b.toString()
    if (Number.isNaN(sourceSyncedAt) && s.includes('source synced')) sourceSyncedAt = now
    err = (err + s).slice(-20000)
    if (err.includes(READY_LINE)) ready(now)
  })
  const exited = waitExit(child).then(code => { throw new Error(`ferryd exited (${String(code)}) before ready: ${err.slice(-2000)}`) })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => { reject(new Error(`ferryd not ready within ${limitMs / 1000} s: ${err.slice(-2000)}`)) }, limitMs) })
  try {
    const readyAt = await Promise.race([readyP, exited, timeout])
    const pid = child.pid ?? 0 // `ip netns exec` and bin/ferryd both exec: this is node's pid
    const rssMiB = vmHWM(pid)
    const cpu = cpuMs(pid)
    const probe = await spawnExec(['ip', 'netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${HTTP_PORT}/readyz`])
    if (probe.stdout !== '200') throw new Error(`ferryd logged ready but /readyz answered ${probe.stdout}`)
    return { ms: readyAt - t0, sourceSyncedMs: sourceSyncedAt - t0, rssMiB, cpuMs: cpu.own, childCpuMs: cpu.children, child, stderr: () => err }
  } catch (e) {
    child.kill('SIGKILL')
    throw e
  } finally {
    clearTimeout(timer)
    exited.catch(() => {})
  }
}

async function stopFerryd (r: FerrydRun): Promise<void> {
  r.child.kill('SIGTERM')
  const t = setTimeout(() => { r.child.kill('SIGKILL') }, 10000)
  await waitExit(r.child)
  clearTimeout(t)
}

/**
 * Times one whole `ip netns exec NS ARGV... < payload` process: wall ms, and its CPU as this process's
 * reaped-children CPU grows (nothing else is reaped meanwhile: etcd and ferryd outlive it).
 */
async function timedStdin (ns: string, argv: string[], payload: string): Promise<Timed> {
  const c0 = cpuMs('self').children
  const t0 = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (b: Buffer) => { err += b.toString() })
    child.stdin.on('error', () => {})
    child.on('close', code => { if (code !== 0) reject(new Error(`bare ${argv[0] ?? ''} failed: ${err.slice(0, 2000)}`)); else resolve({ ms: performance.now() - t0, cpuMs: cpuMs('self').children - c0 }) })
    child.stdin.end(payload)
  })
}

interface Timed { readonly ms: number, readonly cpuMs: number }

/** What differs between the modes: how to read the kernel, load the peer, and see an edit land. */
interface ModeBench {
  /** Everything ferryd put in the kernel, in a form the bare tool loads. */
  readonly dump: (ns: string) => Promise<string>
  /** Objects in the dump (rules, or rules and map elements); throws unless the last Service is there. */
  readonly verify: (dump: string, n: number) => number
  readonly unit: string
  readonly bare: (ns: string, payload: string) => Promise<Timed>
  /** Starts watching `ns`; the promise it returns settles when `ip` is a DNAT target in the kernel. */
  readonly watch: (ns: string, ip: string) => Promise<{ readonly landed: Promise<void> }>
}

const clusterIPOf = (i: number): string => String((service(i).spec as { clusterIP: string }).clusterIP)

const IPTABLES: ModeBench = {
  dump: async ns => await sh('ip', 'netns', 'exec', ns, 'iptables-legacy-save'),
  verify: (save, n) => {
    const rules = save.split('\n').filter(l => l.startsWith('-A ')).length
    const want = n + 5 * n + n / 20 // SERVICES jumps, SEP DNATs, NodePort jumps: a floor, not the total
    if (!save.includes(`svc${n - 1}:http cluster IP`) || rules < want) throw new Error(`ferryd ready with ${rules} rules, expected the last service and at least ${want}`)
    return rules
  },
  unit: 'rules',
  bare: async (ns, payload) => await timedStdin(ns, ['iptables-legacy-restore', '-w', '5', '--noflush', '--counters'], payload),
  watch: async (ns, ip) => {
    const done = sh('ip', 'netns', 'exec', ns, 'sh', '-c', `until iptables-legacy-save -t nat | grep -q -- '--to-destination ${ip}:8080'; do sleep 0.05; done`)
    return { landed: done.then(() => {}) }
  },
}

const NFTABLES: ModeBench = {
  dump: async ns => await sh('ip', 'netns', 'exec', ns, 'nft', 'list', 'ruleset'),
  verify: (text, n) => {
    // Map elements are "key : value"; rules are the other indented lines of chains.
    const elements = text.split(' : ').length - 1
    const key = `${clusterIPOf(n - 1)} . tcp . 80`
    if (!text.includes(key) || elements < 6 * n) throw new Error(`ferryd ready with ${elements} map elements, expected the last service (${key}) and at least ${6 * n}`)
    return elements
  },
  unit: 'map elements',
  bare: async (ns, payload) => await timedStdin(ns, ['nft', '-f', '-'], payload),
  watch: async (ns, ip) => {
    // The kernel's commit notifications, read by a small listener inside the netns (bench/nft-watch.ts).
    const w = spawn('ip', ['netns', 'exec', ns, process.execPath, WATCH, ip], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    const said = async (word: string): Promise<void> => await new Promise((resolve, reject) => {
      const check = (): void => { if (out.includes(word)) resolve() }
      w.stdout.on('data', (b: Buffer) => { out += b.toString(); check() })
      w.on('exit', code => { reject(new Error(`nft-watch exited (${String(code)}) before "${word}"`)) })
      check()
    })
    await said('ready')
    const landed = said('landed')
    landed.catch(() => {})
    return { landed }
  },
}

const MODES: Record<Mode, ModeBench> = { iptables: IPTABLES, nftables: NFTABLES }

// ---- etcd: one member in its own netns, reached from each ferryd netns over a veth pair ----

interface Etcd { ns: string, proc: ChildProcess, dataDir: string, endpoint: string }

async function startEtcd (sfx: string): Promise<Etcd> {
  const ns = `fy-etcd-${sfx}`
  await netnsAdd(ns)
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-bench-etcd-'))
  const client = `http://0.0.0.0:2379`
  const proc = spawn('ip', ['netns', 'exec', ns, 'etcd', '--name', 'bench', '--data-dir', dataDir,
    '--listen-client-urls', client, '--advertise-client-urls', `http://${ETCD_IP}:2379`,
    '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', 'bench=http://127.0.0.1:2380', '--initial-cluster-state', 'new',
    '--quota-backend-bytes', String(8 * 1024 ** 3), '--logger', 'zap', '--log-level', 'warn'], { stdio: 'ignore' })
  for (let i = 0; i < 100; i++) {
    const r = await spawnExec(['ip', 'netns', 'exec', ns, 'curl', '-sf', 'http://127.0.0.1:2379/health'])
    if (r.code === 0) return { ns, proc, dataDir, endpoint: 'http://127.0.0.1:2379' }
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  throw new Error('etcd did not become healthy')
}

async function stopEtcd (e: Etcd): Promise<void> {
  e.proc.kill('SIGTERM')
  await waitExit(e.proc)
  rmSync(e.dataDir, { recursive: true, force: true })
  await netnsDel(e.ns)
}

/** Loads the generated objects into etcd by running this script's `--load` mode inside the etcd netns. */
async function loadEtcd (e: Etcd, n: number): Promise<void> {
  const self = fileURLToPath(import.meta.url)
  await sh('ip', 'netns', 'exec', e.ns, process.execPath, self, '--load', e.endpoint, String(n))
}

async function loadMode (endpoint: string, n: number): Promise<void> {
  const { Etcd3 } = await import('etcd3')
  const { keyFor } = await import('../pkg/etcd/keys.js')
  const { validateObject } = await import('../pkg/api/validate.js')
  const client = new Etcd3({ hosts: [endpoint] })
  try {
    await client.delete().prefix('/ferry/')
    const objs: Array<Record<string, unknown>> = []
    for (let i = 0; i < n; i++) objs.push(service(i), slice(i))
    for (let i = 0; i < objs.length; i += 100) {
      const ops = objs.slice(i, i + 100).map(o => client.put(keyFor(validateObject(o))).value(JSON.stringify(o)))
      await client.if('/ferry/none', 'Version', '==', 0).then(...ops).commit()
    }
  } finally { client.close() }
}

/** A veth pair from the etcd netns to `ns`: etcd answers on ETCD_IP from inside `ns`. */
async function linkToEtcd (e: Etcd, ns: string, idx: number): Promise<void> {
  const a = `fye${idx}`
  const b = `fyf${idx}`
  await sh('ip', 'link', 'add', a, 'netns', e.ns, 'type', 'veth', 'peer', 'name', b, 'netns', ns)
  await sh('ip', 'netns', 'exec', e.ns, 'ip', 'addr', 'add', `${ETCD_IP}/30`, 'dev', a)
  await sh('ip', 'netns', 'exec', e.ns, 'ip', 'link', 'set', a, 'up')
  await sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', '169.254.77.2/30', 'dev', b)
  await sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', b, 'up')
}

// ---- the bench ----

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
/** Cores this host runs ferryd and its tools on. */
const CORES = availableParallelism()

const f0 = (x: number): string => Number.isFinite(x) ? x.toFixed(0) : '-'

interface Row { n: number, source: SourceKind, mode: Mode, unit: string, rounds: number, ferryMs: number, syncedMs: number, bareMs: number, ratio: number, rssMiB: number, rules: number, cpuMs: number, childCpuMs: number, bareCpuMs: number, floor: number }

async function main (): Promise<void> {
  if (process.argv[2] === '--load') { await loadMode(process.argv[3] ?? '', Number(process.argv[4])); return }
  if (process.getuid?.() !== 0) throw new Error('the start-up bench needs root (network namespaces)')
  const a = args()
  const sfx = randomBytes(3).toString('hex')
  const work = mkdtempSync(join(tmpdir(), 'ferry-bench-startup-'))
  const rows: Row[] = []
  const notes: string[] = []
  let etcd: Etcd | undefined
  let vethSeq = 0
  const cleanup = async (): Promise<void> => {
    if (etcd !== undefined) await stopEtcd(etcd)
    etcd = undefined
    for (const n of [...made]) await netnsDel(n)
    rmSync(work, { recursive: true, force: true })
  }
  process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
  try {
    for (const n of a.sizes) {
      const dir = join(work, `m${n}`)
      writeManifests(dir, n)
      for (const source of a.sources) for (const modeName of a.modes) {
        const mode = MODES[modeName]
        let sourceArgs = ['--manifests', dir]
        if (source === 'etcd') {
          etcd ??= await startEtcd(sfx)
          const t = performance.now()
          await loadEtcd(etcd, n)
          console.error(`# ${n} etcd: loaded ${2 * n} objects in ${f0(performance.now() - t)} ms`)
          sourceArgs = ['--etcd-endpoints', `http://${ETCD_IP}:2379`]
        }
        const rounds = n > 10000 ? a.bigRounds : a.rounds
        const fr: number[] = []; const sy: number[] = []; const br: number[] = []; const rss: number[] = []; const ratios: number[] = []
        const cpu: number[] = []; const childCpu: number[] = []; const bareCpu: number[] = []; const floors: number[] = []
        let rules = 0
        let payload = ''
        const limitMs = Math.max(120_000, n * 20)
        for (let round = 0; round < rounds; round++) {
          const ferryNs = `fy-f-${sfx}-${round}`
          const bareNs = `fy-b-${sfx}-${round}`
          await netnsAdd(ferryNs)
          await netnsAdd(bareNs)
          if (etcd !== undefined && source === 'etcd') await linkToEtcd(etcd, ferryNs, vethSeq++)
          let ferryMs = NaN
          let bareMs = NaN
          const ferry = async (): Promise<void> => {
            const r = await startFerryd(ferryNs, sourceArgs, ['--proxy-mode', modeName, ...a.ferrydArgs], limitMs)
            ferryMs = r.ms
            fr.push(r.ms); sy.push(r.sourceSyncedMs); rss.push(r.rssMiB); cpu.push(r.cpuMs); childCpu.push(r.childCpuMs)
            // The peer's payload: everything ferryd put in the kernel, every table.
            payload = await mode.dump(ferryNs)
            rules = mode.verify(payload, n)
            if (source === 'manifests' && a.edit && round === 0) notes.push(`${modeName}: ${await editLatency(mode, ferryNs, dir, n, a.edits)}`)
            await stopFerryd(r)
          }
          const bare = async (): Promise<void> => {
            if (payload === '') throw new Error('no payload yet')
            const b = await mode.bare(bareNs, payload)
            bareMs = b.ms
            br.push(bareMs); bareCpu.push(b.cpuMs)
          }
          // The first round needs ferry's payload, so ferry goes first there; later rounds alternate.
          if (round % 2 === 0) { await ferry(); await bare() } else { await bare(); await ferry() }
          ratios.push(ferryMs / bareMs)
          // The best ratio this host allows for this much work: all of ferryd's CPU (its threads and
          // the tools it ran) spread perfectly over every core, against the bare load's wall time.
          floors.push(((cpu.at(-1) ?? NaN) + (childCpu.at(-1) ?? NaN)) / CORES / bareMs)
          console.error(`# ${n} ${source} ${modeName} round ${round}: ferry ${f0(ferryMs)} ms, bare ${f0(bareMs)} ms, ratio ${(ferryMs / bareMs).toFixed(2)}`)
          await netnsDel(ferryNs)
          await netnsDel(bareNs)
        }
        rows.push({ n, source, mode: modeName, unit: mode.unit, rounds, ferryMs: median(fr), syncedMs: median(sy), bareMs: median(br), ratio: median(ratios), rssMiB: Math.max(...rss), rules, cpuMs: median(cpu), childCpuMs: median(childCpu), bareCpuMs: median(bareCpu), floor: median(floors) })
      }
      rmSync(dir, { recursive: true, force: true })
    }
  } finally {
    await cleanup()
  }
  const header = ['services', 'source', 'mode', 'rounds', 'kernel objects', 'source synced ms', 'ferryd ready ms', 'bare load ms', 'ferry/bare', 'ferryd VmHWM MiB', 'ferryd CPU ms (own + tools)', 'bare CPU ms', `CPU floor (${CORES} cores)`]
  const body = rows.map(r => [String(r.n), r.source, r.mode, String(r.rounds), `${r.rules} ${r.unit}`, f0(r.syncedMs), f0(r.ferryMs), f0(r.bareMs), r.ratio.toFixed(2), f0(r.rssMiB), `${f0(r.cpuMs)} + ${f0(r.childCpuMs)}`, f0(r.bareCpuMs), r.floor.toFixed(2)])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map(b => (b[i] ?? '').length)))
  const fmt = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ') + ' |'
  console.log(`start-up bench (peer: a bare iptables-legacy-restore or nft -f of what ferryd put in the kernel): bin/ferryd from process start to its ready log line (then /readyz 200); ${FILES} JSON List files or etcd; ${ENDPOINTS} endpoints per service, a NodePort on every 20th`)
  console.log(fmt(header))
  console.log('|' + widths.map(w => '-'.repeat(w + 2)).join('|') + '|')
  for (const b of body) console.log(fmt(b))
  for (const l of notes) console.log(l)
}

/**
 * Rewrites one file with one endpoint of one Service changed, `edits` times (a new address each time),
 * and times each from the write until the new DNAT target is in the kernel; then restores the file and
 * waits for that to land and for the rate limit to pass before the next edit.
 */
async function editLatency (mode: ModeBench, ns: string, dir: string, n: number, edits: number): Promise<string> {
  const ms: number[] = []
  for (let k = 0; k < edits; k++) {
    const i = n - 1 - k * 7
    const ip = `10.250.0.${10 + k}`
    const { landed } = await mode.watch(ns, ip)
    const text = fileOf(n, i % FILES, { i, ip }) // made before the clock starts: the edit is the write
    const t0 = performance.now()
    writeFileSync(join(dir, fileName(i % FILES)), text)
    await landed
    ms.push(performance.now() - t0)
    // Back to the generated state. The restore is a change too, so ferryd syncs it no sooner than
    // --min-sync-period (1 s) after the edit's sync: wait until it is in the kernel, then 1.5 s more, so
    // the next edit is timed alone rather than behind the rate limit the restore started.
    const restored = await mode.watch(ns, podIP(i * ENDPOINTS))
    writeFileSync(join(dir, fileName(i % FILES)), fileOf(n, i % FILES))
    await restored.landed
    await new Promise(resolve => setTimeout(resolve, 1500))
  }
  const sorted = [...ms].sort((x, y) => x - y)
  return `manifest edit to kernel at ${n} services (one endpoint of one Service, one file rewritten), ${edits} edits: ` +
    `p50 ${f0(median(ms))} ms, min ${f0(sorted[0] ?? NaN)}, max ${f0(sorted.at(-1) ?? NaN)} (${ms.map(f0).join(', ')})`
}

main().catch(e => { console.error(e); process.exitCode = 1 })
