// /healthz latency while a burst of concurrent /metrics scrapes is in flight, against the idle /healthz
// latency (the ratio), for ferry's shared render and, beside it, two peers: a per-scrape render (what
// every scrape cost before) and a bare node:http server answering every request with a fixed short
// body (the floor: what accepting and answering that many connections costs one event loop at all).
// Three processes so no client shares the server's event loop: this one probes /healthz back to back,
// a child serves buildHttpServer with a registry like ferryd's (default and proxy metrics, both
// families), another child fires the burst. No root needed.
//
//   node dist/bench/http-probes.js [--scrapes 1000] [--rounds 3]
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { buildHttpServer } from '../pkg/http/server.js'
import { ProxyHealth } from '../pkg/proxy/health.js'
import { createProxyMetrics } from '../pkg/proxy/metrics.js'
import { iptablesMetrics } from '../pkg/proxy/iptables/metrics.js'

const SELF = fileURLToPath(import.meta.url)

/** Child: the ops server, plus /metrics-unshared rendering per scrape as before, and /renders. */
async function serve (): Promise<void> {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const metrics = createProxyMetrics(registry)
  const ipt = iptablesMetrics(registry)
  for (const f of ['IPv4', 'IPv6']) {
    for (let i = 0; i < 100; i++) { metrics.syncDuration.observe({ ip_family: f }, i / 1000); metrics.networkProgramming.observe({ ip_family: f }, i / 10) }
    for (const table of ['nat', 'filter', 'mangle']) { ipt.rulesTotal.set({ ip_family: f, table }, 50_000); ipt.rulesLast.set({ ip_family: f, table }, 50_000) }
    metrics.lastSyncTimestamp.set({ ip_family: f }, Date.now() / 1000)
  }
  let renders = 0
  const render = registry.metrics.bind(registry)
  registry.metrics = async () => { renders++; return await render() }
  const health = new ProxyHealth(60_000)
  health.addFamily('IPv4')
  const app = buildHttpServer({ registry, health, metrics, nodeEligible: () => true, ready: () => ({ ready: true, reason: '' }), debugState: () => ({}) })
  app.get('/metrics-unshared', async (_req, reply) => await reply.type(registry.contentType).send(await registry.metrics()))
  app.get('/renders', async () => ({ renders }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  process.stdout.write(`${(app.server.address() as AddressInfo).port}\n`)
}

/** Child: the floor, a bare node:http server with a fixed answer for every path. */
function serveBare (): void {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain')
    res.end(req.url === '/renders' ? '{"renders":0}' : 'ok\n')
  })
  server.listen(0, '127.0.0.1', () => { process.stdout.write(`${(server.address() as AddressInfo).port}\n`) })
}

/** Child: `n` concurrent GETs of `path`; prints "sent" once all are written and "done MS" at the end. */
function burst (port: number, path: string, n: number): void {
  const agent = new http.Agent({ keepAlive: false, maxSockets: n + 10 })
  const t0 = performance.now()
  let sent = 0
  let done = 0
  for (let i = 0; i < n; i++) {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, res => {
      res.resume()
      res.on('end', () => { if (++done === n) { process.stdout.write(`done ${Math.round(performance.now() - t0)}\n`); process.exit(0) } })
    })
    req.on('finish', () => { if (++sent === n) process.stdout.write('sent\n') })
    req.on('error', e => { process.stderr.write(`${e.message}\n`); process.exit(1) })
  }
}

function child (args: string[]): { proc: ChildProcess, out: () => string, line: (re: RegExp) => Promise<string> } {
  const proc = spawn(process.execPath, [SELF, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout?.on('data', (b: Buffer) => { out += b.toString() })
  const line = async (re: RegExp): Promise<string> => await new Promise((resolve, reject) => {
    const check = (): void => { const m = re.exec(out); if (m !== null) { proc.stdout?.off('data', check); resolve(m[0]) } }
    proc.stdout?.on('data', check)
    proc.once('exit', code => { reject(new Error(`child ${args.join(' ')} exited ${String(code)}:\n${out}`)) })
    check()
  })
  return { proc, out: () => out, line }
}

async function get (port: number, path: string): Promise<{ ms: number, body: string }> {
  const t0 = performance.now()
  return await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, res => {
      let body = ''
      res.on('data', (b: Buffer) => { body += b.toString() })
      res.on('end', () => { resolve({ ms: performance.now() - t0, body }) })
    }).on('error', reject)
  })
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

async function round (serverArg: string, path: string, n: number): Promise<{ idle: number, worst: number, probes: number, renders: number, burstMs: number }> {
  const server = child([serverArg])
  try {
    const port = Number(await server.line(/^\d+/))
    const idle: number[] = []
    for (let i = 0; i < 50; i++) idle.push((await get(port, '/healthz')).ms)
    const before = (JSON.parse((await get(port, '/renders')).body) as { renders: number }).renders
    const b = child(['--burst', String(port), path, String(n)])
    const finished = b.line(/done \d+/)
    await b.line(/sent/)
    // Probes back to back from the moment every scrape is on the wire until the last one is answered.
    let over = false
    void finished.then(() => { over = true }, () => { over = true })
    const probes: number[] = []
    while (!over) probes.push((await get(port, '/healthz')).ms)
    const burstMs = Number((await finished).split(' ')[1])
    const renders = (JSON.parse((await get(port, '/renders')).body) as { renders: number }).renders - before
    return { idle: median(idle), worst: Math.max(...probes), probes: probes.length, renders, burstMs }
  } finally { server.proc.kill() }
}

async function main (): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--serve') { await serve(); return }
  if (argv[0] === '--serve-bare') { serveBare(); return }
  if (argv[0] === '--burst') { burst(Number(argv[1]), argv[2] ?? '/metrics', Number(argv[3])); return }
  const opt = (name: string, def: number): number => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : def }
  const n = opt('--scrapes', 1000)
  const rounds = opt('--rounds', 3)
  const rows = []
  for (const [name, serverArg, path] of [['shared', '--serve', '/metrics'], ['per-scrape', '--serve', '/metrics-unshared'], ['bare node:http', '--serve-bare', '/metrics']] as const) {
    const rs = []
    for (let i = 0; i < rounds; i++) rs.push(await round(serverArg, path, n))
    rows.push({ name, idle: median(rs.map(r => r.idle)), worst: median(rs.map(r => r.worst)), renders: median(rs.map(r => r.renders)), burstMs: median(rs.map(r => r.burstMs)) })
  }
  const floor = rows[rows.length - 1]?.worst ?? NaN
  console.log(`${n} concurrent scrapes, median of ${rounds} rounds`)
  console.log('| server | idle /healthz ms | worst /healthz in burst ms | worst/idle | worst/bare worst | renders | burst ms |')
  console.log('|--------|------------------|----------------------------|------------|------------------|---------|----------|')
  for (const r of rows) console.log(`| ${r.name} | ${r.idle.toFixed(1)} | ${r.worst.toFixed(0)} | ${(r.worst / r.idle).toFixed(0)} | ${(r.worst / floor).toFixed(2)} | ${r.renders} | ${r.burstMs} |`)
}

main().catch((e: unknown) => { console.error(e); process.exit(1) })
