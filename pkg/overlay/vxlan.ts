// The vxlan backend (OVERLAY.md §2.1–2.8): one device per underlay family (`ferry.<vni>` over IPv4,
// `ferry-v6.<vni>` over IPv6 when the node has a public IPv6), and per peer, in order, a permanent
// neighbour `<peer subnet base> lladdr <VtepMAC>`, an FDB entry `<VtepMAC> dst <peer PublicIP>` and the
// route `<peer subnet> via <peer subnet base> dev ferry.<vni> onlink`. Unlike flannel it deletes the FDB
// entry of a changed MAC (§2.6), moves a MAC whose PublicIP changed with `fdb replace` (append would not),
// and recreates a deleted device with the published MAC and every peer entry (§2.8). A peer's VNI plays no
// part, as in flannel: every node's device uses the network's VNI; one naming another is routed all the
// same, with one warning (its device may not be on our VNI, and then the traffic goes nowhere).
import type { Cidr } from '../net/cidr.js'
import { bigIntToIP } from '../net/cidr.js'
import { parseIP, type IPFamily } from '../net/ip.js'
import { Lane } from '../async/lane.js'
import type { BackendData, CheckedDeps, LocalSubnets, OverlayBackend, OverlayPeer } from './backend.js'
import { EntryTable, Failures } from './backend-sync.js'
import { ensureAddresses, ensureVtep, vtepSpec, type VtepSpec } from './vxlan-device.js'

interface Vtep { readonly spec: VtepSpec, index: number }
/** `vtep` is the device's underlay family: indices change when a device is recreated, families do not. */
interface Neigh { readonly vtep: IPFamily, readonly ip: string, readonly mac: string }
interface FdbDst { readonly vtep: IPFamily, readonly mac: string, readonly dst: string }
interface Route { readonly vtep: IPFamily, readonly family: IPFamily, readonly dst: string, readonly gateway: string, readonly onlink: boolean, readonly needs?: readonly [string, string] }

const UNICAST_MAC = /^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$/

export function createVxlanBackend (deps: CheckedDeps, opts: { vni: number, port: number }): OverlayBackend {
  return new VxlanBackend(deps, opts)
}

class VxlanBackend implements OverlayBackend {
  readonly type = 'vxlan' as const
  private readonly nl
  private readonly specs: VtepSpec[]
  private readonly vteps = new Map<IPFamily, Vtep>()
  private mac: string | undefined
  private local: readonly Cidr[] = []
  private peers: readonly OverlayPeer[] = []
  private skipped: Array<{ key: string, reason: string }> = []
  /** Peers whose lease names another VNI, key → that VNI: warned about once while it stays so. */
  private otherVNI = new Map<string, number>()
  private readonly neighs = new EntryTable<Neigh>((a, b) => a.vtep === b.vtep && a.mac === b.mac)
  private readonly fdb = new EntryTable<FdbDst>((a, b) => a.vtep === b.vtep && a.dst === b.dst)
  private readonly routes = new EntryTable<Route>((a, b) => a.vtep === b.vtep && a.gateway === b.gateway && a.onlink === b.onlink)
  private readonly lane = new Lane()
  private readonly counters = { recreated: 0, restored: 0, reconciles: 0 }

  constructor (private readonly deps: CheckedDeps, private readonly opts: { vni: number, port: number }) {
    this.nl = deps.netlink
    const underlay = parseIP(deps.publicIP)?.family ?? 'IPv4'
    this.specs = [vtepSpec(underlay, deps.publicIP, opts.vni, opts.port, deps.uplink)]
    if (underlay === 'IPv4' && deps.publicIPv6 !== undefined) this.specs.push(vtepSpec('IPv6', deps.publicIPv6, opts.vni, opts.port, deps.uplink))
  }

  async prepare (): Promise<{ backendData: BackendData, mtu: number }> {
    return await this.lane.run(async () => {
      for (const spec of this.specs) {
        const got = await ensureVtep(this.nl, spec, this.mac)
        this.mac = got.link.mac
        this.vteps.set(spec.family, { spec, index: got.link.index })
        // A kept device may carry a previous run's peers: take them as programmed, so setPeers drops the stale.
        if (got.adopted) await this.refresh()
        this.deps.log('info', got.adopted ? 'vxlan: kept existing device' : 'vxlan: created device', { device: spec.name, mac: this.mac, mtu: spec.mtu })
      }
      return { backendData: { vni: this.opts.vni, vtepMAC: this.mac ?? '' }, mtu: Math.min(...this.specs.map(s => s.mtu)) }
    })
  }

  async configure (local: LocalSubnets): Promise<void> {
    await this.lane.run(async () => {
      this.local = [...local.subnets]
      for (const v of this.vteps.values()) {
        await ensureAddresses(this.nl, v.index, this.subnetsOn(v.spec.family), true)
        await this.nl.setUp(v.index)
      }
    })
  }

  async setPeers (peers: readonly OverlayPeer[]): Promise<void> {
    await this.lane.run(async () => {
      this.peers = [...peers]
      this.render()
      await this.sync()
    })
  }

  async reconcile (): Promise<void> {
    await this.lane.run(async () => {
      this.counters.reconciles++
      for (const v of this.vteps.values()) await this.checkDevice(v)
      await this.refresh()
      const missing = this.neighs.missing().length + this.fdb.missing().length + this.routes.missing().length
      if (missing > 0) {
        this.counters.restored += missing
        this.deps.log('warn', 'vxlan: restoring overlay entries missing from the kernel', { missing })
      }
      await this.sync()
    })
  }

  state (): Readonly<Record<string, unknown>> {
    return {
      type: this.type,
      vni: this.opts.vni,
      port: this.opts.port,
      vtepMAC: this.mac ?? null,
      devices: [...this.vteps.values()].map(v => ({ name: v.spec.name, index: v.index, underlay: v.spec.family, local: v.spec.local, mtu: v.spec.mtu })),
      local: this.local.map(s => s.text),
      peers: this.peers.map(p => ({ key: p.key, subnet: p.subnet.text, publicIP: p.publicIP, vtepMAC: p.vtepMAC ?? null, vni: p.vni ?? null })),
      skipped: this.skipped,
      otherVNI: [...this.otherVNI].map(([key, vni]) => ({ key, vni })),
      neighbours: this.neighs.values().map(n => ({ device: this.name(n.vtep), ip: n.ip, mac: n.mac })),
      fdb: this.fdb.values().map(f => ({ device: this.name(f.vtep), mac: f.mac, dst: f.dst })),
      routes: this.routes.values().map(r => ({ dst: r.dst, via: r.gateway, device: this.name(r.vtep), onlink: r.onlink })),
      ...this.counters,
    }
  }

  private name (f: IPFamily): string { return this.vteps.get(f)?.spec.name ?? '' }

  /** Local subnets addressed on a device: its own family's, and any family without a device of its own. */
  private subnetsOn (f: IPFamily): Cidr[] {
    return this.local.filter(s => s.family === f || (!this.vteps.has(s.family) && f === this.specs[0]?.family))
  }

  /** Peers → the three desired tables (pure). A peer that cannot be programmed is skipped, and said so. */
  private render (): void {
    const neighs = new Map<string, Neigh>()
    const fdb = new Map<string, FdbDst>()
    const routes = new Map<string, Route>()
    const skipped: Array<{ key: string, reason: string }> = []
    const macOwner = new Map<string, string>()
    for (const p of this.peers) {
      const mac = p.vtepMAC?.toLowerCase()
      const pub = parseIP(p.publicIP)
      const vtep = pub === null ? undefined : this.vteps.get(pub.family)
      let reason: string | undefined
      if (mac === undefined || !UNICAST_MAC.test(mac)) reason = `no unicast VtepMAC (${p.vtepMAC ?? 'none'})`
      else if (pub === null) reason = `public IP ${p.publicIP} is not an address`
      else if (vtep === undefined) reason = `no ${pub.family} underlay device (node has no public ${pub.family})`
      // One node's two leases (v4 and v6 subnet over one public IP) share their FDB entry; two dsts cannot.
      else if ((fdb.get(`${pub.family}|${mac}`)?.dst ?? pub.ip) !== pub.ip) reason = `VtepMAC ${mac} already goes to another node (${macOwner.get(`${pub.family}|${mac}`) ?? ''})`
      if (reason !== undefined || mac === undefined || pub === null || vtep === undefined) {
        skipped.push({ key: p.key, reason: reason ?? '' })
        continue
      }
      const f = vtep.spec.family
      macOwner.set(`${f}|${mac}`, p.key)
      const gateway = bigIntToIP(p.subnet.base, p.subnet.family)
      const nk = `${f}|${gateway}`
      const fk = `${f}|${mac}`
      neighs.set(nk, { vtep: f, ip: gateway, mac })
      fdb.set(fk, { vtep: f, mac, dst: pub.ip })
      routes.set(`${p.subnet.family}|${p.subnet.text}`, { vtep: f, family: p.subnet.family, dst: p.subnet.text, gateway, onlink: true, needs: [nk, fk] })
    }
    for (const s of skipped) {
      if (!this.skipped.some(o => o.key === s.key && o.reason === s.reason)) this.deps.log('warn', 'vxlan: peer skipped', s)
    }
    this.skipped = skipped
    const otherVNI = new Map<string, number>()
    for (const p of this.peers) {
      if (p.vni === undefined || p.vni === this.opts.vni || skipped.some(s => s.key === p.key)) continue
      otherVNI.set(p.key, p.vni)
      // Our VNI cut to 16 bits: a Windows or pre-v0.24.0 flannel node on the same network (network-config.ts flannelVNIWarning).
      const cut = this.opts.vni > 0xffff && p.vni === (this.opts.vni & 0xffff)
        ? { hint: `${p.vni} is ${this.opts.vni} cut to 16 bits: a flannel node on Windows or older than v0.24.0, which cannot read our lease` }
        : {}
      if (this.otherVNI.get(p.key) !== p.vni) this.deps.log('warn', 'vxlan: peer lease names another VNI; routed with ours, as flannel does', { key: p.key, vni: p.vni, ours: this.opts.vni, ...cut })
    }
    this.otherVNI = otherVNI
    this.neighs.desired = neighs
    this.fdb.desired = fdb
    this.routes.desired = routes
  }

  /** Desired against programmed: removals route → FDB → neighbour, then additions neighbour → FDB → route. */
  private async sync (): Promise<void> {
    const nl = this.nl
    const fail = new Failures()
    const dev = (f: IPFamily): number | undefined => this.vteps.get(f)?.index
    for (const [k, r] of this.routes.stale()) {
      const d = dev(r.vtep)
      if (d === undefined || await fail.step(`delete route ${r.dst}`, async () => { await nl.deleteRoute({ dst: r.dst, dev: d }) })) this.routes.programmed.delete(k)
    }
    for (const [k, e] of this.fdb.stale()) {
      const d = dev(e.vtep)
      if (d === undefined || await fail.step(`delete FDB ${e.mac}`, async () => { await nl.deleteFdb({ dev: d, mac: e.mac, dst: e.dst }) })) this.fdb.programmed.delete(k)
    }
    for (const [k, n] of this.neighs.stale()) {
      const d = dev(n.vtep)
      if (d === undefined || await fail.step(`delete neighbour ${n.ip}`, async () => { await nl.deleteNeighbour({ dev: d, ip: n.ip }) })) this.neighs.programmed.delete(k)
    }
    for (const [k, n] of this.neighs.missing()) {
      const d = dev(n.vtep)
      if (d !== undefined && await fail.step(`neighbour ${n.ip} lladdr ${n.mac}`, async () => { await nl.replaceNeighbour({ dev: d, ip: n.ip, mac: n.mac, permanent: true }) })) this.neighs.programmed.set(k, n)
    }
    // replace, not append: append leaves a unicast MAC on its old dst (a peer whose PublicIP changed).
    for (const [k, e] of this.fdb.missing()) {
      const d = dev(e.vtep)
      if (d !== undefined && await fail.step(`FDB ${e.mac} dst ${e.dst}`, async () => { await nl.replaceFdb({ dev: d, mac: e.mac, dst: e.dst }) })) this.fdb.programmed.set(k, e)
    }
    for (const [k, r] of this.routes.missing()) {
      const d = dev(r.vtep)
      // Only once its neighbour and FDB entry are in: the kernel then never resolves the gateway itself.
      if (d === undefined || (r.needs !== undefined && !(this.neighs.done(r.needs[0]) && this.fdb.done(r.needs[1])))) continue
      if (await fail.step(`route ${r.dst} via ${r.gateway}`, async () => { await nl.replaceRoute({ dst: r.dst, gateway: r.gateway, dev: d, onlink: true }) })) this.routes.programmed.set(k, r)
    }
    fail.throwIfAny('vxlan')
  }

  /** The device as prepare left it: recreated with the same MAC if gone or changed, up, MTU, addresses. */
  private async checkDevice (v: Vtep): Promise<void> {
    const got = await ensureVtep(this.nl, v.spec, this.mac)
    if (got.created || got.link.index !== v.index) {
      // Whatever we had on it went with the old device; refresh() finds nothing there, sync replays it all.
      this.counters.recreated++
      this.deps.log('warn', 'vxlan: device was deleted or changed; recreated with the published MAC, replaying peers', { device: v.spec.name, mac: this.mac })
    }
    v.index = got.link.index
    const added = await ensureAddresses(this.nl, v.index, this.subnetsOn(v.spec.family), false)
    if (added.length > 0) this.deps.log('warn', 'vxlan: restored device addresses', { device: v.spec.name, added })
    if (!got.link.up) await this.nl.setUp(v.index)
  }

  /** Reads the kernel into `programmed`: permanent neighbours, FDB dsts and routes on our devices. */
  private async refresh (): Promise<void> {
    const neighs = new Map<string, Neigh>()
    const fdb = new Map<string, FdbDst>()
    const byIndex = new Map<number, IPFamily>()
    for (const [f, v] of this.vteps) {
      byIndex.set(v.index, f)
      for (const n of await this.nl.neighbours(v.index)) {
        if (n.permanent && n.mac !== null) neighs.set(`${f}|${n.ip}`, { vtep: f, ip: n.ip, mac: n.mac })
      }
      for (const e of await this.nl.fdb(v.index)) {
        if (e.self && e.dst !== null && UNICAST_MAC.test(e.mac)) fdb.set(`${f}|${e.mac}`, { vtep: f, mac: e.mac, dst: e.dst })
      }
    }
    const routes = new Map<string, Route>()
    for (const family of ['IPv4', 'IPv6'] as const) {
      for (const r of await this.nl.routes(family)) {
        // Gateway routes on our devices are ours; one elsewhere to a dst we route counts as missing (replaced).
        const vtep = byIndex.get(r.dev)
        if (vtep !== undefined && r.gateway !== null) routes.set(`${family}|${r.dst}`, { vtep, family, dst: r.dst, gateway: r.gateway, onlink: r.onlink })
      }
    }
    // Keys the kernel holds on our devices but we never knew (a previous run) join programmed too.
    for (const [k, v] of neighs) if (!this.neighs.programmed.has(k)) this.neighs.programmed.set(k, v)
    for (const [k, v] of fdb) if (!this.fdb.programmed.has(k)) this.fdb.programmed.set(k, v)
    for (const [k, v] of routes) if (!this.routes.programmed.has(k)) this.routes.programmed.set(k, v)
    this.neighs.refresh(k => neighs.get(k))
    this.fdb.refresh(k => fdb.get(k))
    this.routes.refresh(k => routes.get(k))
  }
}
