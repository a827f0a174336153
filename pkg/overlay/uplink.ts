// The underlay: which link carries overlay traffic and this node's address on it. Default: the link of
// the IPv4 default route, and its first global address of each family; --public-ip and --public-ipv6
// override them (a node whose uplink has several addresses, or NAT).
import { FerryError } from '../errors/errors.js'
import type { Netlink } from '../netlink/netlink.js'

export interface Uplink {
  readonly index: number
  readonly name: string
  readonly mtu: number
  readonly publicIP: string
  readonly publicIPv6?: string
}

export async function findUplink (nl: Netlink, o: { iface?: string | undefined, publicIP?: string | undefined, publicIPv6?: string | undefined }): Promise<Uplink> {
  let name = o.iface
  if (name === undefined) {
    const def = (await nl.routes('IPv4')).find(r => r.dst === '0.0.0.0/0')
    const link = def === undefined ? undefined : (await nl.listLinks()).find(l => l.index === def.dev)
    if (link === undefined) throw new FerryError('FERRY_ERR_CONFIG', 'overlay: no IPv4 default route to find the uplink by: give --overlay-iface')
    name = link.name
  }
  const link = await nl.linkDetails(name)
  if (link === null) throw new FerryError('FERRY_ERR_CONFIG', `overlay: --overlay-iface ${name}: no such link`)
  const addrs = await nl.addresses(link.index)
  const v4 = addrs.find(a => a.family === 'IPv4')?.ip
  const v6 = addrs.find(a => a.family === 'IPv6' && !a.ip.toLowerCase().startsWith('fe80:'))?.ip
  const publicIP = o.publicIP ?? v4
  const publicIPv6 = o.publicIPv6 ?? v6
  if (publicIP === undefined) throw new FerryError('FERRY_ERR_CONFIG', `overlay: ${name} has no IPv4 address: give --public-ip`)
  return { index: link.index, name: link.name, mtu: link.mtu, publicIP, ...(publicIPv6 !== undefined ? { publicIPv6 } : {}) }
}
