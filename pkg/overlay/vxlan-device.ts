// The vxlan device itself: its spec from the underlay, whether an existing device is compatible, adopting
// or (re)creating it with the MAC the lease publishes, and its addresses. flannel compares vni, link,
// local and port (OVERLAY.md §2.2); ferry also wants learning off, and on a recreation keeps the MAC so the
// published VtepMAC stays true (§2.8).
import { FerryError, errorMessage } from '../errors/errors.js'
import type { Cidr } from '../net/cidr.js'
import { bigIntToIP } from '../net/cidr.js'
import { parseIP, type IPFamily } from '../net/ip.js'
import type { LinkDetails, Netlink } from '../netlink/netlink.js'

/** Outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8; an IPv6 outer header is 20 bytes longer. */
export const VXLAN_OVERHEAD: Record<IPFamily, number> = { IPv4: 50, IPv6: 70 }
const IFNAMSIZ = 15
const MIN_MTU = 68

export interface VtepSpec {
  readonly name: string
  /** The underlay family: which of the node's public IPs the outer packets carry. */
  readonly family: IPFamily
  readonly vni: number
  readonly port: number
  readonly local: string
  readonly link: number
  readonly mtu: number
}

export function vtepName (vni: number, family: IPFamily): string {
  return family === 'IPv4' ? `ferry.${vni}` : `ferry-v6.${vni}`
}

export function vtepSpec (family: IPFamily, local: string, vni: number, port: number, uplink: { index: number, name: string, mtu: number }): VtepSpec {
  const name = vtepName(vni, family)
  if (name.length > IFNAMSIZ) throw new FerryError('FERRY_ERR_CONFIG', `overlay: device name ${name} is longer than ${IFNAMSIZ} characters; use a smaller VNI`, { vni })
  const mtu = uplink.mtu - VXLAN_OVERHEAD[family]
  if (mtu < MIN_MTU) throw new FerryError('FERRY_ERR_CONFIG', `overlay: uplink ${uplink.name} MTU ${uplink.mtu} leaves ${mtu} for ${name}, below ${MIN_MTU}`, { uplink: uplink.name, mtu: uplink.mtu })
  return { name, family, vni, port, local, link: uplink.index, mtu }
}

/** Same vni/port/local/link (and learning off): a device ferry may keep as it is. */
export function compatible (d: LinkDetails, spec: VtepSpec): boolean {
  const v = d.vxlan
  if (d.kind !== 'vxlan' || v === undefined) return false
  const local = v.local === null ? null : parseIP(v.local)?.ip ?? v.local
  return v.vni === spec.vni && v.port === spec.port && local === spec.local && v.link === spec.link && !v.learning
}

/** The address configure puts on the device for one local subnet: its network address as a host route. */
export function vtepAddress (subnet: Cidr): { ip: string, prefix: number } {
  return { ip: bigIntToIP(subnet.base, subnet.family), prefix: subnet.family === 'IPv4' ? 32 : 128 }
}

/** Creates the device with `mac` (kernel's random one when undefined); names the device holding the VNI on EEXIST. */
export async function createVtep (nl: Netlink, spec: VtepSpec, mac: string | undefined): Promise<LinkDetails> {
  try {
    return await nl.createVxlan({ name: spec.name, vni: spec.vni, port: spec.port, local: spec.local, link: spec.link, learning: false, mtu: spec.mtu, ...(mac !== undefined ? { mac } : {}) })
  } catch (e) {
    const errno = e instanceof FerryError ? e.details.errno : undefined
    if (errno !== 'EEXIST') throw e
    const holder = (await nl.listLinks()).find(l => l.vxlan?.vni === spec.vni && l.vxlan.port === spec.port && l.name !== spec.name)
    throw new FerryError('FERRY_ERR_CONFIG', `overlay: cannot create ${spec.name}: VNI ${spec.vni} port ${spec.port} is in use${holder !== undefined ? ` by ${holder.name}` : ''} (${errorMessage(e)})`, { device: spec.name, holder: holder?.name }, { cause: e })
  }
}

export interface Ensured {
  readonly link: LinkDetails
  /** An existing compatible device was kept (its kernel entries may be ours from a previous run). */
  readonly adopted: boolean
  /** The device had to be (re)created: whatever was on it is gone. */
  readonly created: boolean
}

/**
 * Keeps a compatible device (fixing its MTU), else deletes and creates it. `mac`, once chosen, is required
 * of a kept device too; undefined lets the first call adopt the existing device's MAC (or the kernel pick).
 */
export async function ensureVtep (nl: Netlink, spec: VtepSpec, mac: string | undefined): Promise<Ensured> {
  const d = await nl.linkDetails(spec.name)
  if (d !== null && compatible(d, spec) && (mac === undefined || d.mac === mac)) {
    if (d.mtu !== spec.mtu) await nl.setMtu(d.index, spec.mtu)
    return { link: { ...d, mtu: spec.mtu }, adopted: true, created: false }
  }
  // An incompatible vxlan device of ours (an earlier VNI/port/IP) published its MAC: keep it.
  const keep = mac ?? (d?.kind === 'vxlan' && d.mac !== '' ? d.mac : undefined)
  if (d !== null) await nl.deleteLink(spec.name)
  return { link: await createVtep(nl, spec, keep), adopted: false, created: true }
}

/**
 * Puts the local subnets' addresses of the device's family on it; with `prune`, removes the device's other
 * addresses of those families (an older subnet), IPv6 link-local ones excepted. Returns what it added.
 */
export async function ensureAddresses (nl: Netlink, index: number, subnets: readonly Cidr[], prune: boolean): Promise<string[]> {
  const want = subnets.map(vtepAddress)
  const have = await nl.addresses(index)
  const added: string[] = []
  for (const w of want) {
    if (have.some(a => a.ip === w.ip && a.prefix === w.prefix)) continue
    await nl.addAddress(index, w.ip, w.prefix)
    added.push(`${w.ip}/${w.prefix}`)
  }
  if (prune) {
    const families = new Set(subnets.map(s => s.family))
    for (const a of have) {
      if (!families.has(a.family) || /^fe[89ab]/i.test(a.ip) || want.some(w => w.ip === a.ip && w.prefix === a.prefix)) continue
      await nl.deleteAddress(index, a.ip, a.prefix)
    }
  }
  return added
}
