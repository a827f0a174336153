// The kernel's link, address, route, neighbour and FDB tables in memory, for unit tests of the IPVS mode
// and the overlay. It answers as the kernel does where callers branch on it: EEXIST, ENODEV, ENETDOWN,
// ENETUNREACH/EHOSTUNREACH for an off-link gateway, MTU clamps, unicast FDB append as a no-op, tolerated
// deletes of missing entries, and the cascade when a link goes (its addresses, routes, neighbours, FDB
// entries and the vxlan devices riding on it). test/e2e/netlink-overlay.test.ts runs one scenario
// against this and the kernel and requires the same answers.
import { constants } from 'node:os'
import { FerryError } from '../errors/errors.js'
import type { AddressChange } from './addr-batch.js'
import { cidrContains, parseCIDR, parseIP, type IPFamily } from '../net/ip.js'
import { parseLinkInfo, vethLinkInfo, vxlanLinkInfo } from './linkinfo.js'
import type { AddressInfo, BridgeSpec, LinkDetails, LinkInfo, VethSpec, VxlanDetails, VxlanSpec } from './links.js'
import type { Netlink } from './netlink.js'
import { fdbRequest, type FdbEntry, type FdbSpec } from './fdb.js'
import { neighbourRequest, type NeighbourInfo, type NeighbourSpec } from './neigh.js'
import { routeRequest, routeDeleteRequest, RTPROT_BOOT, RTPROT_KERNEL, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, type RouteInfo, type RouteMatch, type RouteSpec } from './routes.js'
import { macBytes, randomMac, refuse } from './socket.js'

const ERRNO = constants.errno

interface FakeLink {
  index: number
  name: string
  up: boolean
  mtu: number
  mac: string
  kind: string
  master: number
  vxlan?: VxlanDetails
}

const VXLAN_HEADROOM = 50
const VXLAN6_HEADROOM = 70
const ETH_DATA_LEN = 1500

const snapshot = (l: FakeLink): LinkDetails => ({ ...l })
const overV6 = (v: VxlanDetails | undefined): boolean => v?.local !== undefined && v.local !== null && parseIP(v.local)?.family === 'IPv6'
const canon = (ip: string): string => parseIP(ip)?.ip ?? ip
/** The all-zeros MAC (default remote) and multicast MACs: the FDB entries that take several remotes. */
const floods = (mac: string): boolean => mac === '00:00:00:00:00:00' || (parseInt(mac.slice(0, 2), 16) & 1) === 1

export class FakeNetlink implements Netlink {
  private readonly links = new Map<number, FakeLink>()
  private addrs: AddressInfo[] = []
  private routeTable: RouteInfo[] = []
  private neighs: NeighbourInfo[] = []
  private fdbs: FdbEntry[] = []
  private nextIndex = 2
  private readonly failures = new Map<string, string>()
  /** Calls by method name. */
  readonly calls = new Map<string, number>()
  /** Other network namespaces by the fd a caller passes as a veth peer's netnsFd: link name → link. */
  readonly netns = new Map<number, Map<string, LinkDetails>>()
  /** Host-end index → where its peer lives ([fd, name]; fd -1 for this namespace). */
  private readonly peers = new Map<number, [number, string]>()
  private readonly hairpins = new Set<number>()
  /** Whether dummy devices can be created (the host module may be missing). */
  dummyAvailable = true

  /** The next call of `method` fails with `errno`, as the kernel would refuse it. */
  failNext (method: string, errno = 'EIO'): void { this.failures.set(method, errno) }

  /** A link that exists before the code under test runs (an uplink, a NIC). */
  addLink (spec: { name: string, kind?: string, mtu?: number, up?: boolean, mac?: string }): LinkDetails {
    if (this.byName(spec.name) !== undefined) throw refuse(`link ${spec.name} exists`, 'EEXIST')
    const l: FakeLink = { index: this.nextIndex++, name: spec.name, up: spec.up ?? true, mtu: spec.mtu ?? ETH_DATA_LEN, mac: spec.mac ?? randomMac(), kind: spec.kind ?? '', master: 0 }
    this.links.set(l.index, l)
    return snapshot(l)
  }

  private enter (method: string): void {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1)
    const errno = this.failures.get(method)
    if (errno !== undefined) {
      this.failures.delete(method)
      throw refuse(`${method} (injected)`, errno)
    }
  }

  private byName (name: string): FakeLink | undefined {
    for (const l of this.links.values()) if (l.name === name) return l
    return undefined
  }

  private mustIndex (index: number, what: string): FakeLink {
    const l = this.links.get(index)
    if (l === undefined) throw refuse(what, 'ENODEV')
    return l
  }

  async linkByName (name: string): Promise<LinkInfo | null> {
    this.enter('linkByName')
    const l = this.byName(name)
    return l === undefined ? null : { index: l.index, name: l.name, up: l.up }
  }

  async linkDetails (name: string): Promise<LinkDetails | null> {
    this.enter('linkDetails')
    const l = this.byName(name)
    return l === undefined ? null : snapshot(l)
  }

  async listLinks (): Promise<LinkDetails[]> {
    this.enter('listLinks')
    return [...this.links.values()].map(snapshot)
  }

  async createDummy (name: string): Promise<LinkInfo> {
    this.enter('createDummy')
    if (!this.dummyAvailable) throw refuse(`creating dummy device ${name} (is the dummy module available?)`, 'ENOTSUP')
    const l = this.byName(name) ?? this.addLink({ name, kind: 'dummy', up: false })
    return { index: l.index, name: l.name, up: l.up }
  }

  async createVxlan (spec: VxlanSpec): Promise<LinkDetails> {
    this.enter('createVxlan')
    const what = `creating vxlan device ${spec.name}`
    const vxlan = parseLinkInfo(vxlanLinkInfo(spec)).vxlan // the real encoder's range checks, then its decoding
    if (vxlan === undefined) throw new FerryError('FERRY_ERR_NETLINK', `${what}: encoder lost the vxlan data`)
    if (spec.mac !== undefined) macBytes(spec.mac)
    if (this.byName(spec.name) !== undefined) throw refuse(what, 'EEXIST')
    const v6 = overV6(vxlan)
    for (const o of this.links.values()) {
      // The kernel allows one device per (VNI, port, family) in a netns.
      if (o.vxlan !== undefined && o.vxlan.vni === vxlan.vni && o.vxlan.port === vxlan.port && overV6(o.vxlan) === v6) throw refuse(`${what}: VNI ${vxlan.vni} in use by ${o.name}`, 'EEXIST')
    }
    const headroom = v6 ? VXLAN6_HEADROOM : VXLAN_HEADROOM
    const uplink = vxlan.link !== 0 ? this.mustIndex(vxlan.link, `${what}: uplink ${vxlan.link}`) : undefined
    // With an uplink the kernel derives the MTU from it and clamps a larger one; without, it keeps 1500.
    const max = uplink !== undefined ? uplink.mtu - headroom : 65535
    const mtu = Math.min(spec.mtu ?? (uplink !== undefined ? max : ETH_DATA_LEN), max)
    if (mtu < 68) throw refuse(`${what}: MTU ${mtu}`, 'EINVAL')
    const l: FakeLink = { index: this.nextIndex++, name: spec.name, up: false, mtu, mac: spec.mac?.toLowerCase() ?? randomMac(), kind: 'vxlan', master: 0, vxlan }
    this.links.set(l.index, l)
    return snapshot(l)
  }

  async createBridge (spec: BridgeSpec): Promise<LinkDetails> {
    this.enter('createBridge')
    const known = this.byName(spec.name)
    if (known !== undefined) {
      if (known.kind !== 'bridge') throw refuse(`creating bridge ${spec.name}: a ${known.kind === '' ? 'non-bridge' : known.kind} link has the name`, 'EEXIST')
      return snapshot(known)
    }
    return this.addLink({ name: spec.name, kind: 'bridge', up: false, ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}), ...(spec.mac !== undefined ? { mac: spec.mac.toLowerCase() } : {}) })
  }

  /** Whether hairpin mode is on for the named bridge port. */
  hairpin (name: string): boolean {
    const l = this.byName(name)
    return l !== undefined && this.hairpins.has(l.index)
  }

  async createVeth (spec: VethSpec): Promise<void> {
    this.enter('createVeth')
    const what = `creating veth ${spec.name} (peer ${spec.peer.name})`
    vethLinkInfo(spec.peer) // the real encoder's checks
    if (spec.mac !== undefined) macBytes(spec.mac)
    const other = spec.peer.netnsFd === undefined ? undefined : this.netns.get(spec.peer.netnsFd)
    if (spec.peer.netnsFd !== undefined && other === undefined) throw refuse(what, 'EBADF')
    if (this.byName(spec.name) !== undefined || spec.name === spec.peer.name) throw refuse(what, 'EEXIST')
    if (other !== undefined ? other.has(spec.peer.name) : this.byName(spec.peer.name) !== undefined) throw refuse(what, 'EEXIST')
    const master = spec.master ?? 0
    if (master !== 0 && this.mustIndex(master, `${what}: master ${master}`).kind !== 'bridge') throw refuse(what, 'ENOTSUP')
    const mtu = spec.mtu ?? ETH_DATA_LEN
    const host: FakeLink = { index: this.nextIndex++, name: spec.name, up: spec.up === true, mtu, mac: spec.mac?.toLowerCase() ?? randomMac(), kind: 'veth', master }
    this.links.set(host.index, host)
    const peer: FakeLink = { index: this.nextIndex++, name: spec.peer.name, up: false, mtu: spec.peer.mtu ?? mtu, mac: spec.peer.mac?.toLowerCase() ?? randomMac(), kind: 'veth', master: 0 }
    if (other !== undefined) other.set(peer.name, snapshot(peer))
    else this.links.set(peer.index, peer)
    this.peers.set(host.index, [spec.peer.netnsFd ?? -1, peer.name])
  }

  async setHairpin (name: string, on: boolean): Promise<void> {
    this.enter('setHairpin')
    const l = this.byName(name)
    if (l === undefined) throw refuse(`setting hairpin on ${name}`, 'ENODEV')
    if (l.master === 0) throw refuse(`setting hairpin on ${name}`, 'EOPNOTSUPP')
    if (on) this.hairpins.add(l.index)
    else this.hairpins.delete(l.index)
  }

  async setUp (index: number): Promise<void> {
    this.enter('setUp')
    this.mustIndex(index, `setting up of link ${index}`).up = true
  }

  async setMtu (index: number, mtu: number): Promise<void> {
    this.enter('setMtu')
    const l = this.mustIndex(index, `setting MTU ${mtu} of link ${index}`)
    let max = 65535
    if (l.vxlan !== undefined && l.vxlan.link !== 0) {
      max = (this.links.get(l.vxlan.link)?.mtu ?? 65535) - (overV6(l.vxlan) ? VXLAN6_HEADROOM : VXLAN_HEADROOM)
    }
    if (mtu < 68 || mtu > max) throw refuse(`setting MTU ${mtu} of link ${index}`, 'EINVAL')
    l.mtu = mtu
  }

  async setMaster (index: number, masterIndex: number): Promise<void> {
    this.enter('setMaster')
    const what = `setting master ${masterIndex} of link ${index}`
    const l = this.mustIndex(index, what)
    if (masterIndex === 0) { l.master = 0; return }
    const m = this.mustIndex(masterIndex, what)
    if (m.kind !== 'bridge' || m.index === l.index) throw refuse(what, 'ENOTSUP')
    l.master = masterIndex
  }

  async deleteLink (name: string): Promise<void> {
    this.enter('deleteLink')
    const l = this.byName(name)
    if (l !== undefined) this.drop(l.index)
  }

  /** Removes a link and what the kernel removes with it. */
  private drop (index: number): void {
    this.links.delete(index)
    this.hairpins.delete(index)
    // A veth takes its peer with it, wherever the peer lives.
    const peer = this.peers.get(index)
    if (peer !== undefined) {
      this.peers.delete(index)
      if (peer[0] === -1) { const p = this.byName(peer[1]); if (p !== undefined) this.drop(p.index) } else this.netns.get(peer[0])?.delete(peer[1])
    }
    this.addrs = this.addrs.filter(a => a.index !== index)
    this.routeTable = this.routeTable.filter(r => r.dev !== index)
    this.neighs = this.neighs.filter(n => n.dev !== index)
    this.fdbs = this.fdbs.filter(f => f.dev !== index)
    for (const o of [...this.links.values()]) {
      if (o.master === index) o.master = 0
      if (o.vxlan?.link === index) this.drop(o.index) // the kernel unregisters vxlan devices of a vanished uplink
    }
  }

  async addresses (index?: number): Promise<AddressInfo[]> {
    this.enter('addresses')
    return this.addrs.filter(a => index === undefined || a.index === index).map(a => ({ ...a }))
  }

  async addAddress (index: number, ip: string, prefix: number): Promise<void> {
    this.enter('addAddress')
    const p = parseIP(ip)
    if (p === null) throw refuse(`not an IP address: ${ip}`, 'EINVAL')
    this.mustIndex(index, `adding ${ip}/${prefix}`)
    if (this.addrs.some(a => a.index === index && a.ip === p.ip)) return
    this.addrs.push({ index, family: p.family, ip: p.ip, prefix })
  }

  /** The kernel's answers, change by change: EEXIST, EADDRNOTAVAIL, ENODEV, EINVAL as errnos. */
  async changeAddresses (changes: readonly AddressChange[]): Promise<number[]> {
    this.enter('changeAddresses')
    return changes.map(c => {
      const p = parseIP(c.ip)
      if (p === null) return ERRNO.EINVAL
      if (!this.links.has(c.index)) return ERRNO.ENODEV
      const at = this.addrs.findIndex(a => a.index === c.index && a.ip === p.ip)
      if (c.op === 'add') {
        if (at >= 0) return ERRNO.EEXIST
        this.addrs.push({ index: c.index, family: p.family, ip: p.ip, prefix: c.prefix })
        return 0
      }
      if (at < 0) return ERRNO.EADDRNOTAVAIL
      this.addrs.splice(at, 1)
      return 0
    })
  }

  async deleteAddress (index: number, ip: string, _prefix: number): Promise<void> {
    this.enter('deleteAddress')
    const canonical = canon(ip)
    this.addrs = this.addrs.filter(a => !(a.index === index && a.ip === canonical))
  }

  /** The prefix routes the kernel adds for addresses on up links (proto kernel, scope link). */
  private connected (family: IPFamily): RouteInfo[] {
    const out: RouteInfo[] = []
    for (const a of this.addrs) {
      const full = a.family === 'IPv4' ? 32 : 128
      if (a.family !== family || a.prefix >= full || this.links.get(a.index)?.up !== true) continue
      const c = parseCIDR(`${a.ip}/${a.prefix}`)
      if (c === null) continue
      out.push({ family, dst: c.text, gateway: null, dev: a.index, onlink: false, scope: RT_SCOPE_LINK, protocol: RTPROT_KERNEL, src: family === 'IPv4' ? a.ip : null, type: 1 })
    }
    return out
  }

  async routes (family: IPFamily): Promise<RouteInfo[]> {
    this.enter('routes')
    return [...this.connected(family), ...this.routeTable.filter(r => r.family === family).map(r => ({ ...r }))]
  }

  async replaceRoute (spec: RouteSpec): Promise<void> {
    this.enter('replaceRoute')
    routeRequest(spec) // the real encoder's checks: CIDR, gateway family
    const what = `replacing route ${spec.dst} dev ${spec.dev}`
    const dst = parseCIDR(spec.dst)
    if (dst === null) throw refuse(what, 'EINVAL')
    const dev = this.mustIndex(spec.dev, what)
    if (!dev.up) throw refuse(what, 'ENETDOWN') // both families, measured
    const gateway = spec.gateway !== undefined ? canon(spec.gateway) : null
    if (gateway !== null && spec.onlink !== true && !this.onLink(dst.family, dev.index, gateway)) throw refuse(`${what} via ${gateway}`, dst.family === 'IPv4' ? 'ENETUNREACH' : 'EHOSTUNREACH')
    const route: RouteInfo = {
      family: dst.family,
      dst: dst.text,
      gateway,
      dev: dev.index,
      onlink: spec.onlink === true,
      scope: gateway !== null ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
      protocol: spec.protocol ?? RTPROT_BOOT,
      src: spec.src !== undefined ? canon(spec.src) : null,
      type: 1,
    }
    this.routeTable = [...this.routeTable.filter(r => !(r.family === route.family && r.dst === route.dst)), route]
  }

  /** Whether a gateway is reachable on dev without onlink: inside a connected or a direct route there. */
  private onLink (family: IPFamily, dev: number, gateway: string): boolean {
    if (family === 'IPv6' && /^fe[89ab]/i.test(gateway)) return true
    const direct = [...this.connected(family), ...this.routeTable.filter(r => r.family === family && r.gateway === null)]
    return direct.some(r => {
      const c = parseCIDR(r.dst)
      return r.dev === dev && c !== null && cidrContains(c, gateway)
    })
  }

  async deleteRoute (m: RouteMatch): Promise<void> {
    this.enter('deleteRoute')
    routeDeleteRequest(m)
    const dst = parseCIDR(m.dst)?.text
    const gw = m.gateway !== undefined ? canon(m.gateway) : undefined
    const i = this.routeTable.findIndex(r => r.dst === dst && (m.dev === undefined || r.dev === m.dev) && (gw === undefined || r.gateway === gw))
    if (i >= 0) this.routeTable.splice(i, 1)
  }

  async replaceNeighbour (spec: NeighbourSpec): Promise<void> {
    this.enter('replaceNeighbour')
    neighbourRequest(spec) // address and MAC checks
    this.mustIndex(spec.dev, `replacing neighbour ${spec.ip} dev ${spec.dev}`)
    const p = parseIP(spec.ip)
    if (p === null) throw refuse(`not an IP address: ${spec.ip}`, 'EINVAL')
    const n: NeighbourInfo = { dev: spec.dev, family: p.family, ip: p.ip, mac: spec.mac.toLowerCase(), permanent: spec.permanent !== false }
    this.neighs = [...this.neighs.filter(o => !(o.dev === n.dev && o.ip === n.ip)), n]
  }

  async deleteNeighbour (spec: { readonly dev: number, readonly ip: string }): Promise<void> {
    this.enter('deleteNeighbour')
    const ip = canon(spec.ip)
    this.neighs = this.neighs.filter(o => !(o.dev === spec.dev && o.ip === ip))
  }

  async neighbours (dev?: number): Promise<NeighbourInfo[]> {
    this.enter('neighbours')
    return this.neighs.filter(n => dev === undefined || n.dev === dev).map(n => ({ ...n }))
  }

  async appendFdb (spec: FdbSpec): Promise<void> {
    this.enter('appendFdb')
    fdbRequest(spec)
    this.mustIndex(spec.dev, `appending FDB ${spec.mac} dev ${spec.dev}`)
    const e: FdbEntry = { dev: spec.dev, mac: spec.mac.toLowerCase(), dst: canon(spec.dst), permanent: true, self: true }
    const known = this.fdbs.filter(o => o.dev === e.dev && o.mac === e.mac)
    // Several remotes only for the all-zeros and multicast MACs; a unicast MAC keeps its one dst.
    if (known.length === 0 || (floods(e.mac) && !known.some(o => o.dst === e.dst))) this.fdbs.push(e)
  }

  async replaceFdb (spec: FdbSpec): Promise<void> {
    this.enter('replaceFdb')
    fdbRequest(spec)
    const what = `replacing FDB ${spec.mac} dst ${spec.dst} dev ${spec.dev}`
    this.mustIndex(spec.dev, what)
    const e: FdbEntry = { dev: spec.dev, mac: spec.mac.toLowerCase(), dst: canon(spec.dst), permanent: true, self: true }
    const known = this.fdbs.some(o => o.dev === e.dev && o.mac === e.mac)
    if (known && floods(e.mac)) throw refuse(what, 'ENOTSUP')
    this.fdbs = [...this.fdbs.filter(o => !(o.dev === e.dev && o.mac === e.mac)), e]
  }

  async deleteFdb (spec: { readonly dev: number, readonly mac: string, readonly dst?: string }): Promise<void> {
    this.enter('deleteFdb')
    fdbRequest(spec)
    const mac = spec.mac.toLowerCase()
    const dst = spec.dst !== undefined ? canon(spec.dst) : undefined
    this.fdbs = this.fdbs.filter(o => !(o.dev === spec.dev && o.mac === mac && (dst === undefined || o.dst === dst)))
  }

  async fdb (dev?: number): Promise<FdbEntry[]> {
    this.enter('fdb')
    return this.fdbs.filter(f => dev === undefined || f.dev === dev).map(f => ({ ...f }))
  }

  close (): void {}
}

/** The name the IPVS mode's tests know it by. */
export { FakeNetlink as FakeLinks }
