// Numbers of the kernel's IPVS generic-netlink API (include/uapi/linux/ip_vs.h); netlink's own are re-exported.
import type { ForwardMethod, IPFamily, IPVSProtocol } from './types.js'

export const IPVS_GENL_NAME = 'IPVS'
export const IPVS_GENL_VERSION = 1

// Netlink's own numbers, shared with every netlink user in ferry.
export * from '../../netlink/constants.js'

// Commands (enum ipvs_cmd).
export const IPVS_CMD_NEW_SERVICE = 1
export const IPVS_CMD_SET_SERVICE = 2
export const IPVS_CMD_DEL_SERVICE = 3
export const IPVS_CMD_GET_SERVICE = 4
export const IPVS_CMD_NEW_DEST = 5
export const IPVS_CMD_SET_DEST = 6
export const IPVS_CMD_DEL_DEST = 7
export const IPVS_CMD_GET_DEST = 8
export const IPVS_CMD_SET_INFO = 14
export const IPVS_CMD_GET_INFO = 15
export const IPVS_CMD_ZERO = 16
export const IPVS_CMD_FLUSH = 17

// Top-level attributes (IPVS_CMD_ATTR_*).
export const IPVS_CMD_ATTR_SERVICE = 1
export const IPVS_CMD_ATTR_DEST = 2

// Inside IPVS_CMD_ATTR_SERVICE (IPVS_SVC_ATTR_*).
export const IPVS_SVC_ATTR_AF = 1
export const IPVS_SVC_ATTR_PROTOCOL = 2
export const IPVS_SVC_ATTR_ADDR = 3
export const IPVS_SVC_ATTR_PORT = 4
export const IPVS_SVC_ATTR_FWMARK = 5
export const IPVS_SVC_ATTR_SCHED_NAME = 6
export const IPVS_SVC_ATTR_FLAGS = 7
export const IPVS_SVC_ATTR_TIMEOUT = 8
export const IPVS_SVC_ATTR_NETMASK = 9
export const IPVS_SVC_ATTR_STATS = 10
export const IPVS_SVC_ATTR_PE_NAME = 11
export const IPVS_SVC_ATTR_STATS64 = 12

// Inside IPVS_CMD_ATTR_DEST (IPVS_DEST_ATTR_*).
export const IPVS_DEST_ATTR_ADDR = 1
export const IPVS_DEST_ATTR_PORT = 2
export const IPVS_DEST_ATTR_FWD_METHOD = 3
export const IPVS_DEST_ATTR_WEIGHT = 4
export const IPVS_DEST_ATTR_U_THRESH = 5
export const IPVS_DEST_ATTR_L_THRESH = 6
export const IPVS_DEST_ATTR_ACTIVE_CONNS = 7
export const IPVS_DEST_ATTR_INACT_CONNS = 8
export const IPVS_DEST_ATTR_PERSIST_CONNS = 9
export const IPVS_DEST_ATTR_STATS = 10
export const IPVS_DEST_ATTR_ADDR_FAMILY = 11
export const IPVS_DEST_ATTR_STATS64 = 12

// GET_INFO reply (IPVS_INFO_ATTR_*).
export const IPVS_INFO_ATTR_VERSION = 1
export const IPVS_INFO_ATTR_CONN_TAB_SIZE = 2

// Service flags (IP_VS_SVC_F_*).
export const IP_VS_SVC_F_PERSISTENT = 0x1
export const IP_VS_SVC_F_HASHED = 0x2
export const IP_VS_SVC_F_ONEPACKET = 0x4
/** sh: fall back to another server; mh: fall back (SCHED1). */
export const IP_VS_SVC_F_SCHED1 = 0x8
/** sh/mh: hash the source port too (SCHED2); kube-proxy sets it for mh. */
export const IP_VS_SVC_F_SCHED2 = 0x10
export const IP_VS_SVC_F_SCHED3 = 0x20

/** IP_VS_SCHEDNAME_MAXLEN is 16 with the NUL. */
export const SCHED_NAME_MAX = 15
/** Forwarding method bits of a dest's conn_flags. */
export const IP_VS_CONN_F_FWD_MASK = 0x7

export const AF_INET = 2
export const AF_INET6 = 10
export const AF_OF: Readonly<Record<IPFamily, number>> = { IPv4: AF_INET, IPv6: AF_INET6 }
export const FAMILY_OF_AF: ReadonlyMap<number, IPFamily> = new Map([[AF_INET, 'IPv4'], [AF_INET6, 'IPv6']])

export const IPPROTO_OF: Readonly<Record<IPVSProtocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 }
export const PROTOCOL_OF_IPPROTO: ReadonlyMap<number, IPVSProtocol> = new Map([[6, 'TCP'], [17, 'UDP'], [132, 'SCTP']])

/** IP_VS_CONN_F_MASQ 0, LOCALNODE 1, TUNNEL 2, DROUTE 3, BYPASS 4. */
export const FWD_OF: Readonly<Record<ForwardMethod, number>> = { masq: 0, local: 1, tunnel: 2, route: 3, bypass: 4 }
export const FORWARD_OF_FWD: ReadonlyMap<number, ForwardMethod> = new Map([[0, 'masq'], [1, 'local'], [2, 'tunnel'], [3, 'route'], [4, 'bypass']])

// The errnos the IPVS API answers with (Linux numbering).
export const EPERM = 1
export const ENOENT = 2
export const ESRCH = 3
export const EEXIST = 17
export const EINVAL = 22
export const ERANGE = 34
export const EAFNOSUPPORT = 97
