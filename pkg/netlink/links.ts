// A thin typed layer over the netlink package's rtnetlink: links and their addresses, as the IPVS mode
// needs them (its dummy device and the VIPs bound to it) and the overlay does (vxlan device, bridge, MTU,
// up). fake.ts keeps the same semantics in memory for unit tests.
import type { ifla, rt } from 'netlink'
import { FerryError } from '../errors/errors.js'
import { openAddressBatch, type AddressBatch, type AddressChange } from './addr-batch.js'
import type { IPFamily } from '../net/ip.js'
import { bridgePortHairpinLinkInfo, kindLinkInfo, parseLinkInfo, vethLinkInfo, vxlanLinkInfo, type VethPeer, type VxlanDetails, type VxlanParams } from './linkinfo.js'
import {
  AF_INET, errnoName, fail, familyName, ipBytes, ipText, macBytes, macText, NLM_F_CREATE, NLM_F_EXCL, openRtSocket, type RtSocket,
} from './socket.js'

export type { VethPeer, VxlanDetails } from './linkinfo.js'

export interface LinkInfo {
  readonly index: number
  readonly name: string
  /** Administratively up (IFF_UP). */
  readonly up: boolean
}

export interface LinkDetails extends LinkInfo {
  readonly mtu: number
  /** Hardware address, lower case; '' for a device without one. */
  readonly mac: string
  /** IFLA_INFO_KIND ('vxlan', 'bridge', 'veth', …); '' for a device without one (lo, physical NICs). */
  readonly kind: string
  /** Index of the bridge it is enslaved to; 0 when none. */
  readonly master: number
  readonly vxlan?: VxlanDetails
}

export interface VxlanSpec extends VxlanParams {
  readonly name: string
  /** Device MTU; the kernel derives it from the uplink when omitted. */
  readonly mtu?: number
  /** Device MAC; random when omitted (a recreated device passes the MAC it published). */
  readonly mac?: string
}

export interface BridgeSpec {
  readonly name: string
  readonly mtu?: number
  readonly mac?: string
}

export interface VethSpec {
  readonly name: string
  readonly mtu?: number
  readonly mac?: string
  /** Bridge index the end is enslaved to, in the creating request; none when omitted or 0. */
  readonly master?: number
  /** Sets this end up in the creating request. */
  readonly up?: boolean
  /** The other end; with netnsFd it is created directly in that namespace. */
  readonly peer: VethPeer
}

export interface AddressInfo {
  readonly index: number
  readonly family: IPFamily
  readonly ip: string
  readonly prefix: number
}

export interface Links {
  linkByName: (name: string) => Promise<LinkInfo | null>
  /** Index, MTU, MAC, kind, master and the vxlan settings of one link; null when it does not exist. */
  linkDetails: (name: string) => Promise<LinkDetails | null>
  listLinks: () => Promise<LinkDetails[]>
  /** Creates a dummy device (left down: addresses on it are still local, and it never answers ARP). */
  createDummy: (name: string) => Promise<LinkInfo>
  /** Creates a vxlan device, left down. An existing name fails with errno EEXIST: the caller compares and recreates. */
  createVxlan: (spec: VxlanSpec) => Promise<LinkDetails>
  /** Creates a bridge, left down; an existing bridge of that name is returned as it is. */
  createBridge: (spec: BridgeSpec) => Promise<LinkDetails>
  /**
   * Creates a veth pair in one request (master and up included). Either name already taken fails with
   * errno EEXIST: the kernel does not say which, the caller knows what it looked up before.
   */
  createVeth: (spec: VethSpec) => Promise<void>
  /** A bridge port's hairpin mode, by link name. */
  setHairpin: (name: string, on: boolean) => Promise<void>
  setUp: (index: number) => Promise<void>
  setMtu: (index: number, mtu: number) => Promise<void>
  /** Enslaves a link to a bridge; masterIndex 0 releases it. */
  setMaster: (index: number, masterIndex: number) => Promise<void>
  /** Deletes a link by name; one already gone is not an error. */
  deleteLink: (name: string) => Promise<void>
  /** Addresses of one link, or of every link without an index. */
  addresses: (index?: number) => Promise<AddressInfo[]>
  /** Adds ip/prefix; an address already there is not an error. */
  addAddress: (index: number, ip: string, prefix: number) => Promise<void>
  /** Removes ip/prefix; an address already gone is not an error. */
  deleteAddress: (index: number, ip: string, prefix: number) => Promise<void>
  /**
   * Many adds and deletes pipelined on one socket (thousands of VIPs): each change's errno in order,
   * 0 = done, else the kernel's answer (EEXIST for an add already there, EADDRNOTAVAIL for a delete of
   * an address not there, ENODEV ...). Throws only when the socket fails.
   */
  changeAddresses: (changes: readonly AddressChange[]) => Promise<number[]>
  close: () => void
}

type LinkMessage = rt.LinkMessage

export function linkDetailsOf (l: LinkMessage): LinkDetails {
  const info = parseLinkInfo(l.attrs.linkinfo)
  const d: LinkDetails = {
    index: l.data.index ?? 0,
    name: l.attrs.ifname ?? '',
    up: l.data.flags?.up === true,
    mtu: l.attrs.mtu ?? 0,
    mac: macText(l.attrs.address),
    kind: info.kind,
    master: l.attrs.master ?? 0,
  }
  return info.vxlan !== undefined ? { ...d, vxlan: info.vxlan } : d
}

/** The link operations over a socket the caller owns (openNetlink shares it with routes, neighbours, FDB). */
export function linkOps (s: RtSocket): Omit<Links, 'close' | 'changeAddresses'> {
  const get = async (name: string): Promise<LinkMessage | null> => {
    try {
      const r = await s.getLink({}, { ifname: name })
      return r[0] ?? null
    } catch (e) {
      if (errnoName(e) === 'ENODEV') return null
      throw fail(`reading link ${name}`, e)
    }
  }
  const mustGet = async (name: string, what: string): Promise<LinkDetails> => {
    const l = await get(name)
    if (l === null) throw new FerryError('FERRY_ERR_NETLINK', `${what} ${name} vanished after creation`, { errno: 'ENODEV' })
    return linkDetailsOf(l)
  }
  const create = async (name: string, attrs: ifla.LinkAttrs, what: string): Promise<void> => {
    await s.newLink({}, { ifname: name, ...attrs }, { flags: NLM_F_CREATE | NLM_F_EXCL }).catch((e: unknown) => { throw fail(`creating ${what} ${name}`, e) })
  }
  const set = async (index: number, data: rt.Link, attrs: ifla.LinkAttrs, what: string): Promise<void> => {
    await s.setLink({ index, ...data }, attrs).catch((e: unknown) => { throw fail(`${what} of link ${index}`, e) })
  }
  const api: Omit<Links, 'close' | 'changeAddresses'> = {
    linkByName: async name => {
      const l = await get(name)
      return l === null ? null : { index: l.data.index ?? 0, name: l.attrs.ifname ?? '', up: l.data.flags?.up === true }
    },
    linkDetails: async name => {
      const l = await get(name)
      return l === null ? null : linkDetailsOf(l)
    },
    listLinks: async () => {
      try { return (await s.getLinks()).map(linkDetailsOf) } catch (e) { throw fail('listing links', e) }
    },
    createDummy: async name => {
      try { await create(name, { linkinfo: kindLinkInfo('dummy') }, 'dummy device') } catch (e) {
        if (errnoName(e) !== 'EEXIST') throw fail(`creating dummy device ${name} (is the dummy module available?)`, e)
      }
      const l = await mustGet(name, 'dummy device')
      return { index: l.index, name: l.name, up: l.up }
    },
    createVxlan: async spec => {
      const attrs: ifla.LinkAttrs = { linkinfo: vxlanLinkInfo(spec) }
      if (spec.mtu !== undefined) attrs.mtu = spec.mtu
      if (spec.mac !== undefined) attrs.address = macBytes(spec.mac)
      await create(spec.name, attrs, 'vxlan device')
      return await mustGet(spec.name, 'vxlan device')
    },
    createBridge: async spec => {
      const attrs: ifla.LinkAttrs = { linkinfo: kindLinkInfo('bridge') }
      if (spec.mtu !== undefined) attrs.mtu = spec.mtu
      if (spec.mac !== undefined) attrs.address = macBytes(spec.mac)
      try { await create(spec.name, attrs, 'bridge') } catch (e) {
        if (errnoName(e) !== 'EEXIST') throw e
        const known = await mustGet(spec.name, 'bridge')
        if (known.kind !== 'bridge') throw fail(`creating bridge ${spec.name}: a ${known.kind === '' ? 'non-bridge' : known.kind} link has the name`, e)
        return known
      }
      return await mustGet(spec.name, 'bridge')
    },
    createVeth: async spec => {
      const attrs: ifla.LinkAttrs = { linkinfo: vethLinkInfo(spec.peer) }
      if (spec.mtu !== undefined) attrs.mtu = spec.mtu
      if (spec.mac !== undefined) attrs.address = macBytes(spec.mac)
      if (spec.master !== undefined && spec.master !== 0) attrs.master = spec.master
      const data: rt.Link = spec.up === true ? { flags: { up: true }, change: { up: true } } : {}
      await s.newLink(data, { ifname: spec.name, ...attrs }, { flags: NLM_F_CREATE | NLM_F_EXCL })
        .catch((e: unknown) => { throw fail(`creating veth ${spec.name} (peer ${spec.peer.name})`, e) })
    },
    // RTM_NEWLINK on an existing link (found by name) with bridge-port data: the kernel's slave_changelink.
    setHairpin: async (name, on) => {
      await s.newLink({}, { ifname: name, linkinfo: bridgePortHairpinLinkInfo(on) })
        .catch((e: unknown) => { throw fail(`setting hairpin ${on ? 'on' : 'off'} on ${name}`, e) })
    },
    setUp: async index => { await set(index, { flags: { up: true }, change: { up: true } }, {}, 'setting up') },
    setMtu: async (index, mtu) => { await set(index, {}, { mtu }, `setting MTU ${mtu}`) },
    setMaster: async (index, masterIndex) => { await set(index, {}, { master: masterIndex }, `setting master ${masterIndex}`) },
    deleteLink: async name => {
      const l = await get(name)
      if (l === null) return
      try { await s.delLink({ index: l.data.index ?? 0 }) } catch (e) {
        if (errnoName(e) !== 'ENODEV') throw fail(`deleting link ${name}`, e)
      }
    },
    addresses: async index => {
      let r
      try { r = await s.getAddresses() } catch (e) { throw fail('listing addresses', e) }
      const out: AddressInfo[] = []
      for (const a of r) {
        const fam = a.data.family ?? 0
        const family = familyName(fam)
        if (family === null || (index !== undefined && a.data.index !== index)) continue
        const raw = a.attrs.local ?? a.attrs.address
        if (raw === undefined) continue
        out.push({ index: a.data.index ?? 0, family, ip: ipText(fam, raw), prefix: a.data.prefixlen ?? 0 })
      }
      return out
    },
    addAddress: async (index, ip, prefix) => {
      const { family, bytes } = ipBytes(ip)
      // nodad: an address on a down dummy device would otherwise stay tentative on IPv6.
      const attrs = family === AF_INET ? { local: bytes, address: bytes } : { address: bytes, flags: { nodad: true as const } }
      try { await s.newAddress({ family, prefixlen: prefix, index }, attrs, { flags: NLM_F_CREATE | NLM_F_EXCL }) } catch (e) {
        if (errnoName(e) !== 'EEXIST') throw fail(`adding ${ip}/${prefix}`, e)
      }
    },
    deleteAddress: async (index, ip, prefix) => {
      const { family, bytes } = ipBytes(ip)
      const attrs = family === AF_INET ? { local: bytes } : { address: bytes }
      try { await s.delAddress({ family, prefixlen: prefix, index }, attrs) } catch (e) {
        if (errnoName(e) !== 'EADDRNOTAVAIL' && errnoName(e) !== 'ENODEV') throw fail(`removing ${ip}/${prefix}`, e)
      }
    },
  }
  return api
}

/** changeAddresses over its own NETLINK_ROUTE socket (addr-batch.ts), opened on first use; close() closes it. */
export function addressBatchOps (): { changeAddresses: Links['changeAddresses'], close: () => void } {
  let batch: AddressBatch | undefined
  return {
    changeAddresses: async changes => {
      batch ??= openAddressBatch()
      return await batch.apply(changes)
    },
    close: () => { batch?.close() },
  }
}

export function openLinks (): Links {
  const s = openRtSocket()
  const batch = addressBatchOps()
  return { ...linkOps(s), changeAddresses: batch.changeAddresses, close: () => { batch.close(); s.socket.close() } }
}
