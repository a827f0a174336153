// The IPVS table as the reconciler sees it, and the kernel seam it talks to. kernel.ts speaks generic
// netlink to the real thing; fake-kernel.ts keeps the same semantics in memory for tests.
import type { IPFamily } from '../../net/ip.js'

export type { IPFamily }
export type IPVSProtocol = 'TCP' | 'UDP' | 'SCTP'
export type ForwardMethod = 'masq' | 'local' | 'tunnel' | 'route' | 'bypass'

/** What identifies a virtual server (fwmark services are not modelled: ferry neither makes nor touches them). */
export interface VirtualServerKey { family: IPFamily, protocol: IPVSProtocol, address: string, port: number }

export interface VirtualServer extends VirtualServerKey {
  /** 'rr' | 'wrr' | 'lc' | 'wlc' | 'sh' | 'mh' ..., or 'none'. */
  scheduler: string
  /** IP_VS_SVC_F_* without HASHED (0x2 is masked out on decode and never sent). */
  flags: number
  /** Persistence seconds (0 = none). */
  timeout: number
  /** Prefix length: 32 for v4, 128 for v6. */
  netmask: number
}

/** What identifies a real server within its virtual server. */
export interface RealServerKey { address: string, port: number }

export interface RealServer extends RealServerKey {
  weight: number
  forward: ForwardMethod
  upperThreshold: number
  lowerThreshold: number
  /** Output only; 0 when sending. */
  activeConns: number
  inactiveConns: number
  persistConns: number
}

export type IpvsOp =
  | { op: 'addService' | 'updateService', service: VirtualServer }
  | { op: 'deleteService', service: VirtualServerKey }
  | { op: 'addDestination' | 'updateDestination', service: VirtualServerKey, destination: RealServer }
  | { op: 'deleteDestination', service: VirtualServerKey, destination: RealServerKey }

/** 0 = ok; else a positive errno (EEXIST 17, ESRCH 3, ENOENT 2, EINVAL 22, ERANGE 34, EPERM 1 ...). */
export interface IpvsOpResult { op: IpvsOp, errno: number }

export interface IpvsInfo { version: string, connTableSize: number }

export interface IpvsKernel {
  /** Every non-fwmark virtual server of this network namespace, in the kernel's (hash) order. */
  listServices (): Promise<VirtualServer[]>
  /** The real servers of one virtual server; an empty list when it does not exist (as the kernel answers). */
  listDestinations (service: VirtualServerKey): Promise<RealServer[]>
  /** Sends every op pipelined on one socket (all sent, then acks matched by sequence number); never throws for per-op kernel errors. */
  apply (ops: readonly IpvsOp[]): Promise<IpvsOpResult[]>
  /** Deletes every virtual server of this network namespace (ipvsadm -C). */
  flush (): Promise<void>
  info (): Promise<IpvsInfo>
  close (): void
}
