// A real single-member etcd for tests: free loopback ports, a temp data dir, health-checked start,
// stop/restart keeping the data (to simulate an outage), compaction, and cleanup on teardown (and on
// process exit, so a crashed test leaves no etcd behind).
//
//   const etcd = await startEtcd(t)         // t.teardown(etcd.cleanup) is registered for you
//   etcd.endpoint                            // "http://127.0.0.1:PORT"
//   await etcd.stop(); await etcd.restart()  // outage and recovery, same data, same port
//   await etcd.compact()                     // compacts at the current revision, returns it
//
//   startEtcd(t, { tls: { ca, cert, key } })              // https:// with client-certificate auth
//   startEtcd(t, { auth: { password: 'pw' } })            // user root:pw, `auth enable`
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findEtcd, freePort } from '../../pkg/lab/etcd.js'

export { findEtcd, freePort }

export interface EtcdHandle {
  /** Client URL, e.g. "http://127.0.0.1:41234". Stable across restart(). */
  readonly endpoint: string
  readonly clientPort: number
  readonly dataDir: string
  /** pid of the running etcd, or undefined while stopped. */
  readonly pid: number | undefined
  readonly running: boolean
  /** Stops etcd (SIGTERM, then SIGKILL after 5s), keeping its data dir. Idempotent. */
  stop: () => Promise<void>
  /** Starts etcd again on the same port and data (stopping it first if it runs); waits until healthy. */
  restart: () => Promise<void>
  /** Compacts history at the current revision (physically) and returns that revision. */
  compact: () => Promise<number>
  /** Current store revision. */
  revision: () => Promise<number>
  /** Stops etcd and removes its data dir. Registered with t.teardown when startEtcd got a t. */
  cleanup: () => Promise<void>
  /** Last lines etcd wrote to stderr (for assertion messages). */
  logs: () => string
}

export interface StartEtcdOptions {
  /** etcd binary; default $FERRY_ETCD_BIN or "etcd" on PATH. */
  bin?: string
  /** How long to wait for /health; default 20s. */
  startTimeoutMs?: number
  /**
   * Serve clients over https with this CA, server certificate (SAN 127.0.0.1) and key; unless
   * clientCertAuth is false, clients must show a certificate signed by the CA. `client` is the pair the
   * helper itself (health checks, revision, compact) uses.
   */
  tls?: { ca: string, cert: string, key: string, client: { cert: string, key: string }, clientCertAuth?: boolean }
  /** More etcd flags, e.g. ['--max-request-bytes', '131072']. */
  args?: string[]
  /** Add user root with this password and enable etcd's auth once healthy. */
  auth?: { password: string }
  /** Addresses etcd also serves clients on (same port), e.g. a bridge address that network namespaces reach. */
  extraClientHosts?: string[]
}

interface Teardownable { teardown: (fn: () => unknown) => void }

const live = new Set<{ child: ChildProcess | undefined, dataDir: string }>()
let exitHookInstalled = false

function killAllSync (): void {
  for (const e of live) {
    try { e.child?.kill('SIGKILL') } catch {}
    try { rmSync(e.dataDir, { recursive: true, force: true }) } catch {}
  }
  live.clear()
}

/** Children outlive a killed parent: clean up on exit, and on a fatal signal before re-raising it. */
function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', killAllSync)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllSync()
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig)
    })
  }
}

interface ClientTLS { ca: Buffer, cert: Buffer, key: Buffer }

function healthy (port: number, tls?: ClientTLS): Promise<boolean> {
  return new Promise(resolve => {
    const opts = { host: '127.0.0.1', port, path: '/health', agent: false as const, timeout: 1000 }
    const onRes = (res: import('node:http').IncomingMessage): void => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)) })
    }
    const req = tls === undefined ? httpRequest(opts, onRes) : httpsRequest({ ...opts, ...tls }, onRes)
    req.on('timeout', () => { req.destroy() })
    req.on('error', () => { resolve(false) })
    req.end()
  })
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export async function startEtcd (t?: Teardownable, opts: StartEtcdOptions = {}): Promise<EtcdHandle> {
  const bin = findEtcd(opts.bin)
  const startTimeout = opts.startTimeoutMs ?? 20_000
  installExitHook()
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-etcd-'))
  const entry: { child: ChildProcess | undefined, dataDir: string } = { child: undefined, dataDir }
  live.add(entry)
  let clientPort = 0
  let peerPort = 0
  let log: string[] = []
  let cleaned = false
  const scheme = opts.tls !== undefined ? 'https' : 'http'
  const clientTLS: ClientTLS | undefined = opts.tls === undefined
    ? undefined
    : { ca: readFileSync(opts.tls.ca), cert: readFileSync(opts.tls.client.cert), key: readFileSync(opts.tls.client.key) }
  const tlsArgs = opts.tls === undefined
    ? []
    : ['--cert-file', opts.tls.cert, '--key-file', opts.tls.key, '--trusted-ca-file', opts.tls.ca,
        ...(opts.tls.clientCertAuth === false ? [] : ['--client-cert-auth'])]
  let authEnabled = false
  const logs = (): string => log.join('').split('\n').slice(-30).join('\n')

  const stop = async (): Promise<void> => {
    const child = entry.child
    if (child === undefined) return
    entry.child = undefined
    if (child.exitCode !== null || child.signalCode !== null) return
    await new Promise<void>(resolve => {
      const kill = setTimeout(() => { child.kill('SIGKILL') }, 5000)
      child.once('exit', () => { clearTimeout(kill); resolve() })
      child.kill('SIGTERM')
    })
  }

  const launch = async (): Promise<void> => {
    if (cleaned) throw new Error('etcd test helper: already cleaned up')
    log = []
    const client = `${scheme}://127.0.0.1:${clientPort}`
    const peer = `http://127.0.0.1:${peerPort}`
    const env: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD')) env[k] = v
    const child = spawn(bin, [
      '--name', 'ferry-test', '--data-dir', dataDir,
      '--listen-client-urls', [client, ...(opts.extraClientHosts ?? []).map(h => `${scheme}://${h}:${clientPort}`)].join(','), '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `ferry-test=${peer}`, '--initial-cluster-state', 'new',
      '--logger', 'zap', '--log-level', 'warn', ...tlsArgs, ...(opts.args ?? []),
    ], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    entry.child = child
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (c: string) => { log.push(c); if (log.length > 200) log = log.slice(-100) })
    let exited = false
    child.once('exit', () => { exited = true })
    child.once('error', () => { exited = true })
    const deadline = Date.now() + startTimeout
    while (Date.now() < deadline) {
      if (exited) throw new Error(`etcd exited during startup (client port ${clientPort}):\n${logs()}`)
      if (await healthy(clientPort, clientTLS)) return
      await sleep(100)
    }
    await stop()
    throw new Error(`etcd did not become healthy within ${startTimeout}ms:\n${logs()}`)
  }

  // Ports are only "probably" free: retry with fresh ones if something grabbed them first.
  for (let attempt = 1; ; attempt++) {
    clientPort = await freePort()
    peerPort = await freePort()
    try { await launch(); break } catch (e) {
      await stop()
      if (attempt >= 3) {
        live.delete(entry)
        rmSync(dataDir, { recursive: true, force: true })
        throw e
      }
      rmSync(dataDir, { recursive: true, force: true }) // a half-initialised member must not be reused
      mkdirSync(dataDir, { mode: 0o700 })
    }
  }

  const withClient = async <T>(fn: (c: import('etcd3').Etcd3) => Promise<T>): Promise<T> => {
    const { Etcd3 } = await import('etcd3')
    const c = new Etcd3({
      hosts: `${scheme}://127.0.0.1:${clientPort}`,
      ...(clientTLS !== undefined ? { credentials: { rootCertificate: clientTLS.ca, certChain: clientTLS.cert, privateKey: clientTLS.key } } : {}),
      ...(authEnabled && opts.auth !== undefined ? { auth: { username: 'root', password: opts.auth.password } } : {}),
    })
    try { return await fn(c) } finally { c.close() }
  }
  const revision = async (): Promise<number> =>
    await withClient(async c => Number((await c.kv.range({ key: Buffer.from([0]), limit: 1 })).header.revision))

  if (opts.auth !== undefined) {
    const password = opts.auth.password
    await withClient(async c => {
      await c.user('root').create(password)
      await c.user('root').addRole('root')
      await c.auth.authEnable()
    })
    authEnabled = true
  }

  const handle: EtcdHandle = {
    get endpoint () { return `${scheme}://127.0.0.1:${clientPort}` },
    get clientPort () { return clientPort },
    dataDir,
    get pid () { return entry.child?.pid },
    get running () { return entry.child !== undefined },
    stop,
    restart: async () => { await stop(); await launch() },
    revision,
    compact: async () => await withClient(async c => {
      const rev = Number((await c.kv.range({ key: Buffer.from([0]), limit: 1 })).header.revision)
      await c.kv.compact({ revision: rev, physical: true })
      return rev
    }),
    cleanup: async () => {
      if (cleaned) return
      await stop()
      cleaned = true
      live.delete(entry)
      rmSync(dataDir, { recursive: true, force: true })
    },
    logs,
  }
  t?.teardown(handle.cleanup)
  return handle
}
