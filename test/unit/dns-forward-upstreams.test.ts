// Upstream lists (resolv.conf), the forwarding-loop refusal (DNS.md §7.3) and the query bytes.
import t from 'tap'
import { formatHostPort, loopingUpstreams, parseHostPort, parseResolvConf } from '../../pkg/config/dns-addresses.js'
import { isFerryError } from '../../pkg/errors/errors.js'
import { forwardPlugin, upstreamQuery } from '../../pkg/dns/forward/forward.js'
import { PROBE } from '../../pkg/dns/forward/upstream.js'
import type { Query } from '../../pkg/dns/message.js'
import { inspect } from './fixtures/dns-raw.js'

// The default upstreams are resolv.conf's nameservers on port 53, as config.ts reads them.
const resolvConfUpstreams = (text: string): string[] =>
  parseResolvConf(text).nameservers.flatMap(ns => { const hp = parseHostPort(ns, 53); return hp === null ? [] : [formatHostPort({ host: hp.host, port: 53 })] })

t.test('resolv.conf nameservers as upstreams', async t => {
  const cases: Array<[string, string, string[]]> = [
    ['one nameserver', 'nameserver 10.0.0.10\n', ['10.0.0.10:53']],
    ['order kept, comments and other keys skipped', '# c\nsearch a b\nnameserver 1.1.1.1 # x\n;nameserver 9.9.9.9\noptions ndots:5\nnameserver 2001:db8::1\n', ['1.1.1.1:53', '[2001:db8::1]:53']],
    ['tabs and a zone id', 'nameserver\tfe80::1%eth0\n', ['[fe80::1%eth0]:53']],
    ['not an address', 'nameserver dns.example\nnameserver\n', []],
    ['empty', '', []],
  ]
  for (const [name, text, want] of cases) t.same(resolvConfUpstreams(text), want, name)
})

t.test('loopingUpstreams', async t => {
  const local = (): string[] => ['10.1.2.3', '127.0.0.1']
  const cases: Array<[string, string, number, string, number, boolean]> = [
    ['same address', '10.0.0.10', 53, '10.0.0.10', 53, true],
    ['other port', '10.0.0.10', 53, '10.0.0.10', 5353, false],
    ['other address', '10.0.0.10', 53, '10.0.0.11', 53, false],
    ['wildcard owns loopback', '0.0.0.0', 53, '127.0.0.53', 53, true],
    ['wildcard owns ::1', '::', 53, '::1', 53, true],
    ['wildcard owns a local address', '0.0.0.0', 53, '10.1.2.3', 53, true],
    ['wildcard does not own a remote one', '0.0.0.0', 53, '10.9.9.9', 53, false],
    ['mapped v4 is v4', '::ffff:10.0.0.10', 53, '10.0.0.10', 53, true],
    ['specific listener does not own loopback', '10.0.0.10', 53, '127.0.0.1', 53, false],
  ]
  for (const [name, sh, sp, uh, up, loop] of cases) {
    t.equal(loopingUpstreams([{ host: uh, port: up }], [{ host: sh, port: sp }], local).length, loop ? 1 : 0, name)
  }
})

t.test('forwardPlugin refuses itself as upstream, and empty or oversized lists, with a coded error', async t => {
  const self = [{ host: '0.0.0.0', port: 53 }]
  const thrown = (fn: () => unknown): unknown => { try { fn() } catch (e) { return e } return undefined }
  const loop = thrown(() => forwardPlugin({ upstreams: [{ host: '127.0.0.53', port: 53 }], selfAddresses: self, localAddresses: () => [] }))
  t.ok(isFerryError(loop, 'FERRY_ERR_CONFIG'), 'a loop is a config error')
  t.match((loop as Error).message, /127\.0\.0\.53:53/)
  t.ok(isFerryError(thrown(() => forwardPlugin({ upstreams: [] })), 'FERRY_ERR_CONFIG'), 'no upstream')
  const many = Array.from({ length: 16 }, (_, i) => ({ host: `10.0.0.${i + 1}`, port: 53 }))
  t.ok(isFerryError(thrown(() => forwardPlugin({ upstreams: many })), 'FERRY_ERR_CONFIG'), 'over 15 upstreams')
  const ok = forwardPlugin({ upstreams: [{ host: '10.0.0.10', port: 53 }], selfAddresses: self, localAddresses: () => [] })
  t.same(ok.status(), [{ to: '10.0.0.10:53', fails: 0, down: false }])
  ok.close()
})

const query = (name: string, type = 1, edns?: { do: boolean }): Query => ({
  id: 0x1234, opcode: 0, rd: true, cd: true,
  question: { name, lname: name.toLowerCase(), type, class: 1 },
  ...(edns !== undefined ? { edns: { udpSize: 4096, version: 0, do: edns.do } } : {}),
})

t.test('upstream query: question, RD/CD kept, OPT 1232 with DO', async t => {
  const q = Buffer.from(upstreamQuery(query('WwW.Example.com', 28, { do: true })))
  const v = inspect(q)
  t.equal(v.qdcount, 1)
  t.match(v.question, { lname: 'www.example.com', type: 28, class: 1 })
  t.equal(q.readUInt16BE(2) & 0x0110, 0x0110, 'RD and CD')
  t.equal(q.readUInt16BE(10), 1, 'one additional record')
  const opt = v.questionEnd
  t.equal(q[opt], 0)
  t.equal(q.readUInt16BE(opt + 1), 41)
  t.equal(q.readUInt16BE(opt + 3), 1232)
  t.equal(q.readUInt32BE(opt + 5), 0x8000, 'DO')
  t.equal(v.ttlOffsets.length, 0, 'OPT has no TTL to rewrite')
  const plain = Buffer.from(upstreamQuery(query('a.b')))
  t.equal(inspect(plain).questionEnd + 11, plain.length)
  t.equal(plain.readUInt32BE(plain.length - 6), 0, 'no DO without EDNS')
  t.equal(plain.readUInt16BE(2), 0x0110, 'RD and CD as asked, nothing else')
  t.equal(Buffer.from(upstreamQuery({ ...query('a.b'), question: { name: 'a.b', lname: 'a.b', type: 16, class: 3 } })).readUInt16BE(plain.length - 13), 3, 'the question class is kept')
  t.match(inspect(PROBE), { rd: true, arcount: 0, question: { lname: '', type: 2, class: 1 } }, 'probe is . NS, RD, no OPT')
})
