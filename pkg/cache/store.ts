// The cluster cache: the one place downstream components read cluster state from. It receives a
// source's calls, drops no-op updates and tells listeners (prev, cur, revision) per object. Objects are
// indexed by kind, so list(kind) and count(kind) cost the objects of that kind, never the whole cluster,
// and by ClusterIP, Service and pod IP (index.ts), updated before listeners hear of the change.
import { objectKey, type EndpointSlice, type KObject, type Kind, type Pod, type Service } from '../api/types.js'
import type { FerryError } from '../errors/errors.js'
import type { SourceHandler } from '../source/source.js'
import { MultiIndex, podIPs, serviceClusterIPs, serviceKey, sliceServiceKeys } from './index.js'
import { sameJSON } from './same.js'

export type ObjectOf<K extends Kind> = Extract<KObject, { kind: K }>

/**
 * Told of one change: prev and cur are the object before and after (undefined: absent). `revision` is the
 * store's revision right after this change; a consumer that has acted on revision r has seen every change
 * up to r.
 */
export type ChangeListener<K extends Kind = Kind> = (prev: ObjectOf<K> | undefined, cur: ObjectOf<K> | undefined, revision: number) => void

export interface StoreError { readonly time: string, readonly code: string, readonly message: string }

export class ClusterStore implements SourceHandler {
  /** kind → objectKey → object. */
  private readonly byKind = new Map<Kind, Map<string, KObject>>()
  private total = 0
  private readonly listeners = new Map<Kind, Array<ChangeListener<Kind>>>()
  private readonly servicesByIP = new MultiIndex<Service>()
  private readonly slicesByService = new MultiIndex<EndpointSlice>()
  private readonly podsByIPIndex = new MultiIndex<Pod>()
  private rev = 0
  private readonly errorListeners: Array<(e: FerryError) => void> = []
  private readonly recentErrors: StoreError[] = []
  private syncedFlag = false

  on<K extends Kind> (kind: K, fn: ChangeListener<K>): void {
    const l = this.listeners.get(kind) ?? []
    // Sound: emit() only hands a listener objects of the kind it registered for.
    l.push(fn as unknown as ChangeListener<Kind>)
    this.listeners.set(kind, l)
  }

  /** Starts at 0; +1 for every change told to listeners (no-ops do not count). */
  get revision (): number { return this.rev }

  onError (fn: (e: FerryError) => void): void { this.errorListeners.push(fn) }

  get synced (): boolean { return this.syncedFlag }

  list<K extends Kind> (kind: K): Array<ObjectOf<K>> {
    const m = this.byKind.get(kind)
    return m === undefined ? [] : [...m.values()] as Array<ObjectOf<K>>
  }

  /** How many objects of `kind` the cache holds. */
  count (kind: Kind): number { return this.byKind.get(kind)?.size ?? 0 }

  get<K extends Kind> (kind: K, namespace: string | undefined, name: string): ObjectOf<K> | undefined {
    return this.byKind.get(kind)?.get(keyOf(kind, namespace, name)) as ObjectOf<K> | undefined
  }

  get size (): number { return this.total }

  /** The Service that has held ClusterIP `ip` the longest (canonical IP text); "None" is never indexed. */
  serviceByClusterIP (ip: string): Service | undefined { return this.servicesByIP.first(ip) }

  /** Every Service holding ClusterIP `ip`, oldest first: more than one only with conflicting manifests. */
  servicesByClusterIP (ip: string): Service[] { return this.servicesByIP.get(ip) }

  /** The EndpointSlices labelled kubernetes.io/service-name=`name` in `namespace`. */
  slicesForService (namespace: string, name: string): EndpointSlice[] { return this.slicesByService.get(serviceKey(namespace, name)) }

  /** The Pods whose status.podIP(s) hold `ip`, whatever their phase (hostNetwork pods share the node's). */
  podsByIP (ip: string): Pod[] { return this.podsByIPIndex.get(ip) }

  get errors (): readonly StoreError[] { return this.recentErrors }

  replace (objects: KObject[]): void {
    // A key given twice counts once, with its last object.
    const next = new Map<string, KObject>()
    for (const o of objects) next.set(objectKey(o), o)
    // Deleting the entry being visited is safe in a Map iteration.
    for (const m of this.byKind.values()) {
      for (const [key, obj] of m) {
        if (!next.has(key)) { m.delete(key); this.total--; this.changed(key, obj, undefined) }
      }
    }
    for (const o of next.values()) this.upsert(o)
    this.syncedFlag = true
  }

  upsert (obj: KObject): void {
    const key = objectKey(obj)
    let m = this.byKind.get(obj.kind)
    if (m === undefined) { m = new Map(); this.byKind.set(obj.kind, m) }
    const prev = m.get(key)
    if (prev !== undefined && (prev === obj || sameJSON(prev, obj))) return
    m.set(key, obj)
    if (prev === undefined) this.total++
    this.changed(key, prev, obj)
  }

  remove (kind: Kind, namespace: string | undefined, name: string): void {
    const key = keyOf(kind, namespace, name)
    const m = this.byKind.get(kind)
    const prev = m?.get(key)
    if (m === undefined || prev === undefined) return
    m.delete(key)
    this.total--
    this.changed(key, prev, undefined)
  }

  error (err: FerryError): void {
    this.recentErrors.push({ time: new Date().toISOString(), code: err.code, message: err.message })
    if (this.recentErrors.length > 20) this.recentErrors.shift()
    for (const fn of this.errorListeners) fn(err)
  }

  /** Indexes first, then the revision, then listeners: a listener reads a store that already holds cur. */
  private changed (key: string, prev: KObject | undefined, cur: KObject | undefined): void {
    const kind = (cur ?? prev)?.kind
    if (kind === undefined) return
    switch (kind) {
      case 'Service': {
        const p = prev as Service | undefined
        const c = cur as Service | undefined
        this.servicesByIP.update(key, serviceClusterIPs(p), serviceClusterIPs(c), c)
        break
      }
      case 'EndpointSlice': {
        const p = prev as EndpointSlice | undefined
        const c = cur as EndpointSlice | undefined
        this.slicesByService.update(key, sliceServiceKeys(p), sliceServiceKeys(c), c)
        break
      }
      case 'Pod': {
        const p = prev as Pod | undefined
        const c = cur as Pod | undefined
        this.podsByIPIndex.update(key, podIPs(p), podIPs(c), c)
        break
      }
      case 'Node': break
    }
    const revision = ++this.rev
    for (const fn of this.listeners.get(kind) ?? []) fn(prev, cur, revision)
  }
}

function keyOf (kind: Kind, namespace: string | undefined, name: string): string {
  return objectKey({ kind, metadata: namespace !== undefined && namespace !== '' ? { name, namespace } : { name } })
}
