// ferryd: config → source → cache → components (the proxy; DNS and the overlay join the same list);
// HTTP for Prometheus, probes and each component's debug routes. This file only wires.
import { networkInterfaces } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import type { FastifyInstance } from 'fastify'
import { Gauge, Registry, collectDefaultMetrics } from '../pkg/metrics/prom.js'
import { ClusterStore } from '../pkg/cache/store.js'
import { startCniService, type CniService } from '../pkg/cni-server/service.js'
import { debugStates, readiness, startAll, stopAll, type Component } from '../pkg/component/component.js'
import { ProxyComponent } from '../pkg/component/proxy-component.js'
import { loadConfig, usage, type Config } from '../pkg/config/config.js'
import { errorMessage, isFerryError } from '../pkg/errors/errors.js'
import { createLogger, type Logger } from '../pkg/log/log.js'
import { parseIP, type IPFamily } from '../pkg/net/ip.js'
import { backendDeps, chooseProxyMode, cleanupAllModes, cleanupOtherModes, createBackend, modeProxyOptions } from '../pkg/proxy/backends.js'
import { nodeEligible } from '../pkg/proxy/health.js'
import type { ProxyOptions } from '../pkg/proxy/options.js'
import type { Backend } from '../pkg/proxy/types.js'
import { createSource } from '../pkg/source/factory.js'
import { createSourceMetrics } from '../pkg/source/metrics.js'
import { notify } from '../pkg/systemd/notify.js'
import { startWatchdog, type Watchdog } from '../pkg/systemd/watchdog.js'
import { announceHttp } from '../pkg/http/exposure.js'
import { OperationsListener } from '../pkg/http/listener.js'
import type { ProbeDeps } from '../pkg/http/probes.js'

function nodeIPs (): string[] {
  return Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(a => parseIP(a.address.split('%')[0] ?? '')?.ip ?? '')).filter(ip => ip !== '')
}

const FERRY_VERSION = '0.1.0'
/** How long the source may take before fastify loads anyway (so /metrics and /debug/state serve during an outage). */
const HTTP_ATTACH_GRACE_MS = 2000

/** Milliseconds since the process started (node's time origin), for the start-up log lines. */
const processMs = (): number => Math.round(performance.now())

/** The root logger once the config is read: signals and fatal errors log through it. */
let rootLog: Logger | undefined

// Node opens its inspector (no authentication, 127.0.0.1:9229) on SIGUSR1 unless the signal has a
// listener: in a root daemon that is code execution for every local user. CoreDNS operators send it
// to reload; ferryd has nothing to reload. Installed before anything else runs.
process.on('SIGUSR1', () => { rootLog?.warn('SIGUSR1 ignored: ferryd reloads nothing (restart it to apply new settings)') })

type Backends = Map<IPFamily, { backend: Backend, options: ProxyOptions }>
interface ProxyMode { mode: string, reason: string }

async function main (argv: string[]): Promise<number> {
  let cfg: Config | 'help'
  try { cfg = loadConfig(argv) } catch (e) {
    process.stderr.write(`ferryd: ${errorMessage(e)}\n\n${usage()}\n`)
    return 2
  }
  if (cfg === 'help') { process.stdout.write(usage() + '\n'); return 0 }
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat })
  rootLog = log
  const mode = await chooseProxyMode(cfg)
  log.info('proxy mode', { mode: mode.mode, reason: mode.reason })
  const ips = nodeIPs()
  if (cfg.cleanup) return await cleanup(cfg, ips, log)
  const registry = new Registry()
  // Not awaited: bin/ferry-cni falls back to starting node until (or unless) this listens.
  const cni = startCniService(cfg, log.child('cni'), registry)
  new Gauge({ name: 'ferry_proxy_mode', help: 'The active proxy mode (1 for the mode in use)', labelNames: ['mode'], registers: [registry] }).set({ mode: mode.mode }, 1)
  // A switch of mode leaves nothing of the old one: its rules would still catch traffic. The checks (a
  // process each) run beside the source's first list and end before the first sync.
  const previousMode = cleanupOtherModes(mode.mode, backendDeps(cfg, 'IPv4', ips, log)).then(failures => {
    for (const f of failures) log.warn('could not remove the previous mode\'s state', { mode: f.mode, what: f.what, err: f.err })
  })
  previousMode.catch(() => {}) // awaited in serve()
  const backends: Backends = new Map()
  for (const family of cfg.ipFamilies) {
    const deps = backendDeps(cfg, family, ips, log.child(`proxy.${family}`), registry)
    backends.set(family, { backend: await createBackend(mode.mode, deps), options: modeProxyOptions(mode.mode, deps.proxy) })
  }
  return await serve(cfg, log, registry, backends, mode, cni, previousMode)
}

/** Removes the state of every proxy mode in both families, whatever is configured now. */
async function cleanup (cfg: Config, ips: string[], log: Logger): Promise<number> {
  const failures = await cleanupAllModes(backendDeps(cfg, 'IPv4', ips, log))
  for (const f of failures) log.warn('cleanup failed', { what: f.what, err: f.err })
  log.info('removed every rule ferry owns', { failed: failures.length })
  return failures.length === 0 ? 0 : 1
}

/**
 * The components, in start order (stopped in reverse). Built before the source starts: each subscribes
 * to the store in its constructor. The one place a component is added. The overlay and DNS modules are
 * imported only when configured (DNS alone is ~30 modules of start-up).
 */
async function buildComponents (cfg: Config, log: Logger, registry: Registry, store: ClusterStore, backends: Backends, mode: ProxyMode): Promise<{ proxy: ProxyComponent, components: Component[] }> {
  const proxy = new ProxyComponent({ config: cfg, backends, mode, store, registry, log: log.child('proxy'), localAddresses: nodeIPs })
  const components: Component[] = [proxy]
  if (cfg.overlay) {
    const { OverlayComponent } = await import('../pkg/overlay/component.js')
    components.push(new OverlayComponent({ config: cfg, log: log.child('overlay') }))
  }
  // DNS follows the proxiers: a name is published once its rules are in the kernel.
  if (cfg.dnsListen.length > 0) {
    const { DnsComponent } = await import('../pkg/dns/component.js')
    components.push(new DnsComponent({ config: cfg, store, registry, log: log.child('dns'), gates: proxy.proxiers, localAddresses: nodeIPs, version: FERRY_VERSION }))
  }
  return { proxy, components }
}

async function serve (cfg: Config, log: Logger, registry: Registry, backends: Backends, mode: ProxyMode, cni: CniService, previousMode: Promise<void>): Promise<number> {
  const store = new ClusterStore()
  const sourceLog = log.child('source')
  store.onError(e => { sourceLog.warn(e.message, { code: e.code }) })
  const { proxy, components } = await buildComponents(cfg, log, registry, store, backends, mode)
  const source = createSource(cfg, sourceLog)
  const sourceMetrics = createSourceMetrics(registry, source)
  store.onError(e => { sourceMetrics.reportError(e) })

  const probes: ProbeDeps = {
    health: proxy.health,
    metrics: proxy.metrics,
    nodeEligible: () => nodeEligible(store.get('Node', undefined, cfg.nodeName), store.count('Node') > 0),
    ready: () => store.synced ? readiness(components) : { ready: false, reason: `waiting for ${source.name}` },
  }
  // The port opens at once and answers the probes (503 until ready); fastify, for /metrics and /debug/*,
  // is attached just after the first sync, or after a grace period while the source still waits.
  const listener = new OperationsListener(probes)
  announceHttp(await listener.listen(cfg.httpListen.host, cfg.httpListen.port), { debugRemote: cfg.debugRemote, log })
  let httpStarted: Promise<FastifyInstance> | undefined
  const startHttp = async (): Promise<FastifyInstance> => await (httpStarted ??= (async () => {
    const { buildHttpServer } = await import('../pkg/http/server.js')
    // Process metrics load ~50 modules; they are only read through this server.
    collectDefaultMetrics({ register: registry })
    const http = buildHttpServer({
      ...probes, registry, debugRemote: cfg.debugRemote, components,
      debugState: () => ({
        nodeName: cfg.nodeName,
        source: source.status?.() ?? { name: source.name },
        objects: { services: store.count('Service'), endpointSlices: store.count('EndpointSlice'), nodes: store.count('Node'), pods: store.count('Pod') },
        sourceErrors: store.errors,
        ...debugStates(components),
      }),
    })
    await http.ready()
    listener.attach(http.routing)
    return http
  })())
  const httpTimer = setTimeout(() => { startHttp().catch(fatal) }, HTTP_ATTACH_GRACE_MS)

  let stopping = false
  let watchdog: Watchdog | undefined
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log.info('shutting down; rules stay in place', { signal })
    // Whatever hangs, a stop request is honoured.
    setTimeout(() => { log.warn('shutdown took over 10 s; exiting anyway'); process.exit(0) }, 10_000).unref()
    watchdog?.stop()
    await notify({ STOPPING: '1' })
    await cni.stop()
    await source.stop()
    await stopAll(components, log)
    await listener.close()
    await (await httpStarted?.catch(() => undefined))?.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => { void shutdown('SIGTERM') })
  process.on('SIGINT', () => { void shutdown('SIGINT') })
  // Node's default for SIGHUP kills the process outright (no STOPPING=1, the CNI server file left
  // behind); a hangup or a `kill -HUP` stops ferryd the orderly way instead (it has nothing to reload).
  process.on('SIGHUP', () => { void shutdown('SIGHUP') })

  log.info('starting source', { source: source.name, processMs: processMs() })
  await source.start(store)
  log.info('source synced', { objects: store.size, processMs: processMs() })
  clearTimeout(httpTimer)
  await previousMode
  await startAll(components)
  log.info('first sync applied; ready', { families: cfg.ipFamilies, components: components.map(c => c.name), processMs: processMs() })
  steadyStateCompiler()
  const told = await notify({ READY: '1', STATUS: `serving ${store.count('Service')} services` })
  // Under Type=notify systemd would time the start out and kill ferryd: say why, once.
  if (!told.sent && told.err !== undefined) log.warn('systemd was not told READY=1', { err: told.err })
  // systemd arms WatchdogSec= only once start-up completes; a signal during the await above stops nothing.
  if (!stopping) watchdog = startWatchdog({ env: process.env, pid: process.pid, log: log.child('systemd') })
  // Only now, so its ~0.1 s of loading does not delay the first sync; /metrics and /debug/* requests made
  // once ready wait for it (listener.ts).
  await startHttp()
  void source.settled?.()
  return await new Promise<number>(() => {}) // runs until a signal
}

/**
 * From here on most code runs once per change (a sync, a source pass): V8's baseline compiler
 * (Sparkplug) would compile it in batches on the main thread, inside the syncs, and never earn that
 * back. Under emulation (the IPVS VM) each batch cost the edit's hand-off more than the rest of the
 * sync (bench/README.md). Start-up keeps it; hot paths (DNS) still reach the optimizing compiler.
 */
function steadyStateCompiler (): void {
  setFlagsFromString('--no-sparkplug')
}

function fatal (e: unknown): never {
  // Once logging is set up the last word is a log line too: a JSON pipeline would drop a bare one.
  if (rootLog !== undefined) rootLog.error(errorMessage(e), isFerryError(e) ? { code: e.code } : { err: e })
  else process.stderr.write(`ferryd: ${isFerryError(e) ? `${e.code}: ` : ''}${errorMessage(e)}\n`)
  process.exit(1)
}

main(process.argv.slice(2)).then(code => { process.exit(code) }, fatal)
