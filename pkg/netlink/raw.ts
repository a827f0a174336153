// The `netlink` package's raw socket, loaded on its own. The package's index also loads its rtnetlink,
// generic-netlink, nl80211 and WireGuard layers: 80-140 ms of CPU at start-up, measured here, where the
// raw socket alone takes 13-16 ms. The IPVS and nftables modes speak their own messages over it.
import raw from 'netlink/dist/raw.js'

export const RawNetlinkSocket = raw.RawNetlinkSocket
export type RawNetlinkSocket = InstanceType<typeof raw.RawNetlinkSocket>
/** NETLINK_ROUTE, NETLINK_GENERIC and NETLINK_NETFILTER (linux/netlink.h). */
export const NETLINK_ROUTE = 0
export const NETLINK_GENERIC = 16
export const NETLINK_NETFILTER = 12
