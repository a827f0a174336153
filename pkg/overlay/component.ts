// The overlay component (issue 12): this node's pod subnet leased in etcd (or --pod-cidr), the backend
// programmed for it and for every other node's lease, and the node file ferry-cni reads. Lease events
// only record the desired peer set; one serialized step applies it, and a slow period reconciles
// against the kernel (a deleted device, route, neighbour or FDB entry comes back).
import type { Component, Readiness } from '../component/component.js'
import type { OverlayConfig } from '../config/config.js'
import { loadAccess } from '../etcd/access.js'
import type { ConnectOptions } from '../etcd/client.js'
import { FerryError, errorMessage } from '../errors/errors.js'
import type { Logger } from '../log/log.js'
import { Lane } from '../async/lane.js'
import type { Netlink } from '../netlink/netlink.js'
import { createOverlayBackend, type OverlayBackend, type OverlayPeer } from './backend.js'
import type { Lease } from './lease-codec.js'
import type { NodeLeases, SubnetManager } from './lease.js'
import { StaticSubnetManager } from './lease-static.js'
import { flannelVNIWarning, type BackendType, type NetworkConfig } from './network-config.js'
import { readSubnetFile, subnetFileFor, writeSubnetFile } from './subnet-file.js'
import { findUplink, type Uplink } from './uplink.js'

export interface OverlayComponentOptions {
  config: OverlayConfig
  log: Logger
  /** Test seam; default: the real rtnetlink socket. */
  netlink?: Netlink
  /** Slow-period kernel check; flannel's host-gw route check runs every 10 s. */
  reconcileMs?: number
}

export class OverlayComponent implements Component {
  readonly name = 'overlay'
  private nl: Netlink | undefined
  private manager: SubnetManager | undefined
  private backend: OverlayBackend | undefined
  private leases: NodeLeases | undefined
  private uplink: Uplink | undefined
  private watch: { stop: () => Promise<void> } | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly peers = new Map<string, Lease>()
  private readonly lane = new Lane()
  private peersSynced = false
  /** Keys of other backends' leases already warned about. */
  private ignored = new Set<string>()
  private lastError: string | undefined
  private stopped = false

  constructor (private readonly o: OverlayComponentOptions) {}

  async start (): Promise<void> {
    const cfg = this.o.config
    const log = this.o.log
    const nl = this.nl = this.o.netlink ?? (await import('../netlink/netlink.js')).openNetlink()
    const uplink = this.uplink = await findUplink(nl, { iface: cfg.overlayIface, publicIP: cfg.publicIP, publicIPv6: cfg.publicIPv6 })
    const etcd = cfg.etcdEndpoints.length > 0 ? this.etcdOptions() : undefined
    const network = etcd !== undefined ? await this.networkConfig(etcd) : this.staticManager().config
    // The node file (and so every pod) needs an IPv4 subnet: an IPv6-only network would lease, report ready
    // and never write it. Refuse before leasing anything.
    if (network.ipv4 === undefined) {
      throw new FerryError('FERRY_ERR_CONFIG', 'network config: EnableIPv4 is false: ferry needs an IPv4 Network (IPv6 rides alongside with EnableIPv6); IPv6-only networks are not supported', { field: 'EnableIPv4' })
    }
    const type = etcd !== undefined ? network.backend.type : cfg.overlayBackend
    // Leases are shared only through etcd: a mixed cluster with older or Windows flannel nodes would split.
    const vniWarning = etcd !== undefined ? flannelVNIWarning(network.backend) : undefined
    if (vniWarning !== undefined) log.warn(`overlay: ${vniWarning}`, { vni: network.backend.vni })
    const backend = this.backend = createOverlayBackend(type, {
      netlink: nl, uplink, publicIP: uplink.publicIP, ...(uplink.publicIPv6 !== undefined ? { publicIPv6: uplink.publicIPv6 } : {}),
      log: (level, msg, fields) => { log[level](msg, fields) },
    }, etcd !== undefined ? { vni: network.backend.vni, port: network.backend.port } : { vni: cfg.vxlanVNI, port: cfg.vxlanPort })
    const prepared = await backend.prepare()
    // The etcd client (gRPC) loads only when etcd is in use: a manifest-fed ferryd starts without it.
    const EtcdSubnetManager = etcd !== undefined ? (await import('./lease.js')).EtcdSubnetManager : undefined
    this.manager = etcd !== undefined && EtcdSubnetManager !== undefined
      ? new EtcdSubnetManager({
        ...etcd, prefix: cfg.etcdPrefix, config: network, ttlSeconds: Math.max(2, Math.round(cfg.subnetLeaseTTLMs / 1000)),
        preferred: previousSubnets(cfg.subnetFile),
        log: (level, msg, fields) => { log[level](msg, fields) },
        // Then the peers again: a lease for the subnet we held (taken while we were away) was skipped as ours.
        onChange: l => { void this.lane.run(async () => { await this.adopt(l, prepared.mtu) }); this.schedulePeers() },
      })
      : this.staticManager()
    const leases = await this.manager.acquire({
      publicIP: uplink.publicIP,
      ...(uplink.publicIPv6 !== undefined ? { publicIPv6: uplink.publicIPv6 } : {}),
      backendType: type,
      ...(prepared.backendData !== undefined ? { backendData: prepared.backendData } : {}),
    })
    await this.lane.run(async () => { await this.adopt(leases, prepared.mtu) })
    log.info('overlay subnet leased', { backend: type, uplink: uplink.name, publicIP: uplink.publicIP, subnets: this.ownSubnets(), mtu: prepared.mtu, subnetFile: cfg.subnetFile })
    this.watch = await this.manager.watch({
      event: ev => {
        if (ev.type === 'removed') this.peers.delete(ev.lease.key)
        else this.peers.set(ev.lease.key, ev.lease)
        // Our own key gone while we run: other nodes drop their routes to us and may claim the subnet.
        if (ev.type === 'removed' && this.own(ev.lease) && !this.stopped) this.manager?.reclaim?.()
        this.schedulePeers()
      },
      synced: all => {
        this.peers.clear()
        for (const [k, l] of all) this.peers.set(k, l)
        this.peersSynced = true
        this.schedulePeers()
      },
      error: e => { log.warn('subnet lease watch', { err: e.message, code: e.code }) },
    })
    await this.lane.run(async () => {}) // the first peer set is in the kernel
    this.timer = setInterval(() => {
      void this.lane.run(async () => {
        try { await backend.reconcile(); this.lastError = undefined } catch (e) { this.failed('reconcile', e) }
      })
    }, this.o.reconcileMs ?? 10_000)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearInterval(this.timer)
    await this.watch?.stop()
    // The lease is not revoked: a restart within its TTL reuses the subnet and pods keep their IPs.
    await this.manager?.close()
    await this.lane.run(async () => {})
    this.nl?.close()
  }

  ready (): Readiness {
    if (this.leases === undefined) return { ready: false, reason: 'no subnet lease yet' }
    if (!this.peersSynced) return { ready: false, reason: 'waiting for the other nodes\' leases' }
    return { ready: true, reason: this.lastError !== undefined ? `last kernel step failed: ${this.lastError}` : '' }
  }

  debugState (): Readonly<Record<string, unknown>> {
    return {
      overlay: {
        uplink: this.uplink,
        subnets: this.ownSubnets(),
        peers: [...this.peers.values()].filter(l => !this.own(l)).map(l => ({ subnet: l.subnet.text, publicIP: l.attrs.publicIP, backendData: l.attrs.backendData })),
        backend: this.backend?.state(),
        ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      },
    }
  }

  private staticManager (): StaticSubnetManager {
    const cfg = this.o.config
    const pick = (list: readonly string[], v6: boolean): string | undefined => list.find(c => c.includes(':') === v6)
    const network = pick(cfg.clusterCIDRs, false)
    const pod = pick(cfg.podCIDRs, false)
    const network6 = pick(cfg.clusterCIDRs, true)
    const pod6 = pick(cfg.podCIDRs, true)
    return new StaticSubnetManager({
      network: network ?? '', podCIDR: pod ?? '',
      ...(network6 !== undefined && pod6 !== undefined ? { networkIPv6: network6, podCIDRIPv6: pod6 } : {}),
      backend: { type: cfg.overlayBackend, vni: cfg.vxlanVNI, port: cfg.vxlanPort },
    })
  }

  private etcdOptions (): ConnectOptions {
    const cfg = this.o.config
    const access = loadAccess({
      endpoints: cfg.etcdEndpoints, caFile: cfg.etcdCAFile, certFile: cfg.etcdCertFile, keyFile: cfg.etcdKeyFile,
      username: cfg.etcdUsername, passwordFile: cfg.etcdPasswordFile,
    })
    return { endpoints: [...cfg.etcdEndpoints], tls: access.tls, auth: access.auth }
  }

  /** The network config in etcd, waited for as flannel does: an operator writes it once per cluster. */
  private async networkConfig (opts: ConnectOptions): Promise<NetworkConfig> {
    const [{ connector }, { readNetworkConfig }] = await Promise.all([import('../etcd/client.js'), import('./lease-store.js')])
    const client = connector(opts).client()
    try {
      for (let said = false; !this.stopped; said = true) {
        try {
          const c = await readNetworkConfig(client, this.o.config.etcdPrefix)
          if (c !== undefined) return c
          if (!said) this.o.log.warn('waiting for the network config in etcd', { key: `${this.o.config.etcdPrefix}/network/config` })
        } catch (e) {
          if (!said) this.o.log.warn('cannot read the network config from etcd; retrying', { err: errorMessage(e) })
        }
        await new Promise(resolve => setTimeout(resolve, 1000))
      }
      throw new Error('stopped')
    } finally {
      client.close()
    }
  }

  /** This node's subnets: the backend addresses them, and the node file tells ferry-cni. */
  private async adopt (leases: NodeLeases, mtu: number): Promise<void> {
    this.leases = leases
    const subnets = [leases.ipv4?.subnet, leases.ipv6?.subnet].filter(s => s !== undefined)
    await this.backend?.configure({ subnets })
    const v4 = leases.ipv4
    const net4 = leases.config.ipv4
    if (v4 === undefined || net4 === undefined) return
    const v6 = leases.ipv6
    const net6 = leases.config.ipv6
    await writeSubnetFile(this.o.config.subnetFile, subnetFileFor({
      network: net4.network, subnet: v4.subnet, mtu, ipMasq: this.o.config.ipMasq,
      ...(v6 !== undefined && net6 !== undefined ? { ipv6: { network: net6.network, subnet: v6.subnet } } : {}),
    }))
  }

  private schedulePeers (): void {
    void this.lane.run(async () => {
      const backend = this.backend
      if (backend === undefined || this.stopped) return
      const ipv6Underlay = this.uplink?.publicIPv6 !== undefined
      const { peers, ignored } = peersFor(this.peers.values(), { own: l => this.own(l), backendType: backend.type, ipv6Underlay })
      for (const l of ignored) {
        if (!this.ignored.has(l.key)) this.o.log.warn(`overlay: ignoring a ${l.attrs.backendType} lease; this node runs ${backend.type}`, { subnet: l.subnet.text, publicIP: l.attrs.publicIP })
      }
      this.ignored = new Set(ignored.map(l => l.key))
      try { await backend.setPeers(peers); this.lastError = undefined } catch (e) { this.failed('programming peers', e) }
    })
  }

  private own (l: Lease): boolean {
    const mine = this.leases
    return mine !== undefined && (l.subnet.text === mine.ipv4?.subnet.text || l.subnet.text === mine.ipv6?.subnet.text)
  }

  private ownSubnets (): string[] {
    return [this.leases?.ipv4?.subnet.text, this.leases?.ipv6?.subnet.text].filter((s): s is string => s !== undefined)
  }

  private failed (what: string, e: unknown): void {
    this.lastError = errorMessage(e)
    this.o.log.warn(`overlay: ${what} failed; retried at the next change or check`, { err: this.lastError })
  }
}

/**
 * The leases the backend programs: not this node's own, and only those of its own backend type. flannel
 * ignores the others: a host-gw route to a vxlan node (or a vxlan node sent to one without a VTEP) carries
 * traffic the other end does not route back, and a vxlan node's PublicIP may be behind NAT.
 */
export function peersFor (leases: Iterable<Lease>, o: { own: (l: Lease) => boolean, backendType: BackendType, ipv6Underlay: boolean }): { peers: OverlayPeer[], ignored: Lease[] } {
  const peers: OverlayPeer[] = []
  const ignored: Lease[] = []
  for (const l of leases) {
    if (o.own(l)) continue
    if (l.attrs.backendType !== o.backendType) ignored.push(l)
    else peers.push(leasePeer(l, o.ipv6Underlay))
  }
  return { peers, ignored }
}

/**
 * A lease as the backend's peer. An IPv6 subnet goes to the peer's PublicIPv6 when both nodes have an IPv6
 * underlay, else to its PublicIP: vxlan then carries the IPv6 pods over the IPv4 device, and host-gw, which
 * cannot, skips the peer and says why. (Dropping such leases here left IPv6 pod traffic without a route
 * and without a word whenever a node's underlay had no IPv6.)
 */
export function leasePeer (l: Lease, ipv6Underlay: boolean): OverlayPeer {
  const v6 = l.subnet.family === 'IPv6' && ipv6Underlay ? l.attrs.publicIPv6 : undefined
  const d = l.attrs.backendData
  return { key: l.key, subnet: l.subnet, publicIP: v6 ?? l.attrs.publicIP, ...(d !== undefined ? { vtepMAC: d.vtepMAC } : {}), ...(d?.vni !== undefined ? { vni: d.vni } : {}) }
}

/** The subnets of the last node file, preferred when no lease carries this node's address any more. */
function previousSubnets (path: string): { ipv4?: string, ipv6?: string } | undefined {
  try {
    // gateway/prefix: the lease manager masks the host bits.
    const f = readSubnetFile(path)
    return { ipv4: f.subnet, ...(f.subnetIPv6 !== undefined ? { ipv6: f.subnetIPv6 } : {}) }
  } catch {
    return undefined
  }
}
