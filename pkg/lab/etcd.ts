// A throwaway single-member etcd for the demo: free ports, a temp data dir, a health-checked start, and
// a stop that removes everything (also when the demo process exits without cleaning up).
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

export interface LabEtcd {
  /** Client URL on loopback, e.g. "http://127.0.0.1:41234". */
  readonly endpoint: string
  readonly clientPort: number
  readonly pid: number | undefined
  /** Client URL on one of the extra listen hosts given to startLabEtcd, e.g. a bridge address. */
  readonly endpointOn: (host: string) => string
  /** Stops etcd (SIGTERM, SIGKILL after 5 s) and removes its data dir. Idempotent. */
  readonly stop: () => Promise<void>
}

/** The etcd binary ($FERRY_ETCD_BIN, or `etcd` on PATH; Debian: etcd-server), or an error saying what to install. */
export function findEtcd (bin = process.env.FERRY_ETCD_BIN ?? 'etcd'): string {
  const candidates = bin.includes('/') ? [bin] : (process.env.PATH ?? '').split(delimiter).map(d => join(d, bin))
  for (const c of candidates) {
    try { accessSync(c, constants.X_OK); return c } catch {}
  }
  throw new Error(`etcd not installed: apt-get install etcd-server (looked for ${JSON.stringify(bin)}${bin.includes('/') ? '' : ' on PATH'})`)
}

/** A loopback port that was free a moment ago (bind port 0, read it, close). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => { resolve(port) })
    })
  })
}

async function healthy (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, path: '/health', timeout: 1000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve(res.statusCode === 200 && body.includes('"true"')) })
    })
    req.on('timeout', () => { req.destroy() })
    req.on('error', () => { resolve(false) })
    req.end()
  })
}

/** Starts etcd serving clients on 127.0.0.1 and on each of `listenHosts` (same port). */
export async function startLabEtcd (listenHosts: string[] = [], timeoutMs = 20_000): Promise<LabEtcd> {
  const bin = findEtcd()
  const dataDir = await mkdtemp(join(tmpdir(), 'ferry-demo-etcd-'))
  const [clientPort, peerPort] = [await freePort(), await freePort()]
  const client = (host: string): string => `http://${host}:${clientPort}`
  const peer = `http://127.0.0.1:${peerPort}`
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD')) env[k] = v
  const child: ChildProcess = spawn(bin, [
    '--name', 'ferry-demo', '--data-dir', dataDir,
    '--listen-client-urls', ['127.0.0.1', ...listenHosts].map(client).join(','), '--advertise-client-urls', client('127.0.0.1'),
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `ferry-demo=${peer}`,
    '--logger', 'zap', '--log-level', 'warn',
  ], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr?.on('data', (b: Buffer) => { log = (log + b.toString()).slice(-4000) })
  // The demo may die without running its cleanup: etcd must not outlive it.
  const onExit = (): void => { child.kill('SIGKILL'); rmSync(dataDir, { recursive: true, force: true }) }
  process.on('exit', onExit)
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    process.off('exit', onExit)
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>(resolve => {
        const kill = setTimeout(() => { child.kill('SIGKILL') }, 5000)
        child.once('exit', () => { clearTimeout(kill); resolve() })
        child.kill('SIGTERM')
      })
    }
    await rm(dataDir, { recursive: true, force: true })
  }
  const end = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) { await stop(); throw new Error(`etcd exited during startup:\n${log}`) }
    if (await healthy(clientPort)) break
    if (Date.now() > end) { await stop(); throw new Error(`etcd not healthy after ${timeoutMs} ms:\n${log}`) }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return { endpoint: client('127.0.0.1'), clientPort, pid: child.pid, endpointOn: client, stop }
}
