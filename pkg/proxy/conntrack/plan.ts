// Which UDP conntrack entries are stale after a sync (kube-proxy's reconciler, pkg/proxy/conntrack/cleanup.go).
// Pure: the cleaner lists the table, asks staleEntries, and deletes what it returns.
//
// UDP has no close. An entry DNATed to an endpoint that is gone, or created un-DNATed while the service
// had no rules or no endpoints (reply-src is then the VIP itself), keeps its client 5-tuple pinned until
// it times out, and a client that keeps sending never lets it time out. So after a sync, an entry
// addressed to a UDP service port whose reply source is not one of that port's *serving* endpoints is
// stale. Serving alone counts: traffic policy, topology and terminating are ignored on purpose, so
// existing flows to a still-serving endpoint survive a policy change, as TCP flows do.
//
// A port with no serving endpoints makes every entry addressed to it stale (kubernetes#139628 and its
// fix #139629): the REJECT rule for an empty service matches only NEW packets, so without this a client
// keeps sending to a deleted pod for as long as it keeps sending.
import { parseIP, type IPFamily } from '../../net/ip.js'
import type { DesiredState, EndpointInfo } from '../types.js'
import type { ConntrackEntry } from './parse.js'

/** What the entries of one UDP service port may point at. */
export interface UdpPortFilter {
  /** servicePortKey of the port. */
  readonly key: string
  /** ClusterIP, externalIPs and load-balancer IPs of the filter's family. */
  readonly serviceIPs: readonly string[]
  readonly port: number
  /** 0 when the port has no NodePort. */
  readonly nodePort: number
  /** IPs of the port's serving endpoints, whatever their policy, topology or terminating state. */
  readonly servingIPs: ReadonlySet<string>
}

export interface CleanupFilter {
  readonly family: IPFamily
  readonly ports: readonly UdpPortFilter[]
}

/** The fields that decide staleness; every entry a selector matches is stale, so one deletion serves them all. */
export interface DeleteSelector {
  readonly origDst: string
  readonly origDport: number
  readonly replySrc: string
}

/**
 * After a full sync (changed null), or when a UDP service port in `state` changed. A removed port needs
 * nothing: the filter covers the ports that exist.
 */
export function cleanupNeeded (changed: ReadonlySet<string> | null, state: DesiredState): boolean {
  if (changed === null) return true
  for (const key of changed) if (state.services.get(key)?.info.protocol === 'UDP') return true
  return false
}

/** The filter for every UDP service port of `family` in `state`, with its serving endpoints from `endpoints`. */
export function cleanupFilter (family: IPFamily, state: DesiredState, endpoints: ReadonlyMap<string, readonly EndpointInfo[]>): CleanupFilter {
  const ports: UdpPortFilter[] = []
  for (const [key, sp] of state.services) {
    const info = sp.info
    if (info.protocol !== 'UDP' || info.family !== family) continue
    const serviceIPs = new Set<string>()
    for (const text of [info.clusterIP, ...info.externalIPs, ...info.loadBalancerIPs]) {
      const ip = parseIP(text)
      if (ip !== null && ip.family === family) serviceIPs.add(ip.ip)
    }
    const servingIPs = new Set<string>()
    for (const e of endpoints.get(key) ?? []) {
      const ip = parseIP(e.ip)
      if (e.serving && ip !== null && ip.family === family) servingIPs.add(ip.ip)
    }
    ports.push({ key, serviceIPs: [...serviceIPs], port: info.port, nodePort: info.nodePort, servingIPs })
  }
  return { family, ports }
}

/** The filter when cleanup is needed after this sync, else null (nothing to list, nothing to delete). */
export function planCleanup (family: IPFamily, state: DesiredState, changed: ReadonlySet<string> | null,
  endpoints: ReadonlyMap<string, readonly EndpointInfo[]>): CleanupFilter | null {
  if (!cleanupNeeded(changed, state)) return null
  const filter = cleanupFilter(family, state, endpoints)
  return filter.ports.length > 0 ? filter : null
}

/**
 * The UDP entries of the filter's family that are stale. An entry is addressed to a port when its
 * original destination is one of the port's service IPs and its original destination port the
 * service port, or else when its original destination port is the port's NodePort (any destination
 * IP). A service IP:port match wins over a NodePort match, so a ClusterIP port that happens to equal
 * another service's NodePort is judged by its own endpoints. Where two ports share a frontend (an
 * externalIP on two services), an endpoint of either keeps the entry.
 */
export function staleEntries (entries: readonly ConntrackEntry[], filter: CleanupFilter): ConntrackEntry[] {
  const byFrontend = new Map<string, Set<string>>()
  const byNodePort = new Map<number, Set<string>>()
  const add = <K>(m: Map<K, Set<string>>, k: K, ips: ReadonlySet<string>): void => {
    const set = m.get(k) ?? new Set<string>()
    for (const ip of ips) set.add(ip)
    m.set(k, set)
  }
  for (const p of filter.ports) {
    for (const ip of p.serviceIPs) add(byFrontend, frontend(ip, p.port), p.servingIPs)
    if (p.nodePort !== 0) add(byNodePort, p.nodePort, p.servingIPs)
  }
  const v6 = filter.family === 'IPv6'
  const out: ConntrackEntry[] = []
  for (const e of entries) {
    if (e.proto !== 'udp' || e.origDst.includes(':') !== v6) continue
    const serving = byFrontend.get(frontend(e.origDst, e.origDport)) ?? byNodePort.get(e.origDport)
    if (serving !== undefined && !serving.has(e.replySrc)) out.push(e)
  }
  return out
}

/** One selector per distinct (orig dst, orig dst port, reply src) among `stale`, in first-seen order. */
export function deleteSelectors (stale: readonly ConntrackEntry[]): DeleteSelector[] {
  const seen = new Map<string, DeleteSelector>()
  for (const e of stale) {
    const k = `${e.origDst}|${e.origDport}|${e.replySrc}`
    if (!seen.has(k)) seen.set(k, { origDst: e.origDst, origDport: e.origDport, replySrc: e.replySrc })
  }
  return [...seen.values()]
}

function frontend (ip: string, port: number): string { return `${ip}|${port}` }
