// What a load balancer's health check of an eTP=Local Service hears (kube-proxy's service_health.go). Pure.
import type { EndpointInfo, ServicePortInfo } from '../types.js'

export interface ServiceHealth {
  readonly namespace: string
  readonly name: string
  readonly port: number
  /** Distinct local ready endpoint IPs over every port of the Service; terminating ones count 0. */
  readonly localEndpoints: number
}

export interface HealthAnswer {
  readonly status: 200 | 503
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** One entry per Service with a healthCheckNodePort, keyed "namespace/name". */
export function servicesNeedingHealthChecks (infos: Iterable<ServicePortInfo>, endpoints: ReadonlyMap<string, readonly EndpointInfo[]>,
  keyOf: (info: ServicePortInfo) => string): Map<string, ServiceHealth> {
  const ips = new Map<string, Set<string>>()
  const out = new Map<string, ServiceHealth>()
  for (const info of infos) {
    if (info.healthCheckNodePort === 0) continue
    const nsn = `${info.namespace}/${info.name}`
    const local = ips.get(nsn) ?? new Set<string>()
    ips.set(nsn, local)
    for (const e of endpoints.get(keyOf(info)) ?? []) if (e.isLocal && e.ready) local.add(e.ip)
    out.set(nsn, { namespace: info.namespace, name: info.name, port: info.healthCheckNodePort, localEndpoints: local.size })
  }
  return out
}

/** 200 only with a local ready endpoint and a healthy proxy, as kube-proxy answers any path. */
export function healthAnswer (svc: ServiceHealth, proxyHealthy: boolean): HealthAnswer {
  const ok = svc.localEndpoints > 0 && proxyHealthy
  return {
    status: ok ? 200 : 503,
    headers: {
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
      'X-Load-Balancing-Endpoint-Weight': String(svc.localEndpoints),
    },
    body: JSON.stringify({ service: { namespace: svc.namespace, name: svc.name }, localEndpoints: svc.localEndpoints, serviceProxyHealthy: proxyHealthy }),
  }
}
