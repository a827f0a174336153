// The write side of the etcd layout (ferryctl apply/delete/get). Every object is validated before
// anything is written; apply and delete are each one etcd transaction, so a batch lands whole or not at all.
import type { Etcd3, ICompare, IRequestOp } from 'etcd3'
import { objectKey, type KObject, type Kind } from '../api/types.js'
import { validateObject } from '../api/validate.js'
import { FerryError, errorMessage, isFerryError } from '../errors/errors.js'
import { createClient, decodeValue, encodeValue, type ClientFactory } from './etcd-codec.js'
import { keyFor, parseKey, prefixRangeEnd, resourcePrefix, type ParsedKey } from './etcd-keys.js'

export interface EtcdStoreOptions {
  endpoints: string[]
  /** Key prefix; default "/ferry". */
  prefix?: string
  clientFactory?: ClientFactory
  requestTimeoutMs?: number
  /** etcd's --max-txn-ops (default 128): the most objects one apply or delete may carry. */
  maxTxnOps?: number
}

export type ApplyAction = 'created' | 'configured' | 'unchanged'
export interface ApplyResult { key: string, object: KObject, action: ApplyAction }
export interface DeleteResult { key: string, target: ParsedKey, deleted: boolean }
export interface ListResult { objects: KObject[], errors: FerryError[] }

const CONFLICT_RETRIES = 5

export class EtcdStore {
  private readonly prefix: string | undefined
  private readonly maxOps: number
  private readonly client: Etcd3

  constructor (opts: EtcdStoreOptions) {
    if (opts.endpoints.length === 0) throw new FerryError('FERRY_ERR_CONFIG', 'etcd store: no endpoints given')
    this.prefix = opts.prefix
    this.maxOps = opts.maxTxnOps ?? 128
    const factory = opts.clientFactory ?? ((eps: string[]) => createClient(eps, { requestTimeoutMs: opts.requestTimeoutMs }))
    this.client = factory(opts.endpoints)
  }

  close (): void { this.client.close() }

  /**
   * Validates every object (throwing the first FerryError: nothing written), then writes the changed ones
   * in one transaction guarded by the revisions just read, retrying if someone else wrote in between.
   */
  async apply (objects: readonly unknown[]): Promise<ApplyResult[]> {
    const valid = objects.map((o, i) => validateObject(o, `object ${i + 1}`))
    const seen = new Set<string>()
    for (const o of valid) {
      const k = objectKey(o)
      if (seen.has(k)) throw new FerryError('FERRY_ERR_DUPLICATE', `${k} is given more than once`, { key: k })
      seen.add(k)
    }
    this.checkSize(valid.length, 'apply')
    if (valid.length === 0) return []
    const keys = valid.map(o => keyFor(o, this.prefix))
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(keys)
      const compare: ICompare[] = []
      const success: IRequestOp[] = []
      const results: ApplyResult[] = valid.map((object, i) => {
        const key = keys[i] as string
        const value = encodeValue(object)
        const cur = current[i]
        compare.push({ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: cur?.modRevision ?? '0' })
        const action: ApplyAction = cur === undefined ? 'created' : cur.value === value ? 'unchanged' : 'configured'
        if (action !== 'unchanged') success.push({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })
        return { key, object, action }
      })
      if (success.length === 0) return results
      const res = await this.wrap('apply', async () => await this.client.kv.txn({ compare, success, failure: [] }))
      if (res.succeeded) return results
      if (attempt >= CONFLICT_RETRIES) throw new FerryError('FERRY_ERR_SOURCE', 'etcd apply: objects kept changing under us; nothing written, try again')
    }
  }

  /** Deletes objects (or keys in the layout) in one transaction; reports which existed. */
  async delete (targets: ReadonlyArray<KObject | string>): Promise<DeleteResult[]> {
    const items = targets.map((t, i): { key: string, target: ParsedKey } => {
      if (typeof t !== 'string') {
        const obj = validateObject(t, `object ${i + 1}`)
        return { key: keyFor(obj, this.prefix), target: { kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name } }
      }
      const p = parseKey(t, this.prefix)
      if (p === null) throw new FerryError('FERRY_ERR_CONFIG', `etcd key ${t}: not in ferry's key layout`, { key: t })
      return { key: t, target: p }
    })
    const keys = new Set<string>()
    for (const it of items) {
      if (keys.has(it.key)) throw new FerryError('FERRY_ERR_DUPLICATE', `${it.key} is given more than once`, { key: it.key })
      keys.add(it.key)
    }
    this.checkSize(items.length, 'delete')
    if (items.length === 0) return []
    const success: IRequestOp[] = items.map(it => ({ request_delete_range: { key: Buffer.from(it.key) } }))
    const res = await this.wrap('delete', async () => await this.client.kv.txn({ compare: [], success, failure: [] }))
    return items.map((it, i) => ({ ...it, deleted: Number(res.responses[i]?.response_delete_range?.deleted ?? 0) > 0 }))
  }

  /** Objects of one kind (in one namespace, or all); unreadable values come back as errors, not throws. */
  async list (kind: Kind, namespace?: string): Promise<ListResult> {
    const start = resourcePrefix(kind, this.prefix, namespace)
    const res = await this.wrap('list', async () => await this.client.kv.range({ key: Buffer.from(start), range_end: prefixRangeEnd(start) }))
    const out: ListResult = { objects: [], errors: [] }
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8')
      try { out.objects.push(decodeValue(key, kv.value, this.prefix)) } catch (e) {
        out.errors.push(isFerryError(e) ? e : new FerryError('FERRY_ERR_PARSE', `etcd key ${key}: ${errorMessage(e)}`, { origin: key }))
      }
    }
    return out
  }

  private checkSize (n: number, what: string): void {
    if (n > this.maxOps) {
      throw new FerryError('FERRY_ERR_CONFIG',
        `etcd ${what}: ${n} objects exceed one transaction's limit of ${this.maxOps} (etcd --max-txn-ops); split the input`)
    }
  }

  private async read (keys: string[]): Promise<Array<{ value: string, modRevision: string } | undefined>> {
    const success: IRequestOp[] = keys.map(k => ({ request_range: { key: Buffer.from(k) } }))
    const res = await this.wrap('read', async () => await this.client.kv.txn({ compare: [], success, failure: [] }))
    return keys.map((_, i) => {
      const kv = res.responses[i]?.response_range?.kvs[0]
      return kv === undefined ? undefined : { value: kv.value.toString('utf8'), modRevision: kv.mod_revision }
    })
  }

  private async wrap<T> (what: string, fn: () => Promise<T>): Promise<T> {
    try { return await fn() } catch (e) {
      throw new FerryError('FERRY_ERR_SOURCE', `etcd ${what} failed: ${errorMessage(e)}`, {}, { cause: e })
    }
  }
}
