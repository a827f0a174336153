// The iptables mode's own metrics, with kube-proxy's names (PROXY.md §5). One set per registry, shared
// by the backends of both families (prom-client refuses a second registration of a name).
import type { Registry } from 'prom-client'
import { Counter, Gauge } from '../../metrics/prom.js'

export interface IptablesMetrics {
  readonly restoreFailures: Counter<'ip_family'>
  readonly partialRestoreFailures: Counter<'ip_family'>
  /** Rules owned, skipped chains included (a gauge named _total, as in kube-proxy). */
  readonly rulesTotal: Gauge<'ip_family' | 'table'>
  /** Rules in the last restore. */
  readonly rulesLast: Gauge<'ip_family' | 'table'>
}

const byRegistry = new WeakMap<Registry, IptablesMetrics>()

export function iptablesMetrics (registry: Registry): IptablesMetrics {
  const known = byRegistry.get(registry)
  if (known !== undefined) return known
  const registers = [registry]
  const m: IptablesMetrics = {
    restoreFailures: new Counter({ name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', help: 'Cumulative proxy iptables restore failures', labelNames: ['ip_family'], registers }),
    partialRestoreFailures: new Counter({ name: 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', help: 'Cumulative proxy iptables partial restore failures', labelNames: ['ip_family'], registers }),
    rulesTotal: new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_total', help: 'Total number of iptables rules owned by the proxy', labelNames: ['ip_family', 'table'], registers }),
    rulesLast: new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_last', help: 'Number of iptables rules written by the proxy in the last sync', labelNames: ['ip_family', 'table'], registers }),
  }
  byRegistry.set(registry, m)
  return m
}
