// The probe inputs the operations endpoint reads, on a settable clock and state: one fixture for the
// fastify app's tests and the bare listener's.
import { Registry } from 'prom-client'
import { ProxyHealth } from '../../pkg/proxy/health.js'
import { createProxyMetrics, type ProxyMetrics } from '../../pkg/proxy/metrics.js'

export interface ProbeFixture {
  readonly now: { t: number }
  readonly registry: Registry
  readonly health: ProxyHealth
  readonly state: { eligible: boolean, ready: boolean }
  readonly probes: {
    readonly health: ProxyHealth
    readonly metrics: ProxyMetrics
    readonly nodeEligible: () => boolean
    readonly ready: () => { ready: boolean, reason: string }
  }
}

export function probeFixture (): ProbeFixture {
  const now = { t: Date.parse('2026-11-25T12:00:00Z') }
  const registry = new Registry()
  const metrics = createProxyMetrics(registry)
  const health = new ProxyHealth(60_000, () => now.t)
  health.addFamily('IPv4')
  const state = { eligible: true, ready: false }
  const probes = { health, metrics, nodeEligible: () => state.eligible, ready: () => ({ ready: state.ready, reason: state.ready ? '' : 'waiting for manifests:/x' }) }
  return { now, registry, health, state, probes }
}
