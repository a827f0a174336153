// What one Service (with its EndpointSlices) puts in cluster DNS: every forward name under
// <svc>.<ns>.svc.<zone> with its answers, and the addresses it claims for PTR. Pure; the index calls it
// for the one Service that changed (CoreDNS findServices, DNS.md §1.3–§1.6, §2.6, §2.8–§2.10).
import type { EndpointSlice, Service } from '../../api/types.js'
import type { Answer } from '../message.js'
import { endpointLabel, ipFamily } from './names.js'
import { cnameAnswer, itemAnswers } from './records.js'
import type { Item } from './records.js'

/** A port as CoreDNS matches it: name and protocol lower-cased ("" when unnamed). */
export interface PortSpec { readonly name: string, readonly protocol: string, readonly port: number }

/** An address with the target its SRV records name and the ports it serves. */
export interface Backing { readonly host: string, readonly target: string, readonly ports: readonly PortSpec[] }

export interface NameSpec { readonly answers: Map<number, Answer>, readonly externalName?: string }

export interface ServiceView {
  /** <svc>.<ns>.svc.<zone> */
  readonly svcName: string
  readonly names: ReadonlyMap<string, NameSpec>
  /** What the service name answers from: the ClusterIPs, or the endpoints if headless (port lookups). */
  readonly primary: readonly Backing[]
  readonly clusterIPs: readonly string[]
  readonly endpointPtrs: ReadonlyArray<readonly [ip: string, target: string]>
}

// A slice without ports still makes its addresses count (CoreDNS adds a port -1 sentinel).
const SENTINEL: readonly PortSpec[] = Object.freeze([{ name: '', protocol: '', port: -1 }])

export function isHeadless (svc: Service): boolean {
  return svc.spec.clusterIP === 'None' || svc.spec.clusterIPs?.[0] === 'None'
}

/** Matches CoreDNS: "" is the wildcard (a bare name, or a lone "_" label), otherwise case-insensitive. */
export function portItems (backings: readonly Backing[], port: string, protocol: string): Item[] {
  const items: Item[] = []
  for (const b of backings) {
    for (const p of b.ports) {
      if ((port === '' || p.name === port) && (protocol === '' || p.protocol === protocol)) {
        items.push({ host: b.host, port: p.port, target: b.target })
      }
    }
  }
  return items
}

export function buildServiceView (namespace: string, name: string, svc: Service | undefined,
  slices: Iterable<EndpointSlice>, zone: string, ttl: number): ServiceView {
  const svcName = `${name}.${namespace}.svc.${zone}`.toLowerCase()
  const publishAll = svc?.spec.publishNotReadyAddresses === true
  const endpoints: Backing[] = []
  const endpointPtrs: Array<readonly [string, string]> = []
  for (const slice of [...slices].sort((x, y) => x.metadata.name < y.metadata.name ? -1 : x.metadata.name > y.metadata.name ? 1 : 0)) {
    if (slice.addressType === 'FQDN') continue
    const ports = slice.ports.length === 0
      ? SENTINEL
      : slice.ports.map(p => ({ name: (p.name ?? '').toLowerCase(), protocol: (p.protocol ?? '').toLowerCase(), port: p.port ?? -1 }))
    for (const ep of slice.endpoints) {
      // nil means ready; serving/terminating are ignored (§2.6).
      if (!publishAll && ep.conditions?.ready === false) continue
      for (const ip of ep.addresses) {
        if (ipFamily(ip) === 0) continue
        const target = `${endpointLabel(ip, ep.hostname)}.${svcName}`
        endpoints.push({ host: ip, target, ports })
        endpointPtrs.push([ip, target])
      }
    }
  }

  const names = new Map<string, NameSpec>()
  const clusterIPs: string[] = []
  let primary: readonly Backing[] = []
  if (svc !== undefined && svc.spec.type === 'ExternalName') {
    const target = (svc.spec.externalName ?? '').replace(/\.$/, '')
    // An IP as externalName is not a CNAME: CoreDNS then has nothing for the name (NXDOMAIN).
    if (target !== '' && ipFamily(target) === 0) {
      names.set(svcName, { answers: new Map([[5, cnameAnswer(svcName, target, ttl)]]), externalName: target })
    }
    return { svcName, names, primary, clusterIPs, endpointPtrs }
  }
  if (svc !== undefined) {
    if (isHeadless(svc)) primary = endpoints
    else {
      const ips = svc.spec.clusterIPs !== undefined && svc.spec.clusterIPs.length > 0 ? svc.spec.clusterIPs : [svc.spec.clusterIP ?? '']
      const ports = svc.spec.ports.length === 0
        ? SENTINEL
        : svc.spec.ports.map(p => ({ name: (p.name ?? '').toLowerCase(), protocol: p.protocol.toLowerCase(), port: p.port }))
      primary = ips.map(host => ({ host, target: svcName, ports }))
      for (const ip of ips) if (ipFamily(ip) !== 0) clusterIPs.push(ip)
    }
    addName(names, svcName, portItems(primary, '', ''), ttl)
    const seen = new Set<string>()
    for (const b of primary) {
      for (const p of b.ports) {
        const key = `_${p.name}._${p.protocol}`
        if (p.name === '' || p.protocol === '' || seen.has(key)) continue
        seen.add(key)
        addName(names, `${key}.${svcName}`, portItems(primary, p.name, p.protocol), ttl)
      }
    }
    // <ep>.<svc>: the endpoints whose hostname or dashed IP is <ep>, whatever the service type.
    const byLabel = new Map<string, Backing[]>()
    for (const b of endpoints) {
      const list = byLabel.get(b.target)
      if (list === undefined) byLabel.set(b.target, [b])
      else list.push(b)
    }
    for (const [target, list] of byLabel) addName(names, target, portItems(list, '', ''), ttl)
  }
  return { svcName, names, primary, clusterIPs, endpointPtrs }
}

function addName (names: Map<string, NameSpec>, owner: string, items: Item[], ttl: number): void {
  // No matching (address, port) at all: CoreDNS leaves errNoItems, so the name does not exist.
  if (items.length === 0) return
  names.set(owner, { answers: itemAnswers(owner, items, ttl) })
}
