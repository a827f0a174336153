// The DNS component: the record index fed by the publisher (after the proxy programs), the handler
// chain autopath → kubernetes → cache → forward, and the server. ferryd adds it to its component list
// when --dns-listen is given.
import type { Registry } from 'prom-client'
import type { ClusterStore } from '../cache/store.js'
import type { Component, Readiness } from '../component/component.js'
import type { DnsConfig } from '../config/config.js'
import type { Logger } from '../log/log.js'
import { cachePlugin, type CachePlugin } from './cache/cache.js'
import { forwardPlugin, type ForwardPlugin } from './forward/forward.js'
import { autopathPlugin } from './kubernetes/autopath.js'
import { kubernetesPlugin } from './kubernetes/handler.js'
import { RecordIndex } from './kubernetes/index.js'
import type { Handler, Plugin } from './message.js'
import { createDnsMetrics } from './metrics.js'
import { Publisher, type ProgrammedGate } from './publish.js'
import { DnsServer } from './server.js'

export interface DnsComponentOptions {
  config: DnsConfig
  store: ClusterStore
  registry: Registry
  log: Logger
  /** The proxiers; empty when the proxy is off. */
  gates: readonly ProgrammedGate[]
  /** The node's addresses: NS glue when DNS listens on a wildcard. */
  localAddresses: () => string[]
  version: string
}

const WILDCARD = new Set(['0.0.0.0', '::'])

export class DnsComponent implements Component {
  readonly name = 'dns'
  readonly index: RecordIndex
  private readonly publisher: Publisher
  private readonly forward: ForwardPlugin
  private readonly cache: CachePlugin
  private readonly server: DnsServer
  private started = false

  constructor (private readonly o: DnsComponentOptions) {
    const cfg = o.config
    const specific = cfg.dnsListen.map(l => l.host).filter(h => !WILDCARD.has(h))
    this.index = new RecordIndex({ zone: cfg.clusterDomain, ttl: cfg.dnsTTL, podRecords: cfg.dnsPodRecords, nsAddresses: specific.length > 0 ? specific : o.localAddresses() })
    const metrics = createDnsMetrics(o.registry, serverLabel(cfg), o.version)
    this.publisher = new Publisher({
      store: o.store,
      sink: this.index,
      gates: o.gates,
      observeProgramming: (slice, seconds) => {
        const svcName = slice.metadata.labels?.['kubernetes.io/service-name']
        const svc = svcName === undefined ? undefined : o.store.get('Service', slice.metadata.namespace, svcName)
        if (svc === undefined) return
        metrics.observeProgramming(svc.spec.clusterIP === 'None' ? 'headless_with_selector' : 'cluster_ip', seconds)
      },
    })
    this.forward = forwardPlugin({ upstreams: cfg.dnsUpstreams, selfAddresses: cfg.dnsListen, registry: o.registry })
    this.cache = cachePlugin({ maxTtl: cfg.dnsCacheMaxTTL, registry: o.registry, server: serverLabel(cfg), successCapacity: cfg.dnsCacheMaxTTL === 0 ? 0 : undefined, denialCapacity: cfg.dnsCacheMaxTTL === 0 ? 0 : undefined })
    const plugins: Plugin[] = []
    if (cfg.dnsAutopath) {
      plugins.push(autopathPlugin({ zone: cfg.clusterDomain, podNamespace: ip => this.index.podNamespaceByIP(ip), searchDomains: cfg.dnsSearch }))
    }
    // kubeadm's Corefile: reverse names the cluster does not know are asked upstream.
    plugins.push(kubernetesPlugin(this.index, { reverseFallthrough: true }), this.cache, this.forward)
    const handler = plugins.reduceRight<Handler>((next, p) => p(next), () => { throw new Error('end of the DNS chain') })
    this.server = new DnsServer({ listen: cfg.dnsListen, handler, metrics, log: o.log, queryLog: cfg.dnsQueryLog })
    // Names are final once the proxy's first sync is published; until then a missing name is SERVFAIL.
    for (const g of o.gates) g.onProgrammed(() => { this.markSyncedIfCaughtUp() })
  }

  private markSyncedIfCaughtUp (): void {
    if (!this.index.synced && this.o.store.synced && this.publisher.pending === 0) this.index.markSynced()
  }

  async start (): Promise<void> {
    await this.server.start()
    this.started = true
    this.publisher.flush()
    this.markSyncedIfCaughtUp()
    this.o.log.info('dns serving', { listen: this.server.addresses().map(a => `${a.host}:${a.port}`), zone: this.o.config.clusterDomain, upstreams: this.o.config.dnsUpstreams.length })
  }

  async stop (): Promise<void> {
    this.forward.close()
    await this.server.stop()
  }

  ready (): Readiness {
    if (!this.started) return { ready: false, reason: 'not listening yet' }
    if (!this.index.synced) return { ready: false, reason: 'waiting for the proxy to program the first state' }
    if (this.publisher.fallingBack) {
      return { ready: true, reason: this.o.gates.length === 0 ? 'answering from the cache (no proxy)' : 'answering from the cache: the proxy\'s last sync failed' }
    }
    return { ready: true, reason: '' }
  }

  debugState (): Readonly<Record<string, unknown>> {
    return {
      dns: {
        listen: this.server.addresses(),
        zone: this.o.config.clusterDomain,
        publishedRevision: this.publisher.revision,
        pendingChanges: this.publisher.pending,
        fallingBack: this.publisher.fallingBack,
        upstreams: this.forward.status(),
        cache: this.cache.size(),
      },
    }
  }
}

/** CoreDNS's `server` label: "dns://:53" for a wildcard listener. */
function serverLabel (cfg: DnsConfig): string {
  const l = cfg.dnsListen[0]
  if (l === undefined) return 'dns://:53'
  return `dns://${WILDCARD.has(l.host) ? '' : l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`
}
