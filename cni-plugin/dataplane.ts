// Every kernel touch of ferry-cni, behind one interface: the real one (dataplane-ip.ts) drives iproute2
// and iptables, ferryd's (dataplane-netlink.ts) does the host side over rtnetlink instead, the fake
// (dataplane-fake.ts) keeps state in memory so ADD/DEL/CHECK/GC logic is tested without root.
import type { Allocation } from '../pkg/ipam/types.js'

export interface BridgeSpec {
  readonly name: string
  readonly mtu: number
  /** MAC pinned when the bridge is created, so it does not follow its ports. */
  readonly mac: string
  /** gateway/prefix per family; other global addresses on the bridge are removed (a stale subnet). */
  readonly addresses: readonly string[]
}

export interface VethSpec {
  readonly hostName: string
  readonly hostMac: string
  /** CNI_IFNAME, created directly inside netns. */
  readonly podName: string
  readonly podMac: string
  readonly netns: string
  readonly mtu: number
  readonly hairpin: boolean
}

export interface PodSpec {
  readonly netns: string
  readonly ifname: string
  readonly addresses: readonly Allocation[]
}

export interface MasqSpec {
  readonly network: string
  readonly chain: string
  /** Pod IPs and, per family, the cluster network that is not masqueraded. */
  readonly sources: readonly Allocation[]
  readonly clusterNetworks: readonly string[]
}

export interface ObservedPod {
  readonly mac: string
  readonly mtu: number
  readonly up: boolean
  /** ip/prefix, global scope only. */
  readonly addresses: readonly string[]
  readonly routes: ReadonlyArray<{ readonly dst: string, readonly gw?: string }>
}

export interface Observed {
  /** The bridge the host veth is attached to; null when the host veth is missing, '' when detached. */
  readonly hostMaster: string | null
  readonly pod: ObservedPod | null
}

export interface Dataplane {
  /** Throws CniError 8 when netns is missing or is the plugin's own. */
  checkNetns (netns: string): Promise<void>
  linkExists (name: string): Promise<boolean>
  /** Bridge (created or reconciled) and the veth pair; throws CniError 101 if the pod interface exists. Returns the bridge MAC. */
  setupHost (bridge: BridgeSpec, veth: VethSpec): Promise<string>
  /** Pod side: addresses, link up, default routes via the gateways. */
  setupPod (pod: PodSpec): Promise<void>
  enableForwarding (families: ReadonlyArray<'IPv4' | 'IPv6'>): Promise<void>
  /** Deletes the host end (and so the pod end); no error when it is gone. */
  removeVeth (hostName: string): Promise<void>
  masquerade (spec: MasqSpec): Promise<void>
  /** Removes the chain and its POSTROUTING jumps; no error when they are gone. */
  unmasquerade (chain: string): Promise<void>
  observe (netns: string, ifname: string, hostName: string): Promise<Observed>
  bridgePorts (bridge: string): Promise<string[]>
  /** Chains masquerade() made for this network. */
  masqChains (network: string): Promise<string[]>
}
