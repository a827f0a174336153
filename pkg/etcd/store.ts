// The write side of the etcd layout (ferryctl apply/delete/get). Every object is validated before
// anything is written. A batch that fits one etcd transaction (--max-txn-ops operations, --max-request-bytes)
// lands whole or not at all; a larger one is written in consecutive transactions, each guarded by the
// revisions just read, so it is NOT atomic across transactions: a failure names what was written.
import type { Etcd3, ICompare, IRequestOp } from 'etcd3'
import { objectKey, type KObject, type Kind } from '../api/types.js'
import { validateObject } from '../api/validate.js'
import { FerryError, errorMessage, isFerryError } from '../errors/errors.js'
import { describe, hint, type EtcdAccess, type EtcdAuth, type EtcdTLS } from './access.js'
import { DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, chunkByLimits, putCost, requestBudget, type Chunk } from './chunks.js'
import { connector, type ClientFactory } from './client.js'
import { decodeValue, encodeValue } from './codec.js'
import { displayName, keyFor, parseKey, prefixRangeEnd, resourcePrefix, type ParsedKey } from './keys.js'

export interface EtcdStoreOptions {
  /** Client URLs; userinfo (user:password@) is used as the login, never shown. */
  endpoints: string[]
  tls?: EtcdTLS | undefined
  auth?: EtcdAuth | undefined
  /** Key prefix; default "/ferry". */
  prefix?: string | undefined
  clientFactory?: ClientFactory
  requestTimeoutMs?: number
  /** etcd's --max-txn-ops (default 128): the most operations one transaction may carry. */
  maxTxnOps?: number | undefined
  /** etcd's --max-request-bytes (default 1.5 MiB); transactions are filled to about 90% of it. */
  maxRequestBytes?: number | undefined
}

export type ApplyAction = 'created' | 'configured' | 'unchanged'
export interface ApplyResult { key: string, object: KObject, action: ApplyAction }
export interface DeleteResult { key: string, target: ParsedKey, deleted: boolean }
export interface ListResult { objects: KObject[], errors: FerryError[] }
/** After each committed transaction: objects written (or deleted) so far, of how many, and in how many transactions. */
export interface Progress { done: number, total: number, txn: number, txns: number }
export interface WriteHooks { progress?: (p: Progress) => void }

/** A multi-transaction write stopped part way; `done` lists what was committed before the failure. */
export class PartialWriteError<T> extends FerryError {
  readonly done: T[]
  constructor (message: string, done: T[], details: Record<string, unknown>) {
    super('FERRY_ERR_SOURCE', message, details)
    this.done = done
  }
}

const CONFLICT_RETRIES = 5

interface Current { value: string, modRevision: string }

export class EtcdStore {
  /** The key prefix as given (keys.ts normalizes it), for callers that name keys themselves. */
  readonly prefix: string | undefined
  readonly maxTxnOps: number
  private readonly budget: number
  private readonly access: EtcdAccess
  private readonly client: Etcd3

  constructor (opts: EtcdStoreOptions) {
    if (opts.endpoints.length === 0) throw new FerryError('FERRY_ERR_CONFIG', 'etcd store: no endpoints given')
    this.prefix = opts.prefix
    this.maxTxnOps = opts.maxTxnOps ?? DEFAULT_MAX_TXN_OPS
    if (!Number.isInteger(this.maxTxnOps) || this.maxTxnOps < 1) throw new FerryError('FERRY_ERR_CONFIG', `--max-txn-ops: must be a positive integer, got ${this.maxTxnOps}`)
    const maxBytes = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES
    this.budget = requestBudget(maxBytes)
    if (!Number.isInteger(maxBytes) || this.budget < 4096) throw new FerryError('FERRY_ERR_CONFIG', `--max-request-bytes: must be an integer of at least 8192, got ${maxBytes}`)
    const conn = connector(opts)
    this.access = conn.access
    this.client = conn.client()
  }

  /** The endpoints as messages may show them (passwords redacted). */
  get shown (): readonly string[] { return this.access.shown }

  close (): void { this.client.close() }

  /**
   * Validates every object (throwing the first FerryError: nothing written), reads what is stored, then
   * writes the changed objects in as few transactions as etcd's limits allow, each guarded by the
   * revisions just read and retried on a concurrent write. Throws PartialWriteError when a transaction
   * fails after earlier ones committed.
   */
  async apply (objects: readonly unknown[], hooks: WriteHooks = {}): Promise<ApplyResult[]> {
    const valid = objects.map((o, i) => validateObject(o, `object ${i + 1}`))
    const seen = new Set<string>()
    for (const o of valid) {
      const k = objectKey(o)
      if (seen.has(k)) throw new FerryError('FERRY_ERR_DUPLICATE', `${k} is given more than once`, { key: k })
      seen.add(k)
    }
    const items = valid.map(object => {
      const key = keyFor(object, this.prefix)
      const value = encodeValue(object)
      const cost = putCost(key, value)
      if (cost > this.budget) {
        throw new FerryError('FERRY_ERR_INVALID_OBJECT',
          `${displayName({ kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name })}: ${Buffer.byteLength(value)} bytes stored is more than one etcd request may carry (${this.budget} of --max-request-bytes); nothing written`,
          { key })
      }
      return { key, value, cost, object }
    })
    if (items.length === 0) return []
    let current
    try { current = await this.read(items.map(it => it.key)) } catch (e) { throw this.partial('apply', e, [], items.length, 0, []) }
    const results: ApplyResult[] = items.map((it, i) => ({ key: it.key, object: it.object, action: actionFor(current[i], it.value) }))
    const pending = items.map((it, i) => ({ ...it, cur: current[i], result: results[i] as ApplyResult })).filter(p => p.result.action !== 'unchanged')
    const chunks = chunkByLimits(pending.map(p => p.cost), this.maxTxnOps, this.budget)
    const done: ApplyResult[] = []
    for (const [n, c] of chunks.entries()) {
      const part = pending.slice(c.start, c.end)
      try {
        for (let attempt = 1; ; attempt++) {
          const compare: ICompare[] = part.map(p => ({ key: Buffer.from(p.key), target: 'Mod', result: 'Equal', mod_revision: p.cur?.modRevision ?? '0' }))
          const success: IRequestOp[] = part.map(p => ({ request_put: { key: Buffer.from(p.key), value: Buffer.from(p.value) } }))
          const res = await this.wrap('apply', async () => await this.client.kv.txn({ compare, success, failure: [] }))
          if (res.succeeded) break
          if (attempt >= CONFLICT_RETRIES) throw new FerryError('FERRY_ERR_SOURCE', 'etcd apply: objects kept changing under us, try again')
          const again = await this.read(part.map(p => p.key)) // someone wrote in between: decide again
          part.forEach((p, i) => { p.cur = again[i]; p.result.action = actionFor(p.cur, p.value) })
        }
      } catch (e) {
        throw this.partial('apply', e, done, pending.length, n, chunks)
      }
      done.push(...part.map(p => p.result))
      hooks.progress?.({ done: done.length, total: pending.length, txn: n + 1, txns: chunks.length })
    }
    return results
  }

  /** Deletes objects (or keys in the layout), at most --max-txn-ops per transaction; reports which existed. */
  async delete (targets: ReadonlyArray<KObject | string>, hooks: WriteHooks = {}): Promise<DeleteResult[]> {
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
    const chunks = chunkByLimits(items.map(it => 2 * Buffer.byteLength(it.key) + 16), this.maxTxnOps, this.budget)
    const done: DeleteResult[] = []
    for (const [n, c] of chunks.entries()) {
      const part = items.slice(c.start, c.end)
      const success: IRequestOp[] = part.map(it => ({ request_delete_range: { key: Buffer.from(it.key) } }))
      let res
      try { res = await this.wrap('delete', async () => await this.client.kv.txn({ compare: [], success, failure: [] })) } catch (e) {
        throw this.partial('delete', e, done, items.length, n, chunks)
      }
      done.push(...part.map((it, i) => ({ ...it, deleted: Number(res.responses[i]?.response_delete_range?.deleted ?? 0) > 0 })))
      hooks.progress?.({ done: done.length, total: items.length, txn: n + 1, txns: chunks.length })
    }
    return done
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

  /** A failed transaction: rethrown as is when it was the first, else a PartialWriteError naming what landed. */
  private partial<T> (what: string, e: unknown, done: T[], total: number, failed: number, chunks: Chunk[]): FerryError {
    const err = isFerryError(e) ? e : new FerryError('FERRY_ERR_SOURCE', `etcd ${what} failed: ${describe(e)}`)
    if (failed === 0) return new FerryError(err.code, `${err.message}; nothing was ${what === 'apply' ? 'written' : 'deleted'}`, err.details)
    return new PartialWriteError(
      `etcd ${what}: transaction ${failed + 1} of ${chunks.length} failed (${err.message}); ` +
      `${done.length} of ${total} objects were ${what === 'apply' ? 'written' : 'deleted'}, the other ${total - done.length} were not. ` +
      'A batch over one transaction is not atomic; run the command again to finish',
      done, { done: done.length, total })
  }

  /** Current values of `keys`, read in transactions of at most --max-txn-ops range requests. */
  private async read (keys: string[]): Promise<Array<Current | undefined>> {
    const out: Array<Current | undefined> = []
    for (const c of chunkByLimits(keys.map(k => Buffer.byteLength(k) + 16), this.maxTxnOps, this.budget)) {
      const part = keys.slice(c.start, c.end)
      const success: IRequestOp[] = part.map(k => ({ request_range: { key: Buffer.from(k) } }))
      const res = await this.wrap('read', async () => await this.client.kv.txn({ compare: [], success, failure: [] }))
      part.forEach((_, i) => {
        const kv = res.responses[i]?.response_range?.kvs[0]
        out.push(kv === undefined ? undefined : { value: kv.value.toString('utf8'), modRevision: kv.mod_revision })
      })
    }
    return out
  }

  private async wrap<T> (what: string, fn: () => Promise<T>): Promise<T> {
    try { return await fn() } catch (e) {
      throw new FerryError('FERRY_ERR_SOURCE', `etcd ${what} failed: ${describe(e)}${hint(e, this.access)}`)
    }
  }
}

function actionFor (cur: Current | undefined, value: string): ApplyAction {
  return cur === undefined ? 'created' : cur.value === value ? 'unchanged' : 'configured'
}
