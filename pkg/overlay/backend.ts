// The overlay backends (OVERLAY.md §2), chosen by name: vxlan (vxlan.ts) and host-gw (hostgw.ts). The
// overlay component calls prepare before it leases a subnet (the lease publishes what prepare returns),
// configure once it holds one, setPeers with the whole desired peer set on every lease change, and
// reconcile on a slow period. Each backend keeps what it believes it programmed and diffs against it.
import { FerryError } from '../errors/errors.js'
import type { Cidr } from '../net/cidr.js'
import { parseIP } from '../net/ip.js'
import type { Netlink } from '../netlink/netlink.js'
import { createHostGwBackend } from './hostgw.js'
import { DEFAULT_VNI, DEFAULT_VXLAN_PORT } from './network-config.js'
import { createVxlanBackend } from './vxlan.js'

export interface OverlayPeer {
  /** Lease key, unique per node and family. */
  readonly key: string
  readonly subnet: Cidr
  /** The peer's underlay IP of the subnet's family (IPv6 subnets: its PublicIPv6). */
  readonly publicIP: string
  readonly vtepMAC?: string
  /** The VNI its vxlan lease names, if any: informational, the configured VNI is used for every peer. */
  readonly vni?: number
}

export interface LocalSubnets {
  /** This node's leased subnets, one per family. */
  readonly subnets: readonly Cidr[]
}

export interface BackendData { readonly vni: number, readonly vtepMAC: string }

export interface OverlayBackend {
  readonly type: 'vxlan' | 'host-gw'
  /** Before the lease: creates or adopts the device; returns what the lease publishes and the pods' MTU. */
  prepare: () => Promise<{ backendData?: BackendData, mtu: number }>
  /** After the lease: addresses the device for this node's subnets (vxlan: <subnet>.0/32, v6 <subnet>::/128), up. */
  configure: (local: LocalSubnets) => Promise<void>
  /** The whole desired peer set (this node excluded by the caller); diffs against what it programmed. */
  setPeers: (peers: readonly OverlayPeer[]) => Promise<void>
  /** Slow-period check: restores what someone deleted (device, routes, neighbours, FDB), reading the kernel first. */
  reconcile: () => Promise<void>
  /** What it programmed, for /debug/state. */
  state: () => Readonly<Record<string, unknown>>
}

export type BackendLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void

export interface BackendDeps {
  netlink: Netlink
  uplink: { index: number, name: string, mtu: number }
  publicIP: string
  publicIPv6?: string
  log?: BackendLog
}

export interface BackendOptions { vni?: number, port?: number }

/** Deps with the addresses checked and canonical, the log defaulted: what the backends are built from. */
export interface CheckedDeps {
  readonly netlink: Netlink
  readonly uplink: { readonly index: number, readonly name: string, readonly mtu: number }
  readonly publicIP: string
  readonly publicIPv6?: string
  readonly log: BackendLog
}

const VNI_MAX = 0xffffff

function configError (msg: string, details: Record<string, unknown>): FerryError {
  return new FerryError('FERRY_ERR_CONFIG', msg, details)
}

function checkDeps (deps: BackendDeps): CheckedDeps {
  const pub = parseIP(deps.publicIP)
  if (pub === null) throw configError(`overlay: public IP ${JSON.stringify(deps.publicIP)} is not an IP address`, { publicIP: deps.publicIP })
  let publicIPv6: string | undefined
  if (deps.publicIPv6 !== undefined && deps.publicIPv6 !== '') {
    const p6 = parseIP(deps.publicIPv6)
    if (p6?.family !== 'IPv6') throw configError(`overlay: public IPv6 ${JSON.stringify(deps.publicIPv6)} is not an IPv6 address`, { publicIPv6: deps.publicIPv6 })
    publicIPv6 = p6.ip
  }
  const out = { netlink: deps.netlink, uplink: { ...deps.uplink }, publicIP: pub.ip, log: deps.log ?? (() => {}) }
  return publicIPv6 !== undefined ? { ...out, publicIPv6 } : out
}

const FACTORIES: Record<'vxlan' | 'host-gw', (deps: CheckedDeps, opts: { vni: number, port: number }) => OverlayBackend> = {
  vxlan: createVxlanBackend,
  'host-gw': createHostGwBackend,
}

export function createOverlayBackend (type: 'vxlan' | 'host-gw', deps: BackendDeps, opts: BackendOptions): OverlayBackend {
  const factory = FACTORIES[type]
  if (factory === undefined) throw configError(`overlay: unknown backend ${JSON.stringify(type)}; use one of ${Object.keys(FACTORIES).join(', ')}`, { type })
  const vni = opts.vni ?? DEFAULT_VNI
  // 0 means "the default" in flannel's config, as here.
  const port = opts.port === undefined || opts.port === 0 ? DEFAULT_VXLAN_PORT : opts.port
  if (!Number.isInteger(vni) || vni < 0 || vni > VNI_MAX) throw configError(`overlay: VNI ${vni} out of range 0..${VNI_MAX}`, { vni })
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw configError(`overlay: VXLAN port ${port} out of range 1..65535`, { port })
  return factory(checkDeps(deps), { vni, port })
}
