// The Watch messages the bare client (bare-client.ts) sends and reads, in etcd3's object shapes so the
// watch loop (watch.ts) and its callers cannot tell which client carried them. Only a create request is
// ever sent (watch.ts opens one watcher per stream); every response field is decoded, 64-bit numbers as
// decimal strings like etcd3's.
import type { IEvent, IKeyValue, IResponseHeader, IWatchRequest, IWatchResponse } from 'etcd3'
import { Reader, putBytesField, putVarint, varintSize } from './wire.js'

/** WatchRequest{create_request=1{key=1, range_end=2, start_revision=3, progress_notify=4}}. */
export function encodeWatchRequest (req: IWatchRequest): Buffer {
  const c = req.create_request
  if (c === undefined || req.cancel_request !== undefined || req.progress_request !== undefined ||
    (c.filters !== undefined && c.filters.length > 0) || c.prev_kv === true || c.watch_id !== undefined) {
    throw new TypeError('bare etcd watch: only a plain create_request is supported')
  }
  const key = c.key ?? Buffer.alloc(0)
  const end = c.range_end ?? Buffer.alloc(0)
  const rev = Number(c.start_revision ?? 0)
  if (!Number.isSafeInteger(rev) || rev < 0) throw new RangeError(`watch start_revision must be a non-negative integer, got ${String(c.start_revision)}`)
  const inner = 1 + varintSize(key.length) + key.length + 1 + varintSize(end.length) + end.length +
    (rev > 0 ? 1 + varintSize(rev) : 0) + (c.progress_notify === true ? 2 : 0)
  const buf = Buffer.allocUnsafe(inner + 1 + varintSize(inner))
  let pos = putVarint(buf, putVarint(buf, 0, 0x0a), inner)
  pos = putBytesField(buf, putBytesField(buf, pos, 1, key), 2, end)
  if (rev > 0) { buf[pos] = 0x18; pos = putVarint(buf, pos + 1, rev) }
  if (c.progress_notify === true) { buf[pos++] = 0x20; buf[pos++] = 1 }
  return buf.subarray(0, pos)
}

/** WatchResponse{header=1, watch_id=2, created=3, canceled=4, compact_revision=5, cancel_reason=6, fragment=7, events=11}. */
export function decodeWatchResponse (buf: Buffer): IWatchResponse {
  const out: IWatchResponse = {
    header: { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' },
    watch_id: '0', created: false, canceled: false, compact_revision: '0', cancel_reason: '', fragment: false, events: [],
  }
  const r = new Reader(buf, 0, buf.length)
  while (!r.done) {
    const t = r.varint()
    switch (t) {
      case 0x0a: out.header = readHeader(buf, r.bytes(), r.pos); break
      case 0x10: out.watch_id = r.varintString(true); break
      case 0x18: out.created = r.varint() !== 0; break
      case 0x20: out.canceled = r.varint() !== 0; break
      case 0x28: out.compact_revision = r.varintString(true); break
      case 0x32: out.cancel_reason = buf.toString('utf8', r.bytes(), r.pos); break
      case 0x38: out.fragment = r.varint() !== 0; break
      case 0x5a: out.events.push(readEvent(buf, r.bytes(), r.pos)); break
      default: r.skip(t & 7)
    }
  }
  return out
}

function readHeader (buf: Buffer, start: number, end: number): IResponseHeader {
  const h: IResponseHeader = { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' }
  const r = new Reader(buf, start, end)
  while (!r.done) {
    const t = r.varint()
    if (t === 0x08) h.cluster_id = r.varintString(false)
    else if (t === 0x10) h.member_id = r.varintString(false)
    else if (t === 0x18) h.revision = r.varintString(true)
    else if (t === 0x20) h.raft_term = r.varintString(false)
    else r.skip(t & 7)
  }
  return h
}

function readEvent (buf: Buffer, start: number, end: number): IEvent {
  let type: IEvent['type'] = 'Put'
  let kv: IKeyValue | undefined
  let prev: IKeyValue | undefined
  const r = new Reader(buf, start, end)
  while (!r.done) {
    const t = r.varint()
    if (t === 0x08) {
      const n = r.varint()
      if (n !== 0 && n !== 1) throw new RangeError(`watch event: unknown type ${n}`)
      type = n === 0 ? 'Put' : 'Delete'
    } else if (t === 0x12) kv = readKeyValue(buf, r.bytes(), r.pos)
    else if (t === 0x1a) prev = readKeyValue(buf, r.bytes(), r.pos)
    else r.skip(t & 7)
  }
  // A copy: the event outlives this reply (the source keeps nothing of it, but callers may).
  return { type, kv: kv ?? emptyKV(), ...(prev !== undefined ? { prev_kv: prev } : {}) } as IEvent
}

function emptyKV (): IKeyValue {
  return { key: Buffer.alloc(0), create_revision: '0', mod_revision: '0', version: '0', value: Buffer.alloc(0), lease: '0' }
}

function readKeyValue (buf: Buffer, start: number, end: number): IKeyValue {
  const kv = emptyKV()
  const r = new Reader(buf, start, end)
  while (!r.done) {
    const t = r.varint()
    if (t === 0x0a) kv.key = Buffer.from(buf.subarray(r.bytes(), r.pos))
    else if (t === 0x10) kv.create_revision = r.varintString(true)
    else if (t === 0x18) kv.mod_revision = r.varintString(true)
    else if (t === 0x20) kv.version = r.varintString(true)
    else if (t === 0x2a) kv.value = Buffer.from(buf.subarray(r.bytes(), r.pos))
    else if (t === 0x30) kv.lease = r.varintString(true)
    else r.skip(t & 7)
  }
  return kv
}
