// encodeReply and friends: byte-exact messages checked by hand, round trips through dns2's decoder as an
// independent witness, compression pointers, truncation with TC, 0x20 case echo, and templates.
import t from 'tap'
import { Packet } from 'dns2'
import { RCODE, answer, type ResourceRecord } from '../../pkg/dns/message.js'
import { WireError } from '../../pkg/dns/wire/name.js'
import { parseIPv6 } from '../../pkg/dns/wire/encoder.js'
import { isRejection, parseQuery, type ParsedQuery } from '../../pkg/dns/wire/query.js'
import { encodeEmpty, encodeQuery, encodeRejection, encodeReply, fitsLimit, patchReply, replyLimit } from '../../pkg/dns/wire/writer.js'

function query (id: number, name: string, type: number, opts: Parameters<typeof encodeQuery>[3] = {}): { buf: Uint8Array, p: ParsedQuery } {
  const buf = encodeQuery(id, name, type, opts)
  const p = parseQuery(buf)
  if (isRejection(p)) throw new Error('test query rejected')
  return { buf, p }
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const ascii = (s: string): string => Buffer.from(s, 'latin1').toString('hex')
const label = (s: string): string => (s.length).toString(16).padStart(2, '0') + ascii(s)
const witness = (b: Uint8Array): Packet => Packet.parse(Buffer.from(b))

const A = (name: string, address: string, ttl = 5): ResourceRecord => ({ name, ttl, data: { type: 1, address } })
const SOA = (zone: string): ResourceRecord => ({
  name: zone,
  ttl: 5,
  data: { type: 6, mname: `ns.dns.${zone}`, rname: `hostmaster.${zone}`, serial: 1700000000, refresh: 7200, retry: 1800, expire: 86400, minimum: 5 },
})

t.test('byte-exact: one A answer, owner as a pointer to the question', async t => {
  const { buf, p } = query(0xabcd, 'Web.Ns.svc.cluster.local', 1)
  const out = encodeReply(buf, p, answer(RCODE.NOERROR, [A('web.ns.svc.cluster.local', '10.0.0.1')]), { limit: 512 })
  const want = 'abcd' + '8500' + '0001' + '0001' + '0000' + '0000' +
    label('Web') + label('Ns') + label('svc') + label('cluster') + label('local') + '00' + '0001' + '0001' +
    'c00c' + '0001' + '0001' + '00000005' + '0004' + '0a000001'
  t.equal(hex(out), want)
})

t.test('byte-exact: NXDOMAIN with the SOA compressed into the question, and OPT', async t => {
  const { buf, p } = query(7, 'nope.svc.Cluster.local', 1, { udpSize: 4096, do: true })
  const out = encodeReply(buf, p, answer(RCODE.NXDOMAIN, [], [SOA('cluster.local')]), { limit: replyLimit(p.query, 'udp') })
  // "Cluster" starts at 12 + 5 + 4 = 21 (0x15); the zone's owner and the SOA names point there.
  const want = '0007' + '8503' + '0001' + '0000' + '0001' + '0001' +
    label('nope') + label('svc') + label('Cluster') + label('local') + '00' + '0001' + '0001' +
    'c015' + '0006' + '0001' + '00000005' + (3 + 4 + 2 + 11 + 2 + 20).toString(16).padStart(4, '0') +
    label('ns') + label('dns') + 'c015' + label('hostmaster') + 'c015' +
    (1700000000).toString(16) + '00001c20' + '00000708' + '00015180' + '00000005' +
    '00' + '0029' + '04d0' + '00' + '00' + '8000' + '0000'
  t.equal(hex(out), want)
})

t.test('byte-exact: SRV target is never compressed; the glue owner points into the question', async t => {
  const { buf, p } = query(1, '_http._tcp.web.ns.svc.cluster.local', 33)
  const out = encodeReply(buf, p, answer(RCODE.NOERROR,
    [{ name: '_http._tcp.web.ns.svc.cluster.local', ttl: 5, data: { type: 33, priority: 0, weight: 100, port: 80, target: 'web.ns.svc.cluster.local' } }],
    [], [A('web.ns.svc.cluster.local', '10.0.0.9')]), { limit: 512 })
  const qname = label('_http') + label('_tcp') + label('web') + label('ns') + label('svc') + label('cluster') + label('local') + '00'
  const target = label('web') + label('ns') + label('svc') + label('cluster') + label('local') + '00'
  const want = '0001' + '8500' + '0001' + '0001' + '0000' + '0001' + qname + '0021' + '0001' +
    'c00c' + '0021' + '0001' + '00000005' + (6 + 26).toString(16).padStart(4, '0') + '0000' + '0064' + '0050' + target +
    'c017' + '0001' + '0001' + '00000005' + '0004' + '0a000009'
  t.equal(hex(out), want)
})

t.test('round trips decoded by dns2: every record type ferry writes', async t => {
  const { buf, p } = query(4242, 'Mixed.Example', 255, { udpSize: 1232 })
  const long = 'x'.repeat(300)
  const rrs: ResourceRecord[] = [
    A('mixed.example', '192.0.2.1', 30),
    { name: 'mixed.example', ttl: 30, data: { type: 28, address: '2001:db8::ffff:1.2.3.4' } },
    { name: 'alias.mixed.example', ttl: 30, data: { type: 5, target: 'svc.other.example' } },
    { name: '4.3.2.1.in-addr.arpa', ttl: 30, data: { type: 12, target: 'web.ns.svc.cluster.local' } },
    { name: '_p._udp.mixed.example', ttl: 30, data: { type: 33, priority: 1, weight: 50, port: 53, target: 'target.mixed.example' } },
    { name: 'dns-version.mixed.example', ttl: 28800, data: { type: 16, texts: ['1.1.0', long] } },
  ]
  const out = encodeReply(buf, p, answer(RCODE.NOERROR, rrs,
    [{ name: 'mixed.example', ttl: 60, data: { type: 2, target: 'ns.dns.mixed.example' } }], [SOA('mixed.example')]), { limit: 65535 })
  const w = witness(out)
  t.match(w.header, { id: 4242, qr: 1, opcode: 0, aa: 1, tc: 0, rd: 1, ra: 0, rcode: 0, qdcount: 1, ancount: 6, nscount: 1, arcount: 2 })
  t.match(w.questions, [{ name: 'Mixed.Example', type: 255, class: 1 }])
  t.match(w.answers, [
    { name: 'Mixed.Example', type: 1, class: 1, ttl: 30, address: '192.0.2.1' },
    { name: 'Mixed.Example', type: 28, ttl: 30, address: '2001:db8::ffff:102:304' },
    // Suffixes compress case-insensitively, so "example" points at the client's "Example" (as miekg).
    { name: 'alias.Mixed.Example', type: 5, domain: 'svc.other.Example' },
    { name: '4.3.2.1.in-addr.arpa', type: 12, domain: 'web.ns.svc.cluster.local' },
    { name: '_p._udp.Mixed.Example', type: 33, priority: 1, weight: 50, port: 53, target: 'target.mixed.example' },
    { name: 'dns-version.Mixed.Example', type: 16, ttl: 28800, data: '1.1.0' + long },
  ])
  t.match(w.authorities, [{ name: 'Mixed.Example', type: 2, ttl: 60, ns: 'ns.dns.Mixed.Example' }])
  t.match(w.additionals, [
    { name: 'Mixed.Example', type: 6, primary: 'ns.dns.Mixed.Example', admin: 'hostmaster.Mixed.Example', serial: 1700000000, refresh: 7200, retry: 1800, expiration: 86400, minimum: 5 },
    { type: 41, class: 1232, version: 0, doFlag: false, extendedRcode: 0 },
  ])
  // The 300-octet text went out as two character-strings, 255 then 45.
  const txt = Buffer.from(out).indexOf(Buffer.from([5, ...Buffer.from('1.1.0'), 255]))
  t.ok(txt > 0, 'strings split at 255')
  t.equal(out[txt + 6 + 1 + 255], 45)
})

t.test('compression pointers land on the right labels (suffixes shared case-insensitively)', async t => {
  const { buf, p } = query(9, 'a.B.c', 1)
  const rrs = Array.from({ length: 10 }, (_, i) => ({ name: `h${i % 3}.b.c`, ttl: 1, data: { type: 5 as const, target: `t${i % 2}.a.b.C` } }))
  const out = encodeReply(buf, p, answer(RCODE.NOERROR, rrs), { limit: 65535 })
  const w = witness(out)
  t.same(w.answers.map(r => [r.name, (r as unknown as { domain: string }).domain]), rrs.map(r => [r.name.replace('.b.c', '.B.c'), r.data.target.replace('.a.b.C', '.a.B.c')]))
  // h0.b.c written once, then reused whole: the 4th record's owner is a bare pointer to the 1st's.
  const firstOwner = p.questionEnd
  t.equal(hex(out.subarray(firstOwner, firstOwner + 5)), label('h0') + 'c00e', 'first owner: label + pointer to "B.c" in the question')

  // Case folding is ASCII-only (RFC 4343): "\xc9" and "\xe9" are different labels, "X" and "x" are not.
  const latin = encodeReply(buf, p, answer(RCODE.NOERROR, [A('\xc9X.b.c', '1.1.1.1'), A('\xe9x.b.c', '1.1.1.2'), A('\xc9x.B.C', '1.1.1.3')]), { limit: 512 })
  const at = p.questionEnd
  t.equal(hex(latin.subarray(at, at + 5)), '02c958c00e', 'latin1 bytes written as is')
  t.equal(hex(latin.subarray(at + 19, at + 24)), '02e978c00e', 'a different label, not a pointer')
  t.equal(hex(latin.subarray(at + 38, at + 40)), 'c0' + at.toString(16), 'same name up to ASCII case: a pointer to the first')
})

t.test('truncation: whole records dropped from the end, TC set, OPT kept', async t => {
  const many = Array.from({ length: 40 }, (_, i) => A('many.ns.svc.cluster.local', `10.0.${i >> 8}.${i & 255}`))
  const noEdns = query(1, 'many.ns.svc.cluster.local', 1)
  const out = encodeReply(noEdns.buf, noEdns.p, answer(RCODE.NOERROR, many), { limit: replyLimit(noEdns.p.query, 'udp') })
  const fit = Math.floor((512 - noEdns.p.questionEnd) / 16)
  t.ok(out.length <= 512)
  t.match(witness(out).header, { tc: 1, ancount: fit, arcount: 0 })
  t.equal(witness(out).answers.length, fit)

  const edns = query(1, 'many.ns.svc.cluster.local', 1, { udpSize: 512 })
  const out2 = encodeReply(edns.buf, edns.p, answer(RCODE.NOERROR, many), { limit: replyLimit(edns.p.query, 'udp') })
  const fit2 = Math.floor((512 - 11 - edns.p.questionEnd) / 16)
  t.match(witness(out2).header, { tc: 1, ancount: fit2, arcount: 1 })
  t.match(witness(out2).additionals, [{ type: 41, class: 1232 }])

  // Additional goes first, then authority: all answers and the SOA fit, some glue does not.
  const glue = Array.from({ length: 40 }, (_, i) => A(`g${i}.ns.svc.cluster.local`, '10.1.1.1'))
  const out3 = encodeReply(noEdns.buf, noEdns.p, answer(RCODE.NOERROR, many.slice(0, 3), [SOA('cluster.local')], glue), { limit: 512 })
  const h3 = witness(out3).header
  t.match(h3, { tc: 1, ancount: 3, nscount: 1 })
  t.ok(h3.arcount > 0 && h3.arcount < 40)

  // Over TCP the same answer is whole.
  t.match(witness(encodeReply(noEdns.buf, noEdns.p, answer(RCODE.NOERROR, many), { limit: replyLimit(noEdns.p.query, 'tcp') })).header, { tc: 0, ancount: 40 })

  // An answer larger than any message stops at 65535.
  const huge = Array.from({ length: 5000 }, (_, i) => ({ name: 'many.ns.svc.cluster.local', ttl: 5, data: { type: 28 as const, address: `fd00::${i.toString(16)}` } }))
  const out4 = encodeReply(noEdns.buf, noEdns.p, answer(RCODE.NOERROR, huge), { limit: 65535 })
  t.ok(out4.length <= 65535)
  t.match(witness(out4).header, { tc: 1, ancount: Math.floor((65535 - noEdns.p.questionEnd) / 28) })
})

t.test('0x20: the question and owners echo the client case; templates patch alike', async t => {
  const rrs = [A('web.shop.svc.cluster.local', '10.96.0.10'), A('web.shop.svc.cluster.local', '10.96.0.11')]
  const first = query(100, 'web.shop.svc.cluster.local', 1, { udpSize: 1232 })
  const template = encodeReply(first.buf, first.p, answer(RCODE.NOERROR, rrs), { limit: 1232 })
  let seed = 5
  for (let i = 0; i < 50; i++) {
    const name = [...'web.shop.svc.cluster.local'].map(c => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed & 1 ? c.toUpperCase() : c }).join('')
    const q = query(i * 1000, name, 1, { udpSize: 1232, rd: (i & 1) === 0, cd: (i & 2) === 0 })
    const direct = encodeReply(q.buf, q.p, answer(RCODE.NOERROR, rrs), { limit: 1232 })
    t.equal(hex(patchReply(template, q.buf, q.p)), hex(direct), name)
    const w = witness(direct)
    t.equal(w.questions[0]?.name, name)
    t.same(w.answers.map(r => r.name), [name, name])
  }
  t.ok(fitsLimit(template, 512))
  t.notOk(fitsLimit(template, template.length - 1))
})

t.test('a template patched for a query of another opcode carries that opcode (NOTIFY and QUERY share templates)', async t => {
  const rrs = [A('web.shop.svc.cluster.local', '10.96.0.10')]
  const withOpcode = (id: number, opcode: number): { buf: Uint8Array, p: ParsedQuery } => {
    const buf = Uint8Array.from(encodeQuery(id, 'web.shop.svc.cluster.local', 1))
    buf[2] = ((buf[2] as number) & 0x87) | (opcode << 3)
    const p = parseQuery(buf)
    if (isRejection(p)) throw new Error('test query rejected')
    return { buf, p }
  }
  for (const [from, to] of [[0, 4], [4, 0]]) {
    const first = withOpcode(1, from as number)
    const template = encodeReply(first.buf, first.p, answer(RCODE.NOERROR, rrs), { limit: 512 })
    const q = withOpcode(2, to as number)
    const patched = patchReply(template, q.buf, q.p)
    t.equal(hex(patched), hex(encodeReply(q.buf, q.p, answer(RCODE.NOERROR, rrs), { limit: 512 })), `opcode ${from} template, opcode ${to} query`)
    t.equal(((patched[2] as number) >> 3) & 0xf, to)
  }
})

t.test('RA comes from the answer: clear on ferry\'s own, set when it carries an upstream\'s; templates keep their own', async t => {
  const RA = 0x80
  const rrs = [A('web.ns.svc.cluster.local', '10.0.0.1')]
  const first = query(1, 'web.ns.svc.cluster.local', 1)
  const own = encodeReply(first.buf, first.p, answer(RCODE.NOERROR, rrs), { limit: 512 })
  const relayed = encodeReply(first.buf, first.p, answer(RCODE.NOERROR, rrs, [], [], false, true), { limit: 512 })
  t.equal((own[3] as number) & RA, 0, 'an own answer: RA=0')
  t.equal((relayed[3] as number) & RA, RA, 'an answer carrying an upstream\'s RA: RA=1')
  t.match(witness(own).header, { aa: 1, ra: 0 })
  t.match(witness(relayed).header, { aa: 0, ra: 1 })
  // A client may send any bits in the flags' second octet; only CD is taken from the query.
  const q = query(2, 'WEB.ns.svc.cluster.local', 1, { cd: true })
  const odd = Uint8Array.from(q.buf)
  odd[3] = (odd[3] as number) | RA
  t.equal((patchReply(own, odd, q.p)[3] as number) & (RA | 0x10), 0x10, 'the own template stays RA=0, CD from the query')
  t.equal((patchReply(relayed, q.buf, q.p)[3] as number) & (RA | 0x10), RA | 0x10, 'the relayed template stays RA=1')
})

t.test('rejections and empty replies', async t => {
  t.equal(hex(encodeRejection({ reject: 'formerr', id: 0x0102, opcode: 0, rd: true })), '0102' + '8101' + '0000'.repeat(4))
  t.equal(hex(encodeRejection({ reject: 'notimp', id: 3, opcode: 2, rd: false })), '0003' + '9004' + '0000'.repeat(4))
  const q = query(5, 'Zone.Transfer', 252)
  const refused = encodeEmpty(q.buf, q.p, RCODE.REFUSED, { limit: 512 })
  t.equal(hex(refused), '0005' + '8105' + '0001' + '0000'.repeat(3) + hex(q.buf.subarray(12, q.p.questionEnd)))
  // BADVERS (16): 0 in the header, 1 in OPT's extended rcode, version 0.
  const v1 = Uint8Array.from(encodeQuery(6, 'x.example', 1, { udpSize: 4096 }))
  v1[v1.length - 5] = 1
  const pv = parseQuery(v1)
  if (isRejection(pv)) throw new Error('rejected')
  t.equal(pv.query.edns?.version, 1)
  const badvers = encodeEmpty(v1, pv, RCODE.BADVERS, { limit: 4096 })
  t.equal(hex(badvers.subarray(2, 4)), '8100')
  t.equal(hex(badvers.subarray(badvers.length - 11)), '00' + '0029' + '04d0' + '01' + '00' + '0000' + '0000')
  t.match(witness(badvers).header, { rcode: 16 })
})

t.test('records that cannot be encoded throw WireError; good addresses parse', async t => {
  const q = query(1, 'x', 1)
  const bad: ResourceRecord[] = [
    A('x', '10.0.0.256'), A('x', '10.0.0'), A('x', '1.2.3.4.5'), A('x', ''), A('x', '1..2.3'),
    { name: 'x', ttl: 1, data: { type: 28, address: '1::2::3' } },
    { name: 'x', ttl: 1, data: { type: 28, address: '1:2:3:4:5:6:7' } },
    { name: 'x', ttl: 1, data: { type: 28, address: 'g::1' } },
    { name: 'x', ttl: 1, data: { type: 5, target: `${'a'.repeat(64)}.example` } },
    { name: 'x', ttl: 1, data: { type: 5, target: 'a..b' } },
    { name: 'x', ttl: 1, data: { type: 5, target: Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.') } },
    { name: 'x', ttl: 1, data: { type: 5, target: 'snow☃.example' } },
  ]
  for (const rr of bad) t.throws(() => encodeReply(q.buf, q.p, answer(RCODE.NOERROR, [rr]), { limit: 512 }), WireError, JSON.stringify(rr.data))
  const v6: Array<[string, string]> = [
    ['::', '00'.repeat(16)], ['::1', '00'.repeat(15) + '01'], ['fd00::1', 'fd00' + '00'.repeat(13) + '01'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'], ['::ffff:10.0.0.1', '00'.repeat(10) + 'ffff0a000001'],
    ['2001:DB8::', '20010db8' + '00'.repeat(12)], ['1:2:3:4:5:6:7::', '0001000200030004000500060007' + '0000'],
  ]
  for (const [text, want] of v6) t.equal(hex(parseIPv6(text) ?? new Uint8Array()), want, text)
  // Trailing dot and the root are accepted as names.
  const ok = encodeReply(q.buf, q.p, answer(RCODE.NOERROR, [{ name: 'x', ttl: 1, data: { type: 5, target: 'target.example.' } }, { name: '', ttl: 1, data: { type: 2, target: 'a.root-servers.net' } }]), { limit: 512 })
  t.match(witness(ok).answers, [{ domain: 'target.example' }, { name: '', ns: 'a.root-servers.net' }])
})
