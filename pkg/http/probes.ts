// The probe answers (/healthz, /livez, /readyz) as plain data, so the same bytes come from the fastify
// routes and from the bare listener that answers while fastify is still loading (listener.ts).
import type { Readiness } from '../component/component.js'
import type { ProxyHealth } from '../proxy/health.js'
import type { ProxyMetrics } from '../proxy/metrics.js'

export interface ProbeDeps {
  health: ProxyHealth
  metrics: ProxyMetrics
  /** Node eligibility for /healthz (KEP-3836). */
  nodeEligible: () => boolean
  /** Ready once the source listed and every component serves; when ready, a non-empty reason is a note. */
  ready: () => Readiness
}

export interface ProbeAnswer {
  readonly code: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** /healthz (withNode) or /livez in kube-proxy's JSON shape; counts the answer in the probe metrics. */
export function healthAnswer (deps: ProbeDeps, withNode: boolean): ProbeAnswer {
  const r = deps.health.report()
  const eligible = withNode ? deps.nodeEligible() : true
  const ok = r.healthy && eligible
  const code = ok ? 200 : 503
  ;(withNode ? deps.metrics.healthzTotal : deps.metrics.livezTotal).inc({ code: String(code) })
  // "Now" only in a 200 (kube-proxy keeps old clients' "recent means fine"); a 503 says when rules last synced.
  const lastUpdated = ok ? r.currentTime : r.lastSynced
  const body = withNode
    ? { lastUpdated, currentTime: r.currentTime, nodeEligible: eligible, healthy: r.healthy, status: r.status }
    : { lastUpdated, currentTime: r.currentTime, healthy: r.healthy, status: r.status }
  return { code, headers: { 'X-Content-Type-Options': 'nosniff', 'Content-Type': 'application/json' }, body: JSON.stringify(body) }
}

/** /readyz: 200 "ok" once the first state is applied, else 503 with the reason. */
export function readyAnswer (deps: ProbeDeps): ProbeAnswer {
  const r = deps.ready()
  const body = r.ready ? (r.reason === '' ? 'ok\n' : `ok (${r.reason})\n`) : `not ready: ${r.reason}\n`
  return { code: r.ready ? 200 : 503, headers: { 'Content-Type': 'text/plain' }, body }
}
