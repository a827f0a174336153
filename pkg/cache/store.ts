// The cluster cache: the one place downstream components read cluster state from. It receives a
// source's calls, drops no-op updates and tells listeners (prev, cur) per object.
import { objectKey, type KObject, type Kind } from '../api/types.js'
import type { FerryError } from '../errors/errors.js'
import type { SourceHandler } from '../source/source.js'

export type ChangeListener = (prev: KObject | undefined, cur: KObject | undefined) => void

export interface StoreError { readonly time: string, readonly code: string, readonly message: string }

export class ClusterStore implements SourceHandler {
  private readonly objects = new Map<string, { obj: KObject, json: string }>()
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

  list<K extends Kind> (kind: K): Array<Extract<KObject, { kind: K }>> {
    const out: Array<Extract<KObject, { kind: K }>> = []
    for (const { obj } of this.objects.values()) if (obj.kind === kind) out.push(obj as Extract<KObject, { kind: K }>)
    return out
  }

  get<K extends Kind> (kind: K, namespace: string | undefined, name: string): Extract<KObject, { kind: K }> | undefined {
    return this.objects.get(keyOf(kind, namespace, name))?.obj as Extract<KObject, { kind: K }> | undefined
  }

  get size (): number { return this.objects.size }

  get errors (): readonly StoreError[] { return this.recentErrors }

  replace (objects: KObject[]): void {
    const next = new Map<string, KObject>()
    for (const o of objects) next.set(objectKey(o), o)
    for (const [key, { obj }] of [...this.objects]) {
      if (!next.has(key)) { this.objects.delete(key); this.emit(obj, undefined) }
    }
    for (const o of next.values()) this.upsert(o)
    this.syncedFlag = true
  }

  upsert (obj: KObject): void {
    const key = objectKey(obj)
    const json = JSON.stringify(obj)
    const prev = this.objects.get(key)
    if (prev !== undefined && prev.json === json) return
    this.objects.set(key, { obj, json })
    this.emit(prev?.obj, obj)
  }

  remove (kind: Kind, namespace: string | undefined, name: string): void {
    const key = keyOf(kind, namespace, name)
    const prev = this.objects.get(key)
    if (prev === undefined) return
    this.objects.delete(key)
    this.emit(prev.obj, undefined)
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
