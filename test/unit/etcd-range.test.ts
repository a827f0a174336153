// The source's own Range, Authenticate and Watch codecs against etcd's published messages (etcd3's copy of rpc.proto, read by
// protobufjs), and rangePage's fall-back to etcd3's kv.range when its own path is not available.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import t from 'tap'
import protobuf from 'protobufjs'
import type { Etcd3, IRangeResponse } from 'etcd3'
import { decodeAuthenticateResponse, encodeAuthenticateRequest } from '../../pkg/etcd/bare-client.js'
import { decodeRangeResponse, encodeRangeRequest, rangePage } from '../../pkg/etcd/range.js'
import { decodeWatchResponse, encodeWatchRequest } from '../../pkg/etcd/watch-codec.js'

const require = createRequire(import.meta.url)
const root = new protobuf.Root().loadSync(join(dirname(require.resolve('etcd3/package.json')), 'proto', 'rpc.proto'), { keepCase: true })
const RangeRequest = root.lookupType('etcdserverpb.RangeRequest')
const RangeResponse = root.lookupType('etcdserverpb.RangeResponse')

const key = Buffer.from('/ferry/v1/')
const rangeEnd = Buffer.from('/ferry/v10')

t.test('RangeRequest: key, range_end, limit and revision as etcd reads them; zeros left out', async t => {
  for (const [limit, revision] of [[1000, 0], [0, 0], [1, 1], [127, 128], [5000, 2 ** 40 + 3]]) {
    const buf = encodeRangeRequest({ key, rangeEnd, limit: limit ?? 0, revision: revision ?? 0 })
    const m = RangeRequest.toObject(RangeRequest.decode(buf), { longs: Number, defaults: true }) as Record<string, unknown>
    t.same([Buffer.from(m.key as Uint8Array).toString(), Buffer.from(m.range_end as Uint8Array).toString(), m.limit, m.revision],
      ['/ferry/v1/', '/ferry/v10', limit, revision], `limit ${limit}, revision ${revision}`)
    if (limit === 0 && revision === 0) t.equal(buf.length, 2 + key.length + 2 + rangeEnd.length, 'zeros are not sent')
  }
  t.throws(() => encodeRangeRequest({ key, rangeEnd, limit: -1, revision: 0 }), RangeError)
  t.throws(() => encodeRangeRequest({ key, rangeEnd, limit: 0, revision: 2 ** 60 }), RangeError)
})

t.test('RangeResponse: revision, more, count, keys and values; every other field skipped', async t => {
  const kvs = [
    { key: Buffer.from('/ferry/v1/nodes/a'), create_revision: 5, mod_revision: 9, version: 2, value: Buffer.from('{"kind":"Node"}'), lease: '9223372036854775807' },
    { key: Buffer.from('/ferry/v1/nodes/ü'), value: Buffer.alloc(0) }, // empty value: proto3 leaves the field out
    { key: Buffer.from('/ferry/v1/nodes/big'), value: Buffer.alloc(70_000, 0x61) }, // a 3-byte length
  ]
  const msg = RangeResponse.fromObject({
    header: { cluster_id: '18446744073709551615', member_id: '12345678901234567890', revision: 4_000_000_123, raft_term: 7 },
    kvs, more: true, count: 20_000,
  })
  const buf = Buffer.from(RangeResponse.encode(msg).finish())
  const page = decodeRangeResponse(buf)
  t.equal(page.revision, 4_000_000_123)
  t.equal(page.more, true)
  t.equal(page.count, 20_000)
  t.same(page.kvs.map(kv => [kv.key.toString(), kv.value.toString()]), kvs.map(kv => [kv.key.toString(), kv.value.toString()]))

  const empty = decodeRangeResponse(Buffer.from(RangeResponse.encode(RangeResponse.fromObject({ header: { revision: 1 } })).finish()))
  t.same(empty, { revision: 1, more: false, count: 0, kvs: [] }, 'no keys: defaults')

  for (const cut of [1, 5, buf.length - 3, buf.length - 1]) {
    t.throws(() => decodeRangeResponse(buf.subarray(0, cut)), RangeError, `truncated at ${cut} of ${buf.length} bytes`)
  }
  t.throws(() => decodeRangeResponse(Buffer.from([0x0b])), /wire type 3/, 'groups are not proto3')
})

const reply: IRangeResponse = {
  header: { cluster_id: '1', member_id: '2', revision: '42', raft_term: '3' },
  kvs: [{ key: Buffer.from('/ferry/v1/nodes/a'), value: Buffer.from('{}'), create_revision: '1', mod_revision: '1', version: '1', lease: '0' }],
  more: false,
  count: '1',
}

t.test('rangePage falls back to kv.range: without a connection pool, and when the pool path fails', async t => {
  const asked: unknown[] = []
  const kv = { range: async (req: unknown) => { asked.push(req); return reply } }
  const bare = { kv } as unknown as Etcd3
  const page = await rangePage(bare, { key, rangeEnd, limit: 10, revision: 7 })
  t.same({ ...page, kvs: page.kvs.map(k => k.key.toString()) }, { revision: 42, more: false, count: 1, kvs: ['/ferry/v1/nodes/a'] })
  t.same(asked, [{ key, range_end: rangeEnd, limit: 10, revision: 7 }], 'same request, same revision')

  let tried = 0
  const failing = { kv: Object.assign(kv, { client: { callOptionsFactory: undefined, withConnection: async () => { tried++; throw new Error('circuit open') } } }) } as unknown as Etcd3
  t.equal((await rangePage(failing, { key, rangeEnd, limit: 10, revision: 7 })).revision, 42)
  t.equal(tried, 1, 'the pool was tried first')
  t.equal(asked.length, 2, 'then kv.range, whose error (if any) is the one reported')
})

t.test('Authenticate request and reply, as etcd reads and writes them', async t => {
  const AuthenticateRequest = root.lookupType('etcdserverpb.AuthenticateRequest')
  const AuthenticateResponse = root.lookupType('etcdserverpb.AuthenticateResponse')
  const req = AuthenticateRequest.toObject(AuthenticateRequest.decode(encodeAuthenticateRequest({ username: 'rööt', password: 'p'.repeat(300) })))
  t.same(req, { name: 'rööt', password: 'p'.repeat(300) }, 'multi-byte name, a password over 127 bytes')
  const reply = AuthenticateResponse.encode(AuthenticateResponse.fromObject({ header: { revision: 9, member_id: '18446744073709551615' }, token: 'abc.123' })).finish()
  t.equal(decodeAuthenticateResponse(Buffer.from(reply)), 'abc.123')
  t.throws(() => decodeAuthenticateResponse(Buffer.alloc(0)), /no token/)
})

t.test('Watch: the create request and every response field, as etcd writes them', async t => {
  const WatchRequest = root.lookupType('etcdserverpb.WatchRequest')
  const WatchResponse = root.lookupType('etcdserverpb.WatchResponse')
  for (const [rev, notify] of [[0, false], [5, true], [2 ** 40, false]] as const) {
    const buf = encodeWatchRequest({ create_request: { key, range_end: rangeEnd, start_revision: rev, progress_notify: notify } })
    const m = WatchRequest.toObject(WatchRequest.decode(buf), { longs: Number, defaults: true }) as { create_request: Record<string, unknown> }
    const c = m.create_request
    t.same([Buffer.from(c.key as Uint8Array).toString(), Buffer.from(c.range_end as Uint8Array).toString(), c.start_revision, c.progress_notify],
      ['/ferry/v1/', '/ferry/v10', rev, notify], `start_revision ${rev}, progress_notify ${String(notify)}`)
  }
  t.throws(() => encodeWatchRequest({ cancel_request: { watch_id: 1 } }), TypeError, 'only create requests')
  t.throws(() => encodeWatchRequest({ create_request: { key, prev_kv: true } }), TypeError, 'no options the loop does not use')

  const kv = { key: Buffer.from('/ferry/v1/nodes/a'), create_revision: 3, mod_revision: 9, version: 2, value: Buffer.from('{}'), lease: '-1' }
  const msg = WatchResponse.fromObject({
    header: { cluster_id: '18446744073709551615', member_id: '9007199254740993', revision: 9, raft_term: 4 },
    watch_id: 0, created: true, canceled: true, compact_revision: 8, cancel_reason: 'gone', fragment: true,
    events: [{ type: 'Put', kv, prev_kv: { ...kv, mod_revision: 7 } }, { type: 'Delete', kv: { key: Buffer.from('/ferry/v1/nodes/b'), mod_revision: 9 } }],
  })
  const res = decodeWatchResponse(Buffer.from(WatchResponse.encode(msg).finish()))
  t.same(res.header, { cluster_id: '18446744073709551615', member_id: '9007199254740993', revision: '9', raft_term: '4' }, '64-bit ids exact')
  t.same([res.watch_id, res.created, res.canceled, res.compact_revision, res.cancel_reason, res.fragment], ['0', true, true, '8', 'gone', true])
  t.same(res.events.map(e => [e.type, e.kv.key.toString(), e.kv.value.toString(), e.kv.mod_revision, e.kv.create_revision, e.kv.version, e.kv.lease, e.prev_kv?.mod_revision]), [
    ['Put', '/ferry/v1/nodes/a', '{}', '9', '3', '2', '-1', '7'],
    ['Delete', '/ferry/v1/nodes/b', '', '9', '0', '0', '0', undefined],
  ], 'events in order, int64 fields signed')
  const progress = decodeWatchResponse(Buffer.from(WatchResponse.encode(WatchResponse.fromObject({ header: { revision: 12 } })).finish()))
  t.same([progress.header.revision, progress.events, progress.compact_revision, progress.canceled], ['12', [], '0', false], 'a progress notification')
})
