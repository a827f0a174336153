// decodeReply: replies encoded by ferry's writer decode back to the same Answer for every record type the
// model carries (owners and targets through compression pointers); dns2 as an independent encoder; OPT
// dropped; null for unknown types and malformed input; replyRcode and replyAnswer on both reply kinds.
import t from 'tap'
import { Packet } from 'dns2'
import { RCODE, TYPE, answer, type ResourceRecord } from '../../pkg/dns/message.js'
import { decodeReply, replyAnswer, replyRcode } from '../../pkg/dns/wire/decode.js'
import { isRejection, parseQuery } from '../../pkg/dns/wire/query.js'
import { encodeQuery, encodeReply } from '../../pkg/dns/wire/writer.js'

function encode (name: string, type: number, a: ReturnType<typeof answer>, udpSize?: number): Uint8Array {
  const q = encodeQuery(0x1234, name, type, udpSize === undefined ? {} : { udpSize })
  const p = parseQuery(q)
  if (isRejection(p)) throw new Error('rejected')
  return encodeReply(q, p, a, { limit: 65535 })
}

const Z = 'ns1.svc.cluster.local'
const rr = (name: string, ttl: number, data: ResourceRecord['data']): ResourceRecord => ({ name, ttl, data })

t.test('every type the model carries round-trips through the writer', async t => {
  const cases: Array<[string, ResourceRecord]> = [
    ['A', rr(`web.${Z}`, 30, { type: TYPE.A, address: '10.96.0.10' })],
    ['AAAA, canonical text', rr(`web.${Z}`, 30, { type: TYPE.AAAA, address: 'fd00::a' })],
    ['NS', rr('cluster.local', 5, { type: TYPE.NS, target: 'ns.dns.cluster.local' })],
    ['CNAME', rr(`ext.${Z}`, 5, { type: TYPE.CNAME, target: 'www.example.com' })],
    ['PTR', rr('10.0.96.10.in-addr.arpa', 5, { type: TYPE.PTR, target: `web.${Z}` })],
    ['SRV', rr(`_http._tcp.web.${Z}`, 5, { type: TYPE.SRV, priority: 0, weight: 100, port: 8080, target: `web.${Z}` })],
    ['TXT, several strings', rr(`dns-version.cluster.local`, 28800, { type: TYPE.TXT, texts: ['1.1.0', '', 'a b'] })],
    ['SOA', rr('cluster.local', 5, { type: TYPE.SOA, mname: 'ns.dns.cluster.local', rname: 'hostmaster.cluster.local', serial: 1700000000, refresh: 7200, retry: 1800, expire: 86400, minimum: 5 })],
  ]
  for (const [name, record] of cases) {
    const a = answer(RCODE.NOERROR, [record], [], [], true)
    t.same(decodeReply(encode(record.name, record.data.type, a)), a, name)
  }
})

t.test('sections, AA, rcode and an echoed OPT', async t => {
  const soa = rr('cluster.local', 5, { type: TYPE.SOA, mname: 'ns.dns.cluster.local', rname: 'hostmaster.cluster.local', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 })
  const glue = rr('ns.dns.cluster.local', 5, { type: TYPE.A, address: '10.96.0.10' })
  const nx = answer(RCODE.NXDOMAIN, [], [soa], [glue], false)
  t.same(decodeReply(encode(`gone.${Z}`, TYPE.A, nx, 1232)), nx, 'OPT is dropped, the rest kept in its section')
  const badvers = decodeReply(encode(`x.${Z}`, TYPE.A, answer(RCODE.BADVERS), 1232))
  t.equal(badvers?.rcode, RCODE.BADVERS, 'the extended rcode from OPT')
})

t.test('a dns2-encoded reply (an independent encoder)', async t => {
  const p = new Packet()
  Object.assign(p.header, { id: 7, qr: 1, aa: 0, rcode: 0 })
  p.questions.push({ name: 'www.example.com', type: 1, class: 1 } as (typeof p.questions)[number])
  p.answers.push(
    { name: 'www.example.com', type: Packet.TYPE.CNAME, class: 1, ttl: 60, domain: 'edge.example.net' } as (typeof p.answers)[number],
    { name: 'edge.example.net', type: Packet.TYPE.A, class: 1, ttl: 30, address: '93.184.215.14' } as (typeof p.answers)[number],
  )
  t.same(decodeReply(new Uint8Array(p.toBuffer())), answer(RCODE.NOERROR, [
    rr('www.example.com', 60, { type: TYPE.CNAME, target: 'edge.example.net' }),
    rr('edge.example.net', 30, { type: TYPE.A, address: '93.184.215.14' }),
  ], [], [], false))
})

t.test('null for what the model cannot carry or a malformed message', async t => {
  const good = encode(`web.${Z}`, TYPE.A, answer(RCODE.NOERROR, [rr(`web.${Z}`, 30, { type: TYPE.A, address: '10.96.0.10' })]))
  const mx = Uint8Array.from(good)
  mx[good.length - 13] = TYPE.MX // the record's TYPE low byte (RDATA is 4 octets after a 2-octet pointer)
  const shortA = Uint8Array.from([...good.subarray(0, good.length - 6), 0, 3, 10, 96, 0])
  const badTarget = encode(`ext.${Z}`, TYPE.CNAME, answer(RCODE.NOERROR, [rr(`ext.${Z}`, 5, { type: TYPE.CNAME, target: 'a.b' })]))
  const loop = Uint8Array.from(badTarget)
  loop[loop.length - 5] = 0xc0; loop[loop.length - 4] = loop.length - 5 // the target points at itself
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array()],
    ['cut short', good.subarray(0, good.length - 1)],
    ['an MX record', mx],
    ['A RDATA of 3 octets', shortA],
    ['a CNAME target pointing at itself', loop],
  ]
  t.ok(decodeReply(good), 'the unmodified reply decodes')
  t.ok(decodeReply(badTarget), 'and so does the CNAME one')
  for (const [name, b] of cases) t.equal(decodeReply(b), null, name)
})

t.test('replyRcode and replyAnswer on both kinds of reply', async t => {
  const a = answer(RCODE.NXDOMAIN, [], [], [], true)
  t.equal(replyRcode(a), RCODE.NXDOMAIN)
  t.equal(replyAnswer(a), a, 'a structured answer is returned as it is')
  const bytes = encode(`gone.${Z}`, TYPE.A, a)
  t.equal(replyRcode({ kind: 'raw', bytes }), RCODE.NXDOMAIN)
  t.same(replyAnswer({ kind: 'raw', bytes }), a)
  t.equal(replyRcode({ kind: 'raw', bytes: new Uint8Array(3) }), RCODE.SERVFAIL, 'too short to say: SERVFAIL')
})
