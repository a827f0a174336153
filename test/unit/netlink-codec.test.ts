// rtnetlink bodies ferry encodes itself (the vxlan IFLA_LINKINFO nest, the onlink bit the package's
// RouteFlags lacks), compared byte for byte with layouts written out by hand from include/uapi/linux/
// if_link.h, rtnetlink.h and neighbour.h (little-endian host); dumped replies decoded back.
import t from 'tap'
import netlink from 'netlink'
import { bridgePortHairpinLinkInfo, kindLinkInfo, parseLinkInfo, vethLinkInfo, vxlanLinkInfo } from '../../pkg/netlink/linkinfo.js'
import { routeDeleteRequest, routeInfoOf, routeRequest } from '../../pkg/netlink/routes.js'
import { neighbourInfoOf, neighbourRequest } from '../../pkg/netlink/neigh.js'
import { fdbEntryOf, fdbRequest } from '../../pkg/netlink/fdb.js'
import { ipBytes, ipText, macBytes } from '../../pkg/netlink/socket.js'

/** Hex with spaces, newlines and `# comments` allowed. */
function hex (text: string): Buffer {
  return Buffer.from(text.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex')
}

const bytes = (bufs: Uint8Array[]): Buffer => Buffer.concat(bufs)
const routeBytes = (r: { data: netlink.rt.Route, attrs: netlink.rt.RouteAttrs }): Buffer => {
  const out = new netlink.AttrStream()
  netlink.rt.formatRouteMessage({ kind: 'route', ...r }, out)
  return bytes(out.bufs)
}
const neighBytes = (r: { data: netlink.rt.Neighbor, attrs: netlink.rt.NeighborAttrs }): Buffer => {
  const out = new netlink.AttrStream()
  netlink.rt.formatNeighborMessage({ kind: 'neighbor', ...r }, out)
  return bytes(out.bufs)
}

t.test('vxlan IFLA_LINKINFO nest', async t => {
  const cases: Array<{ name: string, in: Parameters<typeof vxlanLinkInfo>[0], want: string }> = [
    {
      name: 'flannel.1 on an IPv4 uplink, default port, learning off',
      in: { vni: 1, local: '192.168.91.1', link: 3, learning: false },
      want: `0a00 0100 76786c616e00 0000   # IFLA_INFO_KIND "vxlan\\0", padded
             2c00 0200                   # IFLA_INFO_DATA, 44 bytes
               0800 0100 01000000        #   IFLA_VXLAN_ID 1 (host order)
               0800 0300 03000000        #   IFLA_VXLAN_LINK 3
               0800 0400 c0a85b01        #   IFLA_VXLAN_LOCAL 192.168.91.1
               0500 0700 00 000000       #   IFLA_VXLAN_LEARNING 0, padded
               0600 0f00 2118 0000       #   IFLA_VXLAN_PORT 8472 (network order), padded`,
    },
    {
      name: 'IPv6 local, port 4789, learning on, no uplink',
      in: { vni: 0x123456, port: 4789, local: 'fd00::1', learning: true },
      want: `0a00 0100 76786c616e00 0000
             3000 0200                   # 48 bytes
               0800 0100 56341200        #   ID 0x123456
               1400 1100 fd000000000000000000000000000001   # IFLA_VXLAN_LOCAL6
               0500 0700 01 000000       #   LEARNING 1
               0600 0f00 12b5 0000       #   PORT 4789`,
    },
    {
      name: 'bare: no local, no link',
      in: { vni: 16777215 },
      want: `0a00 0100 76786c616e00 0000
             1c00 0200
               0800 0100 ffffff00
               0500 0700 00 000000
               0600 0f00 2118 0000`,
    },
  ]
  for (const c of cases) t.same(vxlanLinkInfo(c.in).toString('hex'), hex(c.want).toString('hex'), c.name)
  t.same(kindLinkInfo('bridge').toString('hex'), hex('0b00 0100 62726964676500 00').toString('hex'), 'bridge kind')

  for (const [vni, port, errno] of [[16777216, 8472, 'ERANGE'], [-1, 8472, 'ERANGE'], [1.5, 8472, 'ERANGE'], [1, 0, 'EINVAL'], [1, 65536, 'EINVAL']] as const) {
    t.throws(() => vxlanLinkInfo({ vni, port }), { name: 'FerryError', code: 'FERRY_ERR_NETLINK', details: { errno } }, `vni ${vni} port ${port} → ${errno}`)
  }
})

t.test('veth and bridge-port IFLA_LINKINFO nests', async t => {
  // The same layout iproute2 sends for `ip link add … type veth peer name eth0 mtu 1450 address … netns NS`.
  t.same(vethLinkInfo({ name: 'eth0', mtu: 1450, mac: '02:00:00:00:00:01', netnsFd: 7 }).toString('hex'), hex(`
    0900 0100 76657468 00 000000           # IFLA_INFO_KIND "veth"
    4000 0200                              # IFLA_INFO_DATA, 64
      3c00 0100                            #   VETH_INFO_PEER, 60
        00 00 0000 00000000 00000000 00000000  # struct ifinfomsg, zeroed
        0800 0400 aa050000                 #   IFLA_MTU 1450
        0a00 0100 020000000001 0000        #   IFLA_ADDRESS
        0900 0300 65746830 00 000000       #   IFLA_IFNAME "eth0"
        0800 1c00 07000000                 #   IFLA_NET_NS_FD 7
  `).toString('hex'), 'veth with its peer in another netns')
  t.same(vethLinkInfo({ name: 'p' }).toString('hex'), hex(`
    0900 0100 76657468 00 000000
    2000 0200
      1c00 0100
        00000000 00000000 00000000 00000000
        0600 0300 7000 0000                # IFLA_IFNAME "p"
  `).toString('hex'), 'veth peer with a name only')
  t.throws(() => vethLinkInfo({ name: 'p', mac: 'nope' }), { code: 'FERRY_ERR_NETLINK', details: { errno: 'EINVAL' } }, 'bad peer MAC refused')
  t.same(bridgePortHairpinLinkInfo(true).toString('hex'), hex(`
    0b00 0400 62726964676500 00            # IFLA_INFO_SLAVE_KIND "bridge"
    0c00 0500                              # IFLA_INFO_SLAVE_DATA
      0500 0400 01 000000                  #   IFLA_BRPORT_MODE 1 (hairpin)
  `).toString('hex'), 'hairpin on')
  t.same(bridgePortHairpinLinkInfo(false).subarray(-4).toString('hex'), '00000000', 'hairpin off')
})

t.test('IFLA_LINKINFO decoding', async t => {
  t.same(parseLinkInfo(vxlanLinkInfo({ vni: 7, local: '10.0.0.1', link: 4, port: 4789 })),
    { kind: 'vxlan', vxlan: { vni: 7, port: 4789, local: '10.0.0.1', link: 4, learning: false } }, 'round trip')
  t.same(parseLinkInfo(vxlanLinkInfo({ vni: 9, local: 'fd00::0:1' })).vxlan?.local, 'fd00::1', 'IPv6 local canonical')
  // As the kernel dumps it: DATA flagged NLA_F_NESTED, no LOCAL (unset), extra attributes ignored.
  const dumped = hex(`0a00 0100 76786c616e00 0000
                      2400 0280
                        0800 0100 2a000000
                        0500 0500 00 000000   # IFLA_VXLAN_TTL
                        0500 0700 01 000000
                        0600 0f00 2118 0000
                        0800 0300 00000000`)
  t.same(parseLinkInfo(dumped), { kind: 'vxlan', vxlan: { vni: 42, port: 8472, local: null, link: 0, learning: true } })
  t.same(parseLinkInfo(hex('0900 0100 7665746800 000000')), { kind: 'veth' }, 'another kind: no vxlan data')
  t.same(parseLinkInfo(undefined), { kind: '' }, 'no IFLA_LINKINFO (lo)')
  t.same(parseLinkInfo(hex('ff00 0100 00')), { kind: '' }, 'truncated attribute ignored')
})

t.test('route bodies', async t => {
  t.same(routeBytes(routeRequest({ dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: 7, onlink: true })).toString('hex'), hex(`
    02 18 00 00        # AF_INET, dst_len 24, src_len 0, tos 0
    fe 03 00 01        # table MAIN, protocol BOOT, scope UNIVERSE, type UNICAST
    04000000           # rtm_flags RTNH_F_ONLINK
    0800 0100 0af40200 # RTA_DST
    0800 0400 07000000 # RTA_OIF
    0800 0500 0af40200 # RTA_GATEWAY`).toString('hex'), 'vxlan: onlink via <remote>.0')

  t.same(routeBytes(routeRequest({ dst: '10.244.3.0/24', gateway: '192.168.91.3', dev: 2, protocol: 42 })).toString('hex'), hex(`
    02 18 00 00  fe 2a 00 01  00000000
    0800 0100 0af40300
    0800 0400 02000000
    0800 0500 c0a85b03`).toString('hex'), 'host-gw: no onlink flag, own protocol')

  t.same(routeBytes(routeRequest({ dst: 'fd00:1::/64', dev: 5, src: 'fd00:1::1' })).toString('hex'), hex(`
    0a 40 00 00  fe 03 fd 01  00000000   # AF_INET6 /64, scope LINK: a direct route
    1400 0100 fd000001000000000000000000000000
    0800 0400 05000000
    1400 0700 fd000001000000000000000000000001   # RTA_PREFSRC`).toString('hex'), 'IPv6 direct route with source')

  t.same(routeBytes(routeRequest({ dst: '0.0.0.0/0', gateway: '10.0.0.1', dev: 2 })).subarray(12, 20).toString('hex'), '0800040002000000', 'default route: no RTA_DST')

  t.same(routeBytes(routeDeleteRequest({ dst: '10.244.2.0/24' })).toString('hex'), hex(`
    02 18 00 00  fe 00 ff 00  00000000   # scope NOWHERE, protocol and type 0: wildcards
    0800 0100 0af40200`).toString('hex'), 'delete matches by dst alone')
  t.same(routeBytes(routeDeleteRequest({ dst: '10.244.2.7/24', dev: 3, gateway: '10.244.2.0' })).subarray(12).toString('hex'),
    hex('0800 0100 0af40200  0800 0400 03000000  0800 0500 0af40200').toString('hex'), 'delete by dst (masked), dev and gateway')

  for (const bad of [{ dst: '10.0.0.0', dev: 1 }, { dst: '10.0.0.0/24', gateway: 'fd00::1', dev: 1 }, { dst: '10.0.0.0/33', dev: 1 }]) {
    t.throws(() => routeRequest(bad), { code: 'FERRY_ERR_NETLINK', details: { errno: 'EINVAL' } }, `refused: ${JSON.stringify(bad)}`)
  }
})

t.test('dumped routes decode', async t => {
  const parse = (h: string): netlink.rt.RouteMessage => netlink.rt.parseRouteMessage(hex(h))
  t.same(routeInfoOf(parse(`02 18 00 00  fe 03 00 01  04000000
    0800 0f00 fe000000   # RTA_TABLE 254
    0800 0100 0af40200  0800 0500 0af40200  0800 0400 07000000`)),
  { family: 'IPv4', dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: 7, onlink: true, scope: 0, protocol: 3, src: null, type: 1 })
  t.same(routeInfoOf(parse(`02 18 00 00  fe 02 fd 01  00000000
    0800 0100 c0a85b00  0800 0700 c0a85b01  0800 0400 03000000`)),
  { family: 'IPv4', dst: '192.168.91.0/24', gateway: null, dev: 3, onlink: false, scope: 253, protocol: 2, src: '192.168.91.1', type: 1 }, 'connected route')
  t.same(routeInfoOf(parse('0a 00 00 00  fe 63 00 06  00000000')),
    { family: 'IPv6', dst: '::/0', gateway: null, dev: 0, onlink: false, scope: 0, protocol: 99, src: null, type: 6 }, 'unnamed protocol, blackhole default')
  t.equal(routeInfoOf(parse('02 20 00 00  ff 02 fe 02  00000000  0800 0f00 ff000000  0800 0100 7f000001')), null, 'local table skipped')
  t.equal(routeInfoOf(parse('02 00 00 00  fe 02 fe 02  00000000  0800 0f00 e8030000')), null, 'table 1000 (RTA_TABLE wins) skipped')
})

t.test('neighbour and FDB bodies', async t => {
  t.same(neighBytes(neighbourRequest({ dev: 7, ip: '10.244.2.0', mac: '02:11:22:33:44:AA' })).toString('hex'), hex(`
    02 00 0000  07000000   # AF_INET, pad, ifindex 7
    8000 00 00             # state NUD_PERMANENT, flags 0, type 0
    0800 0100 0af40200     # NDA_DST
    0a00 0200 0211223344aa        # NDA_LLADDR (the last attribute's padding comes with the message frame)`).toString('hex'), 'permanent neighbour')
  t.same(neighBytes(neighbourRequest({ dev: 1, ip: 'fd00::2', mac: '02:00:00:00:00:01', permanent: false })).subarray(0, 12).toString('hex'),
    hex('0a 00 0000 01000000 0200 00 00').toString('hex'), 'reachable IPv6 neighbour')
  t.same(neighBytes(fdbRequest({ dev: 7, mac: '02:11:22:33:44:55', dst: '192.168.91.2' })).toString('hex'), hex(`
    07 00 0000  07000000   # AF_BRIDGE, ifindex 7
    8000 02 00             # NUD_PERMANENT, NTF_SELF
    0a00 0200 021122334455 0000   # NDA_LLADDR
    0800 0100 c0a85b02            # NDA_DST`).toString('hex'), 'FDB append: mac then dst')
  t.same(neighBytes(fdbRequest({ dev: 7, mac: '02:11:22:33:44:55' })).length, 12 + 10, 'FDB delete without dst: lladdr only')
  t.throws(() => neighbourRequest({ dev: 1, ip: '10.0.0.1', mac: '02:11:22:33:44' }), { code: 'FERRY_ERR_NETLINK', details: { errno: 'EINVAL' } }, 'short MAC refused')

  const n = netlink.rt.parseNeighborMessage(hex('02 00 0000 07000000 8000 00 01  0800 0100 0af40200  0a00 0200 0211223344aa 0000'))
  t.same(neighbourInfoOf(n), { dev: 7, family: 'IPv4', ip: '10.244.2.0', mac: '02:11:22:33:44:aa', permanent: true })
  const incomplete = netlink.rt.parseNeighborMessage(hex('0a 00 0000 02000000 0100 00 01  1400 0100 fd000000000000000000000000000002'))
  t.same(neighbourInfoOf(incomplete), { dev: 2, family: 'IPv6', ip: 'fd00::2', mac: null, permanent: false }, 'unresolved: no lladdr')
  const f = netlink.rt.parseNeighborMessage(hex('07 00 0000 07000000 8000 02 00  0a00 0200 021122334455 0000  0800 0100 c0a85b02'))
  t.same(fdbEntryOf(f), { dev: 7, mac: '02:11:22:33:44:55', dst: '192.168.91.2', permanent: true, self: true })
  t.equal(fdbEntryOf(n), null, 'an AF_INET entry is no FDB entry')
})

t.test('address and MAC bytes', async t => {
  const cases: Array<[string, string, string]> = [
    ['10.244.2.0', '0af40200', '10.244.2.0'],
    ['fd00::1', 'fd000000000000000000000000000001', 'fd00::1'],
    ['::', '00000000000000000000000000000000', '::'],
    ['::ffff:10.1.2.3', '00000000000000000000ffff0a010203', '::ffff:a01:203'],
    ['2001:0db8:0:0:1:0:0:0', '20010db8000000000001000000000000', '2001:db8:0:0:1::'],
  ]
  for (const [ip, want, back] of cases) {
    const b = ipBytes(ip)
    t.equal(b.bytes.toString('hex'), want, ip)
    t.equal(ipText(b.family, b.bytes), back, `${ip} back`)
  }
  t.throws(() => ipBytes('10.0.0.256'), { code: 'FERRY_ERR_NETLINK', details: { errno: 'EINVAL' } })
  t.equal(macBytes('0A:0b:0c:0d:0e:0f').toString('hex'), '0a0b0c0d0e0f')
  for (const bad of ['0a:0b:0c:0d:0e', '0a-0b-0c-0d-0e-0f', 'zz:0b:0c:0d:0e:0f']) t.throws(() => macBytes(bad), { code: 'FERRY_ERR_NETLINK', details: { errno: 'EINVAL' } }, bad)
})
