// DnsServer over real sockets: a RecordIndex + kubernetesPlugin chain (with a stub `next` for forwarded
// names) behind UDP and TCP listeners on 127.0.0.1, queried with packets dns2 encodes and replies dns2
// decodes (the independent witness). Covers the server-level rules of DNS.md §5, EDNS sizes and
// truncation, 0x20 echo through the memoized encodings, upstream OPT scrubbing, handler failures and the
// CoreDNS metrics, and which replies carry RA.
import t, { type Test } from 'tap'
import { createSocket } from 'node:dgram'
import { connect, type Socket as TcpSocket } from 'node:net'
import { Packet } from 'dns2'
import { Registry } from 'prom-client'
import { cachePlugin } from '../../pkg/dns/cache/cache.js'
import { forwardPlugin } from '../../pkg/dns/forward/forward.js'
import { autopathPlugin } from '../../pkg/dns/kubernetes/autopath.js'
import { kubernetesPlugin } from '../../pkg/dns/kubernetes/handler.js'
import type { Handler, Reply, Request } from '../../pkg/dns/message.js'
import { createDnsMetrics } from '../../pkg/dns/metrics.js'
import { DnsServer } from '../../pkg/dns/server.js'
import { silentLogger } from '../../pkg/log/log.js'
import { clusterIndex, ep, port, slice, svc } from './fixtures/dns-cluster.js'
import { inspect } from './fixtures/dns-raw.js'

const S = 'shop.svc.cluster.local'
const BIG = 60

type Rr = InstanceType<typeof Packet>['answers'][number]
type Question = InstanceType<typeof Packet>['questions'][number]
const edns = Packet.Resource.EDNS as unknown as (rdata: object[], opts: object) => Rr

interface QueryOpts { id?: number, udpSize?: number, do?: boolean, version?: number, cls?: number, rd?: boolean }

/** A query encoded by dns2. */
function query (name: string, type: number, o: QueryOpts = {}): Buffer {
  const p = new Packet()
  Object.assign(p.header, { id: o.id ?? 0x1234, rd: o.rd === false ? 0 : 1 })
  p.questions.push({ name, type, class: o.cls ?? 1 } as Question)
  if (o.udpSize !== undefined || o.version !== undefined) p.additionals.push(edns([], { udpPayloadSize: o.udpSize ?? 1232, doFlag: o.do === true, version: o.version ?? 0 }))
  return p.toBuffer()
}

const COOKIE_NAME = 'cookie.example'
const THROW_NAME = 'boom.example'
const REJECT_NAME = 'reject.example'
const SLOW_NAME = 'slow.example'

/** An upstream-style reply to `q` (encoded by dns2), with an OPT carrying a COOKIE option appended. */
function upstreamReply (req: Request): Uint8Array {
  const q = req.query.question
  const p = new Packet()
  Object.assign(p.header, { id: 0xbeef, qr: 1, rd: 1, ra: 1 })
  p.questions.push({ name: q.name, type: q.type, class: 1 } as Question)
  p.answers.push({ name: q.name, type: Packet.TYPE.A, class: 1, ttl: 60, address: '203.0.113.9' } as Rr)
  const body = p.toBuffer()
  body.writeUInt16BE(1, 10)
  // OPT: root, type 41, size 4096, ext-rcode 0, version 0, DO, RDATA = COOKIE (10) with 8+8 octets.
  const cookie = Buffer.from('0123456789abcdef0011223344556677', 'hex')
  const opt = Buffer.alloc(11 + 4 + cookie.length)
  opt.writeUInt16BE(41, 1); opt.writeUInt16BE(4096, 3); opt.writeUInt16BE(0x8000, 7)
  opt.writeUInt16BE(4 + cookie.length, 9); opt.writeUInt16BE(10, 11); opt.writeUInt16BE(cookie.length, 13)
  cookie.copy(opt, 15)
  return Buffer.concat([body, opt])
}

/** What stands after the kubernetes link: a forwarder double. */
const next: Handler = (req: Request): Reply | Promise<Reply> => {
  const n = req.query.question.lname
  if (n === THROW_NAME) throw new Error('handler exploded')
  if (n === REJECT_NAME) return Promise.reject(new Error('async handler exploded'))
  if (n === COOKIE_NAME) return { kind: 'raw', bytes: upstreamReply(req) }
  if (n === SLOW_NAME) return new Promise(resolve => { setTimeout(() => { resolve({ kind: 'raw', bytes: upstreamReply(req) }) }, 150) })
  return Promise.resolve({ kind: 'raw', bytes: upstreamReply(req) })
}

interface Fixture { server: DnsServer, registry: Registry, port: number }

async function start (t: Test, timeouts: { tcpReadMs?: number, tcpIdleMs?: number } = {}): Promise<Fixture> {
  const index = clusterIndex()
  index.upsertService(svc('shop', 'big', { clusterIP: 'None', clusterIPs: ['None'], ports: [port('http', 80)] }))
  const eps = Array.from({ length: BIG }, (_, i) => ep(`10.0.7.${i + 1}`))
  index.upsertSlice(slice('shop', 'big-1', 'big', eps, [{ name: 'http', protocol: 'TCP', port: 8080 }]))
  const registry = new Registry()
  const metrics = createDnsMetrics(registry, 'dns://127.0.0.1:0', 'test')
  const server = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], handler: kubernetesPlugin(index)(next), metrics, log: silentLogger, tcpIdleMs: 2000, ...timeouts })
  await server.start()
  t.teardown(async () => { await server.stop() })
  const a = server.addresses()[0]
  if (a === undefined) throw new Error('no address')
  return { server, registry, port: a.port }
}

/** One datagram out, the reply (or null after `ms`). */
async function udp (port: number, msg: Uint8Array, ms = 500): Promise<Buffer | null> {
  const s = createSocket('udp4')
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { s.close(); resolve(null) }, ms)
    s.on('error', e => { clearTimeout(timer); s.close(); reject(e) })
    s.on('message', m => { clearTimeout(timer); s.close(); resolve(m) })
    s.send(msg, port, '127.0.0.1')
  })
}

/** A TCP connection that frames with the 2-octet length and collects whole reply frames. */
class Tcp {
  private readonly frames: Buffer[] = []
  private pending = Buffer.alloc(0)
  private waiter: (() => void) | null = null
  private constructor (readonly sock: TcpSocket) {
    sock.on('data', (b: Buffer) => {
      this.pending = Buffer.concat([this.pending, b])
      while (this.pending.length >= 2 && this.pending.length >= this.pending.readUInt16BE(0) + 2) {
        const len = this.pending.readUInt16BE(0)
        this.frames.push(this.pending.subarray(2, 2 + len))
        this.pending = this.pending.subarray(2 + len)
      }
      this.waiter?.()
    })
  }

  static async open (port: number): Promise<Tcp> {
    const sock = connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    return new Tcp(sock)
  }

  send (...msgs: Uint8Array[]): void {
    this.sock.write(Buffer.concat(msgs.flatMap(m => { const l = Buffer.alloc(2); l.writeUInt16BE(m.length); return [l, Buffer.from(m)] })))
  }

  async read (n: number, ms = 1000): Promise<Buffer[]> {
    const end = Date.now() + ms
    while (this.frames.length < n && Date.now() < end) {
      await new Promise<void>(resolve => { this.waiter = resolve; setTimeout(resolve, 20) })
    }
    return this.frames.splice(0, n)
  }

  close (): void { this.sock.destroy() }
}

function decode (b: Buffer | null | undefined): InstanceType<typeof Packet> {
  if (b === null || b === undefined) throw new Error('no reply')
  return Packet.parse(b)
}

/** The OPT record of a reply as raw octets (the last record), or null; dns2 drops unknown options. */
function optBytes (b: Buffer): Buffer | null {
  const p = decode(b)
  if (!p.additionals.some(r => r.type === 41)) return null
  // ferry's OPT is written last; with no options it is 11 octets (anything else fails the caller's checks).
  const tail = b.subarray(b.length - 11)
  if (tail[0] !== 0 || tail.readUInt16BE(1) !== 41) throw new Error('OPT is not the last 11 octets')
  return tail
}

async function counter (registry: Registry, name: string): Promise<Array<{ labels: Record<string, string | number>, value: number }>> {
  const m = registry.getSingleMetric(name)
  if (m === undefined) return []
  return (await m.get()).values.map(v => ({ labels: v.labels as Record<string, string | number>, value: v.value }))
}

async function sum (registry: Registry, name: string, match: Record<string, string> = {}): Promise<number> {
  return (await counter(registry, name)).filter(v => Object.entries(match).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0)
}

t.test('UDP and TCP answer a cluster name; several queries pipelined on one TCP connection', async t => {
  const f = await start(t)
  const u = decode(await udp(f.port, query(`web.${S}`, 1, { id: 101 })))
  t.match(u.header, { id: 101, qr: 1, aa: 1, rd: 1, tc: 0, rcode: 0 })
  t.same(u.answers.map(a => [a.name, a.ttl, a.address]), [[`web.${S}`, 5, '172.30.0.20']])

  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  c.send(query(`web.${S}`, 1, { id: 1 }), query(`db.${S}`, 28, { id: 2 }), query(`nope.${S}`, 1, { id: 3 }), query('elsewhere.example', 1, { id: 4 }))
  const replies = (await c.read(4)).map(decode)
  t.equal(replies.length, 4, 'four replies on one connection')
  const byId = new Map(replies.map(r => [r.header.id, r]))
  t.same(byId.get(1)?.answers.map(a => a.address), ['172.30.0.20'])
  t.same(byId.get(2)?.answers.map(a => a.address).sort(), ['fd00:10::2:1', 'fd00:10::2:2'])
  t.equal(byId.get(3)?.header.rcode, 3, 'NXDOMAIN')
  t.equal(byId.get(3)?.authorities[0]?.type, 6, 'with the SOA')
  t.same(byId.get(4)?.answers.map(a => a.address), ['203.0.113.9'], 'the forwarded (async) answer')
  t.equal(byId.get(4)?.questions[0]?.name, 'elsewhere.example')
})

t.test('EDNS: 512 without OPT, the client buffer honoured, TC over UDP, whole over TCP', async t => {
  const f = await start(t)
  const name = `big.${S}`
  const plain = await udp(f.port, query(name, 1))
  const p = decode(plain)
  t.ok((plain?.length ?? 0) <= 512, 'no OPT: at most 512 octets')
  t.equal(p.header.tc, 1, 'TC')
  t.ok(p.answers.length > 0 && p.answers.length < BIG, `some whole records kept (${p.answers.length})`)
  t.equal(optBytes(plain as Buffer), null, 'no OPT without one in the query')

  const mid = await udp(f.port, query(name, 1, { udpSize: 700 }))
  const m = decode(mid)
  t.ok((mid?.length ?? 0) <= 700 && (mid?.length ?? 0) > 512, `a 700 buffer is used (${mid?.length ?? 0})`)
  t.equal(m.header.tc, 1)
  t.ok(m.answers.length > p.answers.length && m.answers.length < BIG)
  t.match(optBytes(mid as Buffer)?.readUInt16BE(3), 1232, 'ferry advertises 1232')

  const at512 = decode(await udp(f.port, query(name, 1, { udpSize: 512 })))
  const tiny = decode(await udp(f.port, query(name, 1, { udpSize: 100 })))
  t.equal(tiny.header.tc, 1)
  t.equal(tiny.answers.length, at512.answers.length, 'a buffer under 512 counts as 512')

  const large = await udp(f.port, query(name, 1, { udpSize: 4096 }))
  const l = decode(large)
  t.equal(l.header.tc, 0)
  t.equal(l.answers.length, BIG, 'all 60 in a 4096 buffer')
  t.same(new Set(l.answers.map(a => a.address)).size, BIG)

  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  c.send(query(name, 1, { id: 9 }))
  const [whole] = await c.read(1)
  const w = decode(whole)
  t.equal(w.header.tc, 0, 'no TC over TCP')
  t.equal(w.answers.length, BIG, 'the whole answer over TCP')
  t.equal(optBytes(whole as Buffer), null)
  // The same answer again, now from the memo, for each size.
  t.equal(decode(await udp(f.port, query(name, 1, { id: 77 }))).answers.length, p.answers.length)
  t.equal(decode(await udp(f.port, query(name, 1, { id: 78, udpSize: 4096 }))).answers.length, BIG)
})

t.test('server rules: BADVERS, REFUSED, FORMERR, NOTIMP, and silence for responses', async t => {
  const f = await start(t)
  const bad = await udp(f.port, query(`web.${S}`, 1, { id: 5, version: 1 }))
  const b = decode(bad)
  t.equal(b.header.rcode, 16, 'BADVERS (extended rcode 1 in OPT, 0 in the header)')
  t.equal(((bad as Buffer)[3] as number) & 0x0f, 0, 'header rcode nibble 0')
  t.equal(b.answers.length, 0)
  t.ok(optBytes(bad as Buffer) !== null, 'BADVERS carries OPT')

  const ch = decode(await udp(f.port, query('version.bind', 16, { id: 6, cls: 3 })))
  t.match(ch.header, { id: 6, rcode: 5 })
  t.equal(ch.questions[0]?.class, 3, 'the question is echoed')
  const chV1 = decode(await udp(f.port, query('version.bind', 16, { id: 6, cls: 3, version: 1 })))
  t.match(chV1.header, { id: 6, rcode: 5 }, 'class not IN is REFUSED before the EDNS version is looked at')
  const axfr = decode(await udp(f.port, query(S, 252, { id: 7 })))
  t.match(axfr.header, { id: 7, rcode: 5 })
  const ixfr = decode(await udp(f.port, query('cluster.local', 251, { id: 8 })))
  t.equal(ixfr.header.rcode, 5)

  const two = new Packet()
  two.header.id = 9
  two.questions.push({ name: `web.${S}`, type: 1, class: 1 } as Question, { name: `db.${S}`, type: 1, class: 1 } as Question)
  const fe = await udp(f.port, two.toBuffer())
  t.match(decode(fe).header, { id: 9, qr: 1, rcode: 1, qdcount: 0 }, 'QDCOUNT=2: FORMERR, no question')
  t.equal(fe?.length, 12)

  const upd = Buffer.from(query(`web.${S}`, 1, { id: 10 }))
  upd[2] = ((upd[2] as number) & 0x87) | (5 << 3)
  t.match(decode(await udp(f.port, upd)).header, { id: 10, qr: 1, opcode: 5, rcode: 4 }, 'UPDATE: NOTIMP')

  const resp = Buffer.from(query(`web.${S}`, 1, { id: 11 }))
  resp[2] = (resp[2] as number) | 0x80
  t.equal(await udp(f.port, resp, 300), null, 'a response (QR=1) gets no reply')
  t.equal(await udp(f.port, Buffer.from([1, 2, 3]), 300), null, 'nor does a short header')
  // Still serving.
  t.equal(decode(await udp(f.port, query(`web.${S}`, 1, { id: 12 }))).header.id, 12)
})

t.test('a NOTIFY for a name does not make later QUERY replies for it say NOTIFY (memoized encodings)', async t => {
  const f = await start(t)
  const notify = Buffer.from(query(`web.${S}`, 1, { id: 20 }))
  notify[2] = ((notify[2] as number) & 0x87) | (4 << 3)
  t.match(decode(await udp(f.port, notify)).header, { id: 20, opcode: 4, rcode: 0 }, 'NOTIFY is answered as a query, opcode echoed')
  const r = decode(await udp(f.port, query(`web.${S}`, 1, { id: 21 })))
  t.match(r.header, { id: 21, opcode: 0, rcode: 0 }, 'the QUERY after it gets opcode QUERY')
  t.same(r.answers.map(a => a.address), ['172.30.0.20'])
  t.match(decode(await udp(f.port, notify)).header, { id: 20, opcode: 4 }, 'and a NOTIFY after that gets NOTIFY')
})

t.test('0x20: each query gets its own ID and case, through the memoized encodings', async t => {
  const f = await start(t)
  const cases = [`web.${S}`, `web.${S}`, `WeB.sHoP.SVC.cluster.local`, `wEb.ShOp.svc.Cluster.Local`, `web.${S}`, 'WEB.SHOP.SVC.CLUSTER.LOCAL']
  for (const [i, name] of cases.entries()) {
    for (const o of [{}, { udpSize: 1232 }]) {
      const r = decode(await udp(f.port, query(name, 1, { id: 1000 + i, ...o })))
      t.equal(r.header.id, 1000 + i, `${name}: ID`)
      t.equal(r.questions[0]?.name, name, `${name}: question case`)
      t.same(r.answers.map(a => a.name), [name], `${name}: owner case`)
    }
    // SRV: owners are the question, glue targets keep the index's case.
    const srv = decode(await udp(f.port, query(`_http._tcp.${name}`, 33, { id: 2000 + i })))
    t.same(srv.answers.map(a => [a.name, a.target]), [[`_http._tcp.${name}`, `web.${S}`]])
  }
  // Negative answers are one object per zone and rcode: every name must still get its own question.
  const negatives: Array<[string, number]> = [[`nope.${S}`, 1], [`Another-Missing-Name.${S}`, 28], [`x.${S}`, 16], [`nope.${S}`, 28], [`web.${S}`, 28], [`db.${S}`, 15]]
  for (const [i, [name, type]] of negatives.entries()) {
    for (const o of [{}, { udpSize: 1232 }]) {
      const r = decode(await udp(f.port, query(name, type, { id: 3000 + i, ...o })))
      t.equal(r.header.id, 3000 + i, `${name}/${type}: ID`)
      t.same(r.questions.map(q => [q.name, q.type]), [[name, type]], `${name}/${type}: its own question`)
      t.equal(r.authorities[0]?.name, 'cluster.local', `${name}/${type}: SOA owner`)
      t.equal(r.authorities[0]?.type, 6)
    }
  }
})

t.test('a forwarded raw reply: the upstream OPT (with COOKIE) never reaches the client', async t => {
  const f = await start(t)
  const none = await udp(f.port, query(COOKIE_NAME, 1, { id: 21 }))
  const n = decode(none)
  t.match(n.header, { id: 21, rcode: 0, arcount: 0 })
  t.same(n.answers.map(a => a.address), ['203.0.113.9'])
  t.equal(optBytes(none as Buffer), null, 'no EDNS in the query: no OPT')
  t.notOk((none as Buffer).includes(Buffer.from('0123456789abcdef', 'hex')), 'no cookie bytes')

  const withEdns = await udp(f.port, query('Cookie.Example', 1, { id: 22, udpSize: 1400 }))
  const w = decode(withEdns)
  t.match(w.header, { id: 22, rcode: 0, arcount: 1 })
  t.equal(w.questions[0]?.name, 'Cookie.Example', 'question case patched')
  const opt = optBytes(withEdns as Buffer)
  t.ok(opt !== null, 'an OPT')
  t.equal(opt?.readUInt16BE(3), 1232, 'ferry\'s size, not the upstream\'s 4096')
  t.equal(opt?.readUInt16BE(7), 0, 'DO as the client sent (clear)')
  t.equal(opt?.readUInt16BE(9), 0, 'no options')
  t.notOk((withEdns as Buffer).includes(Buffer.from('0123456789abcdef', 'hex')), 'no cookie bytes')
  const dok = await udp(f.port, query(COOKIE_NAME, 1, { id: 23, udpSize: 1400, do: true }))
  t.equal(optBytes(dok as Buffer)?.readUInt16BE(7), 0x8000, 'DO echoed')
})

t.test('a failing handler answers SERVFAIL and counts a panic; metrics count requests and rcodes', async t => {
  const f = await start(t)
  for (const [id, name] of [[31, THROW_NAME], [32, REJECT_NAME]] as const) {
    const r = decode(await udp(f.port, query(name, 1, { id, udpSize: 1232 })))
    t.match(r.header, { id, qr: 1, rcode: 2 }, `${name}: SERVFAIL`)
    t.equal(r.questions[0]?.name, name)
  }
  t.equal(await sum(f.registry, 'coredns_panics_total'), 2, 'coredns_panics_total')
  t.equal(decode(await udp(f.port, query(`web.${S}`, 1))).header.rcode, 0, 'still serving')

  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  c.send(query(`web.${S}`, 28, { id: 1 }), query(`nope.${S}`, 1, { id: 2 }))
  t.equal((await c.read(2)).length, 2)
  await udp(f.port, query(`web.${S}`, 1, { version: 1 }))
  await udp(f.port, query('x', 1, { cls: 3 }))
  // Malformed queries are not counted (as in CoreDNS).
  const two = Buffer.from(query(`web.${S}`, 1)); two[5] = 2
  await udp(f.port, two)

  t.equal(await sum(f.registry, 'coredns_dns_requests_total'), 7)
  t.equal(await sum(f.registry, 'coredns_dns_requests_total', { proto: 'udp', type: 'A', family: '1' }), 5)
  t.equal(await sum(f.registry, 'coredns_dns_requests_total', { proto: 'tcp' }), 2)
  t.equal(await sum(f.registry, 'coredns_dns_responses_total', { rcode: 'SERVFAIL' }), 2)
  t.equal(await sum(f.registry, 'coredns_dns_responses_total', { rcode: 'NOERROR', plugin: 'kubernetes' }), 2)
  t.equal(await sum(f.registry, 'coredns_dns_responses_total', { rcode: 'NXDOMAIN' }), 1)
  t.equal(await sum(f.registry, 'coredns_dns_responses_total', { rcode: 'BADVERS' }), 1)
  t.equal(await sum(f.registry, 'coredns_dns_responses_total', { rcode: 'REFUSED' }), 1)
  t.equal(await sum(f.registry, 'coredns_dns_responses_total'), 7)
})

t.test('stopping with forwarded queries in flight: their late replies are dropped, nothing throws', async t => {
  const f = await start(t)
  const rejections: unknown[] = []
  const onRejection = (e: unknown): void => { rejections.push(e) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.off('unhandledRejection', onRejection) })
  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  c.send(query(SLOW_NAME, 1, { id: 41 }))
  const late = udp(f.port, query(SLOW_NAME, 1, { id: 42 }), 400)
  await new Promise(resolve => setTimeout(resolve, 50))
  await f.server.stop()
  t.equal(await late, null, 'no UDP reply after stop')
  t.same(await c.read(1, 300), [], 'no TCP reply after stop')
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(rejections, [], 'no unhandled rejection from a send on the closed socket')
})

t.test('TCP: a client that never reads its replies cannot make the server buffer them', async t => {
  const f = await start(t)
  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  c.sock.pause()
  const n = 40_000
  const q = query(`big.${S}`, 1, { id: 1 })
  const base = process.memoryUsage().arrayBuffers
  // 40k queries of 48 octets each ask for 40k replies of about 1 KiB: 40 MiB if all were buffered.
  c.send(...Array.from({ length: n }, () => q))
  await new Promise(resolve => setTimeout(resolve, 1500))
  const grown = process.memoryUsage().arrayBuffers - base
  t.ok(grown < 16 * 1024 * 1024, `buffers grew by ${Math.round(grown / 1024)} KiB while the client did not read`)
  // Once the client reads, every reply arrives.
  c.sock.resume()
  const replies = await c.read(n, 20_000)
  t.equal(replies.length, n, 'every query answered once the client reads')
  t.equal(decode(replies[n - 1]).answers.length, BIG)
})

t.test('TCP: a client that ends its side after sending still gets every reply, forwarded ones too, then the close', async t => {
  const f = await start(t)
  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  const closed = new Promise<void>(resolve => { c.sock.once('end', () => { resolve() }) })
  c.send(query(`web.${S}`, 1, { id: 51 }), query(SLOW_NAME, 1, { id: 52 }), query('elsewhere.example', 1, { id: 53 }))
  c.sock.end()
  const replies = (await c.read(3, 2000)).map(decode)
  t.same(replies.map(r => r.header.id).sort(), [51, 52, 53], 'all three answered after the client\'s FIN')
  t.same(replies.find(r => r.header.id === 52)?.answers.map(a => a.address), ['203.0.113.9'], 'the slow forwarded one included')
  const ended = await Promise.race([closed.then(() => true), new Promise<boolean>(resolve => { setTimeout(() => { resolve(false) }, 2000).unref() })])
  t.ok(ended, 'the server ends its side once nothing is left to answer')
})

/**
 * An upstream on 127.0.0.1 answering one A record with RA set (a recursive resolver), except: names
 * starting `nora.` get RA clear (an authoritative-only server such as NSD), `wrong.` a reply to another
 * question, `silent.` nothing. Returns its port and how many queries each name drew.
 */
async function upstreamStub (t: Test): Promise<{ port: number, seen: Map<string, number> }> {
  const sock = createSocket('udp4')
  await new Promise<void>(resolve => { sock.bind(0, '127.0.0.1', resolve) })
  t.teardown(async () => { await new Promise<void>(resolve => { sock.close(() => { resolve() }) }) })
  const seen = new Map<string, number>()
  sock.on('message', (q, r) => {
    const v = inspect(q)
    const name = v.question?.lname ?? ''
    seen.set(name, (seen.get(name) ?? 0) + 1)
    if (name.startsWith('silent.')) return
    const head = Buffer.from(q.subarray(0, v.questionEnd))
    head.writeUInt16BE(name.startsWith('nora.') ? 0x8500 : 0x8180, 2)
    head.writeUInt16BE(1, 6); head.writeUInt16BE(0, 8); head.writeUInt16BE(0, 10)
    if (name.startsWith('wrong.')) head[13] = 0x78
    sock.send(Buffer.concat([head, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 53])]), r.port, r.address)
  })
  return { port: sock.address().port, seen }
}

// CoreDNS 1.12: the kubernetes plugin and the server write their own replies with SetReply/SetRcode and
// never set RA (dig: "recursion requested but not available"); forward passes the upstream's message on
// and cache keeps its RA. So RA is the upstream's on forwarded data and clear on everything ferry makes.
t.test('RA: clear on cluster answers and ferry\'s own errors, the upstream\'s on forwarded and cached replies', async t => {
  const up = await upstreamStub(t)
  const index = clusterIndex()
  const fwd = forwardPlugin({ upstreams: [{ host: '127.0.0.1', port: up.port }], tryTimeoutMs: 100, overallTimeoutMs: 300, healthCheckIntervalMs: 50 })
  t.teardown(() => { fwd.close() })
  // As ferryd chains them; every client is a pod of namespace shop, so autopath walks names under it.
  const chain = [autopathPlugin({ zone: 'cluster.local', podNamespace: () => 'shop', searchDomains: [] }), kubernetesPlugin(index), cachePlugin(), fwd]
  const handler = chain.reduceRight<Handler>((next, p) => p(next), () => { throw new Error('end of the chain') })
  const registry = new Registry()
  const server = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], handler, metrics: createDnsMetrics(registry, 'dns://127.0.0.1:0', 'test'), log: silentLogger })
  await server.start()
  t.teardown(async () => { await server.stop() })
  const p = server.addresses()[0]?.port ?? 0
  const flags = async (msg: Buffer, o: { ms?: number, tcp?: boolean } = {}): Promise<{ rcode: number, aa: number, ra: number, answers: number }> => {
    let b: Buffer | null | undefined
    if (o.tcp === true) {
      const c = await Tcp.open(p)
      c.send(msg)
      b = (await c.read(1))[0]
      c.close()
    } else {
      b = await udp(p, msg, o.ms)
    }
    const h = decode(b).header
    return { rcode: h.rcode, aa: h.aa, ra: h.ra, answers: h.ancount }
  }

  const own: Array<[string, Buffer, number]> = [
    ['positive', query(`web.${S}`, 1), 0],
    ['positive, again (the memoized template)', query(`web.${S}`, 1, { id: 2 }), 0],
    ['positive with EDNS', query(`WEB.${S}`, 1, { udpSize: 1232 }), 0],
    ['NODATA', query(`web.${S}`, 28), 0],
    ['NXDOMAIN (outside the client\'s namespace: no autopath)', query('nope.lonely.svc.cluster.local', 1), 3],
    ['reverse PTR', query('20.0.30.172.in-addr.arpa', 12), 0],
    ['ExternalName: a CNAME over forwarded records is still the plugin\'s own', query(`ext.${S}`, 1), 0],
  ]
  for (const [what, msg, rcode] of own) {
    t.match(await flags(msg), { rcode, aa: 1, ra: 0 }, `cluster ${what}: AA=1, RA=0`)
  }
  t.match(await flags(query(`web.${S}`, 1, { id: 3 }), { tcp: true }), { aa: 1, ra: 0 }, 'over TCP too')

  const two = new Packet()
  two.questions.push({ name: `web.${S}`, type: 1, class: 1 } as Question, { name: `db.${S}`, type: 1, class: 1 } as Question)
  const notimp = Buffer.from(query(`web.${S}`, 1)); notimp[2] = ((notimp[2] as number) & 0x87) | (5 << 3)
  const errors: Array<[string, Buffer, number]> = [
    ['REFUSED (class CH)', query('version.bind', 16, { cls: 3 }), 5],
    ['REFUSED (AXFR)', query(S, 252), 5],
    ['BADVERS', query(`web.${S}`, 1, { version: 1 }), 16],
    ['FORMERR (two questions)', two.toBuffer(), 1],
    ['NOTIMP (UPDATE)', notimp, 4],
    ['forward\'s FORMERR (a reply to another question)', query('wrong.example', 1), 1],
    ['forward\'s SERVFAIL (every try timed out)', query('silent.example', 1), 2],
  ]
  for (const [what, msg, rcode] of errors) {
    t.match(await flags(msg, { ms: 1000 }), { rcode, ra: 0 }, `${what}: RA=0`)
  }

  t.match(await flags(query('www.example', 1)), { rcode: 0, aa: 0, ra: 1, answers: 1 }, 'forwarded: the upstream\'s RA=1')
  t.match(await flags(query('WWW.example', 1, { id: 4 })), { rcode: 0, aa: 1, ra: 1, answers: 1 }, 'a cache hit: AA=1, RA=1 kept')
  t.match(await flags(query('www.example', 1, { id: 5, udpSize: 1232 }), { tcp: true }), { aa: 1, ra: 1 }, 'a cache hit over TCP with EDNS')
  t.equal(up.seen.get('www.example'), 1, 'the upstream was asked once')
  t.match(await flags(query('nora.example', 1)), { aa: 1, ra: 0, answers: 1 }, 'an upstream without RA: not forced on')
  t.match(await flags(query('nora.example', 1, { id: 6 })), { aa: 1, ra: 0 }, 'nor on its cache hit')
  t.equal(up.seen.get('nora.example'), 1, 'and asked once')

  // autopath's CNAME over a found answer: the found reply's flags, as CoreDNS writes it.
  t.match(await flags(query(`www.example.${S}`, 1)), { rcode: 0, ra: 1, answers: 2 }, 'autopath over a forwarded answer: RA=1')
  t.match(await flags(query(`nora.example.${S}`, 1)), { rcode: 0, ra: 0, answers: 2 }, 'autopath over an upstream without RA: RA=0')
  t.match(await flags(query(`web.${S}.${S}`, 1)), { rcode: 0, aa: 1, ra: 0, answers: 2 }, 'autopath over a cluster answer: RA=0')
})

/** Milliseconds until the server closes `c` (its FIN or a reset), or null if it is still open after `ms`. */
async function closedAfter (c: Tcp, ms: number): Promise<number | null> {
  const t0 = Date.now()
  return await new Promise(resolve => {
    const timer = setTimeout(() => { resolve(null) }, ms)
    const done = (): void => { clearTimeout(timer); resolve(Date.now() - t0) }
    if (c.sock.readableEnded || c.sock.destroyed) { done(); return }
    c.sock.once('end', done)
    c.sock.once('close', done)
  })
}

// miekg/dns as CoreDNS configures it (DNS.md §5.2): each message must arrive whole within the read timeout
// (first) or the idle timeout (later ones); bytes that trickle in do not extend it.
t.test('TCP: a client that sends nothing is closed after the read timeout', async t => {
  const f = await start(t, { tcpReadMs: 300, tcpIdleMs: 5000 })
  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  const ms = await closedAfter(c, 2500)
  t.ok(ms !== null && ms >= 250 && ms < 1500, `closed after ${ms} ms`)
})

t.test('TCP: a message trickled in a byte at a time is cut off at the read timeout', async t => {
  const f = await start(t, { tcpReadMs: 400, tcpIdleMs: 5000 })
  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  const q = query(`web.${S}`, 1, { id: 61 })
  const framed = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q])
  let sent = 0
  const trickle = setInterval(() => { if (sent < framed.length - 1 && !c.sock.destroyed) c.sock.write(framed.subarray(sent, ++sent)) }, 50)
  t.teardown(() => { clearInterval(trickle) })
  const ms = await closedAfter(c, 2500)
  t.ok(ms !== null && ms >= 350 && ms < 1500, `closed after ${ms} ms`)
  t.same(await c.read(1, 50), [], 'no reply to the unfinished message')
})

t.test('TCP: after a reply the idle timeout applies; pipelined queries still answer; a stalled next message is cut off', async t => {
  const f = await start(t, { tcpReadMs: 300, tcpIdleMs: 800 })
  const c = await Tcp.open(f.port)
  t.teardown(() => { c.close() })
  c.send(query(`web.${S}`, 1, { id: 71 }), query(SLOW_NAME, 1, { id: 72 }))
  t.same((await c.read(2, 1000)).map(b => decode(b).header.id).sort(), [71, 72], 'both pipelined queries answered')
  await new Promise(resolve => setTimeout(resolve, 500))
  c.send(query(`web.${S}`, 1, { id: 73 }))
  t.same((await c.read(1, 1000)).map(b => decode(b).header.id), [73], 'a query past the read timeout but within the idle timeout is answered')
  // The next message trickles in and never completes: the idle timeout, counted from the last reply,
  // ends the connection however busy the trickle keeps it.
  c.sock.write(Buffer.from([0, 200]))
  const trickle = setInterval(() => { if (!c.sock.destroyed) c.sock.write(Buffer.from([0x12])) }, 50)
  t.teardown(() => { clearInterval(trickle) })
  const ms = await closedAfter(c, 3000)
  t.ok(ms !== null && ms >= 650 && ms < 2000, `closed after ${ms} ms`)
})
