// Service → ServicePortInfo for one IP family: which ports the proxy programs, and with which policy.
import { HEADLESS_LABEL, SERVICE_PROXY_NAME_LABEL } from '../api/types.js'
import type { Service, ServicePort } from '../api/types.js'
import { parseCIDR, parseIP } from '../net/ip.js'
import type { IPFamily } from '../net/ip.js'
import type { ServicePortInfo } from './types.js'

const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800

/** "namespace/name:portName", or "namespace/name" for an unnamed port. */
export function servicePortName (namespace: string, name: string, portName: string): string {
  return portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`
}

/** A port takes traffic from outside the cluster: it has a NodePort, an LB ingress IP or an externalIP. */
export function externallyAccessible (info: Pick<ServicePortInfo, 'nodePort' | 'loadBalancerIPs' | 'externalIPs'>): boolean {
  return info.nodePort !== 0 || info.loadBalancerIPs.length > 0 || info.externalIPs.length > 0
}

/** The Service's ClusterIP of `family`, or '' (none, headless, or only another family). */
export function clusterIPOf (svc: Service, family: IPFamily): string {
  const ips = svc.spec.clusterIPs !== undefined && svc.spec.clusterIPs.length > 0
    ? svc.spec.clusterIPs
    : svc.spec.clusterIP !== undefined ? [svc.spec.clusterIP] : []
  // clusterIPs[0] is the primary; "None" there makes the whole Service headless.
  if (ips[0] === undefined || ips[0] === '' || ips[0] === 'None') return ''
  for (const ip of ips) {
    const p = parseIP(ip)
    if (p !== null && p.family === family) return p.ip
  }
  return ''
}

/**
 * Objects labelled for another service proxy or as headless: kube-proxy's informers select Services and
 * EndpointSlices alike by these labels, so the proxy reads neither.
 */
export function labelledOut (labels: Readonly<Record<string, string>> | undefined): boolean {
  return labels !== undefined && (SERVICE_PROXY_NAME_LABEL in labels || HEADLESS_LABEL in labels)
}

/** Services the proxy never programs (PROXY.md §1 "Skipped"), whatever the family. */
export function isSkippedService (svc: Service): boolean {
  if (labelledOut(svc.metadata.labels)) return true
  if (svc.spec.type === 'ExternalName') return true
  const ip = svc.spec.clusterIP
  return ip === undefined || ip === '' || ip === 'None'
}

/** Shared by every port without such addresses (most): the info's lists are read-only. */
const NONE: readonly string[] = Object.freeze([])

function ipsOfFamily (ips: readonly string[], family: IPFamily): readonly string[] {
  if (ips.length === 0) return NONE
  const out: string[] = []
  for (const text of ips) {
    const p = parseIP(text)
    if (p !== null && p.family === family && !out.includes(p.ip)) out.push(p.ip)
  }
  return out
}

function loadBalancerIPsOf (svc: Service, family: IPFamily): readonly string[] {
  const ingress = svc.status?.loadBalancer?.ingress
  if (ingress === undefined || ingress.length === 0) return NONE
  const ips: string[] = []
  for (const ing of ingress) {
    // ipMode Proxy: the load balancer proxies to the node itself, so the VIP must not be captured locally.
    if (ing.ip === undefined || ing.ipMode === 'Proxy') continue
    ips.push(ing.ip)
  }
  return ipsOfFamily(ips, family)
}

function sourceRangesOf (svc: Service, family: IPFamily): readonly string[] {
  const ranges = svc.spec.loadBalancerSourceRanges
  if (ranges === undefined || ranges.length === 0) return NONE
  const out: string[] = []
  for (const text of ranges) {
    const c = parseCIDR(text)
    if (c !== null && c.family === family && !out.includes(c.text)) out.push(c.text)
  }
  return out
}

/** The ports of `svc` that `family`'s proxier programs; [] for Services it skips. Pure. */
export function servicePortsOf (svc: Service, family: IPFamily): ServicePortInfo[] {
  if (isSkippedService(svc)) return []
  // clusterIPOf answers only an address of `family`.
  const clusterIP = clusterIPOf(svc, family)
  if (clusterIP === '') return []
  const { spec } = svc
  const { namespace, name } = svc.metadata
  const hasNodePorts = spec.type === 'NodePort' || spec.type === 'LoadBalancer'
  const externalIPs = ipsOfFamily(spec.externalIPs ?? NONE, family)
  // Like kube-proxy, status and source ranges are read whatever the type (the API server clears them).
  const loadBalancerIPs = loadBalancerIPsOf(svc, family)
  const loadBalancerSourceRanges = sourceRangesOf(svc, family)
  const stickyMaxAgeSeconds = spec.sessionAffinity === 'ClientIP'
    ? spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_SECONDS
    : 0
  const eTPLocal = spec.externalTrafficPolicy === 'Local'
  const internalPolicyLocal = spec.internalTrafficPolicy === 'Local'
  const healthCheckNodePort = spec.type === 'LoadBalancer' && eTPLocal ? spec.healthCheckNodePort ?? 0 : 0

  return spec.ports.map((p: ServicePort): ServicePortInfo => {
    const portName = p.name ?? ''
    const nodePort = hasNodePorts ? p.nodePort ?? 0 : 0
    const accessible = externallyAccessible({ nodePort, loadBalancerIPs, externalIPs })
    return {
      spn: servicePortName(namespace, name, portName),
      namespace,
      name,
      portName,
      protocol: p.protocol,
      family,
      clusterIP,
      port: p.port,
      nodePort,
      externalIPs,
      loadBalancerIPs,
      loadBalancerSourceRanges,
      stickyMaxAgeSeconds,
      externalPolicyLocal: eTPLocal && accessible,
      internalPolicyLocal,
      healthCheckNodePort,
    }
  })
}
