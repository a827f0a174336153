// IFLA_LINKINFO nests, which the netlink package passes as raw bytes: the kind (dummy, bridge, vxlan,
// veth), the vxlan IFLA_INFO_DATA attributes both ways, the veth peer and the bridge port's hairpin. Pure, so the bytes are unit-tested.
import { AF_INET, AF_INET6, ipBytes, ipText, macBytes, nla, nlaString, nlaU16be, nlaU32, nlaU8, parseAttrs, refuse } from './socket.js'

// linux/if_link.h
const IFLA_INFO_KIND = 1
const IFLA_INFO_DATA = 2
const IFLA_INFO_SLAVE_KIND = 4
const IFLA_INFO_SLAVE_DATA = 5
const IFLA_ADDRESS = 1
const IFLA_IFNAME = 3
const IFLA_MTU = 4
const IFLA_NET_NS_FD = 28
const VETH_INFO_PEER = 1
const IFLA_BRPORT_MODE = 4
/** struct ifinfomsg: family, pad, type, index, flags, change. */
const IFINFOMSG_LEN = 16
const IFLA_VXLAN_ID = 1
const IFLA_VXLAN_LINK = 3
const IFLA_VXLAN_LOCAL = 4
const IFLA_VXLAN_LEARNING = 7
const IFLA_VXLAN_PORT = 15
const IFLA_VXLAN_LOCAL6 = 17

/** The kernel's default VXLAN destination port when none is given (flannel leaves it to the kernel too). */
export const VXLAN_DEFAULT_PORT = 8472
const VNI_MAX = 0xffffff

export interface VxlanParams {
  readonly vni: number
  /** UDP destination port; 8472 when omitted. */
  readonly port?: number
  /** Source address of the outer packets (the uplink's IP). */
  readonly local?: string
  /** Uplink index: sets the default MTU and the device outer packets leave by. */
  readonly link?: number
  /** Source-MAC learning; off for an overlay whose FDB ferry writes. */
  readonly learning?: boolean
}

export interface VxlanDetails {
  readonly vni: number
  readonly port: number
  readonly local: string | null
  /** Uplink index; 0 when none. */
  readonly link: number
  readonly learning: boolean
}

/** IFLA_LINKINFO payload holding only IFLA_INFO_KIND (dummy, bridge). */
export function kindLinkInfo (kind: string): Buffer {
  return nlaString(IFLA_INFO_KIND, kind)
}

/** IFLA_LINKINFO payload of a vxlan device: kind, then INFO_DATA {ID, LINK?, LOCAL|LOCAL6?, LEARNING, PORT}. */
export function vxlanLinkInfo (p: VxlanParams): Buffer {
  if (!Number.isInteger(p.vni) || p.vni < 0 || p.vni > VNI_MAX) throw refuse(`VXLAN ID ${p.vni} out of range 0..${VNI_MAX}`, 'ERANGE')
  const port = p.port ?? VXLAN_DEFAULT_PORT
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw refuse(`VXLAN port ${port} out of range`, 'EINVAL')
  const data: Buffer[] = [nlaU32(IFLA_VXLAN_ID, p.vni)]
  if (p.link !== undefined && p.link !== 0) data.push(nlaU32(IFLA_VXLAN_LINK, p.link))
  if (p.local !== undefined) {
    const { family, bytes } = ipBytes(p.local)
    data.push(nla(family === AF_INET ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, bytes))
  }
  data.push(nlaU8(IFLA_VXLAN_LEARNING, p.learning === true ? 1 : 0))
  data.push(nlaU16be(IFLA_VXLAN_PORT, port))
  return Buffer.concat([kindLinkInfo('vxlan'), nla(IFLA_INFO_DATA, Buffer.concat(data))])
}

export interface VethPeer {
  readonly name: string
  readonly mtu?: number
  readonly mac?: string
  /** An open fd of the network namespace the peer is created in (IFLA_NET_NS_FD); this one when omitted. */
  readonly netnsFd?: number
}

/**
 * IFLA_LINKINFO payload of a veth pair: kind, then INFO_DATA {VETH_INFO_PEER: a zeroed ifinfomsg and the
 * peer's own IFLA attributes (MTU, ADDRESS, IFNAME, NET_NS_FD)}, the layout the kernel's veth_newlink reads.
 */
export function vethLinkInfo (peer: VethPeer): Buffer {
  const attrs: Buffer[] = [Buffer.alloc(IFINFOMSG_LEN)]
  if (peer.mtu !== undefined) attrs.push(nlaU32(IFLA_MTU, peer.mtu))
  if (peer.mac !== undefined) attrs.push(nla(IFLA_ADDRESS, macBytes(peer.mac)))
  attrs.push(nlaString(IFLA_IFNAME, peer.name))
  if (peer.netnsFd !== undefined) attrs.push(nlaU32(IFLA_NET_NS_FD, peer.netnsFd))
  return Buffer.concat([kindLinkInfo('veth'), nla(IFLA_INFO_DATA, nla(VETH_INFO_PEER, Buffer.concat(attrs)))])
}

/** IFLA_LINKINFO payload that sets a bridge port's hairpin mode (`ip link set X type bridge_slave hairpin on`). */
export function bridgePortHairpinLinkInfo (on: boolean): Buffer {
  return Buffer.concat([nlaString(IFLA_INFO_SLAVE_KIND, 'bridge'), nla(IFLA_INFO_SLAVE_DATA, nlaU8(IFLA_BRPORT_MODE, on ? 1 : 0))])
}

export interface ParsedLinkInfo {
  readonly kind: string
  readonly vxlan?: VxlanDetails
}

/** Reads the kind, and the vxlan settings of a vxlan device, from a dumped IFLA_LINKINFO. */
export function parseLinkInfo (b: Buffer | undefined): ParsedLinkInfo {
  if (b === undefined) return { kind: '' }
  const a = parseAttrs(b)
  const k = a.get(IFLA_INFO_KIND)
  const kind = k === undefined ? '' : k.toString('latin1').replace(/\0.*$/s, '')
  const data = a.get(IFLA_INFO_DATA)
  if (kind !== 'vxlan' || data === undefined) return { kind }
  const v = parseAttrs(data)
  const u32 = (t: number): number => { const x = v.get(t); return x !== undefined && x.length >= 4 ? x.readUInt32LE(0) : 0 }
  const l4 = v.get(IFLA_VXLAN_LOCAL)
  const l6 = v.get(IFLA_VXLAN_LOCAL6)
  const local = l4 !== undefined && l4.length === 4 ? ipText(AF_INET, l4) : l6 !== undefined && l6.length === 16 ? ipText(AF_INET6, l6) : null
  const port = v.get(IFLA_VXLAN_PORT)
  return {
    kind,
    vxlan: {
      vni: u32(IFLA_VXLAN_ID),
      port: port !== undefined && port.length >= 2 ? port.readUInt16BE(0) : VXLAN_DEFAULT_PORT,
      local,
      link: u32(IFLA_VXLAN_LINK),
      learning: (v.get(IFLA_VXLAN_LEARNING)?.[0] ?? 0) !== 0,
    },
  }
}
