// kube-proxy's conntrack reconciler metrics (names, types and labels as upstream). Create them once per
// registry and share them between the IPv4 and IPv6 cleaners: a registry refuses a name twice.
import type { Registry } from 'prom-client'
import { Counter, Histogram } from '../../metrics/prom.js'

const BUCKETS = Array.from({ length: 15 }, (_, n) => 0.001 * 2 ** n)

export interface ConntrackMetrics {
  readonly syncDuration: Histogram<'ip_family'>
  readonly deletedEntries: Counter<'ip_family'>
}

export function createConntrackMetrics (registry: Registry): ConntrackMetrics {
  const registers = [registry]
  return {
    syncDuration: new Histogram({ name: 'kubeproxy_conntrack_reconciler_sync_duration_seconds', help: 'ReconcileConntrackFlowsLatency latency in seconds', buckets: BUCKETS, labelNames: ['ip_family'], registers }),
    deletedEntries: new Counter({ name: 'kubeproxy_conntrack_reconciler_deleted_entries_total', help: 'Cumulative conntrack flows deleted by conntrack reconciler', labelNames: ['ip_family'], registers }),
  }
}
