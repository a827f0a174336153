// The nf_tables rule-count question, byte for byte: the dump request filtered to one table and chain,
// and the reading of the kernel's answers (rules of our sequence counted, DONE and errors ending it).
import t from 'tap'
import { getRuleRequest } from '../../pkg/proxy/nftables/rule-probe.js'
import { readDump } from '../../pkg/proxy/nftables/nfnl.js'

t.test('the request: GETRULE dump of table ferry, one chain, per family', async t => {
  const req = getRuleRequest('IPv4', 'nat-prerouting', 7)
  t.equal(req.toString('hex'),
    '34000000' + '070a' + '0103' + '07000000' + '00000000' + // nlmsghdr: len 52, NFT_MSG_GETRULE in subsys 10, REQUEST|DUMP, seq 7
    '02000000' + // nfgenmsg: NFPROTO_IPV4, version 0, res_id 0
    '0a000100' + Buffer.from('ferry\0').toString('hex') + '0000' + // NFTA_RULE_TABLE "ferry\0", padded to 4
    '13000200' + Buffer.from('nat-prerouting\0').toString('hex') + '00') // NFTA_RULE_CHAIN
  t.equal(req.readUInt32LE(0), req.length, 'the length field covers the whole message')
  t.equal(getRuleRequest('IPv6', 'x', 1)[16], 10, 'NFPROTO_IPV6')
})

function msg (type: number, seq: number, body: Buffer = Buffer.alloc(4)): Buffer {
  const h = Buffer.alloc(16)
  h.writeUInt32LE(16 + body.length, 0)
  h.writeUInt16LE(type, 4)
  h.writeUInt32LE(seq, 8)
  return Buffer.concat([h, body])
}
const NEWRULE = (10 << 8) | 6
const errno = (n: number): Buffer => { const b = Buffer.alloc(20); b.writeInt32LE(-n, 0); return b }

t.test('reading the dump', async t => {
  const cases: Array<{ name: string, datagram: Buffer, want: { rules: number, done: boolean, errno: number } }> = [
    { name: 'two rules, then DONE', datagram: Buffer.concat([msg(NEWRULE, 5), msg(NEWRULE, 5), msg(3, 5)]), want: { rules: 2, done: true, errno: 0 } },
    { name: 'rules without DONE: more datagrams follow', datagram: Buffer.concat([msg(NEWRULE, 5), msg(NEWRULE, 5)]), want: { rules: 2, done: false, errno: 0 } },
    { name: 'an empty chain', datagram: msg(3, 5), want: { rules: 0, done: true, errno: 0 } },
    { name: 'another sequence is not ours', datagram: Buffer.concat([msg(NEWRULE, 4), msg(3, 4)]), want: { rules: 0, done: false, errno: 0 } },
    { name: 'an error ends it with the errno', datagram: msg(2, 5, errno(1)), want: { rules: 0, done: true, errno: 1 } },
    { name: 'a truncated tail is ignored', datagram: Buffer.concat([msg(NEWRULE, 5), Buffer.from([60, 0, 0, 0, 0, 0])]), want: { rules: 1, done: false, errno: 0 } },
    { name: 'a length below the header stops the walk', datagram: Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]), msg(3, 5)]), want: { rules: 0, done: false, errno: 0 } },
  ]
  for (const c of cases) {
    const r = readDump(c.datagram, 5, 6)
    t.same({ rules: r.bodies.length, done: r.done, errno: r.errno }, c.want, c.name)
  }
})
