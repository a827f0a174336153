// The dataplane ferryd uses when it serves ferry-cni's verbs: the host side (bridge, its addresses, the
// veth pair with the pod end created straight in CNI_NETNS through IFLA_NET_NS_FD, master, up, hairpin)
// and the veth deletion go over rtnetlink in ferryd's own process, from its own netns, with no process
// started. The pod side still needs a process inside the pod's netns (node has no setns), so it, CHECK's
// observation, masquerade and the reads stay IpDataplane's (extended, not wrapped: they are the same).
// Not for the node path (bin/ferry-cni without ferryd): loading pkg/netlink there costs more than the
// `ip` process it saves.
import { closeSync, openSync } from 'node:fs'
import type { Exec } from '../pkg/exec/exec.js'
import type { Links } from '../pkg/netlink/links.js'
import { errnoName } from '../pkg/netlink/socket.js'
import { parseIP } from '../pkg/net/ip.js'
import type { BridgeSpec, VethSpec } from './dataplane.js'
import { IpDataplane } from './dataplane-ip.js'
import { CniCode, CniError } from './errors.js'

export type HostLinks = Pick<Links, 'linkDetails' | 'createBridge' | 'setUp' | 'setMtu' | 'addresses' | 'addAddress' | 'deleteAddress' | 'createVeth' | 'setHairpin' | 'deleteLink'>

export interface NetlinkDataplaneOptions {
  /** The rtnetlink link operations, opened in the node's netns (ferryd's). */
  readonly links: HostLinks
  /** An fd of the netns file, for IFLA_NET_NS_FD; closed with closeNetns. Default: open(2) read-only (close-on-exec). */
  readonly openNetns?: (path: string) => number
  readonly closeNetns?: (fd: number) => void
  /** Runs the pod side's `nsenter … ip -batch -` and the iptables tools. */
  readonly exec?: Exec
}

/** ip/prefix in canonical text, so '10.0.0.1/24' matches what the kernel reports whatever the spelling. */
function canonical (cidr: string): string {
  const [ip = '', prefix = ''] = cidr.split('/')
  return `${parseIP(ip)?.ip ?? ip}/${prefix}`
}

/** Link-local addresses the kernel puts on a bridge itself: never stale. */
const linkLocal = (ip: string): boolean => /^fe[89ab][0-9a-f]:/i.test(ip) || ip.startsWith('169.254.')

export class NetlinkDataplane extends IpDataplane {
  private readonly links: HostLinks
  private readonly openNetns: (path: string) => number
  private readonly closeNetns: (fd: number) => void

  constructor (o: NetlinkDataplaneOptions) {
    super(o.exec)
    this.links = o.links
    this.openNetns = o.openNetns ?? (path => openSync(path, 'r'))
    this.closeNetns = o.closeNetns ?? closeSync
  }

  override async setupHost (bridge: BridgeSpec, veth: VethSpec): Promise<string> {
    const br = await this.ensureBridge(bridge)
    let fd: number
    try { fd = this.openNetns(veth.netns) } catch (e) {
      throw new CniError(CniCode.INVALID_NETNS, `network namespace ${veth.netns} cannot be opened`, e instanceof Error ? e.message : String(e))
    }
    try {
      await this.links.createVeth({
        name: veth.hostName,
        mtu: veth.mtu,
        mac: veth.hostMac,
        master: br.index,
        up: true,
        peer: { name: veth.podName, mtu: veth.mtu, mac: veth.podMac, netnsFd: fd },
      })
    } catch (e) {
      // The host end was looked up free just before (commands.ts): the name taken is the pod's.
      if (errnoName(e) === 'EEXIST') throw new CniError(CniCode.INTERFACE_EXISTS, `container veth name "${veth.podName}" already exists in ${veth.netns}`)
      throw e
    } finally {
      this.closeNetns(fd)
    }
    if (veth.hairpin) {
      try { await this.links.setHairpin(veth.hostName, true) } catch (e) {
        await this.links.deleteLink(veth.hostName).catch(() => {})
        throw e
      }
    }
    return br.mac
  }

  /** The bridge created, or reconciled: wanted addresses only (link-local aside), MTU, up. */
  private async ensureBridge (bridge: BridgeSpec): Promise<{ index: number, mac: string }> {
    const l = this.links
    // createBridge returns an existing bridge as it is, so a concurrent ADD creating it first is fine.
    const br = await l.linkDetails(bridge.name) ?? await l.createBridge({ name: bridge.name, mtu: bridge.mtu, mac: bridge.mac })
    if (br.kind !== 'bridge') throw new Error(`${bridge.name} exists and is not a bridge (${br.kind === '' ? 'no kind' : br.kind})`)
    const want = bridge.addresses.map(canonical)
    const have = await l.addresses(br.index)
    for (const a of have) {
      if (!linkLocal(a.ip) && !want.includes(`${a.ip}/${a.prefix}`)) await l.deleteAddress(br.index, a.ip, a.prefix)
    }
    for (const w of want) {
      if (have.some(a => `${a.ip}/${a.prefix}` === w)) continue
      const [ip = '', prefix = '0'] = w.split('/')
      await l.addAddress(br.index, ip, Number(prefix))
    }
    if (br.mtu !== bridge.mtu) await l.setMtu(br.index, bridge.mtu)
    if (!br.up) await l.setUp(br.index)
    return { index: br.index, mac: br.mac }
  }

  override async removeVeth (hostName: string): Promise<void> {
    await this.links.deleteLink(hostName)
  }
}
