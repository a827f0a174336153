// Change trackers (kube-proxy's servicechangetracker / endpointschangetracker): event handlers only record
// what changed since the last sync and drop no-op changes; the sync applies everything at once.
import { sameJSON } from '../cache/same.js'
import { lastChangeTriggerTime } from '../api/trigger-time.js'
import type { EndpointSlice, Service } from '../api/types.js'
import { namespacedName } from '../api/types.js'
import type { IPFamily } from '../net/ip.js'
import { endpointsFromSlices, serviceOfSlice } from './endpoints.js'
import { servicePortsOf } from './serviceport.js'
import { servicePortKey } from './types.js'
import type { EndpointInfo, ServicePortInfo } from './types.js'

export type Now = () => number

function earliest (pending: Iterable<{ readonly since: number }>): number | undefined {
  let min: number | undefined
  for (const { since } of pending) if (min === undefined || since < min) min = since
  return min
}

interface ServiceChange {
  /** The ports as last applied (or as before the first pending change). */
  readonly previous: ReadonlyMap<string, ServicePortInfo>
  current: ReadonlyMap<string, ServicePortInfo>
  readonly since: number
}

const NO_PORTS: ReadonlyMap<string, ServicePortInfo> = new Map()

function portMap (svc: Service | undefined, family: IPFamily): ReadonlyMap<string, ServicePortInfo> {
  if (svc === undefined) return NO_PORTS
  const ports = servicePortsOf(svc, family)
  if (ports.length === 0) return NO_PORTS
  const m = new Map<string, ServicePortInfo>()
  for (const p of ports) m.set(servicePortKey(p), p)
  return m
}

/**
 * Compares port maps; an empty one on either side (every add and delete) needs no deep compare. The
 * infos are plain data, so sameJSON serves (node's isDeepStrictEqual cost ~10x as much per sync).
 */
function samePorts (a: ReadonlyMap<string, ServicePortInfo>, b: ReadonlyMap<string, ServicePortInfo>): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (!sameJSON(v, b.get(k))) return false
  return true
}

/** Pending Service changes for one IP family, keyed by "namespace/name". */
export class ServiceChangeTracker {
  readonly family: IPFamily
  private readonly now: Now
  private readonly items = new Map<string, ServiceChange>()

  constructor (family: IPFamily, now: Now = Date.now) {
    this.family = family
    this.now = now
  }

  /** Records prev → cur (undefined for add/delete). True if this Service now has a pending change. */
  update (prev: Service | undefined, cur: Service | undefined): boolean {
    const obj = cur ?? prev
    if (obj === undefined) return false
    const nn = namespacedName(obj)
    const current = portMap(cur, this.family)
    const item = this.items.get(nn)
    if (item === undefined) {
      const previous = portMap(prev, this.family)
      if (samePorts(previous, current)) return false
      this.items.set(nn, { previous, current, since: this.now() })
      return true
    }
    // Back to what was applied: the pending change cancels out.
    if (samePorts(item.previous, current)) {
      this.items.delete(nn)
      return false
    }
    item.current = current
    return true
  }

  /** Services with a pending change. */
  pendingCount (): number {
    return this.items.size
  }

  /**
   * When the oldest still-pending change was recorded, or undefined when nothing is pending; with
   * `except`, among the Services ("namespace/name") not in it.
   */
  firstPendingAt (except?: ReadonlySet<string>): number | undefined {
    if (except === undefined || except.size === 0) return earliest(this.items.values())
    let min: number | undefined
    for (const [nn, { since }] of this.items) if (!except.has(nn) && (min === undefined || since < min)) min = since
    return min
  }

  /**
   * Writes pending changes into `map` (keyed by servicePortKey) and returns the keys whose info changed;
   * with `compare` false (a full sync recomputes every key anyway) nothing is compared and none returned.
   */
  apply (map: Map<string, ServicePortInfo>, compare = true): Set<string> {
    const changed = compare ? new Set<string>() : undefined
    for (const { previous, current } of this.items.values()) {
      for (const [key, after] of current) {
        if (changed !== undefined && !sameJSON(map.get(key), after)) changed.add(key)
        map.set(key, after)
      }
      for (const key of previous.keys()) {
        if (current.has(key)) continue
        if (changed !== undefined && map.has(key)) changed.add(key)
        map.delete(key)
      }
    }
    this.items.clear()
    return changed ?? new Set()
  }
}

/** The parts of a slice that endpoint lists depend on; metadata-only updates compare equal. */
function sliceContent (s: EndpointSlice): unknown {
  return { addressType: s.addressType, endpoints: s.endpoints, ports: s.ports }
}

function sameSlice (a: EndpointSlice | null | undefined, b: EndpointSlice | null | undefined): boolean {
  if (a === undefined || a === null || b === undefined || b === null) return (a ?? null) === (b ?? null)
  return sameJSON(sliceContent(a), sliceContent(b))
}

interface EndpointsChange {
  /** Slice name → new content, null for removed from this Service. */
  readonly slices: Map<string, EndpointSlice | null>
  /**
   * Slice name → the last-change-trigger-time of each of its pending updates that carries a valid one,
   * made on the first; slices without any count from `since`.
   */
  triggers: Map<string, number[]> | undefined
  readonly since: number
}

/** When pending slice changes began, for the programming-latency histogram (see programmingStarts). */
export interface ProgrammingStarts {
  /** One per pending slice update that carries a trigger time (kube-proxy observes each). */
  readonly triggers: number[]
  /** The Services ("namespace/name") those slice changes belong to. */
  readonly covered: ReadonlySet<string>
  /** The earliest receipt among Services with a slice change that carries none. */
  readonly firstUntriggeredAt: number | undefined
}

/**
 * Pending EndpointSlice changes for one IP family, grouped by the Service named in each slice's
 * kubernetes.io/service-name label. Slices are merged into endpoint lists only in apply().
 */
export class EndpointsChangeTracker {
  readonly family: IPFamily
  readonly nodeName: string
  private readonly now: Now
  /** Trigger times up to here predate us (a first list's slices): kube-proxy ignores them too. */
  private readonly startedAt: number
  /** Service → slice name → slice, as of the last apply. */
  private readonly applied = new Map<string, Map<string, EndpointSlice>>()
  /** Service → pending slice changes. */
  private readonly pending = new Map<string, EndpointsChange>()
  /** "namespace/sliceName" → Service it belongs to, counting pending changes. */
  private readonly owner = new Map<string, string>()
  /** Service → servicePortKeys it has in the endpoints map. */
  private readonly keysOf = new Map<string, string[]>()

  constructor (family: IPFamily, nodeName: string, now: Now = Date.now) {
    this.family = family
    this.nodeName = nodeName
    this.now = now
    this.startedAt = now()
  }

  private serviceOf (s: EndpointSlice | undefined): string | undefined {
    // Slices of the other family (or FQDN) are not ours: treat them as belonging to no Service.
    return s === undefined || s.addressType !== this.family ? undefined : serviceOfSlice(s)
  }

  private record (svc: string, sliceName: string, slice: EndpointSlice | null): void {
    const appliedSlice = this.applied.get(svc)?.get(sliceName)
    let change = this.pending.get(svc)
    // A removed slice's annotation dates from its last update, not from the removal. kube-proxy then drops
    // every pending trigger time of the Service (applied slice or not), and so does ferry: its change
    // counts from receipt.
    if (slice === null && change !== undefined) change.triggers = undefined
    if (sameSlice(appliedSlice, slice)) {
      // Same as applied: drop any pending change for this slice.
      if (change === undefined) return
      change.slices.delete(sliceName)
      change.triggers?.delete(sliceName)
      if (change.slices.size === 0) this.pending.delete(svc)
      return
    }
    if (change === undefined) {
      change = { slices: new Map(), triggers: undefined, since: this.now() }
      this.pending.set(svc, change)
    }
    change.slices.set(sliceName, slice)
    if (slice === null) return
    const at = lastChangeTriggerTime(slice.metadata)
    if (at === undefined || at <= this.startedAt) return
    // Every update is one observation, superseded or not, as kube-proxy's LastChangeTriggerTimes.
    const triggers = change.triggers ??= new Map<string, number[]>()
    const times = triggers.get(sliceName)
    if (times === undefined) triggers.set(sliceName, [at])
    else times.push(at)
  }

  /** Records prev → cur (undefined for add/delete). True if a Service this slice touches has a pending change. */
  update (prev: EndpointSlice | undefined, cur: EndpointSlice | undefined): boolean {
    const obj = cur ?? prev
    if (obj === undefined) return false
    const id = `${obj.metadata.namespace}/${obj.metadata.name}`
    const oldSvc = this.owner.get(id) ?? this.serviceOf(prev)
    const newSvc = this.serviceOf(cur)
    if (oldSvc !== undefined && oldSvc !== newSvc) this.record(oldSvc, obj.metadata.name, null)
    if (newSvc !== undefined && cur !== undefined) {
      this.record(newSvc, obj.metadata.name, cur)
      this.owner.set(id, newSvc)
    } else {
      this.owner.delete(id)
    }
    return (oldSvc !== undefined && this.pending.has(oldSvc)) || (newSvc !== undefined && this.pending.has(newSvc))
  }

  /** Services with pending slice changes. */
  pendingCount (): number {
    return this.pending.size
  }

  /** When the oldest still-pending change was recorded, or undefined when nothing is pending. */
  firstPendingAt (): number | undefined {
    return earliest(this.pending.values())
  }

  /**
   * When the pending slice changes began: the valid last-change-trigger-time of every pending update
   * (kube-proxy's LastChangeTriggerTimes); apart from those, the earliest receipt.
   */
  programmingStarts (): ProgrammingStarts {
    const triggers: number[] = []
    const covered = new Set<string>()
    let firstUntriggeredAt: number | undefined
    for (const [svc, change] of this.pending) {
      const mine = change.triggers
      if (mine !== undefined && mine.size > 0) {
        covered.add(svc)
        for (const times of mine.values()) triggers.push(...times)
      }
      // Trigger times are kept only for pending slices: more slices than times means some have none.
      if (change.slices.size > (mine?.size ?? 0) && (firstUntriggeredAt === undefined || change.since < firstUntriggeredAt)) firstUntriggeredAt = change.since
    }
    return { triggers, covered, firstUntriggeredAt }
  }

  /** The slices currently applied for a Service ("namespace/name"), sorted by name. */
  slicesOf (svc: string): EndpointSlice[] {
    const m = this.applied.get(svc)
    return m === undefined ? [] : [...m.keys()].sort().map(k => m.get(k) as EndpointSlice)
  }

  /**
   * Recomputes the endpoints of every Service with pending slice changes, writes them into `map` (keyed by
   * servicePortKey; ports left without endpoints are deleted) and returns the keys whose lists changed;
   * with `compare` false (a full sync) nothing is compared and none returned.
   */
  apply (map: Map<string, EndpointInfo[]>, compare = true): Set<string> {
    const changed = compare ? new Set<string>() : undefined
    for (const [svc, change] of this.pending) {
      let slices = this.applied.get(svc)
      if (slices === undefined) {
        // A Service new to us (every one at the first sync): its pending map, minus removals, is applied as is.
        for (const [name, slice] of change.slices) if (slice === null) change.slices.delete(name)
        slices = change.slices as Map<string, EndpointSlice>
        this.applied.set(svc, slices)
      } else {
        for (const [name, slice] of change.slices) {
          if (slice === null) slices.delete(name)
          else slices.set(name, slice)
        }
      }
      if (slices.size === 0) this.applied.delete(svc)
      const fresh = endpointsFromSlices([...slices.values()], this.family, this.nodeName)
      for (const [key, after] of fresh) {
        if (changed !== undefined && !sameJSON(map.get(key), after)) changed.add(key)
        map.set(key, after)
      }
      const oldKeys = this.keysOf.get(svc)
      if (oldKeys !== undefined) {
        for (const key of oldKeys) {
          if (fresh.has(key)) continue
          if (changed !== undefined && map.has(key)) changed.add(key)
          map.delete(key)
        }
      }
      if (fresh.size === 0) this.keysOf.delete(svc)
      else this.keysOf.set(svc, [...fresh.keys()])
    }
    this.pending.clear()
    return changed ?? new Set()
  }
}
