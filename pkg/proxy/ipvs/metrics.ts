// IPVS mode's own metrics, one set per registry shared by both families. kube-proxy's IPVS mode has no
// gauges of its table, so these carry ferry's prefix.
import type { Registry } from 'prom-client'
import { Counter, Gauge } from '../../metrics/prom.js'

export interface IpvsMetrics {
  readonly virtualServers: Gauge<'ip_family'>
  readonly realServers: Gauge<'ip_family'>
  readonly draining: Gauge<'ip_family'>
  readonly syncFailures: Counter<'ip_family'>
}

const byRegistry = new WeakMap<Registry, IpvsMetrics>()

export function ipvsMetrics (registry: Registry): IpvsMetrics {
  const known = byRegistry.get(registry)
  if (known !== undefined) return known
  const registers = [registry]
  const labelNames = ['ip_family'] as const
  const m: IpvsMetrics = {
    virtualServers: new Gauge({ name: 'ferry_ipvs_virtual_servers', help: 'IPVS virtual servers ferry owns', labelNames, registers }),
    realServers: new Gauge({ name: 'ferry_ipvs_real_servers', help: 'Real servers (destinations) of the virtual servers ferry owns', labelNames, registers }),
    draining: new Gauge({ name: 'ferry_ipvs_draining_real_servers', help: 'Removed real servers draining with weight 0', labelNames, registers }),
    syncFailures: new Counter({ name: 'ferry_ipvs_sync_failures_total', help: 'IPVS syncs that failed (kernel refusals, netlink or companion rule errors)', labelNames, registers }),
  }
  byRegistry.set(registry, m)
  return m
}
