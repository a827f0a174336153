// The IPVS table ferry wants, from the neutral entry-point plans: one virtual server per entry point
// (ClusterIP, each externalIP, each LB IP, and the NodePort on each NodePort address), each with the
// endpoint set the plan gives off-node clients. What IPVS cannot express by itself (masquerade, the
// eTP=Local short-circuit for pods and the node, DROP, source ranges) is the companion rules' job.
import { endpointsOf, type PortPlan } from '../plan.js'
import { IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED2 } from './constants.js'
import type { IPFamily, RealServer, VirtualServer, VirtualServerKey } from './types.js'
import type { EntryKind } from '../plan.js'

export interface DesiredVirtualServer {
  readonly service: VirtualServer
  readonly destinations: readonly RealServer[]
  /** The servicePortKey it serves, and through which entry point. */
  readonly servicePort: string
  readonly entry: EntryKind
}

export interface DesiredOptions {
  readonly family: IPFamily
  /** --ipvs-scheduler: rr by default. */
  readonly scheduler: string
  /** Local addresses that accept NodePorts (already filtered by --nodeport-addresses, no loopback). */
  readonly nodePortIPs: readonly string[]
}

/** A virtual server with ferry's defaults: rr, no flags, no persistence, a host netmask. */
export function virtualServer (key: VirtualServerKey, o: Partial<VirtualServer> = {}): VirtualServer {
  return { ...key, scheduler: 'rr', flags: 0, timeout: 0, netmask: key.family === 'IPv4' ? 32 : 128, ...o }
}

/** A real server as ferry sends it: masqueraded, weight 1, no thresholds (the counters are output only). */
export function realServer (address: string, port: number, o: Partial<RealServer> = {}): RealServer {
  return { address, port, weight: 1, forward: 'masq', upperThreshold: 0, lowerThreshold: 0, activeConns: 0, inactiveConns: 0, persistConns: 0, ...o }
}

export function vsKey (k: VirtualServerKey): string {
  return `${k.protocol}/${k.address.includes(':') ? `[${k.address}]` : k.address}:${k.port}`
}

export function rsKey (k: { address: string, port: number }): string {
  return k.address.includes(':') ? `[${k.address}]:${k.port}` : `${k.address}:${k.port}`
}

/** Keyed by vsKey. A later entry point on the same address and port (a clash) does not replace an earlier one. */
export function desiredVirtualServers (plans: Iterable<PortPlan>, o: DesiredOptions): Map<string, DesiredVirtualServer> {
  const out = new Map<string, DesiredVirtualServer>()
  // mh hashes the source port too (SCHED2), as kube-proxy sets it.
  const schedFlags = o.scheduler === 'mh' ? IP_VS_SVC_F_SCHED2 : 0
  const nodePorts: Array<() => void> = []
  for (const p of plans) {
    const info = p.sp.info
    if (info.family !== o.family) continue
    const sticky = info.stickyMaxAgeSeconds > 0
    const flags = schedFlags | (sticky ? IP_VS_SVC_F_PERSISTENT : 0)
    const timeout = sticky ? info.stickyMaxAgeSeconds : 0
    const dests = (set: 'cluster' | 'local' | null): RealServer[] => (set === null ? [] : endpointsOf(p, set)).map(e => realServer(e.ip, e.port))
    const internal = dests(p.internalSet)
    // No endpoints anywhere: external entry points exist (IPVS answers ICMP unreachable) but forward nowhere.
    const external = p.hasAnyEndpoints ? dests(p.externalSet) : []
    const servicePort = `${info.spn}/${info.protocol.toLowerCase()}`
    const add = (kind: EntryKind, address: string, port: number): void => {
      const service = virtualServer({ family: o.family, protocol: info.protocol, address, port }, { scheduler: o.scheduler, flags, timeout })
      const key = vsKey(service)
      if (!out.has(key)) out.set(key, { service, destinations: kind === 'clusterIP' ? internal : external, servicePort, entry: kind })
    }
    for (const e of p.entryPoints) {
      if (e.address !== null) add(e.kind, e.address, e.port)
      else nodePorts.push(() => { for (const ip of o.nodePortIPs) add(e.kind, ip, e.port) })
    }
  }
  // VIPs win over NodePorts on the same address and port, as in the iptables mode.
  for (const f of nodePorts) f()
  return out
}
