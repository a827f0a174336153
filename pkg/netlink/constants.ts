// Numbers of netlink itself (linux/netlink.h) and of the generic-netlink controller (linux/genetlink.h).

// Netlink message types and flags (linux/netlink.h).
export const NLMSG_NOOP = 1
export const NLMSG_ERROR = 2
export const NLMSG_DONE = 3
export const NLMSG_OVERRUN = 4
export const NLM_F_REQUEST = 0x1
export const NLM_F_MULTI = 0x2
export const NLM_F_ACK = 0x4
export const NLM_F_DUMP = 0x300
// Flags of NEW requests.
export const NLM_F_REPLACE = 0x100
export const NLM_F_EXCL = 0x200
export const NLM_F_CREATE = 0x400
export const NLM_F_APPEND = 0x800
export const NLMSG_HDRLEN = 16
export const GENL_HDRLEN = 4
export const NLA_HDRLEN = 4
export const NLA_F_NESTED = 0x8000
/** The type bits of nla_type: nested and net-byte-order flags removed. */
export const NLA_TYPE_MASK = 0x3fff

// Address families (linux/socket.h).
export const AF_INET = 2
export const AF_INET6 = 10
export const AF_BRIDGE = 7

// The generic-netlink controller (linux/genetlink.h).
export const GENL_ID_CTRL = 0x10
export const CTRL_VERSION = 1
export const CTRL_CMD_NEWFAMILY = 1
export const CTRL_CMD_GETFAMILY = 3
export const CTRL_ATTR_FAMILY_ID = 1
export const CTRL_ATTR_FAMILY_NAME = 2
