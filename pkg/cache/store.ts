// The cluster cache: the one place downstream components read cluster state from. It receives a
// source's calls, drops no-op updates and tells listeners (prev, cur) per object. Objects are indexed by
// kind, so list(kind) and count(kind) cost the objects of that kind, never the whole cluster.
import { objectKey, type KObject, type Kind } from '../api/types.js'
import type { FerryError } from '../errors/errors.js'
import type { SourceHandler } from '../source/source.js'
import { sameJSON } from './same.js'

export type ChangeListener = (prev: KObject | undefined, cur: KObject | undefined) => void

export interface StoreError { readonly time: string, readonly code: string, readonly message: string }

type ObjectOf<K extends Kind> = Extract<KObject, { kind: K }>

export class ClusterStore implements SourceHandler {
  /** kind → objectKey → object. */
  private readonly byKind = new Map<Kind, Map<string, KObject>>()
  private total = 0
  private readonly listeners = new Map<Kind, ChangeListener[]>()
  private readonly errorListeners: Array<(e: FerryError) => void> = []
  private readonly recentErrors: StoreError[] = []
  private syncedFlag = false

  on (kind: Kind, fn: ChangeListener): void {
    const l = this.listeners.get(kind) ?? []
    l.push(fn)
    this.listeners.set(kind, l)
  }

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

  get errors (): readonly StoreError[] { return this.recentErrors }

  replace (objects: KObject[]): void {
    // A key given twice counts once, with its last object.
    const next = new Map<string, KObject>()
    for (const o of objects) next.set(objectKey(o), o)
    // Deleting the entry being visited is safe in a Map iteration.
    for (const m of this.byKind.values()) {
      for (const [key, obj] of m) {
        if (!next.has(key)) { m.delete(key); this.total--; this.emit(obj, undefined) }
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
    this.emit(prev, obj)
  }

  remove (kind: Kind, namespace: string | undefined, name: string): void {
    const key = keyOf(kind, namespace, name)
    const m = this.byKind.get(kind)
    const prev = m?.get(key)
    if (m === undefined || prev === undefined) return
    m.delete(key)
    this.total--
    this.emit(prev, undefined)
  }

  error (err: FerryError): void {
    this.recentErrors.push({ time: new Date().toISOString(), code: err.code, message: err.message })
    if (this.recentErrors.length > 20) this.recentErrors.shift()
    for (const fn of this.errorListeners) fn(err)
  }

  private emit (prev: KObject | undefined, cur: KObject | undefined): void {
    const kind = (cur ?? prev)?.kind
    if (kind === undefined) return
    for (const fn of this.listeners.get(kind) ?? []) fn(prev, cur)
  }
}

function keyOf (kind: Kind, namespace: string | undefined, name: string): string {
  return objectKey({ kind, metadata: namespace !== undefined && namespace !== '' ? { name, namespace } : { name } })
}
