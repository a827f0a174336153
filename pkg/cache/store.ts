// The cluster cache: the one place downstream components read cluster state from. It receives a
// source's calls, drops no-op updates and tells listeners (prev, cur, revision) per object, or per
// replace() in one batch per kind to listeners that ask (onBatch). Objects are
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

/** One change as a batch listener hears it. */
export interface Change<K extends Kind = Kind> {
  readonly prev: ObjectOf<K> | undefined
  readonly cur: ObjectOf<K> | undefined
  readonly revision: number
}

/**
 * Told of a replace()'s changes of one kind in one call, in revision order (upsert and remove: a batch
 * of one). A first list of 20k objects is then one call, not 20k.
 */
export type BatchListener<K extends Kind = Kind> = (changes: ReadonlyArray<Change<K>>) => void

interface Listener { readonly one?: ChangeListener<Kind>, readonly batch?: BatchListener<Kind> }

/** A change of replace() before its revision is known: the same object then goes to listeners. */
interface Pending { readonly key: string, readonly prev: KObject | undefined, readonly cur: KObject | undefined, revision: number }

export interface StoreError { readonly time: string, readonly code: string, readonly message: string }

export class ClusterStore implements SourceHandler {
  /** kind → objectKey → object. */
  private readonly byKind = new Map<Kind, Map<string, KObject>>()
  private total = 0
  private readonly listeners = new Map<Kind, Listener[]>()
  private readonly servicesByIP = new MultiIndex<Service>()
  private readonly slicesByService = new MultiIndex<EndpointSlice>()
  private readonly podsByIPIndex = new MultiIndex<Pod>()
  private rev = 0
  private readonly errorListeners: Array<(e: FerryError) => void> = []
  private readonly recentErrors: StoreError[] = []
  private syncedFlag = false

  on<K extends Kind> (kind: K, fn: ChangeListener<K>): void {
    // Sound: the store only hands a listener objects of the kind it registered for.
    this.listen(kind, { one: fn as unknown as ChangeListener<Kind> })
  }

  /** Like on(), but a replace() arrives as one batch per kind. Listeners of a kind hear in registration order. */
  onBatch<K extends Kind> (kind: K, fn: BatchListener<K>): void {
    this.listen(kind, { batch: fn as unknown as BatchListener<Kind> })
  }

  private listen (kind: Kind, l: Listener): void {
    const all = this.listeners.get(kind) ?? []
    all.push(l)
    this.listeners.set(kind, all)
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

  /**
   * The whole state at once (a source's list). Every change is in the maps and indexes before anyone
   * hears of it; then each kind's changes get consecutive revisions and go out as one batch.
   */
  replace (objects: KObject[]): void {
    // A key given twice counts once, with its last object.
    const next = new Map<string, KObject>()
    for (const o of objects) next.set(objectKey(o), o)
    const byKind = new Map<Kind, Pending[]>()
    const note = (kind: Kind, p: Pending): void => {
      const l = byKind.get(kind)
      if (l === undefined) byKind.set(kind, [p])
      else l.push(p)
    }
    // Deleting the entry being visited is safe in a Map iteration.
    for (const [kind, m] of this.byKind) {
      for (const [key, obj] of m) {
        if (!next.has(key)) { m.delete(key); this.total--; note(kind, { key, prev: obj, cur: undefined, revision: 0 }) }
      }
    }
    for (const [key, o] of next) {
      const prev = this.put(key, o)
      if (prev !== UNCHANGED) note(o.kind, { key, prev, cur: o, revision: 0 })
    }
    for (const l of byKind.values()) for (const p of l) this.index(p.key, p.prev, p.cur)
    for (const [kind, l] of byKind) {
      for (const p of l) p.revision = ++this.rev
      this.emit(kind, l)
    }
    this.syncedFlag = true
  }

  upsert (obj: KObject): void {
    const key = objectKey(obj)
    const prev = this.put(key, obj)
    if (prev !== UNCHANGED) this.changed(key, prev, obj)
  }

  /** Stores obj under key; returns what it replaced, or UNCHANGED when that was the same content. */
  private put (key: string, obj: KObject): KObject | undefined | typeof UNCHANGED {
    let m = this.byKind.get(obj.kind)
    if (m === undefined) { m = new Map(); this.byKind.set(obj.kind, m) }
    const prev = m.get(key)
    if (prev !== undefined && (prev === obj || sameJSON(prev, obj))) return UNCHANGED
    m.set(key, obj)
    if (prev === undefined) this.total++
    return prev
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
    this.index(key, prev, cur)
    this.emit(kind, [{ prev, cur, revision: ++this.rev }])
  }

  private index (key: string, prev: KObject | undefined, cur: KObject | undefined): void {
    switch ((cur ?? prev)?.kind) {
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
      case 'Node': case undefined: break
    }
  }

  /** Hands `changes` (all of `kind`, revisions ascending) to each listener in registration order. */
  private emit (kind: Kind, changes: ReadonlyArray<Change<Kind>>): void {
    for (const l of this.listeners.get(kind) ?? []) {
      if (l.batch !== undefined) l.batch(changes)
      else if (l.one !== undefined) for (const c of changes) l.one(c.prev, c.cur, c.revision)
    }
  }
}

const UNCHANGED = Symbol('unchanged')

function keyOf (kind: Kind, namespace: string | undefined, name: string): string {
  return objectKey({ kind, metadata: namespace !== undefined && namespace !== '' ? { name, namespace } : { name } })
}
