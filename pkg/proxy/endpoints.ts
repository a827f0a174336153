// EndpointSlices → per-service-port endpoint lists for one IP family (kube-proxy's endpointslicecache).
import { SERVICE_NAME_LABEL } from '../api/types.js'
import type { Endpoint, EndpointSlice } from '../api/types.js'
import { familyOf, ipv4Number } from '../net/ip.js'
import type { IPFamily } from '../net/ip.js'
import { labelledOut, servicePortName } from './serviceport.js'
import { servicePortKey } from './types.js'
import type { EndpointInfo } from './types.js'
import { fit } from '../mem/fit.js'

/**
 * The service-name label of a slice the proxy reads, or undefined. A slice labelled out (labelledOut) is
 * not read, even when its Service is.
 */
function serviceLabel (slice: EndpointSlice): string | undefined {
  const labels = slice.metadata.labels
  if (labels === undefined || labelledOut(labels)) return undefined
  const svc = labels[SERVICE_NAME_LABEL]
  return svc === '' ? undefined : svc
}

/** "namespace/service" a slice belongs to, or undefined when the proxy does not read it (serviceLabel). */
export function serviceOfSlice (slice: EndpointSlice): string | undefined {
  const svc = serviceLabel(slice)
  return svc === undefined ? undefined : `${slice.metadata.namespace}/${svc}`
}

function hintNames (hints: ReadonlyArray<{ name: string }> | undefined): string[] | undefined {
  if (hints === undefined || hints.length === 0) return undefined
  return [...new Set(hints.map(h => h.name))].sort()
}

function toEndpointInfo (e: Endpoint, ip: string, port: number, nodeName: string): EndpointInfo {
  const ready = e.conditions?.ready ?? true
  const info: { -readonly [K in keyof EndpointInfo]: EndpointInfo[K] } = {
    ip,
    port,
    ready,
    // PROXY.md §1 and kube-proxy's endpointslicecache: a missing serving is true on its own (the API's
    // current contract), not "same as ready" as the older beta docs said.
    serving: e.conditions?.serving ?? true,
    terminating: e.conditions?.terminating ?? false,
    isLocal: e.nodeName !== undefined && e.nodeName === nodeName,
  }
  if (e.nodeName !== undefined) info.nodeName = e.nodeName
  if (e.zone !== undefined) info.zone = e.zone
  const zoneHints = hintNames(e.hints?.forZones)
  if (zoneHints !== undefined) info.zoneHints = zoneHints
  const nodeHints = hintNames(e.hints?.forNodes)
  if (nodeHints !== undefined) info.nodeHints = nodeHints
  return info
}

/** Rank for choosing among duplicate "ip:port" entries; lower wins. */
function rank (e: EndpointInfo): number {
  return (e.terminating ? 2 : 0) + (e.ready ? 0 : 1)
}

function better (info: EndpointInfo, old: EndpointInfo): boolean {
  return rank(info) < rank(old) || (rank(info) === rank(old) && info.isLocal && !old.isLocal)
}

/** Lists past this many endpoints find duplicates through an index; shorter ones (most) by a scan. */
const SCAN_MAX = 32

/** One entry per ip:port in first-seen order, the better of duplicates kept. */
class UniqueEndpoints {
  readonly list: EndpointInfo[] = []
  private index: Map<string, number> | undefined

  add (info: EndpointInfo): void {
    const at = this.find(info)
    if (at >= 0) {
      if (better(info, this.list[at] as EndpointInfo)) this.list[at] = info
      return
    }
    this.index?.set(`${info.ip}:${info.port}`, this.list.length)
    this.list.push(info)
    if (this.index === undefined && this.list.length > SCAN_MAX) {
      this.index = new Map(this.list.map((e, i) => [`${e.ip}:${e.port}`, i]))
    }
  }

  private find (info: EndpointInfo): number {
    if (this.index !== undefined) return this.index.get(`${info.ip}:${info.port}`) ?? -1
    for (let i = 0; i < this.list.length; i++) {
      const e = this.list[i] as EndpointInfo
      if (e.port === info.port && e.ip === info.ip) return i
    }
    return -1
  }
}

/** Eight hex digits, two per octet, so keys compare as the addresses do (hot: every endpoint at start). */
export function ipv4Key (ip: string): string {
  const n = ipv4Number(ip)
  return n < 0 ? ipv4KeySlow(ip) : n.toString(16).padStart(8, '0')
}

/** The general form, for text that is not four plain decimal octets (validation normally rejects it). */
export function ipv4KeySlow (ip: string): string {
  return ip.split('.').map(o => Number(o).toString(16).padStart(2, '0')).join('')
}

function ipv6Key (ip: string): string {
  let text = ip
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4?.[1] !== undefined) {
    const k = ipv4Key(v4[1])
    text = `${text.slice(0, -v4[1].length)}${k.slice(0, 4)}:${k.slice(4)}`
  }
  const [head = '', tail] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0')
  return [...h, ...fill, ...t].map(g => g.padStart(4, '0')).join('')
}


/**
 * Sorts like compareEndpoints, computing each address's sort key once instead of at every comparison.
 * Plain IPv4 lists (the common case) compare as numbers and come back as they are when already in order.
 */
function sortEndpoints (eps: EndpointInfo[]): EndpointInfo[] {
  if (eps.length < 2) return eps
  const nums: number[] = []
  let sorted = true
  for (let i = 0; i < eps.length; i++) {
    const n = ipv4Number((eps[i] as EndpointInfo).ip)
    if (n < 0) return sortByTextKey(eps)
    nums.push(n)
    if (i > 0 && sorted) {
      const m = nums[i - 1] as number
      if (m > n) sorted = false
      else if (m === n) {
        const a = eps[i - 1] as EndpointInfo
        const b = eps[i] as EndpointInfo
        if (a.ip > b.ip || (a.ip === b.ip && a.port > b.port)) sorted = false
      }
    }
  }
  if (sorted) return eps
  const idx = eps.map((_, i) => i)
  idx.sort((i, j) => {
    const a = eps[i] as EndpointInfo
    const b = eps[j] as EndpointInfo
    const d = (nums[i] as number) - (nums[j] as number)
    return d !== 0 ? d : a.ip !== b.ip ? (a.ip < b.ip ? -1 : 1) : a.port - b.port
  })
  return idx.map(i => eps[i] as EndpointInfo)
}

function sortByTextKey (eps: EndpointInfo[]): EndpointInfo[] {
  const keyed = eps.map(e => {
    const fam = familyOf(e.ip)
    return { e, k: `${fam === 'IPv4' ? '4' : '6'}${fam === 'IPv4' ? ipv4Key(e.ip) : ipv6Key(e.ip)}` }
  })
  keyed.sort((a, b) => a.k !== b.k ? (a.k < b.k ? -1 : 1) : a.e.ip !== b.e.ip ? (a.e.ip < b.e.ip ? -1 : 1) : a.e.port - b.e.port)
  return keyed.map(x => x.e)
}

/** Orders endpoints by numeric address, then port: the order every backend renders in. */
export function compareEndpoints (a: Pick<EndpointInfo, 'ip' | 'port'>, b: Pick<EndpointInfo, 'ip' | 'port'>): number {
  if (a.ip !== b.ip) {
    const fa = familyOf(a.ip)
    const fb = familyOf(b.ip)
    if (fa !== fb) return fa === 'IPv4' ? -1 : 1
    const ka = fa === 'IPv4' ? ipv4Key(a.ip) : ipv6Key(a.ip)
    const kb = fb === 'IPv4' ? ipv4Key(b.ip) : ipv6Key(b.ip)
    if (ka !== kb) return ka < kb ? -1 : 1
    return a.ip < b.ip ? -1 : 1
  }
  return a.port - b.port
}

/**
 * The endpoints of every service port the slices describe, keyed by servicePortKey. Slices without the
 * service-name label (or labelled for another proxy), FQDN slices and slices of the other family are
 * ignored; so are ports without a number and endpoints without an address of `family`; ports left
 * without endpoints get no key. Pure; the result does not depend on slice order.
 */
export function endpointsFromSlices (slices: readonly EndpointSlice[], family: IPFamily, nodeName: string): Map<string, EndpointInfo[]> {
  // Sort by slice name so that ties between duplicates resolve the same way whatever the input order.
  const ordered = slices.length < 2 ? slices : [...slices].sort((a, b) => {
    const ka = `${a.metadata.namespace}/${a.metadata.name}`
    const kb = `${b.metadata.namespace}/${b.metadata.name}`
    return ka < kb ? -1 : ka > kb ? 1 : 0
  })
  const byKey = new Map<string, UniqueEndpoints>()
  for (const slice of ordered) {
    if (slice.addressType !== family) continue
    const svc = serviceLabel(slice)
    if (svc === undefined) continue
    for (const p of slice.ports) {
      if (p.port === undefined || p.port === 0) continue
      const key = servicePortKey({ spn: servicePortName(slice.metadata.namespace, svc, p.name ?? ''), protocol: p.protocol })
      let set = byKey.get(key)
      if (set === undefined) { set = new UniqueEndpoints(); byKey.set(key, set) }
      for (const e of slice.endpoints) {
        // Only the first address counts (Kubernetes sets exactly one; more are reserved).
        const ip = e.addresses[0]
        if (ip === undefined || familyOf(ip) !== family) continue
        set.add(toEndpointInfo(e, ip, p.port, nodeName))
      }
    }
  }
  const out = new Map<string, EndpointInfo[]>()
  for (const [key, set] of byKey) {
    if (set.list.length > 0) out.set(key, fit(sortEndpoints(set.list)))
  }
  return out
}
