// The address batch's messages (pkg/netlink/addr-batch.ts): the same bytes as the netlink package's own
// RTM_NEWADDR/RTM_DELADDR bodies (what links.addAddress sent before), flags as `ip address add` sends
// them, and an unparsable address answered EINVAL without being sent. The kernel's answers are checked
// in test/e2e/netlink-overlay.test.ts.
import t from 'tap'
import netlink from 'netlink'
import { AddressBatch, encodeAddressChange } from '../../pkg/netlink/addr-batch.js'
import type { NetlinkTransport } from '../../pkg/netlink/transport.js'
import { frame, parseMessages, type NetlinkMessage } from '../../pkg/netlink/wire.js'

const packageBytes = (data: netlink.rt.Address, attrs: netlink.rt.AddressAttrs): Buffer => {
  const out = new netlink.AttrStream()
  netlink.rt.formatAddressMessage({ kind: 'address', data, attrs }, out)
  return Buffer.concat(out.bufs)
}
const v4 = Buffer.from([10, 96, 0, 1])
const v6 = Buffer.from('fd000096000000000000000000000010', 'hex')

t.test('each change is the netlink package\'s body for the same request', async t => {
  const add4 = encodeAddressChange({ op: 'add', index: 7, ip: '10.96.0.1', prefix: 32 })
  t.same(add4.payload, packageBytes({ family: 2, prefixlen: 32, index: 7 }, { local: v4, address: v4 }))
  t.equal(add4.type, 20, 'RTM_NEWADDR')
  t.equal(add4.flags, 0x1 | 0x4 | 0x400 | 0x200, 'REQUEST|ACK|CREATE|EXCL')
  const add6 = encodeAddressChange({ op: 'add', index: 7, ip: 'fd00:96::10', prefix: 128 })
  t.same(add6.payload, packageBytes({ family: 10, prefixlen: 128, index: 7 }, { address: v6, flags: { nodad: true } }), 'IPv6: IFA_ADDRESS and NODAD')
  const del4 = encodeAddressChange({ op: 'delete', index: 7, ip: '10.96.0.1', prefix: 32 })
  t.same(del4.payload, packageBytes({ family: 2, prefixlen: 32, index: 7 }, { local: v4 }))
  t.same([del4.type, del4.flags], [21, 0x1 | 0x4], 'RTM_DELADDR, REQUEST|ACK')
  const del6 = encodeAddressChange({ op: 'delete', index: 7, ip: 'FD00:96:0::10', prefix: 128 })
  t.same(del6.payload, packageBytes({ family: 10, prefixlen: 128, index: 7 }, { address: v6 }), 'any spelling of the address')
  t.throws(() => encodeAddressChange({ op: 'add', index: 7, ip: '10.96.0.256', prefix: 32 }), { code: 'FERRY_ERR_INVALID_OBJECT' })
})

t.test('a batch answers each change in order; an unparsable address is EINVAL and never sent', async t => {
  const sent: NetlinkMessage[] = []
  let deliver: (d: Buffer) => void = () => {}
  const transport: NetlinkTransport = {
    send: (datagram, done) => {
      const msgs = parseMessages(datagram)
      sent.push(...msgs)
      done()
      // EEXIST for 10.96.0.2, ok for the rest.
      setImmediate(() => { deliver(Buffer.concat(msgs.map(m => frame(2, 0x100, m.seq, Buffer.concat([Buffer.from(new Int32Array([m.payload.includes(Buffer.from([10, 96, 0, 2])) ? -17 : 0]).buffer), Buffer.alloc(16)]))))) })
    },
    onDatagram: fn => { deliver = fn },
    onError: () => {},
    ref: () => {},
    unref: () => {},
    close: () => {},
  }
  const batch = new AddressBatch(transport)
  const errnos = await batch.apply(['10.96.0.1', 'bogus', '10.96.0.2', '10.96.0.3'].map(ip => ({ op: 'add' as const, index: 3, ip, prefix: 32 })))
  t.same(errnos, [0, 22, 17, 0])
  t.equal(sent.length, 3, 'the unparsable one was not sent')
  t.ok(sent.every(m => m.type === 20), 'all RTM_NEWADDR')
  batch.close()
})
