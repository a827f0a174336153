// inspectReply on upstream-style replies (encoded by dns2 as a witness, and by ferry's writer): header
// fields, extended rcode, TTL offsets and their minimum, the authority SOA; TTL rewriting, ID patching,
// the empty TC copy; null on malformed input and no throw on any input.
import t from 'tap'
import { Packet } from 'dns2'
import { RCODE, answer } from '../../pkg/dns/message.js'
import { isRejection, parseQuery } from '../../pkg/dns/wire/query.js'
import { inspectReply, patchId, patchQuestionCase, rewriteTtls, truncatedCopy } from '../../pkg/dns/wire/raw.js'
import { encodeQuery, encodeReply, patchReply } from '../../pkg/dns/wire/writer.js'

type Rr = (InstanceType<typeof Packet>['answers'])[number]
const rr = (o: object): Rr => o as Rr
const edns = Packet.Resource.EDNS as unknown as (rdata: object[], opts: object) => Rr

/** An upstream-style reply built and encoded by dns2. */
function dns2Reply (): Uint8Array {
  const p = new Packet()
  Object.assign(p.header, { id: 0x5151, qr: 1, rd: 1, ra: 1, rcode: 0 })
  p.questions.push({ name: 'www.Example.com', type: 1, class: 1 } as (typeof p.questions)[number])
  p.answers.push(
    rr({ name: 'www.example.com', type: Packet.TYPE.CNAME, class: 1, ttl: 300, domain: 'edge.example.net' }),
    rr({ name: 'edge.example.net', type: Packet.TYPE.A, class: 1, ttl: 20, address: '203.0.113.7' }),
    rr({ name: 'edge.example.net', type: Packet.TYPE.A, class: 1, ttl: 3600, address: '203.0.113.8' }),
  )
  p.authorities.push(rr({ name: 'example.net', type: Packet.TYPE.NS, class: 1, ttl: 86400, ns: 'ns1.example.net' }))
  p.additionals.push(
    rr({ name: 'ns1.example.net', type: Packet.TYPE.A, class: 1, ttl: 90, address: '198.51.100.1' }),
    edns([], { udpPayloadSize: 1232, doFlag: true }),
  )
  return p.toBuffer()
}

t.test('an upstream reply: header, question, TTL offsets and minimum, OPT', async t => {
  const buf = dns2Reply()
  const info = inspectReply(buf)
  if (info === null) { t.fail('null'); return }
  t.match(info, {
    id: 0x5151, qr: true, opcode: 0, aa: false, tc: false, rd: true, ra: true, cd: false, rcode: 0,
    qdcount: 1, ancount: 3, nscount: 1, arcount: 2,
    question: { name: 'www.Example.com', lname: 'www.example.com', type: 1, class: 1 },
    minTtl: 20, soa: null, edns: { udpSize: 1232, version: 0, do: true }, end: buf.length,
  })
  t.equal(info.nameEnd, 12 + 17)
  t.equal(info.questionEnd, info.nameEnd + 4)
  t.equal(info.ttlOffsets.length, 5, 'every record but OPT')
  t.same(info.ttlOffsets.map(o => Buffer.from(buf).readUInt32BE(o)), [300, 20, 3600, 86400, 90])
  t.same(Buffer.from(buf.subarray(info.optStart, info.optEnd)).toString('hex'), '00' + '0029' + '04d0' + '00008000' + '0000')

  rewriteTtls(buf, info.ttlOffsets, 17)
  patchId(buf, 0xfeed)
  const w = Packet.parse(Buffer.from(buf))
  t.equal(w.header.id, 0xfeed)
  t.same([...w.answers, ...w.authorities, ...w.additionals].map(r => r.ttl), [17, 17, 17, 17, 17, (1 << 15)], 'OPT TTL (flags) untouched')
  t.match(w.answers[0], { name: 'www.Example.com', domain: 'edge.example.net' }, 'records still decode after the rewrite')
})

t.test('negative replies: the authority SOA, extended rcode, MSB-set TTLs', async t => {
  const q = encodeQuery(9, 'gone.Example.org', 28, { udpSize: 1232 })
  const pq = parseQuery(q)
  if (isRejection(pq)) throw new Error('rejected')
  const soa = { name: 'example.org', ttl: 900, data: { type: 6 as const, mname: 'ns.example.org', rname: 'h.example.org', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 60 } }
  const nx = encodeReply(q, pq, answer(RCODE.NXDOMAIN, [], [soa], [], false), { limit: 1232 })
  t.match(inspectReply(nx), { rcode: 3, aa: false, minTtl: 900, soa: { ttl: 900, minimum: 60 }, ttlOffsets: [pq.questionEnd + 2 + 4] })

  const badvers = encodeReply(q, pq, answer(RCODE.BADVERS), { limit: 1232 })
  t.match(inspectReply(badvers), { rcode: 16, minTtl: null, ttlOffsets: [] })

  const msb = Uint8Array.from(nx)
  msb[pq.questionEnd + 6] = 0x80
  t.match(inspectReply(msb), { minTtl: 0, soa: { ttl: 0 } }, 'RFC 2181 §8: a TTL with the MSB set counts as 0')
})

t.test('cached bytes served to another client: patchReply then rewriteTtls', async t => {
  const up = dns2Reply()
  const info = inspectReply(up)
  if (info === null) throw new Error('null')
  const client = encodeQuery(0x0102, 'WWW.EXAMPLE.COM', 1, { rd: false })
  const cq = parseQuery(client)
  if (isRejection(cq)) throw new Error('rejected')
  const out = patchReply(up, client, cq)
  rewriteTtls(out, info.ttlOffsets, 3)
  const w = Packet.parse(Buffer.from(out))
  t.match(w.header, { id: 0x0102, rd: 0 })
  t.equal(w.questions[0]?.name, 'WWW.EXAMPLE.COM')
  t.equal(w.answers[0]?.name, 'WWW.EXAMPLE.COM', 'the owner pointer follows the patched question')
  t.same(w.answers.map(r => r.ttl), [3, 3, 3])
  t.equal(Packet.parse(Buffer.from(up)).answers[0]?.ttl, 300, 'the cached bytes are untouched')
})

t.test('patchQuestionCase copies the client case, stops on a different name', async t => {
  const question = (b: Uint8Array, len: number): string => Buffer.from(b.subarray(12, 12 + len)).toString('latin1')
  const q = encodeQuery(1, 'www.example.com', 1)
  patchQuestionCase(q, 'WWW.eXample.COM')
  t.equal(question(q, 17), '\x03WWW\x07eXample\x03COM\x00')
  const r = encodeQuery(1, 'abc', 1)
  patchQuestionCase(r, 'xyz')
  t.equal(question(r, 5), '\x03abc\x00', 'another name is left alone')
  const e = encodeQuery(1, 'a\\.b.c', 1)
  patchQuestionCase(e, 'A\\.B.C')
  t.equal(question(e, 7), '\x03A.B\x01C\x00', 'escaped dots')
  const f = encodeQuery(1, 'a\\.b.c', 1)
  patchQuestionCase(f, 'A\\.B.D')
  t.equal(question(f, 7), '\x03a.b\x01c\x00', 'an escaped name that differs is left alone')
})

t.test('truncatedCopy: header, first question, OPT; TC set; no records', async t => {
  const up = dns2Reply()
  const info = inspectReply(up)
  if (info === null) throw new Error('null')
  const tc = truncatedCopy(up, info)
  t.match(inspectReply(tc), { id: 0x5151, tc: true, qdcount: 1, ancount: 0, nscount: 0, arcount: 1, question: { name: 'www.Example.com' }, edns: { udpSize: 1232, do: true } })
  t.equal(tc.length, info.questionEnd + 11)

  // Upstream EDNS options (a COOKIE here) are not passed on.
  const withCookie = Uint8Array.from([...up.subarray(0, info.optStart + 9), 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
  const info2 = inspectReply(withCookie)
  if (info2 === null) throw new Error('null')
  t.equal(info2.optEnd - info2.optStart, 23)
  const tc2 = truncatedCopy(withCookie, info2)
  t.equal(Buffer.from(tc2.subarray(tc2.length - 11)).toString('hex'), '00' + '0029' + '04d0' + '00008000' + '0000')
})

t.test('malformed replies are null, table-driven', async t => {
  const good = dns2Reply()
  const info = inspectReply(good)
  if (info === null) throw new Error('null')
  const withOptOwner = Uint8Array.from(good)
  withOptOwner[info.optStart] = 1
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array()],
    ['header only, counts claim records', Uint8Array.from(good.subarray(0, 12))],
    ['cut in the last record', Uint8Array.from(good.subarray(0, good.length - 1))],
    ['cut in a TTL', Uint8Array.from(good.subarray(0, info.ttlOffsets[1] as number + 2))],
    ['OPT not owned by the root', withOptOwner],
    ['pointer forwards', Uint8Array.from([0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1, 0xc0, 0x20, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4])],
    ['SOA RDATA too short', Uint8Array.from([0, 1, 0x81, 0x83, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 6, 0, 1, 0, 0, 0, 1, 0, 3, 0, 0, 0])],
    ['OPT in the answer', Uint8Array.from([0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0])],
  ]
  for (const [name, b] of cases) t.equal(inspectReply(b), null, name)
  t.ok(inspectReply(Uint8Array.from([...good, 0xde, 0xad])), 'trailing bytes are ignored')
})

t.test('fuzz: 100k random and mutated replies never throw', async t => {
  let seed = 0x2545f491
  const rnd = (n: number): number => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n }
  const q = encodeQuery(1, 'a.example', 1, { udpSize: 1232 })
  const pq = parseQuery(q)
  if (isRejection(pq)) throw new Error('rejected')
  const soa = { name: 'example', ttl: 9, data: { type: 6 as const, mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 } }
  const seeds = [dns2Reply(), encodeReply(q, pq, answer(RCODE.NXDOMAIN, [], [soa]), { limit: 1232 })]
  let valid = 0
  for (let i = 0; i < 100_000; i++) {
    let b: Uint8Array
    if (i % 4 === 0) {
      b = new Uint8Array(rnd(120))
      for (let j = 0; j < b.length; j++) b[j] = rnd(256)
    } else {
      const s = seeds[i % seeds.length] as Uint8Array
      b = Uint8Array.from(s.subarray(0, rnd(4) === 0 ? rnd(s.length + 1) : s.length))
      for (let m = rnd(4) + 1; m > 0 && b.length > 0; m--) b[rnd(b.length)] = rnd(4) === 0 ? 0xc0 | rnd(64) : rnd(256)
    }
    let info
    try { info = inspectReply(b) } catch (e) { t.fail(`threw on ${Buffer.from(b).toString('hex')}: ${String(e)}`); return }
    if (info !== null) {
      valid++
      if (info.end > b.length || info.ttlOffsets.some(o => o + 4 > b.length)) { t.fail(`offsets outside ${Buffer.from(b).toString('hex')}`); return }
    }
  }
  t.ok(valid > 1000, `${valid} mutated replies still inspected`)
})
