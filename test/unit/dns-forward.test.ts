// The forwarder against real upstream stubs on 127.0.0.1 ephemeral ports (DNS.md §4.1–4.4): failover,
// SERVFAIL within the deadline, TC → TCP, wrong IDs and questions, health checks, max_concurrent.
import dgram from 'node:dgram'
import net from 'node:net'
import t from 'tap'
import { Registry } from 'prom-client'
import { forwardPlugin, type ForwardOptions } from '../../pkg/dns/forward/forward.js'
import { cachePlugin } from '../../pkg/dns/cache/cache.js'
import { RCODE, type Query, type Reply, type Request } from '../../pkg/dns/message.js'
import { inspect } from './fixtures/dns-raw.js'

type Behaviour = (q: Buffer) => Buffer[] | 'hold'

/** The query's header and question with QR set, then `n` A records pointing at the question name. */
function reply (q: Buffer, opts: { n?: number, rcode?: number, tc?: boolean, id?: number } = {}): Buffer {
  const qend = inspect(q).questionEnd
  const n = opts.n ?? 1
  const head = Buffer.from(q.subarray(0, qend))
  head.writeUInt16BE(0x8180 | (opts.tc === true ? 0x0200 : 0) | (opts.rcode ?? 0), 2)
  head.writeUInt16BE(n, 6)
  head.writeUInt16BE(0, 8)
  head.writeUInt16BE(0, 10)
  if (opts.id !== undefined) head.writeUInt16BE(opts.id, 0)
  const rrs = Buffer.alloc(16 * n)
  for (let i = 0; i < n; i++) rrs.set([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, i >> 8, i & 0xff], 16 * i)
  return Buffer.concat([head, rrs])
}

interface Stub {
  readonly port: number
  readonly seen: Buffer[]
  behaviour: Behaviour
  /** Replies to queries held by 'hold'. */
  release (): void
  close (): Promise<void>
}

async function udpStub (behaviour: Behaviour, port = 0): Promise<Stub> {
  const sock = dgram.createSocket('udp4')
  await new Promise<void>(resolve => sock.bind(port, '127.0.0.1', resolve))
  const held: Array<[Buffer, dgram.RemoteInfo]> = []
  const stub: Stub = {
    port: sock.address().port,
    seen: [],
    behaviour,
    release () { for (const [q, r] of held.splice(0)) sock.send(reply(q), r.port, r.address) },
    close: async () => await new Promise<void>(resolve => sock.close(() => resolve())),
  }
  sock.on('message', (q, r) => {
    stub.seen.push(q)
    const out = stub.behaviour(q)
    if (out === 'hold') { held.push([q, r]); return }
    for (const m of out) sock.send(m, r.port, r.address)
  })
  return stub
}

async function tcpStub (behaviour: Behaviour, port: number): Promise<Stub> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer(c => {
    sockets.add(c)
    c.on('close', () => sockets.delete(c))
    let buf = Buffer.alloc(0)
    c.on('data', d => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0))
        buf = buf.subarray(2 + q.length)
        stub.seen.push(Buffer.from(q))
        const out = stub.behaviour(q)
        if (out === 'hold') continue
        for (const m of out) { const len = Buffer.alloc(2); len.writeUInt16BE(m.length); c.write(Buffer.concat([len, m])) }
      }
    })
  })
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  const addr = server.address() as net.AddressInfo
  const stub: Stub = {
    port: addr.port,
    seen: [],
    behaviour,
    release () {},
    close: async () => { for (const s of sockets) s.destroy(); await new Promise<void>(resolve => server.close(() => resolve())) },
  }
  return stub
}

/** A port nothing listens on (bound, read, then released). */
async function closedPort (): Promise<number> {
  const s = await udpStub(() => [])
  await s.close()
  return s.port
}

const answerOne: Behaviour = q => [reply(q)]
const silent: Behaviour = () => []

const request = (name = 'www.Example.com', proto: Request['proto'] = 'udp', id = 0x4242, edns?: { do: boolean }): Request => {
  const query: Query = {
    id, opcode: 0, rd: true, cd: false,
    question: { name, lname: name.toLowerCase(), type: 1, class: 1 },
    ...(edns !== undefined ? { edns: { udpSize: 1232, version: 0, do: edns.do } } : {}),
  }
  return { query, client: { address: '127.0.0.1', port: 40000 }, proto }
}

const fast: Partial<ForwardOptions> = { tryTimeoutMs: 150, overallTimeoutMs: 400, healthCheckIntervalMs: 20, healthCheckTimeoutMs: 50, policy: 'sequential' }
const up = (port: number): { host: string, port: number } => ({ host: '127.0.0.1', port })

function raw (r: Reply): Buffer {
  if (r.kind !== 'raw') throw new Error(`expected a raw reply, got rcode ${r.rcode}`)
  return Buffer.from(r.bytes)
}

function rcodeOf (r: Reply): number {
  return r.kind === 'raw' ? inspect(r.bytes).rcode : r.rcode
}

t.test('forwards over UDP: fresh ID upstream, client ID and case back, OPT 1232 keeping DO', async t => {
  const a = await udpStub(answerOne)
  const registry = new Registry()
  const fwd = forwardPlugin({ ...fast, upstreams: [up(a.port)], registry, udpSockets: 1 })
  t.teardown(async () => { fwd.close(); await a.close() })
  const handler = fwd(async () => { throw new Error('forward is the last link') })
  const ids = new Set<number>()
  for (let i = 0; i < 4; i++) {
    const r = raw(await handler(request('www.Example.com', 'udp', 0x4242, { do: true })))
    const v = inspect(r)
    t.equal(v.id, 0x4242, 'the client ID')
    t.equal(v.ancount, 1)
    t.equal(r.subarray(12, 29).toString('latin1'), '\x03www\x07Example\x03com\x00', 'the client case')
  }
  for (const q of a.seen) {
    ids.add(q.readUInt16BE(0))
    const v = inspect(q)
    t.equal(q.readUInt16BE(v.questionEnd + 3), 1232, 'advertises 1232')
    t.equal(q.readUInt32BE(v.questionEnd + 5) & 0x8000, 0x8000, 'DO kept')
  }
  t.ok(ids.size > 1, 'a fresh random ID per query')
  const text = await registry.metrics()
  t.match(text, new RegExp(`coredns_proxy_request_duration_seconds_count\\{proxy_name="forward",to="127.0.0.1:${a.port}",rcode="NOERROR"\\} 4`))
  t.match(text, /coredns_proxy_conn_cache_misses_total\{proxy_name="forward",to="[^"]+",proto="udp"\} 1\n/, 'one socket opened')
  t.match(text, /coredns_proxy_conn_cache_hits_total\{proxy_name="forward",to="[^"]+",proto="udp"\} 3\n/, 'and reused')
})

t.test('fails over from a closed port and from a silent upstream', async t => {
  const good = await udpStub(answerOne)
  const mute = await udpStub(silent)
  const closed = await closedPort()
  const fwd = forwardPlugin({ ...fast, upstreams: [up(closed), up(mute.port), up(good.port)] })
  t.teardown(async () => { fwd.close(); await good.close(); await mute.close() })
  const started = performance.now()
  const r = await fwd.handler(request())
  t.equal(rcodeOf(r), RCODE.NOERROR)
  t.equal(mute.seen.filter(q => inspect(q).question?.type === 1).length, 1, 'the silent one was tried once')
  const took = performance.now() - started
  // The NOERROR above already proves the failover beat the 400 ms deadline; the bound only catches a hang.
  t.ok(took >= 140 && took < 3000, `waited out one try, then moved on (${took.toFixed(0)} ms)`)
})

t.test('SERVFAIL within the deadline when every upstream is down', async t => {
  const mute = await udpStub(silent)
  const closed = await closedPort()
  for (const proto of ['udp', 'tcp'] as const) {
    const fwd = forwardPlugin({ ...fast, upstreams: [up(closed), up(mute.port)] })
    const started = performance.now()
    const r = await fwd.handler(request('x.example', proto))
    const took = performance.now() - started
    fwd.close()
    t.equal(rcodeOf(r), RCODE.SERVFAIL, proto)
    t.equal(r.kind, 'answer', 'a structured answer, so nobody caches it')
    t.ok(took < 3000, `${proto}: the 400 ms deadline ends it, not a hang (${took.toFixed(0)} ms)`)
  }
  await mute.close()
})

t.test('a truncated UDP answer is fetched again over TCP; TCP clients go over TCP', async t => {
  const u = await udpStub(q => [reply(q, { n: 0, tc: true })])
  const big: Behaviour = q => [reply(q, { n: 200 })]
  const tcp = await tcpStub(big, u.port)
  const fwd = forwardPlugin({ ...fast, upstreams: [up(u.port)] })
  t.teardown(async () => { fwd.close(); await u.close(); await tcp.close() })
  const r = raw(await fwd.handler(request('big.example')))
  const v = inspect(r)
  t.equal(v.ancount, 200, 'the full answer')
  t.notOk(v.tc)
  t.equal(v.id, 0x4242)
  t.equal(u.seen.length, 1)
  t.equal(tcp.seen.length, 1)
  const viaTcp = raw(await fwd.handler(request('big.example', 'tcp', 7)))
  t.equal(inspect(viaTcp).ancount, 200)
  t.equal(inspect(viaTcp).id, 7)
  t.equal(u.seen.length, 1, 'a TCP client never causes UDP upstream')
  t.equal(tcp.seen.length, 2)
})

t.test('a truncated answer is kept when TCP fails', async t => {
  const u = await udpStub(q => [reply(q, { n: 0, tc: true })])
  const fwd = forwardPlugin({ ...fast, upstreams: [up(u.port)] })
  t.teardown(async () => { fwd.close(); await u.close() })
  const v = inspect(raw(await fwd.handler(request())))
  t.ok(v.tc, 'the client sees TC and can retry over TCP itself')
})

t.test('replies with a wrong ID are ignored; a reply to another question is FORMERR', async t => {
  const u = await udpStub(q => [reply(q, { id: (q.readUInt16BE(0) + 1) & 0xffff, n: 9 }), reply(q)])
  const fwd = forwardPlugin({ ...fast, upstreams: [up(u.port)] })
  t.teardown(async () => { fwd.close(); await u.close() })
  t.equal(inspect(raw(await fwd.handler(request()))).ancount, 1, 'the wrong-ID reply (9 records) was skipped')
  u.behaviour = q => { const r = reply(q); r[13] = 0x78; return [r] } // first letter of the name changed
  const r = await fwd.handler(request())
  t.equal(r.kind === 'answer' && r.rcode, RCODE.FORMERR)
  u.behaviour = q => { const r = reply(q); r[2] = (r[2] as number) & 0x7f; return [r] } // QR clear
  t.equal(rcodeOf(await fwd.handler(request())), RCODE.FORMERR, 'not a response')
})

t.test('health: checks after an error, down after max_fails, up again on any reply', async t => {
  const u = await udpStub(silent)
  const other = await udpStub(answerOne)
  const fwd = forwardPlugin({ ...fast, upstreams: [up(u.port), up(other.port)], maxFails: 2, registry: new Registry() })
  t.teardown(async () => { fwd.close(); await u.close(); await other.close() })
  t.equal(rcodeOf(await fwd.handler(request())), RCODE.NOERROR, 'failed over')
  await waitFor(() => fwd.status()[0]?.down === true, 2000)
  t.ok((fwd.status()[0]?.fails ?? 0) > 2, 'more than max_fails failed checks')
  const probes = u.seen.filter(q => inspect(q).question?.type === 2)
  t.ok(probes.length >= 3, 'probes are . NS')
  t.equal(probes[0]?.readUInt16BE(2), 0x0100, 'RD=1')
  const before = u.seen.length
  t.equal(rcodeOf(await fwd.handler(request())), RCODE.NOERROR)
  t.equal(u.seen.filter(q => inspect(q).question?.type === 1).length, before - probes.length, 'a down upstream is skipped')
  u.behaviour = q => [reply(q, { rcode: RCODE.SERVFAIL, n: 0 })]
  await waitFor(() => fwd.status()[0]?.down === false, 2000)
  t.equal(fwd.status()[0]?.fails, 0, 'even a SERVFAIL reply is healthy')
})

t.test('all down: one is tried anyway', async t => {
  const u = await udpStub(silent)
  const registry = new Registry()
  const fwd = forwardPlugin({ ...fast, upstreams: [up(u.port)], maxFails: 1, registry })
  t.teardown(async () => { fwd.close(); await u.close() })
  await fwd.handler(request())
  await waitFor(() => fwd.status()[0]?.down === true, 2000)
  u.behaviour = answerOne
  t.equal(rcodeOf(await fwd.handler(request())), RCODE.NOERROR)
  t.match(await registry.metrics(), /coredns_forward_healthcheck_broken_total [1-9]/)
  t.match(await registry.metrics(), /coredns_proxy_healthcheck_failures_total\{proxy_name="forward",to="127\.0\.0\.1:\d+"\} [1-9]/)
})

t.test('max_concurrent: REFUSED beyond it', async t => {
  const u = await udpStub(() => 'hold')
  const registry = new Registry()
  const fwd = forwardPlugin({ ...fast, tryTimeoutMs: 2000, overallTimeoutMs: 3000, upstreams: [up(u.port)], maxConcurrent: 2, registry })
  t.teardown(async () => { fwd.close(); await u.close() })
  const first = [fwd.handler(request('a.example')), fwd.handler(request('b.example'))]
  const third = await fwd.handler(request('c.example'))
  t.equal(third.kind === 'answer' && third.rcode, RCODE.REFUSED)
  await waitFor(() => u.seen.length === 2, 1000)
  u.release()
  for (const r of await Promise.all(first)) t.equal(rcodeOf(r), RCODE.NOERROR)
  u.behaviour = answerOne
  t.equal(rcodeOf(await fwd.handler(request('d.example'))), RCODE.NOERROR, 'room again once they finished')
  t.match(await registry.metrics(), /coredns_forward_max_concurrent_rejects_total 1/)
})

async function waitFor (cond: () => boolean, ms: number): Promise<void> {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

t.test('cache in front of the forwarder: concurrent identical misses send one upstream query', async t => {
  const u = await udpStub(() => 'hold')
  const fwd = forwardPlugin({ ...fast, tryTimeoutMs: 2000, overallTimeoutMs: 3000, upstreams: [up(u.port)] })
  t.teardown(async () => { fwd.close(); await u.close() })
  const handler = cachePlugin()(fwd.handler)
  const pending = [1, 2, 3, 4, 5].map(id => handler(request('Same.Example', 'udp', id)))
  await waitFor(() => u.seen.length > 0, 1000)
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(u.seen.length, 1, 'one upstream query')
  u.release()
  const replies = (await Promise.all(pending)).map(r => inspect(raw(r)))
  t.same(replies.map(v => v.id), [1, 2, 3, 4, 5])
  t.ok(replies.every(v => v.ancount === 1))
  const hit = inspect(raw(await handler(request('same.example', 'udp', 6))))
  t.ok(hit.aa, 'then a hit, AA=1')
  t.equal(u.seen.length, 1)
})
