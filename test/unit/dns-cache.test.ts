// The response cache (DNS.md §4.5–4.6, §4.8) with an injected clock and a fake next link: TTL countdown,
// clamps, negative caching, what is never cached, coalescing, eviction, client ID/case, metrics.
import t from 'tap'
import { Registry } from 'prom-client'
import { cachePlugin, type CacheOptions } from '../../pkg/dns/cache/cache.js'
import { RandomStore } from '../../pkg/dns/cache/store.js'
import { RCODE, answer, type Handler, type Query, type Reply, type Request } from '../../pkg/dns/message.js'
import { inspect } from './fixtures/dns-raw.js'

interface Shape {
  rcode?: number
  /** TTLs of the A records in the answer section. */
  answers?: number[]
  /** An SOA in authority: its TTL and MINIMUM. */
  soa?: [number, number]
  tc?: boolean
  opt?: boolean
  /** RA (default set, as from a recursive resolver). */
  ra?: boolean
}

function encodeName (name: string): Buffer {
  const parts = name === '' ? [] : name.split('.')
  return Buffer.concat([...parts.map(l => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])])
}

/** An upstream-style reply to `q` with ID 0xdead (the cache must put the client's back). */
function upstreamReply (q: Query, s: Shape): Uint8Array {
  const answers = s.answers ?? []
  const head = Buffer.alloc(12)
  head.writeUInt16BE(0xdead, 0)
  head.writeUInt16BE(0x8100 | (s.ra === false ? 0 : 0x0080) | (s.tc === true ? 0x0200 : 0) | (s.rcode ?? 0), 2)
  head.writeUInt16BE(1, 4)
  head.writeUInt16BE(answers.length, 6)
  head.writeUInt16BE(s.soa !== undefined ? 1 : 0, 8)
  head.writeUInt16BE(s.opt === true ? 1 : 0, 10)
  const question = Buffer.concat([encodeName(q.question.lname), Buffer.from([0, q.question.type, 0, 1])])
  const rrs = answers.map((ttl, i) => {
    const rr = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0, 0, i])
    rr.writeUInt32BE(ttl, 6)
    return rr
  })
  const soa: Buffer[] = []
  if (s.soa !== undefined) {
    const rr = Buffer.alloc(11 + 22)
    rr.writeUInt16BE(6, 1); rr.writeUInt16BE(1, 3); rr.writeUInt32BE(s.soa[0], 5); rr.writeUInt16BE(22, 9)
    rr.writeUInt32BE(s.soa[1], 11 + 18)
    soa.push(rr)
  }
  const opt = s.opt === true ? [Buffer.from([0, 0, 41, 4, 208, 0, 0, 0x80, 0, 0, 0])] : []
  return Buffer.concat([head, question, ...rrs, ...soa, ...opt])
}

let nextId = 1
const request = (name = 'www.example.com', opts: { type?: number, do?: boolean, cd?: boolean } = {}): Request => ({
  query: {
    id: nextId++ & 0xffff, opcode: 0, rd: true, cd: opts.cd ?? false,
    question: { name, lname: name.toLowerCase(), type: opts.type ?? 1, class: 1 },
    ...(opts.do !== undefined ? { edns: { udpSize: 1232, version: 0, do: opts.do } } : {}),
  },
  client: { address: '10.0.0.1', port: 5353 },
  proto: 'udp',
})

/** A fake upstream answering every request with `shape` and counting the calls. */
function fakeNext (shape: Shape | ((req: Request) => Shape)): Handler & { calls: number } {
  const h = Object.assign((req: Request): Reply => {
    h.calls++
    const s = typeof shape === 'function' ? shape(req) : shape
    return { kind: 'raw', bytes: upstreamReply(req.query, s) }
  }, { calls: 0 })
  return h
}

function setup (shape: Shape | ((req: Request) => Shape), opts: CacheOptions = {}): { handler: Handler, next: ReturnType<typeof fakeNext>, clock: { ms: number }, cache: ReturnType<typeof cachePlugin> } {
  const clock = { ms: 1_000_000 }
  const next = fakeNext(shape)
  const cache = cachePlugin({ now: () => clock.ms, ...opts })
  return { handler: cache(next), next, clock, cache }
}

function view (r: Reply): { ttls: number[], id: number, aa: boolean, rcode: number, bytes: Buffer } {
  if (r.kind !== 'raw') throw new Error('expected a raw reply')
  const b = Buffer.from(r.bytes)
  const v = inspect(b)
  return { ttls: v.ttlOffsets.map(o => b.readUInt32BE(o)), id: v.id, aa: v.aa, rcode: v.rcode, bytes: b }
}

t.test('a hit counts down from the stored TTL (the min over RRs), with AA and the client ID', async t => {
  const { handler, next, clock } = setup({ answers: [300, 120, 600], opt: true })
  const first = request()
  const miss = view(await handler(first))
  t.same(miss.ttls, [120, 120, 120], 'the first reply already shows the stored TTL on every RR')
  t.equal(miss.id, first.query.id)
  t.notOk(miss.aa, 'a miss keeps the upstream AA')
  clock.ms += 45_500
  const again = request()
  const hit = view(await handler(again))
  t.equal(next.calls, 1, 'served from the cache')
  t.same(hit.ttls, [75, 75, 75], '120 − 45 s')
  t.equal(hit.id, again.query.id)
  t.ok(hit.aa, 'AA=1 on hits')
  t.equal(hit.bytes.readUInt16BE(hit.bytes.length - 4) & 0x8000, 0x8000, 'OPT flags untouched (not a TTL)')
  clock.ms += 74_000
  t.same(view(await handler(request())).ttls, [1, 1, 1])
  clock.ms += 1000
  t.same(view(await handler(request())).ttls, [120, 120, 120], 'expired: fetched again')
  t.equal(next.calls, 2)
})

t.test('a hit keeps the upstream\'s RA, set or clear; AA is the only flag it adds', async t => {
  for (const ra of [true, false]) {
    const { handler, next } = setup(req => req.query.question.lname === 'nx.example' ? { rcode: RCODE.NXDOMAIN, soa: [60, 60], ra } : { answers: [60], ra })
    for (const name of ['www.example.com', 'nx.example']) {
      const miss = inspect(view(await handler(request(name))).bytes)
      const hit = inspect(view(await handler(request(name))).bytes)
      t.equal(miss.ra, ra, `${name}, upstream RA=${Number(ra)}: the miss`)
      t.equal(hit.ra, ra, `${name}, upstream RA=${Number(ra)}: the hit`)
      t.match(hit, { aa: true, rd: true, tc: false, cd: false }, `${name}: AA added, nothing else`)
    }
    t.equal(next.calls, 2, 'both served from the cache the second time')
  }
})

t.test('TTL clamps', async t => {
  const cases: Array<[string, Shape, CacheOptions, number]> = [
    ['success floor 5', { answers: [0] }, {}, 5],
    ['success ceiling 3600', { answers: [86400] }, {}, 3600],
    ['denial ceiling 1800', { rcode: RCODE.NXDOMAIN, soa: [86400, 86400] }, {}, 1800],
    ['cache N caps success', { answers: [86400] }, { maxTtl: 30 }, 30],
    ['cache N caps denial', { rcode: RCODE.NXDOMAIN, soa: [600, 600] }, { maxTtl: 30 }, 30],
    ['denial lives min(SOA TTL, MINIMUM)', { rcode: RCODE.NXDOMAIN, soa: [3600, 60] }, {}, 60],
    ['no records: 5 s', { answers: [] }, {}, 5],
    ['a zeroed floor keeps TTL 0 uncached', { answers: [0] }, { minTtl: 0 }, -1],
  ]
  for (const [name, shape, opts, want] of cases) {
    const { handler, next } = setup(shape, opts)
    const r = view(await handler(request()))
    await handler(request())
    if (want < 0) { t.equal(next.calls, 2, name); continue }
    t.equal(next.calls, 1, `${name}: cached`)
    if (r.ttls.length > 0) t.equal(r.ttls[0], want, name)
  }
})

t.test('negative caching: NXDOMAIN and NODATA with SOA go to the denial cache', async t => {
  for (const [name, shape] of [['NXDOMAIN', { rcode: RCODE.NXDOMAIN, soa: [300, 30] }], ['NODATA', { soa: [300, 30] }]] as Array<[string, Shape]>) {
    const registry = new Registry()
    const { handler, next, clock, cache } = setup(shape, { registry })
    t.same(view(await handler(request())).ttls, [30], `${name}: SOA shown at the stored TTL`)
    clock.ms += 10_000
    const hit = view(await handler(request()))
    t.same(hit.ttls, [20], name)
    t.equal(hit.rcode, shape.rcode ?? 0)
    t.equal(next.calls, 1)
    t.same(cache.size(), { success: 0, denial: 1 })
    const text = await registry.metrics()
    t.match(text, /coredns_cache_hits_total\{server="dns:\/\/:53",type="denial",zones="\.",view=""\} 1/)
    t.match(text, /coredns_cache_entries\{server="dns:\/\/:53",type="denial",zones="\.",view=""\} 1/)
    t.match(text, /coredns_cache_misses_total\{server="dns:\/\/:53",zones="\.",view=""\} 1/)
    t.match(text, /coredns_cache_requests_total\{server="dns:\/\/:53",zones="\.",view=""\} 2/)
  }
})

t.test('SERVFAIL from upstream is kept 5 s', async t => {
  const { handler, next, clock } = setup({ rcode: RCODE.SERVFAIL })
  await handler(request())
  clock.ms += 4_999
  t.equal(view(await handler(request())).rcode, RCODE.SERVFAIL)
  t.equal(next.calls, 1)
  clock.ms += 1
  await handler(request())
  t.equal(next.calls, 2, 'refetched after 5 s')
})

t.test('never cached: TC, REFUSED, FORMERR, NXDOMAIN without SOA, structured answers', async t => {
  const cases: Array<[string, Shape]> = [
    ['truncated', { answers: [300], tc: true }],
    ['REFUSED', { rcode: RCODE.REFUSED }],
    ['FORMERR', { rcode: RCODE.FORMERR }],
    ['NXDOMAIN without SOA', { rcode: RCODE.NXDOMAIN }],
  ]
  for (const [name, shape] of cases) {
    const { handler, next, cache } = setup(shape)
    const r = view(await handler(request()))
    await handler(request())
    t.equal(next.calls, 2, name)
    t.same(cache.size(), { success: 0, denial: 0 }, name)
    if (shape.answers !== undefined) t.same(r.ttls, shape.answers, `${name}: TTLs untouched`)
  }
  let calls = 0
  const handler = cachePlugin()(() => { calls++; return answer(RCODE.SERVFAIL, [], [], [], false) })
  const r = await handler(request())
  await handler(request())
  t.equal(r.kind, 'answer', 'ferry\'s own SERVFAIL passes through')
  t.equal(calls, 2, 'and is not cached')
})

t.test('key: name case-insensitive, type, DO and CD apart; the client case is copied into hits', async t => {
  const { handler, next } = setup({ answers: [60] })
  await handler(request('www.example.com'))
  const hit = view(await handler(request('WWW.Example.COM')))
  t.equal(next.calls, 1, 'case does not split the key')
  t.equal(hit.bytes.subarray(12, 29).toString('latin1'), '\x03WWW\x07Example\x03COM\x00', 'the client case')
  await handler(request('www.example.com', { type: 28 }))
  await handler(request('www.example.com', { do: true }))
  await handler(request('www.example.com', { cd: true }))
  t.equal(next.calls, 4, 'type, DO and CD each miss')
  await handler(request('www.example.com', { do: false }))
  t.equal(next.calls, 4, 'EDNS without DO shares the key of no EDNS')
})

t.test('coalescing: concurrent identical misses share one fetch, each gets its own ID', async t => {
  let release: () => void = () => {}
  let calls = 0
  const gate = new Promise<void>(resolve => { release = resolve })
  const next: Handler = async req => {
    calls++
    await gate
    return { kind: 'raw', bytes: upstreamReply(req.query, { answers: [60] }) }
  }
  const handler = cachePlugin({ now: () => 0 })(next)
  const reqs = [request('a.example'), request('A.EXAMPLE'), request('a.example'), request('b.example')]
  const pending = reqs.map(r => handler(r))
  await new Promise(resolve => setImmediate(resolve))
  t.equal(calls, 2, 'one fetch per distinct key')
  release()
  const replies = (await Promise.all(pending)).map(view)
  t.same(replies.map(r => r.id), reqs.map(r => r.query.id), 'each client its own ID')
  t.equal(replies[1]?.bytes.subarray(12, 23).toString('latin1'), '\x01A\x07EXAMPLE\x00', 'and its own case')
  t.not(replies[0]?.bytes, replies[2]?.bytes, 'separate buffers')
  t.equal(calls, 2)

  // Uncacheable replies are shared too, and a failed fetch fails every waiter once.
  let fails = 0
  const failing = cachePlugin()(async () => { fails++; await new Promise(resolve => setTimeout(resolve, 5)); throw new Error('boom') })
  const results = await Promise.allSettled([failing(request('c.example')), failing(request('c.example'))])
  t.same(results.map(r => r.status), ['rejected', 'rejected'])
  t.equal(fails, 1)
  await t.rejects(async () => await failing(request('c.example')), /boom/, 'not remembered')
  t.equal(fails, 2)
})

t.test('eviction keeps each cache within its bound', async t => {
  const registry = new Registry()
  const { handler, cache } = setup(req => req.query.question.lname.startsWith('n') ? { rcode: RCODE.NXDOMAIN, soa: [60, 60] } : { answers: [60] },
    { successCapacity: 10, denialCapacity: 3, registry })
  for (let i = 0; i < 25; i++) await handler(request(`s${i}.example`))
  for (let i = 0; i < 7; i++) await handler(request(`n${i}.example`))
  t.same(cache.size(), { success: 10, denial: 3 })
  const text = await registry.metrics()
  t.match(text, /coredns_cache_evictions_total\{server="dns:\/\/:53",type="success",zones="\.",view=""\} 15/)
  t.match(text, /coredns_cache_entries\{server="dns:\/\/:53",type="success",zones="\.",view=""\} 10/)
  cache.clear()
  t.same(cache.size(), { success: 0, denial: 0 })
})

t.test('RandomStore stays consistent through random deletes', async t => {
  let seed = 7
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
  const s = new RandomStore<number>(50, rnd)
  const model = new Map<string, number>()
  const wrong: string[] = []
  for (let i = 0; i < 2000; i++) {
    const k = `k${Math.floor(rnd() * 120)}`
    if (rnd() < 0.3) { if (s.delete(k) !== model.delete(k)) wrong.push(`delete ${k}`); continue }
    const before = [...model.keys()]
    s.set(k, i)
    if (!model.has(k) && model.size >= 50) {
      const gone = before.filter(x => s.get(x) === undefined)
      if (gone.length !== 1) wrong.push(`set ${k} evicted ${gone.length}`)
      model.delete(gone[0] as string)
    }
    model.set(k, i)
  }
  t.same(wrong, [], 'deletes agree with a model and each full insert evicts exactly one')
  t.equal(s.size, model.size)
  t.same([...model].filter(([k, v]) => s.get(k) !== v), [], 'same contents as the model')
  t.equal(new RandomStore<number>(0).set('a', 1), 0)
})
