// ferryd: config → source → cache → proxiers (one per IP family) → kernel; HTTP for Prometheus and probes.
import { networkInterfaces } from 'node:os'
import type { FastifyInstance } from 'fastify'
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { ClusterStore } from '../pkg/cache/store.js'
import { loadConfig, usage, type Config } from '../pkg/config/config.js'
import { errorMessage, isFerryError } from '../pkg/errors/errors.js'
import { createLogger, type Logger } from '../pkg/log/log.js'
import { cidrContains, parseCIDR, parseIP, type IPFamily } from '../pkg/net/ip.js'
import { backendDeps, chooseProxyMode, cleanupAllModes, cleanupOtherModes, createBackend } from '../pkg/proxy/backends.js'
import { resolveProxyOptions, type ProxyOptions } from '../pkg/proxy/options.js'
import { parseTraceQuery } from '../pkg/proxy/trace.js'
import { ProxyHealth, nodeEligible } from '../pkg/proxy/health.js'
import { createProxyMetrics } from '../pkg/proxy/metrics.js'
import { ConntrackCleaner } from '../pkg/proxy/conntrack/cleanup.js'
import { createConntrackMetrics } from '../pkg/proxy/conntrack/metrics.js'
import { HealthCheckServer } from '../pkg/proxy/healthcheck/server.js'
import { Proxier } from '../pkg/proxy/proxier.js'
import type { Backend } from '../pkg/proxy/types.js'
import { createSource } from '../pkg/source/factory.js'
import { createSourceMetrics } from '../pkg/source/metrics.js'
import { notify } from '../pkg/systemd/notify.js'

function nodeIPs (): string[] {
  return Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(a => parseIP(a.address.split('%')[0] ?? '')?.ip ?? '')).filter(ip => ip !== '')
}

/** Local addresses in --nodeport-addresses for this family; empty means every address. */
function nodePortIPs (cfg: Config, family: IPFamily): string[] {
  const cidrs = cfg.nodePortAddresses.map(c => parseCIDR(c)).filter((c): c is NonNullable<typeof c> => c !== null && c.family === family)
  return cidrs.length === 0 ? [] : nodeIPs().filter(ip => cidrs.some(c => cidrContains(c, ip)))
}

async function main (argv: string[]): Promise<number> {
  let cfg: Config | 'help'
  try { cfg = loadConfig(argv) } catch (e) {
    process.stderr.write(`ferryd: ${errorMessage(e)}\n\n${usage()}\n`)
    return 2
  }
  if (cfg === 'help') { process.stdout.write(usage() + '\n'); return 0 }
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat })
  const mode = await chooseProxyMode(cfg)
  log.info('proxy mode', { mode: mode.mode, reason: mode.reason })
  const ips = nodeIPs()
  if (cfg.cleanup) return await cleanup(cfg, ips, log)
  const registry = new Registry()
  new Gauge({ name: 'ferry_proxy_mode', help: 'The active proxy mode (1 for the mode in use)', labelNames: ['mode'], registers: [registry] }).set({ mode: mode.mode }, 1)
  // A switch of mode leaves nothing of the old one: its rules would still catch traffic.
  for (const f of await cleanupOtherModes(mode.mode, backendDeps(cfg, 'IPv4', ips, log))) log.warn('could not remove the previous mode\'s state', { mode: f.mode, what: f.what, err: f.err })
  const backends = new Map<IPFamily, { backend: Backend, options: ProxyOptions }>()
  for (const family of cfg.ipFamilies) {
    const deps = backendDeps(cfg, family, ips, log.child(`proxy.${family}`), registry)
    backends.set(family, { backend: await createBackend(mode.mode, deps), options: resolveProxyOptions(deps.proxy) })
  }
  return await serve(cfg, log, registry, backends, mode)
}

/** Removes the state of every proxy mode in both families, whatever is configured now. */
async function cleanup (cfg: Config, ips: string[], log: Logger): Promise<number> {
  const failures = await cleanupAllModes(backendDeps(cfg, 'IPv4', ips, log))
  for (const f of failures) log.warn('cleanup failed', { what: f.what, err: f.err })
  log.info('removed every rule ferry owns', { failed: failures.length })
  return failures.length === 0 ? 0 : 1
}

async function serve (cfg: Config, log: Logger, registry: Registry, backends: Map<IPFamily, { backend: Backend, options: ProxyOptions }>,
  mode: { mode: string, reason: string }): Promise<number> {
  // The kernel reads for the first sync run while the source loads.
  for (const b of backends.values()) b.backend.prepare?.()
  collectDefaultMetrics({ register: registry })
  const metrics = createProxyMetrics(registry)
  const health = new ProxyHealth(2 * cfg.syncPeriodMs)
  const store = new ClusterStore()
  const sourceLog = log.child('source')
  store.onError(e => { sourceLog.warn(e.message, { code: e.code }) })

  const healthChecks: HealthCheckServer[] = []
  const conntrackMetrics = createConntrackMetrics(registry)
  const proxiers = [...backends].map(([family, { backend, options }]) => {
    // After the new rules are live (PROXY.md §4): stale UDP flows, then health-check listeners.
    const conntrack = new ConntrackCleaner({ family, log: log.child(`proxy.${family}`), metrics: conntrackMetrics })
    const healthCheck = new HealthCheckServer({
      family, addresses: nodePortIPs(cfg, family), proxyHealthy: () => health.report().healthy, log: log.child(`healthcheck.${family}`),
    })
    healthChecks.push(healthCheck)
    return new Proxier({
      family, nodeName: cfg.nodeName, backend, options, store, metrics, health,
      minSyncPeriodMs: cfg.minSyncPeriodMs, syncPeriodMs: cfg.syncPeriodMs, log: log.child(`proxy.${family}`),
      afterSync: [conntrack.afterSync, healthCheck.afterSync],
    })
  })
  const source = createSource(cfg, log.child('source'))
  const sourceMetrics = createSourceMetrics(registry, source)
  store.onError(e => { sourceMetrics.reportError(e) })

  let httpStarted: Promise<FastifyInstance> | undefined
  const startHttp = async (): Promise<FastifyInstance> => await (httpStarted ??= (async () => {
    const [{ buildHttpServer }, { listenHttp }] = await Promise.all([import('../pkg/http/server.js'), import('../pkg/http/exposure.js')])
    const http = buildHttpServer({
      registry, health, metrics, debugRemote: cfg.debugRemote,
      nodeEligible: () => nodeEligible(store.get('Node', undefined, cfg.nodeName), store.count('Node') > 0),
      ready: () => {
        if (!store.synced) return { ready: false, reason: `waiting for ${source.name}` }
        // health knows which families synced; status() would count every endpoint on each probe.
        const pending = [...backends.keys()].filter(f => !health.hasSynced(f))
        return pending.length === 0 ? { ready: true, reason: '' } : { ready: false, reason: `no rules applied yet for ${pending.join(', ')}` }
      },
      debugTrace: q => {
        const pkt = parseTraceQuery(q)
        if (typeof pkt === 'string') return pkt
        const family = parseIP(pkt.dst)?.family
        const proxier = proxiers.find(p => p.family === family)
        if (proxier === undefined) return `this ferryd proxies ${cfg.ipFamilies.join(', ')} only`
        return { family, packet: pkt, ...proxier.trace(pkt, { localAddresses: nodeIPs() }) }
      },
      debugState: () => ({
        nodeName: cfg.nodeName,
        proxyMode: mode,
        source: source.status?.() ?? { name: source.name },
        objects: { services: store.count('Service'), endpointSlices: store.count('EndpointSlice'), nodes: store.count('Node'), pods: store.count('Pod') },
        sourceErrors: store.errors,
        proxiers: proxiers.map(p => ({ ...p.status(), servicePorts: p.desiredState() })),
        healthCheckNodePorts: healthChecks.map(h => h.ports()),
      }),
    })
    await listenHttp(http, { ...cfg.httpListen, debugRemote: cfg.debugRemote, log })
    return http
  })())
  // Not awaited: fastify loads in the gaps of the source's file and etcd I/O, and the probes answer
  // (503 until ready) from the first moments, even while the source is still failing.
  startHttp().catch(fatal)

  let stopping = false
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    // Rules stay in the kernel: established flows keep working across a restart.
    log.info('shutting down; rules stay in place', { signal })
    // Whatever hangs, a stop request is honoured.
    setTimeout(() => { log.warn('shutdown took over 10 s; exiting anyway'); process.exit(0) }, 10_000).unref()
    await notify({ STOPPING: '1' })
    await source.stop()
    await Promise.all(proxiers.map(async p => { await p.stop() }))
    await (await httpStarted?.catch(() => undefined))?.close()
    for (const h of healthChecks) await h.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => { void shutdown('SIGTERM') })
  process.on('SIGINT', () => { void shutdown('SIGINT') })

  log.info('starting source', { source: source.name })
  await source.start(store)
  log.info('source synced', { objects: store.size })
  for (const p of proxiers) p.start()
  await Promise.all([...proxiers.map(async p => { await p.whenSynced() }), startHttp()])
  log.info('first sync applied; ready', { families: cfg.ipFamilies })
  await notify({ READY: '1', STATUS: `serving ${store.count('Service')} services` })
  return await new Promise<number>(() => {}) // runs until a signal
}

function fatal (e: unknown): never {
  process.stderr.write(`ferryd: ${isFerryError(e) ? `${e.code}: ` : ''}${errorMessage(e)}\n`)
  process.exit(1)
}

main(process.argv.slice(2)).then(code => { process.exit(code) }, fatal)
