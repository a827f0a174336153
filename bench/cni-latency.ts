// ferry-cni against the reference plugins, driven as a runtime drives them (CNI_* env + the network config
// on stdin, result on stdout): ADD and DEL latency of bin/ferry-cni beside Debian's `bridge` (with
// `host-local` IPAM) from /usr/lib/cni, and VERSION of both. Each plugin runs inside its own throwaway
// "node" netns (its bridge lives there) through a small agent process started there once with
// `ip netns exec`, so every timed plugin run is one plain spawn from a process already in the node's
// namespaces (netns and the /sys that matches it), like a runtime's; no `ip netns exec` per sample.
// Every ADD gets a fresh pod netns (made before the clock starts). Samples interleave the two plugins and
// alternate which goes first; a bare `node -e 0` is timed beside them as the floor of any Node plugin.
// The first ADD/DEL of each plugin (which creates the bridge) is a warm-up, not a sample. Root only.
//
// The plugins see this process's whole environment plus the CNI_* variables, as libcni passes them.
//
// Each ferry-cni launcher runs twice over: "NAME (ferryd)" with the real bin/ferryd running in its node
// netns and serving the verbs (--cni-listen on a free loopback port, --cni-server-file in the work dir,
// FERRY_CNI_SERVER_FILE pointing the front at it), and "NAME (node)" with no ferryd (FERRY_CNI_SERVER_FILE
// naming no file), so the front starts node as before.
//
//   node dist/bench/cni-latency.js [--samples 50] [--ferry NAME=PATH]... [--ferryd PATH] [--no-ferryd]
//     --ferry: ferry-cni launchers to compare, all interleaved (default ferry-cni=bin/ferry-cni)
//     --ferryd: the ferryd to serve them (default bin/ferryd); --no-ferryd: only the node path
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { spawnExec } from '../pkg/exec/exec.js'

const SELF = fileURLToPath(import.meta.url)
const ROOT = resolve(dirname(SELF), '..', '..')
const REF_DIR = '/usr/lib/cni'
const CNI_VERSION = '1.0.0' // Debian's reference plugins speak up to 1.0.0

interface Job { argv: string[], env: Record<string, string>, stdin: string }
interface Done { ms: number, code: number, stdout: string }

// ---- agent: runs inside a node netns, spawns one job at a time and times it ----

async function agent (): Promise<void> {
  const rl = createInterface({ input: process.stdin })
  for await (const line of rl) {
    const job = JSON.parse(line) as Job
    const done = await timed(job)
    process.stdout.write(JSON.stringify(done) + '\n')
  }
}

async function timed (job: Job): Promise<Done> {
  return await new Promise((resolve, reject) => {
    const t0 = performance.now()
    const [cmd = '', ...args] = job.argv
    const child = spawn(cmd, args, { env: job.env, stdio: ['pipe', 'pipe', 'ignore'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.on('error', reject)
    child.on('close', code => { resolve({ ms: performance.now() - t0, code: code ?? 1, stdout: out }) })
    child.stdin.on('error', () => {})
    child.stdin.end(job.stdin)
  })
}

class Agent {
  private readonly child: ChildProcess
  private readonly waiting: Array<(d: Done) => void> = []
  constructor (ns: string) {
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, SELF, '--agent'], { stdio: ['pipe', 'pipe', 'inherit'] })
    const rl = createInterface({ input: this.child.stdout as NodeJS.ReadableStream })
    rl.on('line', l => { this.waiting.shift()?.(JSON.parse(l) as Done) })
  }

  async run (job: Job): Promise<Done> {
    return await new Promise(resolve => {
      this.waiting.push(resolve)
      this.child.stdin?.write(JSON.stringify(job) + '\n')
    })
  }

  stop (): void { this.child.stdin?.end() }
}

// ---- setup ----

async function sh (...argv: string[]): Promise<string> {
  const r = await spawnExec(argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}

const made = new Set<string>()
async function netnsAdd (name: string): Promise<void> { await sh('ip', 'netns', 'add', name); made.add(name) }
async function netnsDel (name: string): Promise<void> { made.delete(name); await spawnExec(['ip', 'netns', 'del', name]) }

interface Args { samples: number, ferry: Array<{ name: string, path: string }>, ferryd: string | null }
function args (): Args {
  const a: Args = { samples: 50, ferry: [], ferryd: join(ROOT, 'bin', 'ferryd') }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--samples') a.samples = Number(argv[++i])
    else if (argv[i] === '--ferry') {
      const [name = '', path = ''] = (argv[++i] ?? '').split('=')
      a.ferry.push({ name, path: resolve(path) })
    } else if (argv[i] === '--ferryd') a.ferryd = resolve(argv[++i] ?? '')
    else if (argv[i] === '--no-ferryd') a.ferryd = null
    else throw new Error(`unknown argument ${argv[i] ?? ''}`)
  }
  if (a.ferry.length === 0) a.ferry.push({ name: 'ferry-cni', path: join(ROOT, 'bin', 'ferry-cni') })
  return a
}

// ---- statistics ----

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN
}
const f1 = (x: number): string => Number.isFinite(x) ? x.toFixed(1) : '-'

interface Side { name: string, agent: Agent, argv: string[], conf: string, env: Record<string, string>, add: number[], del: number[], version: number[] }

async function main (): Promise<void> {
  if (process.argv[2] === '--agent') { await agent(); return }
  if (process.getuid?.() !== 0) throw new Error('the CNI bench needs root (network namespaces)')
  const a = args()
  const sfx = randomBytes(2).toString('hex')
  const work = mkdtempSync(join(tmpdir(), 'fy-cnibench-'))
  const agents: Agent[] = []
  const daemons: ChildProcess[] = []
  const cleanup = async (): Promise<void> => {
    for (const ag of agents) ag.stop()
    for (const d of daemons) {
      if (d.exitCode !== null || d.signalCode !== null) continue
      const gone = new Promise(resolve => { d.once('exit', resolve) })
      d.kill('SIGTERM')
      await gone
    }
    for (const n of [...made]) await netnsDel(n)
    rmSync(work, { recursive: true, force: true })
  }
  process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
  try {
    const baseEnv: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('CNI_')) baseEnv[k] = v
    baseEnv.CNI_PATH = REF_DIR
    writeFileSync(join(work, 'subnet.env'), 'FERRY_NETWORK=10.98.0.0/16\nFERRY_SUBNET=10.98.1.1/24\nFERRY_MTU=1450\nFERRY_IPMASQ=false\n')
    const ferryConf = { cniVersion: CNI_VERSION, name: 'fybench', type: 'ferry-cni', bridge: 'fybr0', subnetFile: join(work, 'subnet.env'), dataDir: join(work, 'ferry-ipam'), ipMasq: false }
    // The same job for the reference: a bridge with the gateway address, a veth, MTU, one IP, default route.
    const refConf = {
      cniVersion: CNI_VERSION, name: 'fybench', type: 'bridge', bridge: 'fybr0', isGateway: true, ipMasq: false, mtu: 1450,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.98.1.0/24', gateway: '10.98.1.1' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(work, 'ref-ipam') },
    }
    // One node netns (and agent) per plugin; each ferry variant keeps its own IPAM store.
    const side = async (name: string, argv: string[], conf: Record<string, unknown>, i: number, env = baseEnv, before?: (ns: string) => Promise<void>): Promise<Side> => {
      const ns = `fyN${sfx}${i}`
      await netnsAdd(ns)
      await before?.(ns)
      return { name, agent: new Agent(ns), argv, conf: JSON.stringify(conf), env, add: [], del: [], version: [] }
    }
    // The real ferryd in the side's node netns, serving the CNI verbs on a free loopback port.
    const startFerryd = async (ns: string, serverFile: string): Promise<void> => {
      if (a.ferryd === null) return
      const manifests = join(work, `manifests-${ns}`)
      mkdirSync(manifests)
      await sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up')
      const d = spawn('ip', ['netns', 'exec', ns, a.ferryd, '--manifests', manifests, '--proxy-mode', 'iptables', '--http-listen', '127.0.0.1:0',
        '--cni-listen', '127.0.0.1:0', '--cni-server-file', serverFile, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] })
      daemons.push(d)
      const end = Date.now() + 30_000
      while (!existsSync(serverFile)) {
        if (d.exitCode !== null || Date.now() > end) throw new Error(`ferryd in ${ns} did not publish ${serverFile}`)
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    }
    const ref = await side('bridge+host-local', [join(REF_DIR, 'bridge')], refConf, 0)
    const ferries: Side[] = []
    let n = 1
    for (const [i, f] of a.ferry.entries()) {
      if (a.ferryd !== null) {
        const serverFile = join(work, `cni-server-${i}.env`)
        ferries.push(await side(`${f.name} (ferryd)`, [f.path], { ...ferryConf, dataDir: join(work, `ipam-d${i}`) }, n++,
          { ...baseEnv, FERRY_CNI_SERVER_FILE: serverFile }, async ns => { await startFerryd(ns, serverFile) }))
      }
      ferries.push(await side(`${f.name} (node)`, [f.path], { ...ferryConf, dataDir: join(work, `ipam-${i}`) }, n++,
        { ...baseEnv, FERRY_CNI_SERVER_FILE: join(work, 'no-server.env') }))
    }
    const sides = [...ferries, ref]
    agents.push(...sides.map(s => s.agent))
    const floor: number[] = []
    let pod = 0
    const cycle = async (s: Side, record: boolean): Promise<void> => {
      const ns = `fyp${sfx}${pod++}`
      await netnsAdd(ns)
      const env = { ...s.env, CNI_CONTAINERID: `fybench${sfx}${pod}`, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0' }
      const add = await s.agent.run({ argv: s.argv, env: { ...env, CNI_COMMAND: 'ADD' }, stdin: s.conf })
      if (add.code !== 0 || !add.stdout.includes('10.98.1.')) throw new Error(`${s.name} ADD failed (${add.code}): ${add.stdout}`)
      const del = await s.agent.run({ argv: s.argv, env: { ...env, CNI_COMMAND: 'DEL' }, stdin: s.conf })
      if (del.code !== 0) throw new Error(`${s.name} DEL failed (${del.code}): ${del.stdout}`)
      const ver = await s.agent.run({ argv: s.argv, env: { ...s.env, CNI_COMMAND: 'VERSION' }, stdin: `{"cniVersion":"${CNI_VERSION}"}` })
      if (ver.code !== 0 || !ver.stdout.includes('supportedVersions')) throw new Error(`${s.name} VERSION failed: ${ver.stdout}`)
      await netnsDel(ns)
      if (record) { s.add.push(add.ms); s.del.push(del.ms); s.version.push(ver.ms) }
    }
    for (const s of sides) await cycle(s, false) // warm-up: creates the bridge, fills the page cache
    // The floor: what starting node at all costs a plugin (with the same environment, and without the one
    // variable bin/ferry-cni drops).
    const noCa = { ...baseEnv }
    delete noCa.NODE_EXTRA_CA_CERTS
    const floorJob: Job = { argv: [process.execPath, '-e', '0'], env: noCa, stdin: '' }
    for (let i = 0; i < a.samples; i++) {
      const order = i % 2 === 0 ? sides : [...sides].reverse()
      for (const s of order) await cycle(s, true)
      floor.push((await ref.agent.run(floorJob)).ms)
      if ((i + 1) % 10 === 0) console.error(`# ${i + 1}/${a.samples} samples`)
    }
    const rows: string[][] = []
    const ratios: string[] = []
    for (const [verb, get] of [['ADD', (s: Side) => s.add], ['DEL', (s: Side) => s.del], ['VERSION', (s: Side) => s.version]] as const) {
      const rx = get(ref)
      for (const s of sides) {
        const x = get(s)
        const r50 = pct(x, 0.5) / pct(rx, 0.5)
        rows.push([verb, s.name, f1(pct(x, 0.5)), f1(pct(x, 0.95)), f1(Math.min(...x)), r50.toFixed(2), (pct(x, 0.95) / pct(rx, 0.95)).toFixed(2)])
        if (s !== ref) ratios.push(`ratio ${verb} ${s.name}/ref p50: ${r50.toFixed(2)}${verb === 'ADD' ? ' (goal <= 1.3)' : ''}`)
      }
    }
    const header = ['verb', 'plugin', 'p50 ms', 'p95 ms', 'min ms', 'p50 / ref', 'p95 / ref']
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
    const fmt = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ') + ' |'
    console.log(`CNI bench: ${a.samples} interleaved samples per verb and plugin; ${a.ferry.map(f => `${f.name} = ${f.path}`).join(', ')}; ferryd = ${a.ferryd ?? 'none'}; ref = ${REF_DIR}/bridge + host-local; cniVersion ${CNI_VERSION}`)
    console.log(fmt(header))
    console.log('|' + widths.map(w => '-'.repeat(w + 2)).join('|') + '|')
    for (const r of rows) console.log(fmt(r))
    console.log(`floor: node -e 0 p50 ${f1(pct(floor, 0.5))} ms, p95 ${f1(pct(floor, 0.95))} ms, min ${f1(Math.min(...floor))} ms`)
    for (const l of ratios) console.log(l)
  } finally {
    await cleanup()
  }
}

main().catch(e => { console.error(e); process.exitCode = 1 })
