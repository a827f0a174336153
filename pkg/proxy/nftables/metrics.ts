// The nftables mode's own metrics, one set per registry shared by both families (prom-client refuses a
// second registration of a name). The failure counters carry kube-proxy's names (PROXY.md §5); kube-proxy
// has no gauge of its nftables table, so the object gauges carry ferry's prefix, shaped like the
// iptables mode's rule gauges (owned total, and written by the last sync).
import type { Registry } from 'prom-client'
import { Counter, Gauge } from '../../metrics/prom.js'

export type NftObjectKind = 'rules' | 'elements' | 'chains'

export interface NftablesMetrics {
  /** Failed sync transactions (full or partial). */
  readonly syncFailures: Counter<'ip_family'>
  /** Failed deferred deletions of stale chains. */
  readonly cleanupFailures: Counter<'ip_family'>
  /** Rules, map/set elements and chains the table holds. */
  readonly objectsTotal: Gauge<'ip_family' | 'kind'>
  /** Rules, elements and chains written by the last sync. */
  readonly objectsLast: Gauge<'ip_family' | 'kind'>
}

const byRegistry = new WeakMap<Registry, NftablesMetrics>()

export function nftablesMetrics (registry: Registry): NftablesMetrics {
  const known = byRegistry.get(registry)
  if (known !== undefined) return known
  const registers = [registry]
  const m: NftablesMetrics = {
    syncFailures: new Counter({ name: 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total', help: 'Cumulative proxy nftables sync failures', labelNames: ['ip_family'], registers }),
    cleanupFailures: new Counter({ name: 'kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total', help: 'Cumulative proxy nftables cleanup failures', labelNames: ['ip_family'], registers }),
    objectsTotal: new Gauge({ name: 'ferry_sync_proxy_rules_nftables_total', help: 'Rules, map and set elements, and chains in ferry\'s nftables table', labelNames: ['ip_family', 'kind'], registers }),
    objectsLast: new Gauge({ name: 'ferry_sync_proxy_rules_nftables_last', help: 'Rules, map and set elements, and chains written by the last nftables sync', labelNames: ['ip_family', 'kind'], registers }),
  }
  byRegistry.set(registry, m)
  return m
}
