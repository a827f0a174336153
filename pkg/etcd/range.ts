// One page of a Range read for the source's listing, without etcd3's generic decoding. etcd3 turns each
// RangeResponse into plain objects through protobufjs (every key and value copied into its own Buffer,
// every revision made a string): at 20k keys that was ~90 ms of a start plus the garbage it leaves.
// Here the same Range goes over the same connection (the pool's host choice, TLS, login token and
// per-call deadline) and the reply is read by the small protobuf reader below, whose keys and values
// are views into the reply. Any failure of that path repeats the page through etcd3's own `kv.range`
// (its retries, re-login on an expired token, its typed errors), so errors look as they always did.
import type { Etcd3, ICallable, IRangeResponse } from 'etcd3'
import { Reader, putBytesField, putVarint, varintSize } from './wire.js'

export interface RangePageRequest {
  key: Buffer
  /** Exclusive end of the range. */
  rangeEnd: Buffer
  /** At most this many keys (0: no limit). */
  limit: number
  /** Read at this revision (0: the current one). */
  revision: number
}

export interface RangeKV { key: Buffer, value: Buffer }

export interface RangePage {
  /** The revision the page was read at (the response header's). */
  revision: number
  /** More keys follow in the range. */
  more: boolean
  /** Keys in the whole range at that revision. */
  count: number
  kvs: RangeKV[]
}

const RANGE_METHOD = '/etcdserverpb.KV/Range'

type Pool = Pick<ICallable<unknown>, 'withConnection' | 'callOptionsFactory'>

/** etcd3 1.1.2 keeps its connection pool in KVClient's private `client`; absent in a test double. */
function poolOf (client: Etcd3): Pool | undefined {
  const pool = (client.kv as unknown as { client?: Partial<Pool> }).client
  return typeof pool?.withConnection === 'function' ? pool as Pool : undefined
}

/** Reads one page; see the header for why not `client.kv.range`. */
export async function rangePage (client: Etcd3, req: RangePageRequest): Promise<RangePage> {
  const pool = poolOf(client)
  if (pool !== undefined) {
    try {
      return await pool.withConnection('KV', async ({ client: grpc, metadata }) => {
        const f = pool.callOptionsFactory
        const options = typeof f === 'function' ? f({ service: 'KV', method: 'range', params: req, isStream: false }) : f
        return await new Promise<RangePage>((resolve, reject) => {
          grpc.makeUnaryRequest(RANGE_METHOD, encodeRangeRequest, decodeRangeResponse, req, metadata, options ?? {},
            (err, res) => { if (err !== null || res === undefined) reject(err ?? new Error('empty Range reply')); else resolve(res) })
        })
      })
    } catch {}
  }
  return fromRangeResponse(await client.kv.range({ key: req.key, range_end: req.rangeEnd, limit: req.limit, revision: req.revision }))
}

function fromRangeResponse (res: IRangeResponse): RangePage {
  return {
    revision: Number(res.header.revision),
    more: res.more,
    count: Number(res.count),
    kvs: res.kvs.map(kv => ({ key: kv.key, value: kv.value })),
  }
}

// ---- protobuf: RangeRequest and RangeResponse (etcd's rpc.proto and kv.proto) ----

/** RangeRequest{key=1, range_end=2, limit=3, revision=4}; zero numbers are left out, as proto3 does. */
export function encodeRangeRequest (r: RangePageRequest): Buffer {
  for (const [name, n] of [['limit', r.limit], ['revision', r.revision]] as const) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Range ${name} must be a non-negative integer, got ${n}`)
  }
  const size = 1 + varintSize(r.key.length) + r.key.length + 1 + varintSize(r.rangeEnd.length) + r.rangeEnd.length +
    (r.limit > 0 ? 1 + varintSize(r.limit) : 0) + (r.revision > 0 ? 1 + varintSize(r.revision) : 0)
  const buf = Buffer.allocUnsafe(size)
  let pos = putBytesField(buf, putBytesField(buf, 0, 1, r.key), 2, r.rangeEnd)
  if (r.limit > 0) { buf[pos] = 0x18; pos = putVarint(buf, pos + 1, r.limit) }
  if (r.revision > 0) { buf[pos] = 0x20; pos = putVarint(buf, pos + 1, r.revision) }
  return buf
}

/** RangeResponse{header=1{revision=3}, kvs=2{key=1, value=5}, more=3, count=4}; other fields skipped. */
export function decodeRangeResponse (buf: Buffer): RangePage {
  const out: RangePage = { revision: 0, more: false, count: 0, kvs: [] }
  const r = new Reader(buf, 0, buf.length)
  while (!r.done) {
    const tag = r.varint()
    const field = Math.floor(tag / 8)
    const wire = tag & 7
    if (field === 1 && wire === 2) {
      const h = new Reader(buf, r.bytes(), r.pos)
      while (!h.done) {
        const t = h.varint()
        if (t === 0x18) out.revision = h.varint()
        else h.skip(t & 7)
      }
    } else if (field === 2 && wire === 2) {
      out.kvs.push(readKV(buf, r.bytes(), r.pos))
    } else if (field === 3 && wire === 0) out.more = r.varint() !== 0
    else if (field === 4 && wire === 0) out.count = r.varint()
    else r.skip(wire)
  }
  return out
}

const EMPTY: Buffer = Buffer.alloc(0)

function readKV (buf: Buffer, start: number, end: number): RangeKV {
  const r = new Reader(buf, start, end)
  let key: Buffer = EMPTY
  let value: Buffer = EMPTY
  while (!r.done) {
    const t = r.varint()
    if (t === 0x0a) key = buf.subarray(r.bytes(), r.pos)
    else if (t === 0x2a) value = buf.subarray(r.bytes(), r.pos)
    else r.skip(t & 7)
  }
  return { key, value }
}
