// Map elements as nf_tables netlink, byte for byte against what nft 1.0.6 sends for the same element
// (`nft --debug=mnl`), decoded back for every layout of the table, both families; malformed elements
// refused by name; batches framed and sized for one sendmsg each.
import t from 'tap'
import { BATCH_BYTES, ElementEncoder, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, decodeBatches, elementLayout } from '../../pkg/proxy/nftables/element-wire.js'
import { parseMessages } from '../../pkg/netlink/wire.js'
import { isFerryError } from '../../pkg/errors/errors.js'

const hex = (s: string): string => s.replace(/\s+/g, '')
const str = (s: string): string => Buffer.from(s).toString('hex')

t.test('one element of a pick map and one of a verdict map, as nft sends them', async t => {
  const enc = new ElementEncoder('IPv4', 10)
  enc.add('vip-cluster-5', '10.0.0.1 . tcp . 80 . 3 : 10.1.2.3 . 8080')
  enc.add('service-ips', '10.0.0.1 . tcp . 80 : goto cip-cluster-5')
  const [batch, more] = enc.finish()
  t.equal(more, undefined, 'one batch')
  const msgs = parseMessages(batch?.bytes ?? Buffer.alloc(0))
  t.same(msgs.map(m => m.type), [NFNL_MSG_BATCH_BEGIN, 0x0a0c, 0x0a0c, NFNL_MSG_BATCH_END], 'BEGIN, two NEWSETELEM, END')
  t.equal(msgs[0]?.payload.toString('hex'), '0000000a', 'BEGIN: AF_UNSPEC, version 0, res_id NFNL_SUBSYS_NFTABLES (big-endian)')
  t.same(batch?.messages.map(m => [m.map, m.count, m.seq]), [['vip-cluster-5', 1, 11], ['service-ips', 1, 12]])
  // nft also sends NFTA_SET_ELEM_LIST_SET_ID, which only a set declared in the same batch needs.
  t.equal(batch?.messages[0]?.bytes.toString('hex'), hex(`
    64000000 0c0a 0504 0b000000 00000000
    02000000
    0a000100 ${str('ferry')} 000000
    12000200 ${str('vip-cluster-5')} 000000
    30000380
      2c000180
        18000180 14000100 0a000001 06000000 00500000 03000000
        10000280 0c000100 0a010203 1f900000`), 'NEWSETELEM, REQUEST|ACK|CREATE: key 10.0.0.1 . tcp . 80 . 3 (numgen in host order), data 10.1.2.3 . 8080')
  t.equal(batch?.messages[1]?.bytes.toString('hex'), hex(`
    70000000 0c0a 0504 0c000000 00000000
    02000000
    0a000100 ${str('ferry')} 000000
    10000200 ${str('service-ips')} 00
    40000380
      3c000180
        14000180 10000100 0a000001 06000000 00500000
        24000280 20000280 08000100 fffffffc 12000200 ${str('cip-cluster-5')} 000000`), 'a goto verdict: code -4 big-endian and the chain')
})

t.test('every layout of the table decodes back to its text, both families', async t => {
  const cases: Array<[string, string, 'IPv4' | 'IPv6']> = [
    ['service-ips', '172.30.0.10 . udp . 53 : goto cip-local-2', 'IPv4'],
    ['no-endpoint-cluster', '172.30.0.11 . tcp . 80 : goto reject-chain', 'IPv4'],
    ['no-endpoint-external', '192.0.2.7 . sctp . 9000 : drop', 'IPv4'],
    ['service-nodeports', 'tcp . 30080 : goto xl-np-3-1', 'IPv4'],
    ['no-endpoint-nodeports', 'udp . 30053 : drop', 'IPv4'],
    ['firewall-ips', '192.0.2.8 . tcp . 443', 'IPv4'],
    ['hairpin', '10.180.0.1 . 10.180.0.1', 'IPv4'],
    ['vip-local-1', '172.30.0.12 . tcp . 65535 . 0 : 10.180.0.9 . 1', 'IPv4'],
    ['np-cluster-12', 'tcp . 30081 . 11 : 10.180.0.3 . 8443', 'IPv4'],
    ['service-ips', 'fd00:30::10 . tcp . 80 : goto cip-cluster-3', 'IPv6'],
    ['hairpin', 'fd00:180::1 . fd00:180::1', 'IPv6'],
    ['vip-cluster-3', 'fd00:30::10 . tcp . 80 . 2 : fd00:180::1:2 . 8080', 'IPv6'],
    ['np-local-2', 'udp . 30053 . 1 : 2001:db8::ffff:0:1 . 53', 'IPv6'],
  ]
  for (const [map, element, family] of cases) {
    const enc = new ElementEncoder(family)
    t.ok(enc.takes(map), `${map} has a layout`)
    enc.add(map, element)
    const decoded = decodeBatches(enc.finish().map(b => b.bytes), family)
    t.same(decoded.map(d => [d.map, d.elements]), [[map, [element]]], `${family} ${map}: ${element}`)
  }
  for (const map of ['aff-0123456789ab-cluster-0123456789ab', 'pick-vip-cluster-5', 'vip-cluster-x', 'svc-0123456789ab']) {
    t.equal(elementLayout(map), null, `${map}: not encodable here (printed for nft instead)`)
  }
})

t.test('malformed elements are refused naming the map and the element, and leave the message intact', async t => {
  const bad: Array<[string, string, RegExp]> = [
    ['service-ips', '10.0.0.1 . tcp : goto x', /key has 2 fields, not 3/],
    ['service-ips', '10.0.0.1 . tcp . 80', /map element needs data/],
    ['hairpin', '10.0.0.1 . 10.0.0.1 : drop', /set element has no data/],
    ['service-ips', '10.0.0.300 . tcp . 80 : drop', /not an IPv4 address/],
    ['service-ips', 'fd00::1 . tcp . 80 : drop', /not an IPv4 address/],
    ['service-ips', '10.0.0.1 . icmp . 80 : drop', /unknown protocol "icmp"/],
    ['service-ips', '10.0.0.1 . tcp . 70000 : drop', /not a port/],
    ['service-ips', '10.0.0.1 . tcp . 80 : goto', /not a verdict/],
    ['service-ips', '10.0.0.1 . tcp . 80 : drop now', /not a verdict/],
    ['service-ips', '10.0.0.1 . tcp . 80 : continue', /not a verdict/],
    ['vip-cluster-2', '10.0.0.1 . tcp . 80 . -1 : 10.1.0.1 . 80', /not a 32-bit number/],
    ['vip-cluster-2', '10.0.0.1 . tcp . 80 . 1 : 10.1.0.1', /data has 1 fields, not 2/],
    ['aff-x', '10.0.0.1', /no element layout/],
  ]
  for (const [map, element, why] of bad) {
    const enc = new ElementEncoder('IPv4')
    enc.add('service-ips', '10.9.9.9 . tcp . 1 : drop')
    const e = (() => { try { enc.add(map, element); return null } catch (err) { return err } })()
    t.ok(isFerryError(e) && e.code === 'FERRY_ERR_APPLY', `${map} "${element}" refused`)
    t.match(String((e as Error).message), why)
    t.match(String((e as Error).message), map)
    t.same(decodeBatches(enc.finish().map(b => b.bytes), 'IPv4').flatMap(d => d.elements), ['10.9.9.9 . tcp . 1 : drop'], 'the good element before it is all that is sent')
  }
})

t.test('60k elements: lists under 64 KiB, batches under BATCH_BYTES, every element once, unique sequence numbers', async t => {
  const enc = new ElementEncoder('IPv4')
  const want: string[] = []
  for (let i = 0; i < 60_000; i++) {
    const vip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    const el = `${vip} . tcp . 80 . ${i % 5} : 10.200.${(i >> 8) & 255}.${i & 255} . 8080`
    want.push(el)
    enc.add('vip-cluster-5', el)
    if (i % 5 === 0) enc.add('service-ips', `${vip} . tcp . 80 : goto cip-cluster-5`)
  }
  const batches = enc.finish()
  t.ok(batches.length > 1, `${batches.length} batches`)
  const seqs = new Set<number>()
  for (const b of batches) {
    t.ok(b.bytes.length <= BATCH_BYTES, 'batch fits the send buffer')
    const msgs = parseMessages(b.bytes)
    t.equal(msgs.length, b.messages.length + 2)
    for (const m of msgs) { t.notOk(seqs.has(m.seq), 'fresh seq'); seqs.add(m.seq) }
    for (const m of b.messages) t.ok(m.bytes.length < 65536, 'message list fits a 16-bit attribute length')
  }
  const decoded = decodeBatches(batches.map(b => b.bytes), 'IPv4')
  t.same(decoded.filter(d => d.map === 'vip-cluster-5').flatMap(d => d.elements), want, 'all pick elements, in order')
  t.equal(decoded.filter(d => d.map === 'service-ips').flatMap(d => d.elements).length, 12_000)
})
