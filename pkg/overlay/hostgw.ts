// The host-gw backend (OVERLAY.md §2.9–2.10): no device, one route per peer `<subnet> via <PublicIP> dev
// <uplink>`. The nodes must share the uplink's L2 segment, so it refuses a public IP that is not on the
// uplink (flannel: "probably you're on a NAT"); the pods' MTU is the uplink's. reconcile plays flannel's
// 10 s routeCheck, but reads the kernel and re-adds only the routes that are missing or changed. Its
// routes carry protocol RTPROT_FERRY: after a restart, the routes to peers that left meanwhile are
// recognised as ours and removed (flannel keeps them until reboot).
import { FerryError } from '../errors/errors.js'
import type { Cidr } from '../net/cidr.js'
import { parseIP, type IPFamily } from '../net/ip.js'
import { Lane } from '../async/lane.js'
import { RTPROT_FERRY } from '../netlink/routes.js'
import type { CheckedDeps, LocalSubnets, OverlayBackend, OverlayPeer } from './backend.js'
import { EntryTable, Failures } from './backend-sync.js'

interface Route { readonly family: IPFamily, readonly dst: string, readonly gateway: string, readonly dev: number }

export function createHostGwBackend (deps: CheckedDeps): OverlayBackend {
  return new HostGwBackend(deps)
}

class HostGwBackend implements OverlayBackend {
  readonly type = 'host-gw' as const
  private local: readonly Cidr[] = []
  private peers: readonly OverlayPeer[] = []
  private skipped: Array<{ key: string, reason: string }> = []
  private readonly routes = new EntryTable<Route>((a, b) => a.gateway === b.gateway && a.dev === b.dev)
  private readonly lane = new Lane()
  private readonly counters = { restored: 0, reconciles: 0, adopted: 0 }
  private peersKnown = false

  constructor (private readonly deps: CheckedDeps) {}

  async prepare (): Promise<{ mtu: number }> {
    return await this.lane.run(async () => {
      const { uplink } = this.deps
      const on = new Set((await this.deps.netlink.addresses(uplink.index)).map(a => a.ip))
      for (const ip of [this.deps.publicIP, this.deps.publicIPv6]) {
        if (ip === undefined || on.has(ip)) continue
        throw new FerryError('FERRY_ERR_CONFIG',
          `host-gw: public IP ${ip} is not an address of uplink ${uplink.name}; host-gw needs the nodes on one L2 segment (behind NAT? use vxlan)`,
          { publicIP: ip, uplink: uplink.name, addresses: [...on] })
      }
      return { mtu: uplink.mtu }
    })
  }

  async configure (local: LocalSubnets): Promise<void> {
    // Nothing to address: pods' traffic leaves by the uplink as it is.
    this.local = [...local.subnets]
  }

  async setPeers (peers: readonly OverlayPeer[]): Promise<void> {
    await this.lane.run(async () => {
      this.peers = [...peers]
      this.peersKnown = true
      this.render()
      await this.sync()
    })
  }

  async reconcile (): Promise<void> {
    await this.lane.run(async () => {
      this.counters.reconciles++
      const kernel = new Map<string, Route>()
      const ours = new Map<string, Route>()
      for (const family of ['IPv4', 'IPv6'] as const) {
        for (const r of await this.deps.netlink.routes(family)) {
          // Only the uplink's: a route to that dst elsewhere is someone else's (desired: replaced; stale: left).
          if (r.gateway === null || r.dev !== this.deps.uplink.index) continue
          const route = { family, dst: r.dst, gateway: r.gateway, dev: r.dev }
          kernel.set(`${family}|${r.dst}`, route)
          if (r.protocol === RTPROT_FERRY) ours.set(`${family}|${r.dst}`, route)
        }
      }
      this.routes.refresh(k => kernel.get(k))
      // Ours from an earlier run, to peers that are gone: stale once the peer set is known.
      if (this.peersKnown) {
        for (const [k, r] of ours) {
          if (this.routes.desired.has(k) || this.routes.programmed.has(k)) continue
          this.routes.programmed.set(k, r)
          this.counters.adopted++
        }
      }
      const missing = this.routes.missing()
      if (missing.length > 0) {
        this.counters.restored += missing.length
        this.deps.log('warn', 'host-gw: restoring routes missing from the kernel', { routes: missing.map(([, r]) => r.dst) })
      }
      await this.sync()
    })
  }

  state (): Readonly<Record<string, unknown>> {
    return {
      type: this.type,
      uplink: this.deps.uplink.name,
      local: this.local.map(s => s.text),
      peers: this.peers.map(p => ({ key: p.key, subnet: p.subnet.text, publicIP: p.publicIP })),
      skipped: this.skipped,
      routes: this.routes.values().map(r => ({ dst: r.dst, via: r.gateway, dev: r.dev })),
      ...this.counters,
    }
  }

  private render (): void {
    const routes = new Map<string, Route>()
    const skipped: Array<{ key: string, reason: string }> = []
    for (const p of this.peers) {
      const pub = parseIP(p.publicIP)
      if (pub === null || pub.family !== p.subnet.family) {
        skipped.push({ key: p.key, reason: `public IP ${p.publicIP} is not an ${p.subnet.family} address` })
        continue
      }
      routes.set(`${p.subnet.family}|${p.subnet.text}`, { family: p.subnet.family, dst: p.subnet.text, gateway: pub.ip, dev: this.deps.uplink.index })
    }
    for (const s of skipped) {
      if (!this.skipped.some(o => o.key === s.key && o.reason === s.reason)) this.deps.log('warn', 'host-gw: peer skipped', s)
    }
    this.skipped = skipped
    this.routes.desired = routes
  }

  private async sync (): Promise<void> {
    const nl = this.deps.netlink
    const fail = new Failures()
    for (const [k, r] of this.routes.stale()) {
      // dst, dev and gateway must all match: never a route to that dst someone else put elsewhere.
      if (await fail.step(`delete route ${r.dst} via ${r.gateway}`, async () => { await nl.deleteRoute({ dst: r.dst, dev: r.dev, gateway: r.gateway }) })) this.routes.programmed.delete(k)
    }
    for (const [k, r] of this.routes.missing()) {
      if (await fail.step(`route ${r.dst} via ${r.gateway}`, async () => { await nl.replaceRoute({ dst: r.dst, gateway: r.gateway, dev: r.dev, protocol: RTPROT_FERRY }) })) this.routes.programmed.set(k, r)
    }
    fail.throwIfAny('host-gw')
  }
}
