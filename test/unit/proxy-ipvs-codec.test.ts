// IPVS generic-netlink codec: requests compared byte for byte with layouts written out by hand from
// IPVS.md §4 / include/uapi/linux/ip_vs.h (little-endian host), replies built by hand and decoded.
import { endianness } from 'node:os'
import t from 'tap'
import { realServer } from '../../pkg/proxy/ipvs/desired.js'
import { addressBytes, formatAddress } from '../../pkg/proxy/ipvs/address.js'
import {
  checkOp, decodeDestinationMessage, decodeInfoMessage, decodeServiceMessage, encodeDestinationDump, encodeFlush,
  encodeGetInfo, encodeOp, encodeServiceDump, maskToPrefix, prefixToMask,
} from '../../pkg/proxy/ipvs/codec.js'
import type { IpvsOp, RealServer, VirtualServer, VirtualServerKey } from '../../pkg/proxy/ipvs/types.js'
import { decodeFamilyId, encodeGetFamily, errnoOf, frame, parseAttrs, parseMessages } from '../../pkg/netlink/wire.js'

/** Hex with spaces, newlines and `# comments` allowed. */
function hex (text: string): Buffer {
  return Buffer.from(text.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex')
}

/** One attribute built by hand: len u16 LE (header + payload, no padding), type u16 LE, payload, zero pad to 4. */
function tlv (type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length
  const head = Buffer.from([len & 0xff, len >> 8, type & 0xff, type >> 8])
  return Buffer.concat([head, payload, Buffer.alloc((4 - (len % 4)) % 4)])
}
const u16 = (v: number): Buffer => Buffer.from([v & 0xff, v >> 8])
const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b }
const u64 = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b }
const be16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff])
const str = (s: string): Buffer => Buffer.from(`${s}\0`, 'latin1')
/** A whole netlink message built by hand: nlmsghdr LE then payload, padded. */
function nlmsg (type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const len = 16 + payload.length
  const h = Buffer.alloc(16)
  h.writeUInt32LE(len, 0); h.writeUInt16LE(type, 4); h.writeUInt16LE(flags, 6); h.writeUInt32LE(seq, 8); h.writeUInt32LE(4242, 12)
  return Buffer.concat([h, payload, Buffer.alloc((4 - (len % 4)) % 4)])
}

const VIP4: VirtualServerKey = { family: 'IPv4', protocol: 'TCP', address: '10.96.0.1', port: 443 }
const VIP6: VirtualServerKey = { family: 'IPv6', protocol: 'UDP', address: 'fd00::10', port: 53 }
const dest = (address: string, port: number, weight = 1): RealServer => realServer(address, port, { weight })

t.test('the layouts below are for a little-endian host', async t => {
  t.equal(endianness(), 'LE')
})

t.test('add service, v4, ClientIP affinity: persistent flag with a 10800 s timeout', async t => {
  const service: VirtualServer = { ...VIP4, scheduler: 'rr', flags: 0x1, timeout: 10800, netmask: 32 }
  t.same(encodeOp({ op: 'addService', service }), hex(`
    01 01 00 00                           # genlmsghdr: cmd NEW_SERVICE (1), version 1
    48 00 01 80                           # CMD_ATTR_SERVICE, NLA_F_NESTED, len 72
      06 00 01 00  02 00 00 00            #   AF = AF_INET (u16 + 2 pad)
      06 00 02 00  06 00 00 00            #   PROTOCOL = TCP
      08 00 03 00  0a 60 00 01            #   ADDR = 10.96.0.1 (4 bytes in)
      06 00 04 00  01 bb 00 00            #   PORT = 443, network order
      07 00 06 00  72 72 00 00            #   SCHED_NAME = "rr\\0" + 1 pad
      0c 00 07 00  01 00 00 00 ff ff ff ff  # FLAGS {flags 0x1, mask ~0}
      08 00 08 00  30 2a 00 00            #   TIMEOUT = 10800
      08 00 09 00  ff ff ff ff            #   NETMASK = 255.255.255.255, network order
  `))
})

t.test('add service, v6, mh with IP_VS_SVC_F_SCHED2 (0x10); the v6 netmask is a host-order prefix', async t => {
  const service: VirtualServer = { ...VIP6, scheduler: 'mh', flags: 0x10, timeout: 0, netmask: 128 }
  t.same(encodeOp({ op: 'addService', service }), hex(`
    01 01 00 00
    54 00 01 80                           # len 84
      06 00 01 00  0a 00 00 00            #   AF = AF_INET6
      06 00 02 00  11 00 00 00            #   PROTOCOL = UDP
      14 00 03 00  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 10  # ADDR fd00::10
      06 00 04 00  00 35 00 00            #   PORT 53
      07 00 06 00  6d 68 00 00            #   "mh\\0"
      0c 00 07 00  10 00 00 00 ff ff ff ff
      08 00 08 00  00 00 00 00
      08 00 09 00  80 00 00 00            #   NETMASK = 128 as a host u32
  `))
})

t.test('update service is SET_SERVICE with the same attributes; HASHED is never sent; a 4-byte name needs no pad', async t => {
  const service: VirtualServer = { ...VIP4, scheduler: 'wlc', flags: 0x2 | 0x1, timeout: 60, netmask: 24 }
  t.same(encodeOp({ op: 'updateService', service }), hex(`
    02 01 00 00                           # SET_SERVICE
    48 00 01 80
      06 00 01 00  02 00 00 00
      06 00 02 00  06 00 00 00
      08 00 03 00  0a 60 00 01
      06 00 04 00  01 bb 00 00
      08 00 06 00  77 6c 63 00            #   "wlc\\0"
      0c 00 07 00  01 00 00 00 ff ff ff ff  # 0x3 sent as 0x1
      08 00 08 00  3c 00 00 00
      08 00 09 00  ff ff ff 00            #   /24 = 255.255.255.0
  `))
})

t.test('delete service carries only the identifying attributes', async t => {
  t.same(encodeOp({ op: 'deleteService', service: { ...VIP4, protocol: 'SCTP' } }), hex(`
    03 01 00 00
    24 00 01 80
      06 00 01 00  02 00 00 00
      06 00 02 00  84 00 00 00            #   SCTP = 132
      08 00 03 00  0a 60 00 01
      06 00 04 00  01 bb 00 00
  `))
})

const SVC4_KEY = `
    24 00 01 80
      06 00 01 00  02 00 00 00
      06 00 02 00  06 00 00 00
      08 00 03 00  0a 60 00 01
      06 00 04 00  01 bb 00 00`

t.test('add destination: masq, weight 1, both thresholds, ADDR_FAMILY', async t => {
  t.same(encodeOp({ op: 'addDestination', service: VIP4, destination: dest('10.244.1.5', 8080) }), hex(`
    05 01 00 00                           # NEW_DEST
    ${SVC4_KEY}
    3c 00 02 80                           # CMD_ATTR_DEST, len 60
      08 00 01 00  0a f4 01 05            #   ADDR 10.244.1.5
      06 00 02 00  1f 90 00 00            #   PORT 8080, network order
      08 00 03 00  00 00 00 00            #   FWD_METHOD = MASQ
      08 00 04 00  01 00 00 00            #   WEIGHT 1
      08 00 05 00  00 00 00 00            #   U_THRESH
      08 00 06 00  00 00 00 00            #   L_THRESH
      06 00 0b 00  02 00 00 00            #   ADDR_FAMILY = AF_INET
  `))
})

t.test('update destination to weight 0 (graceful termination), thresholds and output counters as given / ignored', async t => {
  const d = { ...dest('10.244.1.5', 8080, 0), upperThreshold: 100, lowerThreshold: 10, activeConns: 7, inactiveConns: 3 }
  t.same(encodeOp({ op: 'updateDestination', service: VIP4, destination: d }), hex(`
    06 01 00 00                           # SET_DEST
    ${SVC4_KEY}
    3c 00 02 80
      08 00 01 00  0a f4 01 05
      06 00 02 00  1f 90 00 00
      08 00 03 00  00 00 00 00
      08 00 04 00  00 00 00 00            #   WEIGHT 0
      08 00 05 00  64 00 00 00            #   U_THRESH 100
      08 00 06 00  0a 00 00 00            #   L_THRESH 10
      06 00 0b 00  02 00 00 00
  `))
})

t.test('delete destination: address, port and family only', async t => {
  t.same(encodeOp({ op: 'deleteDestination', service: VIP4, destination: { address: '10.244.1.5', port: 8080 } }), hex(`
    07 01 00 00
    ${SVC4_KEY}
    1c 00 02 80
      08 00 01 00  0a f4 01 05
      06 00 02 00  1f 90 00 00
      06 00 0b 00  02 00 00 00
  `))
})

t.test('v6 destination with weight 3 and direct routing', async t => {
  const d: RealServer = { ...dest('fd00:10:244::5', 53, 3), forward: 'route' }
  t.same(encodeOp({ op: 'addDestination', service: VIP6, destination: d }), hex(`
    05 01 00 00
    30 00 01 80                           # service key, len 48
      06 00 01 00  0a 00 00 00
      06 00 02 00  11 00 00 00
      14 00 03 00  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 10
      06 00 04 00  00 35 00 00
    48 00 02 80                           # dest, len 72
      14 00 01 00  fd 00 00 10 02 44 00 00 00 00 00 00 00 00 00 05
      06 00 02 00  00 35 00 00
      08 00 03 00  03 00 00 00            #   DROUTE
      08 00 04 00  03 00 00 00
      08 00 05 00  00 00 00 00
      08 00 06 00  00 00 00 00
      06 00 0b 00  0a 00 00 00
  `))
})

t.test('dump, info, flush and family-lookup requests, framed', async t => {
  t.same(encodeServiceDump(), hex('04 01 00 00'))
  t.same(encodeDestinationDump(VIP4), hex(`08 01 00 00 ${SVC4_KEY}`))
  t.same(encodeGetInfo(), hex('0f 01 00 00'))
  t.same(encodeFlush(), hex('11 01 00 00'))
  t.same(encodeGetFamily('IPVS'), hex(`
    03 01 00 00                           # CTRL_CMD_GETFAMILY, version 1
    09 00 02 00  49 50 56 53 00 00 00 00  # CTRL_ATTR_FAMILY_NAME "IPVS\\0" + 3 pad
  `))
  // nlmsghdr: len 20, type = the family id, flags REQUEST|DUMP, seq 7, pid 0.
  t.same(frame(0x25, 0x301, 7, encodeServiceDump()), hex('14 00 00 00  25 00  01 03  07 00 00 00  00 00 00 00  04 01 00 00'))
  // A payload that is not a multiple of 4 is padded; len counts it unpadded.
  t.same(frame(0x10, 0x5, 1, Buffer.from([1, 2, 3])), hex('13 00 00 00  10 00  05 00  01 00 00 00  00 00 00 00  01 02 03 00'))
})

// ---- Replies, as ip_vs_genl_fill_service / fill_dest write them ----

const STATS = Buffer.concat([ // IPVS_SVC_ATTR_STATS: u32 counters, u64 bytes
  tlv(1, u32(5)), tlv(2, u32(50)), tlv(3, u32(40)), tlv(4, u64(5000)), tlv(5, u64(4000)),
  tlv(6, u32(0)), tlv(7, u32(1)), tlv(8, u32(1)), tlv(9, u32(80)), tlv(10, u32(80)),
])
const STATS64 = Buffer.concat([tlv(11, Buffer.alloc(0)), tlv(1, u64(5)), tlv(2, u64(50)), tlv(4, u64(5000))])

function serviceReply (o: { af: number, proto: number, addr16: Buffer, port: number, sched: string, flags: number, timeout: number, netmask: Buffer }): Buffer {
  return Buffer.concat([Buffer.from([1, 1, 0, 0]), tlv(1, Buffer.concat([
    tlv(1, u16(o.af)), tlv(2, u16(o.proto)), tlv(3, o.addr16), tlv(4, be16(o.port)), tlv(6, str(o.sched)),
    tlv(7, Buffer.concat([u32(o.flags), u32(0xffffffff)])), tlv(8, u32(o.timeout)), tlv(9, o.netmask),
    tlv(10, STATS), tlv(12, STATS64),
  ]))])
}
const v4in16 = (a: number[]): Buffer => Buffer.concat([Buffer.from(a), Buffer.alloc(12)])

t.test('a NLM_F_MULTI service dump decodes to exact objects: HASHED masked, 16-byte v4 address, stats skipped', async t => {
  const datagram = Buffer.concat([
    nlmsg(0x25, 0x2, 9, serviceReply({ af: 2, proto: 6, addr16: v4in16([10, 96, 0, 1]), port: 443, sched: 'rr', flags: 0x2 | 0x1, timeout: 10800, netmask: Buffer.from([255, 255, 255, 255]) })),
    nlmsg(0x25, 0x2, 9, serviceReply({ af: 10, proto: 17, addr16: hex('fd00 0000 0000 0000 0000 0000 0000 0010'), port: 53, sched: 'mh', flags: 0x2 | 0x10, timeout: 0, netmask: u32(128) })),
    nlmsg(3, 0x2, 9, u32(0)), // NLMSG_DONE
  ])
  const msgs = parseMessages(datagram)
  t.same(msgs.map(m => [m.type, m.flags, m.seq]), [[0x25, 2, 9], [0x25, 2, 9], [3, 2, 9]])
  t.equal(errnoOf(msgs[2]?.payload ?? Buffer.alloc(0)), 0)
  t.same(msgs.slice(0, 2).map(m => decodeServiceMessage(m.payload)), [
    { family: 'IPv4', protocol: 'TCP', address: '10.96.0.1', port: 443, scheduler: 'rr', flags: 0x1, timeout: 10800, netmask: 32 },
    { family: 'IPv6', protocol: 'UDP', address: 'fd00::10', port: 53, scheduler: 'mh', flags: 0x10, timeout: 0, netmask: 128 },
  ])
})

t.test('fwmark services and unknown families are skipped, not misread', async t => {
  const fwmark = Buffer.concat([Buffer.from([1, 1, 0, 0]), tlv(1, Buffer.concat([
    tlv(1, u16(2)), tlv(5, u32(42)), tlv(6, str('rr')), tlv(7, Buffer.concat([u32(2), u32(0xffffffff)])), tlv(8, u32(0)), tlv(9, hex('ffffffff')),
  ]))])
  t.equal(decodeServiceMessage(fwmark), null)
  t.equal(decodeServiceMessage(serviceReply({ af: 7, proto: 6, addr16: Buffer.alloc(16), port: 1, sched: 'rr', flags: 2, timeout: 0, netmask: u32(0) })), null)
})

function destReply (attrs: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([5, 1, 0, 0]), tlv(2, Buffer.concat(attrs))])
}

t.test('a dest reply decodes with its connection counters; tunnel fields and stats are skipped', async t => {
  const payload = destReply([
    tlv(1, v4in16([10, 244, 1, 5])), tlv(2, be16(8080)), tlv(3, u32(0)), tlv(4, u32(1)), tlv(13, Buffer.from([0])),
    tlv(14, be16(0)), tlv(15, u16(0)), tlv(5, u32(0)), tlv(6, u32(0)), tlv(7, u32(4)), tlv(8, u32(2)), tlv(9, u32(1)),
    tlv(11, u16(2)), tlv(10, STATS), tlv(12, STATS64),
  ])
  t.same(decodeDestinationMessage(payload, 'IPv4'), {
    address: '10.244.1.5', port: 8080, weight: 1, forward: 'masq', upperThreshold: 0, lowerThreshold: 0, activeConns: 4, inactiveConns: 2, persistConns: 1,
  })
})

t.test('a dest without ADDR_FAMILY (kernels before 3.18) takes the service family; FWD_METHOD is masked by 0x7', async t => {
  const payload = destReply([
    tlv(1, hex('fd00 0000 0000 0000 0000 0000 0000 0005')), tlv(2, be16(53)), tlv(3, u32(0x100 | 2)), tlv(4, u32(5)), tlv(5, u32(9)), tlv(6, u32(1)),
  ])
  t.same(decodeDestinationMessage(payload, 'IPv6'), {
    address: 'fd00::5', port: 53, weight: 5, forward: 'tunnel', upperThreshold: 9, lowerThreshold: 1, activeConns: 0, inactiveConns: 0, persistConns: 0,
  })
})

t.test('GET_INFO reply, family lookup reply, error and done payloads', async t => {
  t.same(decodeInfoMessage(Buffer.concat([Buffer.from([14, 1, 0, 0]), tlv(1, u32(0x010201)), tlv(2, u32(4096))])), { version: '1.2.1', connTableSize: 4096 })
  const newFamily = Buffer.concat([Buffer.from([1, 2, 0, 0]), tlv(2, str('IPVS')), tlv(1, u16(0x25)), tlv(3, u32(1)), tlv(4, u32(0)), tlv(5, u32(6))])
  t.equal(decodeFamilyId(newFamily), 0x25)
  // NLMSG_ERROR: int error (-ENOENT) then the offending header.
  t.equal(errnoOf(Buffer.concat([u32(-2), Buffer.alloc(16)])), 2)
  t.equal(errnoOf(Buffer.concat([u32(0), Buffer.alloc(16)])), 0)
})

t.test('malformed replies are coded errors, not crashes', async t => {
  t.throws(() => parseMessages(hex('ff 00 00 00 25 00 00 00 01 00 00 00 00 00 00 00')), { code: 'FERRY_ERR_NETLINK' })
  t.throws(() => parseAttrs(hex('40 00 01 00 00 00 00 00')), { code: 'FERRY_ERR_NETLINK' })
  t.throws(() => decodeServiceMessage(Buffer.from([1, 1, 0, 0])), { code: 'FERRY_ERR_NETLINK' }) // no SERVICE nest
  const shortAddr = serviceReply({ af: 10, proto: 6, addr16: Buffer.from([1, 2, 3, 4]), port: 1, sched: 'rr', flags: 0, timeout: 0, netmask: u32(128) })
  t.throws(() => decodeServiceMessage(shortAddr), { code: 'FERRY_ERR_NETLINK' })
})

// ---- Round trips and checks ----

t.test('what is encoded decodes back to the same service and dest (attribute sets reread as the kernel would)', async t => {
  const services: VirtualServer[] = [
    { ...VIP4, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 },
    { ...VIP4, address: '192.168.99.11', port: 30080, scheduler: 'sh', flags: 0x1 | 0x8 | 0x10, timeout: 180, netmask: 16 },
    { ...VIP6, address: '2001:db8::ffff:a00:1', scheduler: 'mh', flags: 0x10, timeout: 86400, netmask: 64 },
  ]
  for (const s of services) {
    const attrs = parseAttrs(parseAttrs(encodeOp({ op: 'addService', service: s }).subarray(4)).get(1) as Buffer)
    const reply = Buffer.concat([Buffer.from([1, 1, 0, 0]), tlv(1, Buffer.concat([...attrs].map(([type, b]) => tlv(type, b))))])
    t.same(decodeServiceMessage(reply), s, `${s.address}:${s.port}`)
  }
  const d: RealServer = { ...dest('10.244.9.9', 9376, 7), upperThreshold: 3, lowerThreshold: 1 }
  const nest = parseAttrs(encodeOp({ op: 'addDestination', service: VIP4, destination: d }).subarray(4)).get(2) as Buffer
  t.same(decodeDestinationMessage(Buffer.concat([Buffer.from([5, 1, 0, 0]), tlv(2, nest)]), 'IPv4'), d)
})

t.test('addresses: canonical text out, 4 or 16 bytes in', async t => {
  t.same(addressBytes('IPv4', '10.0.0.1'), Buffer.from([10, 0, 0, 1]))
  t.same(addressBytes('IPv6', '::ffff:1.2.3.4'), hex('0000 0000 0000 0000 0000 ffff 0102 0304'))
  t.same(addressBytes('IPv6', 'FD00:0:0::1'), hex('fd00 0000 0000 0000 0000 0000 0000 0001'))
  t.equal(addressBytes('IPv4', 'fd00::1'), null)
  t.equal(addressBytes('IPv6', '10.0.0.1'), null)
  t.equal(formatAddress('IPv6', hex('fd00 0000 0000 0000 0000 0000 0000 0001')), 'fd00::1')
  t.equal(formatAddress('IPv6', hex('2001 0db8 0000 0000 0001 0000 0000 0001')), '2001:db8::1:0:0:1')
  t.equal(formatAddress('IPv4', v4in16([192, 168, 0, 1])), '192.168.0.1')
  t.equal(prefixToMask(32), 0xffffffff)
  t.equal(prefixToMask(0), 0)
  t.equal(prefixToMask(20), 0xfffff000)
  t.equal(maskToPrefix(0xffffff00), 24)
  t.equal(maskToPrefix(0), 0)
})

t.test('ops that cannot be encoded are refused with a reason (the kernel would say EINVAL)', async t => {
  const good: VirtualServer = { ...VIP4, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 }
  const bad: Array<[IpvsOp, RegExp]> = [
    [{ op: 'addService', service: { ...good, address: 'fd00::1' } }, /not an IPv4 address/],
    [{ op: 'addService', service: { ...good, port: 70000 } }, /port/],
    [{ op: 'addService', service: { ...good, scheduler: 'a-very-long-scheduler' } }, /scheduler/],
    [{ op: 'addService', service: { ...good, netmask: 33 } }, /netmask/],
    [{ op: 'deleteService', service: { ...good, protocol: 'ICMP' as 'TCP' } }, /protocol/],
    [{ op: 'addDestination', service: VIP4, destination: dest('10.0.0.300', 80) }, /not an address/],
    [{ op: 'addDestination', service: VIP4, destination: { ...dest('10.0.0.3', 80), forward: 'nat' as 'masq' } }, /forward/],
    [{ op: 'addDestination', service: VIP4, destination: dest('10.0.0.3', 80, 1.5) }, /weight/],
  ]
  for (const [op, why] of bad) {
    t.match(checkOp(op), why)
    t.throws(() => encodeOp(op), { code: 'FERRY_ERR_INVALID_OBJECT' })
  }
  t.equal(checkOp({ op: 'addService', service: { ...VIP6, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0 } }), null, 'a v6 prefix is the kernel\'s to judge')
})
