// watchPrefix over a fake Watch stream: the request it sends, the callbacks in order, and how each kind of
// end settles it exactly once with the stream cancelled.
import { EventEmitter } from 'node:events'
import type { Etcd3, IEvent, IWatchRequest, IWatchResponse } from 'etcd3'
import t from 'tap'
import { watchPrefix } from '../../pkg/etcd/watch.js'

class FakeStream extends EventEmitter {
  readonly written: IWatchRequest[] = []
  cancels = 0
  write (req: IWatchRequest): boolean { this.written.push(req); return true }
  cancel (): void { this.cancels++ }
}

function fakeClient (): { client: Etcd3, stream: FakeStream, ready: Promise<FakeStream> } {
  const stream = new FakeStream()
  let opened!: (s: FakeStream) => void
  const ready = new Promise<FakeStream>(resolve => { opened = resolve })
  const client = { watchClient: { watch: async () => { opened(stream); return stream } } } as unknown as Etcd3
  return { client, stream, ready }
}

const res = (o: Partial<IWatchResponse>): IWatchResponse =>
  ({ header: { revision: '7' }, created: false, canceled: false, compact_revision: '0', cancel_reason: '', events: [], ...o }) as unknown as IWatchResponse
const put = (key: string): IEvent => ({ type: 'Put', kv: { key: Buffer.from(key), value: Buffer.from('v'), mod_revision: '7' } }) as unknown as IEvent

t.test('sends one create request and reports created, then every response in order', async t => {
  const { client, ready } = fakeClient()
  const seen: string[] = []
  const w = watchPrefix(client, {
    prefix: '/p/', fromRevision: 5, progressNotify: true,
    created: () => { seen.push('created') },
    events: (evs, r) => { seen.push(`${evs.map(e => e.kv.key.toString()).join(',')}@${r.header.revision}`) },
  })
  const s = await ready
  await new Promise(resolve => setImmediate(resolve))
  t.equal(s.written.length, 1)
  const cr = s.written[0]?.create_request
  t.same([cr?.key?.toString(), cr?.range_end?.toString(), cr?.start_revision, cr?.progress_notify], ['/p/', '/p0', 5, true])
  s.emit('data', res({ created: true }))
  s.emit('data', res({ events: [put('/p/a'), put('/p/b')] }))
  s.emit('data', res({ header: { revision: '9' } as IWatchResponse['header'] }))
  t.same(seen, ['created', '@7', '/p/a,/p/b@7', '@9'])
  w.stop()
  t.equal(await w.done, 'stopped')
  t.equal(s.cancels, 1, 'stream cancelled')
})

t.test('without progressNotify the request does not ask for it', async t => {
  const { client, ready } = fakeClient()
  const w = watchPrefix(client, { prefix: '/p/', fromRevision: 1, events: () => {} })
  const s = await ready
  await new Promise(resolve => setImmediate(resolve))
  t.notOk('progress_notify' in (s.written[0]?.create_request ?? {}))
  w.stop()
  t.equal(await w.done, 'stopped')
})

t.test('each end settles once and cancels the stream', async t => {
  const cases: Array<[string, (s: FakeStream) => void, string | RegExp]> = [
    ['compaction', s => { s.emit('data', res({ compact_revision: '4' })) }, 'compacted'],
    ['canceled with a reason', s => { s.emit('data', res({ canceled: true, cancel_reason: 'auth' })) }, /^watch canceled by etcd: auth$/],
    ['canceled without one', s => { s.emit('data', res({ canceled: true })) }, /no reason given/],
    ['stream error', s => { s.emit('error', new Error('boom')) }, /^boom$/],
    ['stream end', s => { s.emit('end') }, /watch stream ended/],
  ]
  for (const [name, end, want] of cases) {
    const { client, ready } = fakeClient()
    let after = 0
    const w = watchPrefix(client, { prefix: '/p/', fromRevision: 1, events: () => { after++ } })
    const s = await ready
    await new Promise(resolve => setImmediate(resolve))
    end(s)
    s.emit('data', res({ events: [put('/p/late')] })) // ignored once settled
    s.emit('end')
    w.stop()
    if (typeof want === 'string') t.equal(await w.done, want, name)
    else await t.rejects(w.done, { message: want }, name)
    t.equal(s.cancels, 1, `${name}: cancelled once`)
    t.equal(after, 0, `${name}: nothing delivered after the end`)
  }
})

t.test('stop before the stream exists ends it as soon as it opens', async t => {
  const { client, stream } = fakeClient()
  const w = watchPrefix(client, { prefix: '/p/', fromRevision: 1, events: () => {} })
  w.stop()
  t.equal(await w.done, 'stopped')
  t.equal(stream.cancels, 1)
  t.equal(stream.written.length, 0, 'no watch created')
})
