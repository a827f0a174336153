// The cluster DNS record index: every name ferry answers for Services, precomputed into immutable
// entries, kept current by incremental mutators. A publisher calls them after the proxy has programmed
// the rules (issue 11 §3), never the cache directly. One Service change rebuilds that Service's names
// and reverse entries only; pods touch a small memo of pod names.
//
// There is no Namespace kind in ferry: a namespace exists while the index holds at least one Service,
// EndpointSlice or Pod in it (CoreDNS asks its namespace watch instead, DNS.md §2.4).
import { SERVICE_NAME_LABEL } from '../../api/types.js'
import type { EndpointSlice, Pod, Service } from '../../api/types.js'
import { RCODE, TYPE } from '../message.js'
import type { Answer } from '../message.js'
import { REVERSE_V4, REVERSE_V6, inZone, labelsUnder, podAddress, podNameIP, reverseName } from './names.js'
import { addressAnswers, itemAnswers, join, negativeAnswer, nsAnswer, ptrAnswer, sameAnswers, soaAnswer, txtAnswer } from './records.js'
import type { NameEntry } from './records.js'
import { buildServiceView, portItems } from './service-view.js'
import type { ServiceView } from './service-view.js'

export type { NameEntry } from './records.js'
export type PodRecords = 'disabled' | 'insecure' | 'verified'

export interface RecordIndexOptions {
  /** The cluster domain, e.g. "cluster.local" (a trailing dot and case are normalised away). */
  readonly zone: string
  /** TTL of every record except dns-version; 0–3600, default 5. */
  readonly ttl?: number
  /** a-b-c-d.<ns>.pod.<zone> records (DNS.md §2.7); default 'disabled' as the plugin's default. */
  readonly podRecords?: PodRecords
  /** The server's own addresses: ns.dns.<zone> A/AAAA and the apex NS glue. */
  readonly nsAddresses?: readonly string[]
  /** Milliseconds since the epoch, for the SOA serial; injectable for tests. */
  readonly now?: () => number
}

export const DNS_SCHEMA_VERSION = '1.1.0'
const DNS_VERSION_TTL = 28800
const POD_MEMO_LIMIT = 10000

type Negative = typeof RCODE.NOERROR | typeof RCODE.NXDOMAIN | typeof RCODE.SERVFAIL

interface ServiceState {
  readonly namespace: string
  readonly name: string
  svc?: Service
  readonly slices: Map<string, EndpointSlice>
  view?: ServiceView
}

export class RecordIndex {
  readonly zone: string
  readonly ttl: number
  readonly podRecords: PodRecords
  readonly nsAddresses: readonly string[]
  /** The zones this index is authoritative for: the cluster zone, then the two reverse zones. */
  readonly zones: readonly string[]

  private readonly now: () => number
  private readonly entries = new Map<string, NameEntry>()
  private readonly services = new Map<string, ServiceState>()
  private readonly sliceOwner = new Map<string, string>()
  private readonly clusterIPOwners = new Map<string, string[]>()
  private readonly endpointOwners = new Map<string, Map<string, string[]>>()
  private readonly pods = new Map<string, Pod>()
  private readonly podsByIP = new Map<string, Set<string>>()
  private readonly objects = new Set<string>()
  private readonly nsCount = new Map<string, number>()
  private readonly podMemo = new Map<string, NameEntry | null>()
  private readonly negatives = new Map<string, { serial: number, answers: Map<number, Answer>, soa: Answer }>()
  private gen = 0
  private serialValue: number
  private isSynced = false

  constructor (opts: RecordIndexOptions) {
    this.zone = opts.zone.toLowerCase().replace(/\.$/, '')
    this.ttl = opts.ttl ?? 5
    if (!Number.isInteger(this.ttl) || this.ttl < 0 || this.ttl > 3600) throw new RangeError(`dns ttl ${this.ttl} is not an integer in 0..3600`)
    this.podRecords = opts.podRecords ?? 'disabled'
    this.nsAddresses = Object.freeze([...(opts.nsAddresses ?? [])])
    this.zones = Object.freeze([this.zone, REVERSE_V4, REVERSE_V6])
    this.now = opts.now ?? Date.now
    this.serialValue = Math.floor(this.now() / 1000)
    const z = this.zone
    this.setEntry(z, new Map([[TYPE.NS, nsAnswer(z, this.nsAddresses, this.ttl)]]), 'nodata')
    for (const rz of [REVERSE_V4, REVERSE_V6]) this.setEntry(rz, new Map([[TYPE.NS, nsAnswer(rz, this.nsAddresses, this.ttl)]]), 'nodata')
    this.setEntry(join('svc', z), new Map(), 'nodata')
    this.setEntry(join('pod', z), new Map(), 'nodata')
    const version = join('dns-version', z)
    this.setEntry(version, new Map([[TYPE.TXT, txtAnswer(version, DNS_SCHEMA_VERSION, DNS_VERSION_TTL)]]), 'nxdomain')
    const ns = join('ns.dns', z)
    this.setEntry(ns, addressAnswers(ns, this.nsAddresses, this.ttl), 'nodata')
  }

  /** Changes whenever any entry changes. */
  get generation (): number { return this.gen }
  /** SOA serial: Unix seconds of the last change that altered an answer. */
  get serial (): number { return this.serialValue }
  /** False until the publisher has fed the initial state; until then NXDOMAIN becomes SERVFAIL. */
  get synced (): boolean { return this.isSynced }
  markSynced (): void { this.isSynced = true }

  /** The entry for a lower-case name, or undefined when the name does not exist. */
  entry (lname: string): NameEntry | undefined {
    return this.entries.get(lname) ?? this.dynamicEntry(lname)
  }

  /** The apex SOA answer of one of `zones` (rebuilt only when the serial moves). */
  soa (zone: string): Answer { return this.negativeSet(zone).soa }

  /** NXDOMAIN, NODATA or SERVFAIL with the zone's SOA; the same object until the serial moves. */
  negative (rcode: Negative, zone: string): Answer {
    const set = this.negativeSet(zone)
    let a = set.answers.get(rcode)
    if (a === undefined) { a = negativeAnswer(rcode, zone, set.serial, this.ttl); set.answers.set(rcode, a) }
    return a
  }

  /** The namespace of a running, non-terminating pod with this IP (autopath's client lookup). */
  podNamespaceByIP (ip: string): string | undefined {
    const keys = this.podsByIP.get(ip)
    if (keys === undefined) return undefined
    for (const k of keys) {
      const pod = this.pods.get(k)
      if (pod !== undefined && watchedPod(pod)) return pod.metadata.namespace
    }
    return undefined
  }

  upsertService (svc: Service): void {
    const { namespace, name } = svc.metadata
    this.track('S', namespace, name, true)
    this.state(namespace, name).svc = svc
    this.recompute(namespace, name)
  }

  deleteService (namespace: string, name: string): void {
    this.track('S', namespace, name, false)
    const st = this.services.get(`${namespace}/${name}`)
    if (st === undefined || st.svc === undefined) return
    delete st.svc
    this.recompute(namespace, name)
  }

  upsertSlice (slice: EndpointSlice): void {
    const { namespace, name } = slice.metadata
    this.track('E', namespace, name, true)
    const sk = `${namespace}/${name}`
    const label = slice.metadata.labels?.[SERVICE_NAME_LABEL]
    const owner = label !== undefined && label !== '' ? label : undefined
    const oldOwner = this.sliceOwner.get(sk)
    if (oldOwner !== undefined && oldOwner !== owner) this.removeSlice(namespace, name, oldOwner)
    if (owner === undefined) { this.sliceOwner.delete(sk); return }
    this.sliceOwner.set(sk, owner)
    this.state(namespace, owner).slices.set(name, slice)
    this.recompute(namespace, owner)
  }

  deleteSlice (namespace: string, name: string): void {
    this.track('E', namespace, name, false)
    const owner = this.sliceOwner.get(`${namespace}/${name}`)
    if (owner !== undefined) this.removeSlice(namespace, name, owner)
  }

  upsertPod (pod: Pod): void {
    const { namespace, name } = pod.metadata
    const key = `${namespace}/${name}`
    this.track('P', namespace, name, true)
    this.unindexPod(key)
    this.pods.set(key, pod)
    const ip = pod.status?.podIP
    if (ip !== undefined && ip !== '') {
      let set = this.podsByIP.get(ip)
      if (set === undefined) { set = new Set(); this.podsByIP.set(ip, set) }
      set.add(key)
    }
    this.podsChanged()
  }

  deletePod (namespace: string, name: string): void {
    const key = `${namespace}/${name}`
    this.track('P', namespace, name, false)
    if (!this.pods.has(key)) return
    this.unindexPod(key)
    this.pods.delete(key)
    this.podsChanged()
  }

  private podsChanged (): void {
    if (this.podRecords === 'verified') { this.podMemo.clear(); this.touch() }
  }

  private unindexPod (key: string): void {
    const ip = this.pods.get(key)?.status?.podIP
    if (ip === undefined) return
    const set = this.podsByIP.get(ip)
    set?.delete(key)
    if (set?.size === 0) this.podsByIP.delete(ip)
  }

  private removeSlice (namespace: string, name: string, owner: string): void {
    this.sliceOwner.delete(`${namespace}/${name}`)
    const st = this.services.get(`${namespace}/${owner}`)
    if (st === undefined || !st.slices.delete(name)) return
    this.recompute(namespace, owner)
  }

  private state (namespace: string, name: string): ServiceState {
    const key = `${namespace}/${name}`
    let st = this.services.get(key)
    if (st === undefined) { st = { namespace, name, slices: new Map() }; this.services.set(key, st) }
    return st
  }

  /** Namespace bookkeeping: the first object in a namespace creates <ns>.svc and <ns>.pod, the last removes them. */
  private track (kind: string, namespace: string, name: string, present: boolean): void {
    const k = `${kind}/${namespace}/${name}`
    if (present === this.objects.has(k)) return
    if (present) this.objects.add(k)
    else this.objects.delete(k)
    const n = (this.nsCount.get(namespace) ?? 0) + (present ? 1 : -1)
    if (n > 0) this.nsCount.set(namespace, n)
    else this.nsCount.delete(namespace)
    if (present ? n !== 1 : n !== 0) return
    const svcNs = `${namespace}.svc.${this.zone}`.toLowerCase()
    const podNs = `${namespace}.pod.${this.zone}`.toLowerCase()
    if (present) {
      this.setEntry(svcNs, new Map(), 'nodata')
      if (this.podRecords !== 'disabled') this.setEntry(podNs, new Map(), 'nodata')
    } else {
      this.entries.delete(svcNs)
      this.entries.delete(podNs)
    }
    this.podMemo.clear()
    this.touch()
  }

  /** Rebuilds one Service's forward names and the PTR entries of the addresses it claims or claimed. */
  private recompute (namespace: string, name: string): void {
    const key = `${namespace}/${name}`
    const st = this.services.get(key)
    if (st === undefined) return
    const old = st.view
    const view = buildServiceView(namespace, name, st.svc, st.slices.values(), this.zone, this.ttl)
    let changed = false
    if (old !== undefined) {
      for (const n of old.names.keys()) {
        if (!view.names.has(n)) { this.entries.delete(n); changed = true }
      }
    }
    for (const [n, spec] of view.names) changed = this.setEntry(n, spec.answers, 'nodata', spec.externalName) || changed

    const touched = new Set<string>()
    if (old !== undefined) {
      for (const ip of old.clusterIPs) {
        touched.add(ip)
        const owners = this.clusterIPOwners.get(ip)?.filter(o => o !== key) ?? []
        if (owners.length > 0) this.clusterIPOwners.set(ip, owners)
        else this.clusterIPOwners.delete(ip)
      }
      for (const [ip] of old.endpointPtrs) {
        touched.add(ip)
        const owners = this.endpointOwners.get(ip)
        owners?.delete(key)
        if (owners?.size === 0) this.endpointOwners.delete(ip)
      }
    }
    for (const ip of view.clusterIPs) {
      touched.add(ip)
      const owners = this.clusterIPOwners.get(ip)
      if (owners === undefined) this.clusterIPOwners.set(ip, [key])
      else if (!owners.includes(key)) owners.push(key)
    }
    for (const [ip, target] of view.endpointPtrs) {
      touched.add(ip)
      let owners = this.endpointOwners.get(ip)
      if (owners === undefined) { owners = new Map(); this.endpointOwners.set(ip, owners) }
      const targets = owners.get(key)
      if (targets === undefined) owners.set(key, [target])
      else if (!targets.includes(target)) targets.push(target)
    }
    for (const ip of touched) changed = this.rebuildPtr(ip) || changed

    if (st.svc === undefined && st.slices.size === 0) this.services.delete(key)
    else st.view = view
    if (changed) this.touch()
  }

  /** PTR (§2.12): the first Service holding the IP as a ClusterIP wins, else one per selecting Service. */
  private rebuildPtr (ip: string): boolean {
    const rname = reverseName(ip)
    if (rname === null) return false
    const first = this.clusterIPOwners.get(ip)?.[0]
    let targets: string[] = []
    if (first !== undefined) {
      const st = this.services.get(first)
      if (st !== undefined) targets = [`${st.name}.${st.namespace}.svc.${this.zone}`.toLowerCase()]
    } else {
      for (const list of this.endpointOwners.get(ip)?.values() ?? []) {
        for (const t of list) if (!targets.includes(t)) targets.push(t)
      }
    }
    if (targets.length === 0) return this.entries.delete(rname)
    return this.setEntry(rname, new Map([[TYPE.PTR, ptrAnswer(rname, targets, this.ttl)]]), 'nxdomain')
  }

  /** Stores an entry unless an identical one is there (keeping its identity); true when it changed. */
  private setEntry (lname: string, answers: Map<number, Answer>, otherTypes: NameEntry['otherTypes'], externalName?: string): boolean {
    const old = this.entries.get(lname)
    if (old !== undefined && old.otherTypes === otherTypes && old.externalName === externalName && sameAnswers(old.answers, answers)) return false
    this.entries.set(lname, this.newEntry(answers, otherTypes, externalName))
    return true
  }

  private newEntry (answers: Map<number, Answer>, otherTypes: NameEntry['otherTypes'], externalName?: string): NameEntry {
    const e: NameEntry = externalName === undefined
      ? { version: ++this.gen, answers, otherTypes }
      : { version: ++this.gen, answers, otherTypes, externalName }
    return Object.freeze(e)
  }

  private touch (): void {
    this.serialValue = Math.floor(this.now() / 1000)
  }

  private negativeSet (zone: string): { serial: number, answers: Map<number, Answer>, soa: Answer } {
    let set = this.negatives.get(zone)
    if (set === undefined || set.serial !== this.serialValue) {
      set = { serial: this.serialValue, answers: new Map(), soa: soaAnswer(zone, this.serialValue, this.ttl) }
      this.negatives.set(zone, set)
    }
    return set
  }

  /**
   * Names that cannot be listed ahead: pod names (any dashed IP in insecure mode, with up to two labels
   * in front; memoised until pods or namespaces change) and the rare port forms without underscores or
   * with a lone "_" wildcard label.
   */
  private dynamicEntry (lname: string): NameEntry | undefined {
    if (!inZone(lname, this.zone) || lname === this.zone) return undefined
    const labels = labelsUnder(lname, this.zone)
    const kind = labels[labels.length - 1]
    // CoreDNS parses one or two labels left of the dashed IP (as endpoint, or port and protocol) and
    // findPods ignores them, so they answer as the pod name itself; three or more are NXDOMAIN.
    if (kind === 'pod' && labels.length >= 3 && labels.length <= 5) {
      const memo = this.podMemo.get(lname)
      if (memo !== undefined) return memo ?? undefined
      const e = this.podEntry(lname, labels[labels.length - 3] as string, labels[labels.length - 2] as string)
      if (this.podMemo.size >= POD_MEMO_LIMIT) this.podMemo.clear()
      this.podMemo.set(lname, e ?? null)
      return e
    }
    if (kind === 'svc' && labels.length === 5) {
      const st = this.services.get(`${labels[3] as string}/${labels[2] as string}`)
      if (st?.view === undefined) return undefined
      const items = portItems(st.view.primary, strip(labels[0] as string), strip(labels[1] as string))
      if (items.length === 0) return undefined
      return this.newEntry(itemAnswers(lname, items, this.ttl), 'nodata')
    }
    return undefined
  }

  private podEntry (lname: string, label: string, namespace: string): NameEntry | undefined {
    if (this.podRecords === 'disabled' || !this.nsCount.has(namespace)) return undefined
    const ip = podNameIP(label)
    if (ip === null) return undefined
    // One item per pod CoreDNS's findPods yields: the SRV weight is floor(100/n) over them.
    let n = 1
    if (this.podRecords === 'verified') {
      n = 0
      for (const k of this.podsByIP.get(ip) ?? []) {
        const pod = this.pods.get(k)
        if (pod !== undefined && pod.metadata.namespace === namespace && watchedPod(pod)) n++
      }
      if (n === 0) return undefined
    }
    // Port 0, not the -1 "no ports" mark: CoreDNS writes a port-0 SRV to the pod name (no extra labels).
    const item = { host: podAddress(ip), port: 0, target: join(`${label}.${namespace}.pod`, this.zone) }
    return this.newEntry(itemAnswers(lname, Array<typeof item>(n).fill(item), this.ttl), 'nodata')
  }
}

/** CoreDNS watches only pods not Succeeded, Failed or Unknown, and drops terminating ones (§2.7). */
function watchedPod (pod: Pod): boolean {
  const phase = pod.status?.phase
  if (phase === 'Succeeded' || phase === 'Failed' || phase === 'Unknown') return false
  return pod.metadata.deletionTimestamp === undefined || pod.metadata.deletionTimestamp === ''
}

function strip (label: string): string {
  return label.startsWith('_') ? label.slice(1) : label
}
