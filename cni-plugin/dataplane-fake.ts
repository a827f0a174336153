// A stateful in-memory Dataplane for unit tests: links per namespace, bridge ports, masquerade chains.
// `failOn` makes one operation throw, to test the undo paths.
import type { BridgeSpec, Dataplane, MasqSpec, Observed, PodSpec, VethSpec } from './dataplane.js'
import { CniCode, CniError } from './errors.js'

export interface FakeLink {
  mac: string
  mtu: number
  up: boolean
  master: string
  hairpin: boolean
  addresses: string[]
  routes: Array<{ dst: string, gw?: string }>
  /** The other end of a veth: [namespace, name]. */
  peer?: [string, string]
}

export type FakeOp = 'setupHost' | 'setupPod' | 'enableForwarding' | 'removeVeth' | 'masquerade' | 'unmasquerade'

export class FakeDataplane implements Dataplane {
  /** Namespace ('' = host) → link name → link. */
  readonly ns = new Map<string, Map<string, FakeLink>>([['', new Map()]])
  readonly chains = new Map<string, MasqSpec>()
  readonly forwarding = new Set<string>()
  readonly calls: FakeOp[] = []
  failOn: FakeOp | null = null

  addNetns (path: string): void { this.ns.set(path, new Map()) }
  deleteNetns (path: string): void {
    for (const l of this.ns.get(path)?.values() ?? []) if (l.peer !== undefined) this.ns.get(l.peer[0])?.delete(l.peer[1])
    this.ns.delete(path)
  }

  link (ns: string, name: string): FakeLink | undefined { return this.ns.get(ns)?.get(name) }
  private get host (): Map<string, FakeLink> { return this.ns.get('') ?? new Map() }

  private step (op: FakeOp): void {
    this.calls.push(op)
    if (this.failOn === op) { this.failOn = null; throw new Error(`fake ${op} failed`) }
  }

  async checkNetns (netns: string): Promise<void> {
    if (!this.ns.has(netns) || netns === '') throw new CniError(CniCode.INVALID_NETNS, `network namespace ${netns} does not exist`)
  }

  async linkExists (name: string): Promise<boolean> { return this.host.has(name) }

  async setupHost (bridge: BridgeSpec, veth: VethSpec): Promise<string> {
    this.step('setupHost')
    const pod = this.ns.get(veth.netns)
    if (pod === undefined) throw new Error(`no netns ${veth.netns}`)
    let br = this.host.get(bridge.name)
    if (br === undefined) {
      br = { mac: bridge.mac, mtu: bridge.mtu, up: true, master: '', hairpin: false, addresses: [], routes: [] }
      this.host.set(bridge.name, br)
    }
    br.addresses = br.addresses.filter(a => bridge.addresses.includes(a))
    for (const a of bridge.addresses) if (!br.addresses.includes(a)) br.addresses.push(a)
    br.mtu = bridge.mtu
    if (pod.has(veth.podName)) throw new CniError(CniCode.INTERFACE_EXISTS, `container veth name "${veth.podName}" already exists`)
    this.host.set(veth.hostName, { mac: veth.hostMac, mtu: veth.mtu, up: true, master: bridge.name, hairpin: veth.hairpin, addresses: [], routes: [], peer: [veth.netns, veth.podName] })
    pod.set(veth.podName, { mac: veth.podMac, mtu: veth.mtu, up: false, master: '', hairpin: false, addresses: [], routes: [], peer: ['', veth.hostName] })
    return br.mac
  }

  async setupPod (pod: PodSpec): Promise<void> {
    this.step('setupPod')
    const l = this.link(pod.netns, pod.ifname)
    if (l === undefined) throw new Error(`no ${pod.ifname} in ${pod.netns}`)
    for (const a of pod.addresses) {
      l.addresses.push(`${a.ip}/${a.prefix}`)
      l.routes.push({ dst: a.family === 'IPv4' ? '0.0.0.0/0' : '::/0', gw: a.gateway })
    }
    l.up = true
  }

  async enableForwarding (families: ReadonlyArray<'IPv4' | 'IPv6'>): Promise<void> {
    this.step('enableForwarding')
    for (const f of families) this.forwarding.add(f)
  }

  async removeVeth (hostName: string): Promise<void> {
    this.step('removeVeth')
    const l = this.host.get(hostName)
    if (l === undefined) return
    if (l.peer !== undefined) this.ns.get(l.peer[0])?.delete(l.peer[1])
    this.host.delete(hostName)
  }

  async masquerade (spec: MasqSpec): Promise<void> {
    this.step('masquerade')
    this.chains.set(spec.chain, spec)
  }

  async unmasquerade (chain: string): Promise<void> {
    this.step('unmasquerade')
    this.chains.delete(chain)
  }

  async observe (netns: string, ifname: string, hostName: string): Promise<Observed> {
    const h = this.host.get(hostName)
    const p = this.link(netns, ifname)
    return {
      hostMaster: h === undefined ? null : h.master,
      pod: p === undefined ? null : { mac: p.mac, mtu: p.mtu, up: p.up, addresses: [...p.addresses], routes: [...p.routes] },
    }
  }

  async bridgePorts (bridge: string): Promise<string[]> {
    return [...this.host.entries()].filter(([, l]) => l.master === bridge).map(([n]) => n)
  }

  async masqChains (network: string): Promise<string[]> {
    return [...this.chains.values()].filter(c => c.network === network).map(c => c.chain)
  }
}
