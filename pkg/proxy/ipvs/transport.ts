// The IPVS kernel's socket: a NETLINK_GENERIC transport (pkg/netlink/transport.ts).
import { NETLINK_GENERIC } from '../../netlink/raw.js'
import { openRawTransport, type NetlinkTransport, type TransportOptions } from '../../netlink/transport.js'

export type { NetlinkTransport }
export type GenericNetlinkOptions = TransportOptions

/** A NETLINK_GENERIC socket, bound, unref'd. Messages are framed and parsed by netlink/wire.ts, not by the library. */
export function openGenericNetlink (options: GenericNetlinkOptions = {}): NetlinkTransport {
  return openRawTransport(NETLINK_GENERIC, 'generic netlink', options)
}
