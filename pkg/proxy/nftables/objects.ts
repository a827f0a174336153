// What one service port owns in the nftables layout, from its plan (planPort) only: the map and set
// elements of its entry points, the shared objects it uses, and, for ClientIP affinity or source
// ranges, its own chains and affinity sets. Pure: the same plan always yields the same objects.
import type { EndpointInfo } from '../types.js'
import type { EndpointSet, PortPlan } from '../plan.js'
import { clusterMasqRule, externalLocalRules, type ChainDecl, type SetDecl } from './layout.js'
import { Chain, MapName, PerService, cipID, endpointTag, extID, pickChain, pickID, serviceHash, xlID, type EntryClass, type FamilyWords } from './names.js'
import type { NftablesOptions } from './options.js'

export interface ServiceObjects {
  /** Entry keys this service port dispatches or refuses ("10.96.0.10 . tcp . 80", "tcp . 30080"); one owner each. */
  readonly entries: readonly string[]
  /** Entry keys it wanted while another service port owned them: it takes them over when they are freed. */
  readonly lost: readonly string[]
  /** Elements as flat pairs: map, element (`key : value` for a map, `key` for a set), ready to print. */
  readonly elements: readonly string[]
  /** Per-service chains with their rules. */
  readonly chains: readonly ChainDecl[]
  /** Per-service sets (ClientIP affinity). */
  readonly sets: readonly SetDecl[]
  /**
   * Elements other service ports may need too, as flat pairs like `elements` (each endpoint's `hairpin`
   * element, the ClusterIP's `cluster-ips` element): refcounted across service ports, each exists while one needs it.
   */
  readonly counted: readonly string[]
  /** Shared object IDs in use (names.ts). */
  readonly shared: readonly string[]
}

export const NO_OBJECTS: ServiceObjects = Object.freeze({ entries: [], lost: [], elements: [], chains: [], sets: [], counted: [], shared: [] })

function byAddress (a: EndpointInfo, b: EndpointInfo): number {
  return a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port
}

function sorted (eps: readonly EndpointInfo[]): readonly EndpointInfo[] {
  if (eps.length < 2) return eps
  for (let i = 1; i < eps.length; i++) {
    // Usually already in order: copy and sort only when not.
    if (byAddress(eps[i - 1] as EndpointInfo, eps[i] as EndpointInfo) > 0) return [...eps].sort(byAddress)
  }
  return eps
}

/**
 * Who owns each entry key: the first service port to claim it. `owner` is called with a key nobody else
 * holds; a port that wants a key another one holds records it in its `lost` list.
 */
export interface EntryClaims {
  get: (entry: string) => string | undefined
  set: (entry: string, key: string) => unknown
}

/**
 * The objects of service port `key` with plan `p`. It owns each entry key that is free or already its
 * own in `claims` (once: a key twice in one service, as in a repeated externalIP, is used once).
 */
export function serviceObjects (key: string, p: PortPlan, w: FamilyWords, opts: NftablesOptions, claims: EntryClaims): ServiceObjects {
  const info = p.sp.info
  const proto = info.protocol.toLowerCase()
  const sticky = info.stickyMaxAgeSeconds > 0
  const h = sticky || p.firewall ? serviceHash(key) : ''
  const refuse = p.refusal === 'REJECT' ? `goto ${Chain.REJECT}` : 'drop'
  const eps: Record<EndpointSet, readonly EndpointInfo[]> = { cluster: sorted(p.clusterEndpoints), local: sorted(p.localEndpoints) }
  const entries: string[] = []
  const lost: string[] = []
  const elements: string[] = []
  const chains: ChainDecl[] = []
  const sets: SetDecl[] = []
  const shared = new Set<string>()

  const mine = new Set<string>()
  const take = (entry: string): boolean => {
    if (mine.has(entry)) return false
    const owner = claims.get(entry)
    if (owner !== undefined && owner !== key) { lost.push(entry); return false }
    claims.set(entry, key)
    mine.add(entry)
    entries.push(entry)
    return true
  }
  /** Elements of the shared endpoint map of (k, s) for one entry key; returns its pick chain. */
  const pick = (k: EntryClass, s: EndpointSet, entry: string): string => {
    const list = eps[s]
    const id = pickID(k, s, list.length)
    shared.add(id)
    for (let i = 0; i < list.length; i++) {
      const e = list[i] as EndpointInfo
      elements.push(id, `${entry} . ${i} : ${e.ip} . ${e.port}`)
    }
    return pickChain(id)
  }
  const affinityMade = new Set<EndpointSet>()
  /** The per-service affinity chain of set s (built once): remembered clients first, then a uniform cascade. */
  const affinity = (s: EndpointSet): string => {
    const name = PerService.affinity(h, s)
    if (affinityMade.has(s)) return name
    affinityMade.add(s)
    const list = eps[s]
    const remembered: string[] = []
    const cascade: string[] = []
    for (let i = 0; i < list.length; i++) {
      const e = list[i] as EndpointInfo
      const tag = endpointTag(e.ip, e.port)
      const set = PerService.affinitySet(h, s, tag)
      const chain = PerService.endpoint(h, s, tag)
      sets.push({ kind: 'set', name: set, body: `type ${w.type} ; flags dynamic,timeout ; timeout ${info.stickyMaxAgeSeconds}s ;` })
      const to = w.family === 'IPv6' ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`
      chains.push({ name: chain, rules: [`update @${set} { ${w.addr} saddr }`, `meta l4proto ${proto} dnat ${w.addr} to ${to}`] })
      remembered.push(`${w.addr} saddr @${set} goto ${chain}`)
      cascade.push(i < list.length - 1 ? `numgen random mod ${list.length - i} == 0 goto ${chain}` : `goto ${chain}`)
    }
    chains.push({ name, rules: [...remembered, ...cascade] })
    return name
  }

  // ClusterIP.
  const cip = `${info.clusterIP} . ${proto} . ${info.port}`
  if (take(cip)) {
    const s = p.internalSet
    if (s === null) {
      elements.push(MapName.NO_ENDPOINT_CLUSTER, `${cip} : ${refuse}`)
    } else if (sticky) {
      const name = PerService.cluster(h)
      const masq = p.clusterMasq ? clusterMasqRule(w, opts) : null
      chains.push({ name, rules: [...(masq !== null ? [masq] : []), `goto ${affinity(s)}`] })
      elements.push(MapName.SERVICE_IPS, `${cip} : goto ${name}`)
    } else {
      pick('vip', s, cip)
      const id = cipID(s, eps[s].length)
      shared.add(id)
      elements.push(MapName.SERVICE_IPS, `${cip} : goto ${id}`)
    }
  }

  // External entry points: externalIPs, LB IPs, the NodePort.
  const dispatched = p.hasAnyEndpoints && (p.externalSet !== null || p.shortCircuit)
  const local = info.externalPolicyLocal
  const nCluster = local ? (p.shortCircuit ? eps.cluster.length : 0) : eps.cluster.length
  const mLocal = p.externalSet === 'local' ? eps.local.length : 0
  let stickyExternal: string | undefined
  const externalChain = (k: EntryClass, entry: string): string => {
    if (sticky) {
      if (stickyExternal === undefined) {
        stickyExternal = PerService.external(h)
        const rules = local
          ? externalLocalRules(w, opts, nCluster > 0 ? affinity('cluster') : null, mLocal > 0 ? affinity('local') : null)
          : [`jump ${Chain.MARK_FOR_MASQUERADE}`, `goto ${affinity('cluster')}`]
        chains.push({ name: stickyExternal, rules })
      }
      return stickyExternal
    }
    if (nCluster > 0) pick(k, 'cluster', entry)
    if (mLocal > 0) pick(k, 'local', entry)
    const id = local ? xlID(k, nCluster, mLocal) : extID(k, nCluster)
    shared.add(id)
    return id
  }
  let firewall: string | undefined
  for (const e of p.entryPoints) {
    if (e.kind === 'clusterIP') continue
    const np = e.kind === 'nodePort'
    const entry = np ? `${proto} . ${e.port}` : `${String(e.address)} . ${proto} . ${e.port}`
    if (!take(entry)) continue
    if (dispatched) {
      const target = externalChain(np ? 'np' : 'vip', entry)
      if (e.kind === 'loadBalancerIP' && p.firewall) {
        if (firewall === undefined) {
          firewall = PerService.firewall(h)
          const rules = p.sourceRanges.map(r => `${w.addr} saddr ${r} goto ${target}`)
          if (p.allowFromNode) for (const ip of info.loadBalancerIPs) rules.push(`${w.addr} saddr ${ip} goto ${target}`)
          chains.push({ name: firewall, rules })
        }
        elements.push(MapName.SERVICE_IPS, `${entry} : goto ${firewall}`, MapName.FIREWALL_IPS, entry)
      } else {
        elements.push(np ? MapName.SERVICE_NODEPORTS : MapName.SERVICE_IPS, `${entry} : goto ${target}`)
      }
    }
    if (p.externalSet === null) elements.push(np ? MapName.NO_ENDPOINT_NODEPORTS : MapName.NO_ENDPOINT_EXTERNAL, `${entry} : ${refuse}`)
  }

  // Every ClusterIP, so traffic to one on a port no Service defines is rejected (kube-proxy's cluster-ips).
  const counted: string[] = [MapName.CLUSTER_IPS, info.clusterIP]
  const seen = new Set<string>()
  for (const e of p.allEndpoints) if (!seen.has(e.ip)) { seen.add(e.ip); counted.push(MapName.HAIRPIN, `${e.ip} . ${e.ip}`) }
  return { entries, lost, elements, chains, sets, counted, shared: [...shared] }
}
