// Cluster DNS under dnsperf, each figure beside a C peer run on the same machine, from the same query file,
// with the same dnsperf settings, one after the other in the same run (alternating which goes first):
//   cluster:  N Service names (ClusterIP, every 10th headless) from ferryd's index vs NSD 4.6 serving the
//             same A records as a cluster.local zone file;
//   forward:  names outside the cluster zone, answered from ferryd's forward cache vs unbound 1.17 as a
//             forwarding cache in front of the same upstream (NSD serving fwd.example); both warmed first;
//   floor:    beside the cluster figures, a bare node:dgram server (this script's --floor-server mode) that
//             answers every query with one A record and nothing else: what one Node thread can do at all,
//             and the same server in two cluster workers sharing the socket: what more threads add here;
//             and both again on the socket's libuv handle, without node:dgram's JavaScript;
//   p99:      per-query latency (dnsperf -v) at a fixed rate of half ferry's measured peak (dnsperf -Q),
//             for ferry and, at the same rate, for its peer.
// Everything runs in one throwaway netns (fy-dns-*), removed at the end with every process in it. Root only.
//
//   node dist/bench/dns-perf.js [--services 2000] [--seconds 10] [--rounds 3] [--clients 4] [--threads 1]
//                               [--outstanding 100] [--scenarios cluster,forward,p99] [--cpu-prof DIR]
import { spawn, type ChildProcess } from 'node:child_process'
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { spawnExec } from '../pkg/exec/exec.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const FERRYD_JS = join(ROOT, 'dist', 'cmd', 'ferryd.js')
const HOST = '127.0.0.1'
const PORT = { ferry: 5300, nsd: 5301, unbound: 5302, floor: 5303, floor2: 5304, raw: 5305, raw2: 5306 } as const
const FILES = 20
const FWD_ZONE = 'fwd.example'

type Scenario = 'cluster' | 'forward' | 'p99'
interface Args {
  services: number, seconds: number, rounds: number, clients: number, threads: number, outstanding: number
  scenarios: Scenario[], cpuProf?: string
}

function args (): Args {
  const argv = process.argv.slice(2)
  const a: Args = { services: 2000, seconds: 10, rounds: 3, clients: 4, threads: 1, outstanding: 100, scenarios: ['cluster', 'forward', 'p99'] }
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i] ?? ''
    const v = argv[++i] ?? ''
    if (x === '--services') a.services = Number(v)
    else if (x === '--seconds') a.seconds = Number(v)
    else if (x === '--rounds') a.rounds = Number(v)
    else if (x === '--clients') a.clients = Number(v)
    else if (x === '--threads') a.threads = Number(v)
    else if (x === '--outstanding') a.outstanding = Number(v)
    else if (x === '--scenarios') a.scenarios = v.split(',') as Scenario[]
    else if (x === '--cpu-prof') a.cpuProf = resolve(v)
    else throw new Error(`unknown argument ${x}`)
  }
  return a
}

// ---- generated names: the same records for ferry (manifests) and NSD (zone file) ----

const headless = (i: number): boolean => i % 10 === 0
const nsOf = (i: number): string => `ns${i % 20}`
const clusterIP = (i: number): string => `10.96.${((i + 16) >> 8) & 255}.${(i + 16) & 255}`
const podIP = (i: number, j: number): string => { const s = i * 4 + j + 1; return `10.244.${(s >> 8) & 255}.${s & 255}` }
const endpointsOf = (i: number): number => headless(i) ? 3 : 2
const serviceName = (i: number): string => `svc${i}.${nsOf(i)}.svc.cluster.local`

function objects (i: number): unknown[] {
  const ns = nsOf(i)
  const eps = []
  for (let j = 0; j < endpointsOf(i); j++) eps.push({ addresses: [podIP(i, j)], conditions: { ready: true }, nodeName: 'node0' })
  return [{
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `svc${i}`, namespace: ns },
    spec: { clusterIP: headless(i) ? 'None' : clusterIP(i), selector: { app: `svc${i}` }, ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }] },
  }, {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `svc${i}-x1`, namespace: ns, labels: { 'kubernetes.io/service-name': `svc${i}` } },
    addressType: 'IPv4',
    endpoints: eps,
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  }]
}

function writeFixtures (work: string, n: number): { manifests: string, clusterQueries: string, fwdQueries: string } {
  const manifests = join(work, 'manifests')
  mkdirSync(manifests)
  for (let f = 0; f < FILES; f++) {
    const items: unknown[] = []
    for (let i = f; i < n; i += FILES) items.push(...objects(i))
    writeFileSync(join(manifests, `list-${String(f).padStart(2, '0')}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }))
  }
  // TTL 5 as ferry's --dns-ttl default; SOA as ferry's (DNS.md §2.2).
  const zone = ['$ORIGIN cluster.local.', '$TTL 5', '@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5', '@ IN NS ns.dns', 'ns.dns IN A 10.96.0.10']
  for (let i = 0; i < n; i++) {
    const owner = `svc${i}.${nsOf(i)}.svc`
    if (headless(i)) for (let j = 0; j < endpointsOf(i); j++) zone.push(`${owner} IN A ${podIP(i, j)}`)
    else zone.push(`${owner} IN A ${clusterIP(i)}`)
  }
  writeFileSync(join(work, 'cluster.local.zone'), zone.join('\n') + '\n')
  const fwd = [`$ORIGIN ${FWD_ZONE}.`, '$TTL 3600', `@ IN SOA ns.${FWD_ZONE}. hostmaster.${FWD_ZONE}. 1 7200 1800 86400 3600`, '@ IN NS ns', 'ns IN A 192.0.2.1']
  for (let i = 0; i < n; i++) fwd.push(`h${i} IN A 198.51.${(i >> 8) & 255}.${i & 255}`)
  writeFileSync(join(work, `${FWD_ZONE}.zone`), fwd.join('\n') + '\n')
  // The query files: every name once, in a fixed shuffled order (a spread over the index, not a scan).
  const order = shuffled(n)
  const clusterQueries = join(work, 'cluster.queries')
  writeFileSync(clusterQueries, order.map(i => `${serviceName(i)} A`).join('\n') + '\n')
  const fwdQueries = join(work, 'fwd.queries')
  writeFileSync(fwdQueries, order.map(i => `h${i}.${FWD_ZONE} A`).join('\n') + '\n')
  writeFileSync(join(work, 'nsd.conf'), [
    'server:', `  port: ${PORT.nsd}`, `  ip-address: ${HOST}`, '  username: ""', `  zonesdir: "${work}"`,
    `  pidfile: "${work}/nsd.pid"`, '  database: ""', '  server-count: 1', '  verbosity: 0',
    `  xfrdfile: "${work}/xfrd.state"`, `  zonelistfile: "${work}/zone.list"`, `  logfile: "${work}/nsd.log"`,
    'remote-control:', '  control-enable: no',
    'zone:', '  name: cluster.local', '  zonefile: cluster.local.zone',
    'zone:', `  name: ${FWD_ZONE}`, `  zonefile: ${FWD_ZONE}.zone`, '',
  ].join('\n'))
  writeFileSync(join(work, 'unbound.conf'), [
    'server:', `  interface: ${HOST}@${PORT.unbound}`, `  port: ${PORT.unbound}`, '  username: ""', '  chroot: ""',
    `  directory: "${work}"`, `  pidfile: "${work}/unbound.pid"`, '  use-syslog: no', `  logfile: "${work}/unbound.log"`,
    '  num-threads: 1', '  do-not-query-localhost: no', '  module-config: "iterator"', '  access-control: 127.0.0.0/8 allow',
    '  do-ip6: no', '  verbosity: 0', '  msg-cache-size: 64m', '  rrset-cache-size: 64m', '  auto-trust-anchor-file: ""',
    'remote-control:', '  control-enable: no',
    'forward-zone:', `  name: "${FWD_ZONE}"`, `  forward-addr: ${HOST}@${PORT.nsd}`, '',
  ].join('\n'))
  return { manifests, clusterQueries, fwdQueries }
}

function shuffled (n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i)
  let seed = 42
  for (let i = n - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    const j = seed % (i + 1)
    const t = a[i] as number; a[i] = a[j] as number; a[j] = t
  }
  return a
}

// ---- processes ----

async function sh (...argv: string[]): Promise<string> {
  const r = await spawnExec(argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}

const children: ChildProcess[] = []
function start (ns: string, argv: string[], name: string): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr?.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-4000) })
  child.on('exit', (code, sig) => {
    if (stopping) return
    died = `${name} exited (${code ?? sig}) during the bench: ${err}`
    console.error(`# ${died}`)
  })
  children.push(child)
  return child
}
let stopping = false
/** Set when a server exits before the end: every later figure would be void, so the bench stops. */
let died: string | undefined

async function stopAll (): Promise<void> {
  stopping = true
  await Promise.all(children.map(async c => {
    if (c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>(resolve => {
      c.on('exit', () => { resolve() })
      c.kill('SIGTERM')
      setTimeout(() => { c.kill('SIGKILL') }, 10_000).unref()
    })
  }))
}

async function waitFor (what: string, check: () => Promise<boolean>, limitMs = 120_000): Promise<void> {
  const t = performance.now()
  while (!(await check())) {
    if (performance.now() - t > limitMs) throw new Error(`${what}: not ready after ${limitMs} ms`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

async function dig (ns: string, port: number, name: string): Promise<string> {
  const r = await spawnExec(['ip', 'netns', 'exec', ns, 'dig', '+short', '+tries=1', '+time=1', `@${HOST}`, '-p', String(port), name, 'A'])
  return r.code === 0 ? r.stdout.trim() : ''
}

// ---- dnsperf ----

interface Perf { qps: number, avgMs: number, sdMs: number, lost: number, sent: number, lat?: Float64Array }

function dnsperf (ns: string, port: number, file: string, a: Args, opts: { seconds?: number, runs?: number, qps?: number, verbose?: boolean }): Promise<Perf> {
  const argv = ['ip', 'netns', 'exec', ns, 'dnsperf', '-s', HOST, '-p', String(port), '-d', file,
    '-c', String(a.clients), '-T', String(a.threads), '-q', String(a.outstanding), '-t', '2']
  if (opts.seconds !== undefined) argv.push('-l', String(opts.seconds))
  if (opts.runs !== undefined) argv.push('-n', String(opts.runs))
  if (opts.qps !== undefined) argv.push('-Q', String(Math.round(opts.qps)))
  if (opts.verbose === true) argv.push('-v')
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    const lat: number[] = []
    const stats: string[] = []
    let err = ''
    child.stderr.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-2000) })
    const rl = createInterface({ input: child.stdout })
    rl.on('line', line => {
      if (line.startsWith('> ')) {
        const sp = line.lastIndexOf(' ')
        lat.push(Number(line.slice(sp + 1)) * 1000)
      } else stats.push(line)
    })
    child.on('exit', code => {
      if (died !== undefined) { reject(new Error(died)); return }
      const text = stats.join('\n')
      const num = (re: RegExp): number => { const m = re.exec(text); return m?.[1] !== undefined ? Number(m[1]) : NaN }
      if (code !== 0) { reject(new Error(`dnsperf exited ${code}: ${err}`)); return }
      const p: Perf = {
        qps: num(/Queries per second:\s+([\d.]+)/),
        avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
        sdMs: num(/Latency StdDev \(s\):\s+([\d.]+)/) * 1000,
        lost: num(/Queries lost:\s+(\d+)/),
        sent: num(/Queries sent:\s+(\d+)/),
      }
      if (opts.verbose === true) p.lat = Float64Array.from(lat).sort()
      resolve(p)
    })
  })
}

function pct (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number
}
const median = (xs: number[]): number => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 === 1 ? s[m] as number : ((s[m - 1] as number) + (s[m] as number)) / 2 }
const f0 = (x: number): string => x.toFixed(0)
const f2 = (x: number): string => x.toFixed(2)
const f3 = (x: number): string => x.toFixed(3)
const load = (): string => loadavg().map(f2).join(' ')

/** Rounds of ferry beside its peer, alternating which goes first; returns the per-round figures. */
async function pairRounds (label: string, ns: string, peer: { name: string, port: number }, file: string, a: Args): Promise<{ ferry: Perf[], peer: Perf[] }> {
  const ferry: Perf[] = []; const other: Perf[] = []
  for (let r = 0; r < a.rounds; r++) {
    const sides = [{ name: 'ferry', port: PORT.ferry, out: ferry }, { name: peer.name, port: peer.port, out: other }]
    if (r % 2 === 1) sides.reverse()
    for (const s of sides) {
      const p = await dnsperf(ns, s.port, file, a, { seconds: a.seconds })
      s.out.push(p)
      console.error(`# ${label} round ${r + 1} ${s.name}: ${f0(p.qps)} q/s, avg ${f3(p.avgMs)} ms (sd ${f3(p.sdMs)}), lost ${p.lost}/${p.sent}; load ${load()}`)
    }
  }
  return { ferry, peer: other }
}

function pairRow (label: string, peerName: string, r: { ferry: Perf[], peer: Perf[] }): string[] {
  const ratios = r.ferry.map((f, i) => f.qps / (r.peer[i]?.qps ?? NaN))
  return [
    `| ${label} | ferry | ${r.ferry.map(p => f0(p.qps)).join(' / ')} | ${f0(median(r.ferry.map(p => p.qps)))} | ${f3(median(r.ferry.map(p => p.avgMs)))} | ${f3(median(r.ferry.map(p => p.sdMs)))} | ${r.ferry.reduce((s, p) => s + p.lost, 0)} |`,
    `| ${label} | ${peerName} | ${r.peer.map(p => f0(p.qps)).join(' / ')} | ${f0(median(r.peer.map(p => p.qps)))} | ${f3(median(r.peer.map(p => p.avgMs)))} | ${f3(median(r.peer.map(p => p.sdMs)))} | ${r.peer.reduce((s, p) => s + p.lost, 0)} |`,
    `ratio ${label} ferry/${peerName} qps: ${f2(median(ratios))} (per round ${ratios.map(f2).join(' / ')})`,
  ]
}

/**
 * The Node floor: one node:dgram socket answering every query with its own question and one A record
 * (10.96.0.1, TTL 5), copied in one allocation. No parsing, lookup, metrics or logging. With `workers`
 * > 1, that many cluster workers share one socket (the primary binds it; each worker receives from it).
 */
function floorServer (port: number, workers: number, raw: boolean): void {
  if (workers > 1 && cluster.isPrimary) {
    for (let i = 0; i < workers; i++) cluster.fork()
    return
  }
  const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
  const rr = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 96, 0, 1])
  const reply = (q: Buffer): Buffer => {
    const out = Buffer.allocUnsafe(q.length + rr.length)
    q.copy(out, 0)
    out[2] = 0x84 | ((q[2] as number) & 0x01) // QR, AA, RD echoed
    out[3] = 0
    out.writeUInt16BE(1, 6); out.writeUInt16BE(0, 8); out.writeUInt16BE(0, 10)
    rr.copy(out, q.length)
    return out
  }
  if (raw) {
    sock.bind(port, HOST, () => { rawFloor(sock, reply) })
    return
  }
  sock.on('message', (q, rinfo) => {
    if (q.length < 17) return
    sock.send(reply(q), rinfo.port, rinfo.address)
  })
  sock.bind(port, HOST)
}

/** The libuv UDP handle under a bound node:dgram socket (Node 20's internals; bench only). */
interface RawUdpHandle {
  onmessage: (nread: number, handle: unknown, buf: Buffer, rinfo: { address: string, port: number }) => void
  send: (req: object, list: Buffer[], count: number, port: number, address: string, hasCallback: boolean) => number
}

/**
 * The floor without node:dgram's JavaScript: the same answer sent straight on the socket's libuv handle
 * (no 'message' event, rinfo copy, address lookup or send queue). What a server could gain by leaving
 * the public API, for scale; ferryd does not do this.
 */
function rawFloor (sock: ReturnType<typeof createSocket>, reply: (q: Buffer) => Buffer): void {
  const state = Object.getOwnPropertySymbols(sock).find(k => k.description === 'state symbol')
  const handle = state !== undefined ? (sock as unknown as Record<symbol, { handle?: RawUdpHandle }>)[state]?.handle : undefined
  // process.binding: deprecated and untyped, and the only way to a SendWrap in Node 20.
  const binding = (process as unknown as { binding: (name: string) => { SendWrap: new () => object } }).binding
  const SendWrap = binding('udp_wrap').SendWrap
  if (handle === undefined) throw new Error('no libuv handle under the dgram socket (not Node 20?)')
  handle.onmessage = (nread, _h, q, rinfo) => {
    if (nread < 17) return
    handle.send(new SendWrap(), [reply(q)], 1, rinfo.port, rinfo.address, false)
  }
}

async function main (): Promise<void> {
  if (process.argv[2] === '--floor-server') { floorServer(Number(process.argv[3]), Number(process.argv[4] ?? 1), process.argv[5] === 'raw'); return }
  if (process.getuid?.() !== 0) throw new Error('the DNS bench needs root (network namespaces)')
  const a = args()
  const ns = `fy-dns-${randomBytes(3).toString('hex')}`
  const work = mkdtempSync(join(tmpdir(), 'ferry-bench-dns-'))
  let made = false
  const cleanup = async (): Promise<void> => {
    await stopAll()
    if (made) await spawnExec(['ip', 'netns', 'del', ns])
    made = false
    rmSync(work, { recursive: true, force: true })
  }
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { void cleanup().then(() => process.exit(130)) })
  const out: string[] = []
  try {
    const fx = writeFixtures(work, a.services)
    await sh('ip', 'netns', 'add', ns)
    made = true
    await sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up')
    start(ns, ['nsd', '-c', join(work, 'nsd.conf'), '-d'], 'nsd')
    start(ns, ['unbound', '-d', '-c', join(work, 'unbound.conf')], 'unbound')
    const node = a.cpuProf !== undefined ? [process.execPath, '--cpu-prof', '--cpu-prof-dir', a.cpuProf] : [process.execPath]
    start(ns, [...node, FERRYD_JS, '--node-name', 'node0', '--cluster-cidr', '10.244.0.0/16', '--proxy-mode', 'iptables',
      '--manifests', fx.manifests, '--dns-listen', `${HOST}:${PORT.ferry}`, '--dns-upstream', `${HOST}:${PORT.nsd}`,
      '--http-listen', `${HOST}:10249`, '--log-format', 'text'], 'ferryd')
    start(ns, [process.execPath, fileURLToPath(import.meta.url), '--floor-server', String(PORT.floor)], 'node floor')
    start(ns, [process.execPath, fileURLToPath(import.meta.url), '--floor-server', String(PORT.floor2), '2'], 'node floor x2')
    start(ns, [process.execPath, fileURLToPath(import.meta.url), '--floor-server', String(PORT.raw), '1', 'raw'], 'raw handle floor')
    start(ns, [process.execPath, fileURLToPath(import.meta.url), '--floor-server', String(PORT.raw2), '2', 'raw'], 'raw handle floor x2')
    const last = serviceName(a.services - 1)
    await waitFor('nsd', async () => (await dig(ns, PORT.nsd, last)) !== '')
    await waitFor('ferryd', async () => (await dig(ns, PORT.ferry, last)) !== '')
    await waitFor('node floor', async () => (await dig(ns, PORT.floor, last)) !== '')
    await waitFor('node floor x2', async () => (await dig(ns, PORT.floor2, last)) !== '')
    await waitFor('raw handle floor', async () => (await dig(ns, PORT.raw, last)) !== '')
    await waitFor('raw handle floor x2', async () => (await dig(ns, PORT.raw2, last)) !== '')
    await waitFor('unbound', async () => (await dig(ns, PORT.unbound, `h0.${FWD_ZONE}`)) !== '')
    for (const name of [serviceName(0), serviceName(1)]) {
      const f = (await dig(ns, PORT.ferry, name)).split('\n').sort().join(' ')
      const n = (await dig(ns, PORT.nsd, name)).split('\n').sort().join(' ')
      if (f !== n) throw new Error(`${name}: ferry answers ${f}, NSD ${n}`)
    }
    const cores = (await sh('nproc')).trim()
    const head = `# ${a.services} services (every 10th headless, 3 endpoints), dnsperf -c ${a.clients} -T ${a.threads} -q ${a.outstanding} -l ${a.seconds}, ${a.rounds} rounds, ${cores} cores, load ${load()}`
    console.error(head)
    out.push(head, '', '| names | server | q/s per round | median q/s | avg latency ms | latency sd ms | lost |', '|---|---|---|---|---|---|---|')
    const ratios: string[] = []
    let clusterPeak = NaN; let fwdPeak = NaN
    if (a.scenarios.includes('cluster')) {
      await dnsperf(ns, PORT.ferry, fx.clusterQueries, a, { runs: 2 })
      await dnsperf(ns, PORT.nsd, fx.clusterQueries, a, { runs: 2 })
      const r = await pairRounds('cluster', ns, { name: 'nsd', port: PORT.nsd }, fx.clusterQueries, a)
      const rows = pairRow('cluster', 'nsd', r)
      out.push(rows[0] as string, rows[1] as string); ratios.push(rows[2] as string)
      // Not a peer that serves these names: the ceiling of one Node thread on this host, for scale.
      const fl = await pairRounds('cluster', ns, { name: 'node floor', port: PORT.floor }, fx.clusterQueries, { ...a, rounds: Math.min(a.rounds, 2) })
      const frows = pairRow('cluster', 'node floor', fl)
      out.push(frows[1] as string); ratios.push(frows[2] as string)
      // Two workers on one socket: whether more Node threads would lift that ceiling on this host.
      const f2 = await pairRounds('cluster', ns, { name: 'node floor x2', port: PORT.floor2 }, fx.clusterQueries, { ...a, rounds: Math.min(a.rounds, 2) })
      const f2rows = pairRow('cluster', 'node floor x2', f2)
      out.push(f2rows[1] as string); ratios.push(f2rows[2] as string)
      // The same two floors on the libuv handle itself: the most Node's own JavaScript could give back.
      for (const [name, port] of [['raw handle floor', PORT.raw], ['raw handle floor x2', PORT.raw2]] as const) {
        const rf = await pairRounds('cluster', ns, { name, port }, fx.clusterQueries, { ...a, rounds: Math.min(a.rounds, 2) })
        const rrows = pairRow('cluster', name, rf)
        out.push(rrows[1] as string); ratios.push(rrows[2] as string)
      }
      clusterPeak = median(r.ferry.map(p => p.qps))
    }
    if (a.scenarios.includes('forward')) {
      // Warm both caches: every name once (and the upstream's answers have TTL 3600).
      await dnsperf(ns, PORT.ferry, fx.fwdQueries, a, { runs: 2 })
      await dnsperf(ns, PORT.unbound, fx.fwdQueries, a, { runs: 2 })
      const r = await pairRounds('forward', ns, { name: 'unbound', port: PORT.unbound }, fx.fwdQueries, a)
      const rows = pairRow('forward (cached)', 'unbound', r)
      out.push(rows[0] as string, rows[1] as string); ratios.push(rows[2] as string)
      fwdPeak = median(r.ferry.map(p => p.qps))
    }
    out.push('', ...ratios)
    if (a.scenarios.includes('p99')) {
      out.push('', '| names | server | paced q/s | achieved q/s | answered | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |', '|---|---|---|---|---|---|---|---|---|---|')
      const cases = [
        { label: 'cluster', peak: clusterPeak, file: fx.clusterQueries, peer: { name: 'nsd', port: PORT.nsd } },
        { label: 'forward (cached)', peak: fwdPeak, file: fx.fwdQueries, peer: { name: 'unbound', port: PORT.unbound } },
      ]
      for (const c of cases) {
        if (!Number.isFinite(c.peak)) continue
        const rate = c.peak / 2
        for (const s of [{ name: 'ferry', port: PORT.ferry }, c.peer]) {
          const p = await dnsperf(ns, s.port, c.file, a, { seconds: a.seconds, qps: rate, verbose: true })
          const l = p.lat ?? new Float64Array()
          const row = `| ${c.label} | ${s.name} | ${f0(rate)} | ${f0(p.qps)} | ${l.length}/${p.sent} | ${f3(pct(l, 0.5))} | ${f3(pct(l, 0.9))} | ${f3(pct(l, 0.99))} | ${f3(pct(l, 0.999))} | ${f3(l[l.length - 1] ?? NaN)} |`
          console.error(`# p99 ${row}; load ${load()}`)
          out.push(row)
        }
      }
    }
    console.log(out.join('\n'))
  } finally {
    await cleanup()
  }
}

main().catch(e => { console.error(e); process.exitCode = 1 })
