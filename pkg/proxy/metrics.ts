// kube-proxy's backend-neutral metric names, types and labels, so existing dashboards keep working.
// Each mode registers its own (iptables/metrics.ts).
import type { Registry } from 'prom-client'
import { Counter, Gauge, Histogram } from '../metrics/prom.js'

const SYNC_BUCKETS = Array.from({ length: 15 }, (_, n) => 0.001 * 2 ** n)
const PROGRAMMING_BUCKETS = [
  0, 0.25, 0.5,
  ...Array.from({ length: 59 }, (_, i) => i + 1),
  ...Array.from({ length: 12 }, (_, i) => 60 + i * 5),
  ...Array.from({ length: 7 }, (_, i) => 120 + i * 30),
]

export interface ProxyMetrics {
  readonly syncDuration: Histogram<'ip_family'>
  readonly syncFullDuration: Histogram<'ip_family'>
  readonly syncPartialDuration: Histogram<'ip_family'>
  readonly networkProgramming: Histogram<'ip_family'>
  readonly lastSyncTimestamp: Gauge<'ip_family'>
  readonly lastQueuedTimestamp: Gauge<'ip_family'>
  readonly endpointChangesPending: Gauge
  readonly serviceChangesPending: Gauge
  readonly endpointChangesTotal: Counter
  readonly serviceChangesTotal: Counter
  readonly noLocalEndpoints: Gauge<'ip_family' | 'traffic_policy'>
  readonly healthzTotal: Counter<'code'>
  readonly livezTotal: Counter<'code'>
}

export function createProxyMetrics (registry: Registry): ProxyMetrics {
  const registers = [registry]
  const h = (name: string, help: string, buckets: number[]): Histogram<'ip_family'> =>
    new Histogram({ name, help, buckets, labelNames: ['ip_family'], registers })
  return {
    syncDuration: h('kubeproxy_sync_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds', SYNC_BUCKETS),
    syncFullDuration: h('kubeproxy_sync_full_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for full resyncs', SYNC_BUCKETS),
    syncPartialDuration: h('kubeproxy_sync_partial_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for partial resyncs', SYNC_BUCKETS),
    networkProgramming: h('kubeproxy_network_programming_duration_seconds', 'In-cluster network programming latency in seconds', PROGRAMMING_BUCKETS),
    lastSyncTimestamp: new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', labelNames: ['ip_family'], registers }),
    lastQueuedTimestamp: new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', help: 'The last time a sync of proxy rules was queued', labelNames: ['ip_family'], registers }),
    endpointChangesPending: new Gauge({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending', help: 'Pending proxy rules Endpoint changes', registers }),
    serviceChangesPending: new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending', help: 'Pending proxy rules Service changes', registers }),
    endpointChangesTotal: new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative proxy rules Endpoint changes', registers }),
    serviceChangesTotal: new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative proxy rules Service changes', registers }),
    // A gauge whose name ends in _total, as in kube-proxy: dashboards depend on the names.
    noLocalEndpoints: new Gauge({ name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', help: 'Number of services with a Local traffic policy and no endpoints', labelNames: ['ip_family', 'traffic_policy'], registers }),
    healthzTotal: new Counter({ name: 'kubeproxy_proxy_healthz_total', help: 'Cumulative proxy healthz HTTP status', labelNames: ['code'], registers }),
    livezTotal: new Counter({ name: 'kubeproxy_proxy_livez_total', help: 'Cumulative proxy livez HTTP status', labelNames: ['code'], registers }),
  }
}
