// parseQuery: miekg's accept rules (drop / NOTIMP / FORMERR, DNS.md §5.1), the question as asked and
// lower-cased, OPT fields, tolerance of other additional records, and no throw on any input.
import t from 'tap'
import { Packet } from 'dns2'
import { isRejection, parseQuery, type ParsedQuery } from '../../pkg/dns/wire/query.js'
import { encodeQuery } from '../../pkg/dns/wire/writer.js'

/** Wire name from dotted labels (test-only; the product writes names through the encoder). */
function wname (name: string): number[] {
  const out: number[] = []
  for (const l of name === '' ? [] : name.split('.')) out.push(l.length, ...Buffer.from(l, 'latin1'))
  out.push(0)
  return out
}

interface Hdr { id?: number, flags?: number, qd?: number, an?: number, ns?: number, ar?: number }
function header (h: Hdr): number[] {
  const w = (v: number): number[] => [v >> 8, v & 0xff]
  return [...w(h.id ?? 0x1234), ...w(h.flags ?? 0x0100), ...w(h.qd ?? 1), ...w(h.an ?? 0), ...w(h.ns ?? 0), ...w(h.ar ?? 0)]
}
const question = (name: string, type = 1, cls = 1): number[] => [...wname(name), type >> 8, type & 0xff, cls >> 8, cls & 0xff]
/** OPT: udp size, ext rcode/version/flags, options. */
function opt (udp: number, version = 0, dnssecOk = false, options: number[] = []): number[] {
  return [0, 0, 41, udp >> 8, udp & 0xff, 0, version, dnssecOk ? 0x80 : 0, 0, options.length >> 8, options.length & 0xff, ...options]
}
const buf = (...parts: number[][]): Uint8Array => Uint8Array.from(parts.flat())

function parsed (b: Uint8Array): ParsedQuery {
  const r = parseQuery(b)
  if (isRejection(r)) throw new Error(`rejected: ${JSON.stringify(r)}`)
  return r
}

t.test('accept rules, table-driven', async t => {
  const q = question('web.shop.svc.cluster.local')
  const cases: Array<{ name: string, bytes: Uint8Array, want: unknown }> = [
    { name: 'empty', bytes: buf([]), want: { reject: 'drop' } },
    { name: '11 bytes', bytes: buf(header({}).slice(0, 11)), want: { reject: 'drop' } },
    { name: 'QR=1 (a response)', bytes: buf(header({ flags: 0x8100 }), q), want: { reject: 'drop' } },
    { name: 'opcode IQUERY', bytes: buf(header({ flags: 0x0900 }), q), want: { reject: 'notimp', id: 0x1234, opcode: 1, rd: true } },
    { name: 'opcode STATUS, RD clear', bytes: buf(header({ flags: 0x1000 }), q), want: { reject: 'notimp', id: 0x1234, opcode: 2, rd: false } },
    { name: 'opcode UPDATE', bytes: buf(header({ flags: 0x2800 }), q), want: { reject: 'notimp', id: 0x1234, opcode: 5, rd: false } },
    { name: 'QDCOUNT 0', bytes: buf(header({ qd: 0 })), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'QDCOUNT 2', bytes: buf(header({ qd: 2 }), q, q), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'ANCOUNT 2', bytes: buf(header({ an: 2 }), q), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'NSCOUNT 2', bytes: buf(header({ ns: 2 }), q), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'ARCOUNT 3', bytes: buf(header({ ar: 3 }), q), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'header only, QDCOUNT 1', bytes: buf(header({})), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'question cut in the type', bytes: buf(header({}), q.slice(0, q.length - 3)), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'label runs past the end', bytes: buf(header({}), [5, 0x61, 0x62]), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'compressed question name', bytes: buf(header({}), [0xc0, 0x0c, 0, 1, 0, 1]), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'reserved label type 0x40', bytes: buf(header({}), [0x41, 0x61, 0, 0, 1, 0, 1]), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'ARCOUNT 1 but no record', bytes: buf(header({ ar: 1 }), q), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'two OPT records', bytes: buf(header({ ar: 2 }), q, opt(1232), opt(1232)), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'OPT in the answer section', bytes: buf(header({ an: 1 }), q, opt(1232)), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'OPT with a ragged option', bytes: buf(header({ ar: 1 }), q, opt(1232, 0, false, [0, 10, 0, 8, 1, 2])), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
    { name: 'OPT RDLENGTH past the end', bytes: buf(header({ ar: 1 }), q, opt(1232).slice(0, 9), [0, 4]), want: { reject: 'formerr', id: 0x1234, opcode: 0, rd: true } },
  ]
  for (const c of cases) t.same(parseQuery(c.bytes), c.want, c.name)

  // A name of 256 octets on the wire (4 × 63-octet labels + lengths + root = 257) is FORMERR.
  const long = Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.')
  t.same(parseQuery(buf(header({}), question(long))), { reject: 'formerr', id: 0x1234, opcode: 0, rd: true }, 'name over 255 octets')
})

t.test('a plain query: question as asked, lname, offsets', async t => {
  const b = buf(header({ id: 0xbeef, flags: 0x0110 }), question('WeB.Shop.svc.Cluster.LOCAL', 28))
  const p = parsed(b)
  t.same(p.query, {
    id: 0xbeef,
    opcode: 0,
    rd: true,
    cd: true,
    question: { name: 'WeB.Shop.svc.Cluster.LOCAL', lname: 'web.shop.svc.cluster.local', type: 28, class: 1 },
    edns: undefined,
  })
  t.equal(p.nameEnd, 12 + 28)
  t.equal(p.questionEnd, p.nameEnd + 4)
})

t.test('NOTIFY is accepted (opcode 4), root and escaped names', async t => {
  t.equal(parsed(buf(header({ flags: 0x2000 }), question('zone.example'))).query.opcode, 4)
  t.same(parsed(buf(header({}), question('', 2))).query.question, { name: '', lname: '', type: 2, class: 1 })
  const dotted = buf(header({}), [3, 0x61, 0x2e, 0x42, 1, 0x5c, 3, 0x43, 0x4f, 0x4d, 0], [0, 1, 0, 1])
  t.same(parsed(dotted).query.question, { name: 'a\\.B.\\\\.COM', lname: 'a\\.b.\\\\.com', type: 1, class: 1 })
})

t.test('OPT: size, version, DO; options ignored; non-OPT additionals tolerated', async t => {
  const q = question('kubernetes.default.svc.cluster.local')
  const cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]
  t.same(parsed(buf(header({ ar: 1 }), q, opt(4096, 0, true, cookie))).query.edns, { udpSize: 4096, version: 0, do: true })
  t.same(parsed(buf(header({ ar: 1 }), q, opt(512, 1))).query.edns, { udpSize: 512, version: 1, do: false }, 'version > 0 is reported (the server answers BADVERS)')
  // A TSIG-like record (type 250, class ANY) before the OPT, owner compressed to the question name.
  const tsig = [0xc0, 0x0c, 0, 250, 0, 255, 0, 0, 0, 0, 0, 4, 9, 9, 9, 9]
  t.same(parsed(buf(header({ ar: 2 }), q, tsig, opt(1232))).query.edns, { udpSize: 1232, version: 0, do: false })
  t.equal(parsed(buf(header({ ar: 1 }), q, tsig)).query.edns, undefined)
  // A pointer forward (or to itself) in an additional owner is an unpack error.
  t.match(parseQuery(buf(header({ ar: 1 }), q, [0xc0, 0x40, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])), { reject: 'formerr' })
  // An answer and an authority record (as in NOTIFY) are skipped.
  const rr = [0xc0, 0x0c, 0, 6, 0, 1, 0, 0, 0, 60, 0, 0]
  t.equal(parsed(buf(header({ an: 1, ns: 1 }), q, rr, rr)).query.question.lname, 'kubernetes.default.svc.cluster.local')
})

t.test('queries encoded by dns2 (witness) and by encodeQuery parse alike', async t => {
  const pkt = new Packet()
  pkt.header.id = 77
  pkt.header.rd = 1
  pkt.questions.push({ name: 'Example.COM', type: Packet.TYPE.SRV, class: Packet.CLASS.IN } as (typeof pkt.questions)[number])
  // dns2's EDNS factory takes an options argument its typings omit.
  const edns = Packet.Resource.EDNS as unknown as (rdata: object[], opts: object) => (typeof pkt.additionals)[number]
  pkt.additionals.push(edns([], { udpPayloadSize: 1400, doFlag: true }))
  const fromDns2 = parsed(pkt.toBuffer())
  t.same(fromDns2.query, { id: 77, opcode: 0, rd: true, cd: false, question: { name: 'Example.COM', lname: 'example.com', type: 33, class: 1 }, edns: { udpSize: 1400, version: 0, do: true } })
  const ours = parsed(encodeQuery(77, 'Example.COM', 33, { udpSize: 1400, do: true }))
  t.same(ours.query, fromDns2.query)
})

t.test('fuzz: 100k random and mutated inputs never throw', async t => {
  let seed = 0x9e3779b9
  const rnd = (n: number): number => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n }
  const seeds = [
    buf(header({ ar: 1 }), question('web.shop.svc.cluster.local'), opt(1232, 0, true, [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])),
    buf(header({ an: 1, ns: 1, ar: 2 }), question('a.b'), [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4],
      [0xc0, 0x0c, 0, 6, 0, 1, 0, 0, 0, 5, 0, 0], [0xc0, 0x0e, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0], opt(4096)),
    encodeQuery(1, 'x.y.z', 16, { udpSize: 512 }),
  ]
  let accepted = 0
  let rejected = 0
  for (let i = 0; i < 100_000; i++) {
    let b: Uint8Array
    if (i % 4 === 0) {
      b = new Uint8Array(rnd(80))
      for (let j = 0; j < b.length; j++) b[j] = rnd(256)
      if (b.length > 3) b[2] = (b[2] as number) & 0x7f
    } else {
      const s = seeds[i % seeds.length] as Uint8Array
      b = Uint8Array.from(s.subarray(0, rnd(4) === 0 ? rnd(s.length + 1) : s.length))
      for (let m = rnd(4) + 1; m > 0 && b.length > 0; m--) b[rnd(b.length)] = rnd(4) === 0 ? 0xc0 | rnd(64) : rnd(256)
    }
    let r
    try { r = parseQuery(b) } catch (e) { t.fail(`threw on ${Buffer.from(b).toString('hex')}: ${String(e)}`); return }
    if (isRejection(r)) rejected++
    else {
      accepted++
      if (r.questionEnd > b.length || r.nameEnd + 4 !== r.questionEnd) { t.fail(`bad offsets on ${Buffer.from(b).toString('hex')}`); return }
    }
  }
  t.equal(accepted + rejected, 100_000)
  t.ok(accepted > 1000 && rejected > 1000, `both outcomes exercised (${accepted} accepted, ${rejected} rejected)`)
})
