// IPVS generic-netlink messages: encode a request payload (genlmsghdr + attributes) per op, the dump,
// info and flush requests, and decode the service / dest attribute sets of replies. Pure; the layout
// is IPVS.md §4 (ports and v4 netmasks in network order, everything else host order).
import { FerryError } from '../../errors/errors.js'
import { addressBytes, addressFamily, formatAddress } from './address.js'
import {
  AF_OF, FAMILY_OF_AF, FORWARD_OF_FWD, FWD_OF, IP_VS_CONN_F_FWD_MASK, IP_VS_SVC_F_HASHED, IPPROTO_OF, IPVS_CMD_ATTR_DEST,
  IPVS_CMD_ATTR_SERVICE, IPVS_CMD_DEL_DEST, IPVS_CMD_DEL_SERVICE, IPVS_CMD_FLUSH, IPVS_CMD_GET_DEST, IPVS_CMD_GET_INFO,
  IPVS_CMD_GET_SERVICE, IPVS_CMD_NEW_DEST, IPVS_CMD_NEW_SERVICE, IPVS_CMD_SET_DEST, IPVS_CMD_SET_SERVICE,
  IPVS_DEST_ATTR_ACTIVE_CONNS, IPVS_DEST_ATTR_ADDR, IPVS_DEST_ATTR_ADDR_FAMILY, IPVS_DEST_ATTR_FWD_METHOD,
  IPVS_DEST_ATTR_INACT_CONNS, IPVS_DEST_ATTR_L_THRESH, IPVS_DEST_ATTR_PERSIST_CONNS, IPVS_DEST_ATTR_PORT,
  IPVS_DEST_ATTR_U_THRESH, IPVS_DEST_ATTR_WEIGHT, IPVS_GENL_VERSION, IPVS_INFO_ATTR_CONN_TAB_SIZE, IPVS_INFO_ATTR_VERSION,
  IPVS_SVC_ATTR_ADDR, IPVS_SVC_ATTR_AF, IPVS_SVC_ATTR_FLAGS, IPVS_SVC_ATTR_FWMARK, IPVS_SVC_ATTR_NETMASK,
  IPVS_SVC_ATTR_PORT, IPVS_SVC_ATTR_PROTOCOL, IPVS_SVC_ATTR_SCHED_NAME, IPVS_SVC_ATTR_TIMEOUT, PROTOCOL_OF_IPPROTO,
  SCHED_NAME_MAX,
} from './constants.js'
import type { IPFamily, IpvsInfo, IpvsOp, RealServer, RealServerKey, VirtualServer, VirtualServerKey } from './types.js'
import { AttrWriter, attrBE16, attrString, attrU16, attrU32, genlHeader, hostU32s, malformed, need, parseAttrs, parseGenl, readU32 } from '../../netlink/wire.js'

const U32_MAX = 0xffffffff

/** The command an op is sent as. */
export const OP_COMMAND: Readonly<Record<IpvsOp['op'], number>> = {
  addService: IPVS_CMD_NEW_SERVICE,
  updateService: IPVS_CMD_SET_SERVICE,
  deleteService: IPVS_CMD_DEL_SERVICE,
  addDestination: IPVS_CMD_NEW_DEST,
  updateDestination: IPVS_CMD_SET_DEST,
  deleteDestination: IPVS_CMD_DEL_DEST,
}

// ---- Validation: what cannot even be encoded (the kernel would answer EINVAL for the same input) ----

/** Why `op` cannot be sent as given, or null. */
export function checkOp (op: IpvsOp): string | null {
  const key = checkServiceKey(op.service)
  if (key !== null) return key
  switch (op.op) {
    case 'addService':
    case 'updateService': return checkServiceFull(op.service)
    case 'deleteService': return null
    case 'addDestination':
    case 'updateDestination': return checkDestKey(op.destination) ?? checkDestFull(op.destination)
    case 'deleteDestination': return checkDestKey(op.destination)
  }
}

export function checkServiceKey (s: VirtualServerKey): string | null {
  if (!(s.family in AF_OF)) return `family ${String(s.family)} is neither IPv4 nor IPv6`
  if (!(s.protocol in IPPROTO_OF)) return `protocol ${String(s.protocol)} is not TCP, UDP or SCTP`
  if (addressBytes(s.family, s.address) === null) return `${s.address} is not an ${s.family} address`
  return isInt(s.port, 0, 0xffff) ? null : `port ${s.port} is out of range`
}

function checkServiceFull (s: VirtualServer): string | null {
  if (typeof s.scheduler !== 'string' || Buffer.byteLength(s.scheduler) > SCHED_NAME_MAX || s.scheduler.includes('\0')) {
    return `scheduler name ${JSON.stringify(s.scheduler)} is longer than ${SCHED_NAME_MAX} bytes`
  }
  if (!isInt(s.flags, 0, U32_MAX)) return `flags ${s.flags} are not a u32`
  if (!isInt(s.timeout, 0, U32_MAX)) return `timeout ${s.timeout} is not a u32`
  if (!isInt(s.netmask, 0, s.family === 'IPv4' ? 32 : U32_MAX)) return `netmask ${s.netmask} is out of range`
  return null
}

function checkDestKey (d: RealServerKey): string | null {
  if (addressFamily(d.address) === null) return `${d.address} is not an address`
  return isInt(d.port, 0, 0xffff) ? null : `port ${d.port} is out of range`
}

function checkDestFull (d: RealServer): string | null {
  // A negative weight still encodes (as the kernel's int); the kernel answers ERANGE.
  if (!isInt(d.weight, -0x80000000, U32_MAX)) return `weight ${d.weight} is not a 32-bit integer`
  if (!(d.forward in FWD_OF)) return `forward method ${String(d.forward)} is unknown`
  if (!isInt(d.upperThreshold, 0, U32_MAX) || !isInt(d.lowerThreshold, 0, U32_MAX)) return 'thresholds are not u32'
  return null
}

function isInt (v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
}

// ---- Encoding ----

/** The payload (genlmsghdr + attributes) of one op; throws FERRY_ERR_INVALID_OBJECT when checkOp objects. */
export function encodeOp (op: IpvsOp): Buffer {
  const problem = checkOp(op)
  if (problem !== null) {
    throw new FerryError('FERRY_ERR_INVALID_OBJECT', `IPVS ${op.op} ${describeKey(op.service)}: ${problem}`, { op: op.op })
  }
  const w = new AttrWriter(op.op === 'addService' || op.op === 'updateService' ? 96 : 128)
  w.raw(genlHeader(OP_COMMAND[op.op], IPVS_GENL_VERSION))
  const svc = w.nest(IPVS_CMD_ATTR_SERVICE)
  writeServiceKey(w, op.service)
  if (op.op === 'addService' || op.op === 'updateService') writeServiceRest(w, op.service)
  w.end(svc)
  if (op.op === 'addDestination' || op.op === 'updateDestination' || op.op === 'deleteDestination') {
    const dest = w.nest(IPVS_CMD_ATTR_DEST)
    const family = addressFamily(op.destination.address) ?? op.service.family
    w.bytes(IPVS_DEST_ATTR_ADDR, addressBytes(family, op.destination.address) ?? Buffer.alloc(0))
    w.be16(IPVS_DEST_ATTR_PORT, op.destination.port)
    if (op.op !== 'deleteDestination') {
      const d = op.destination as RealServer
      w.u32(IPVS_DEST_ATTR_FWD_METHOD, FWD_OF[d.forward])
      w.u32(IPVS_DEST_ATTR_WEIGHT, d.weight >>> 0)
      w.u32(IPVS_DEST_ATTR_U_THRESH, d.upperThreshold)
      w.u32(IPVS_DEST_ATTR_L_THRESH, d.lowerThreshold)
    }
    w.u16(IPVS_DEST_ATTR_ADDR_FAMILY, AF_OF[family])
    w.end(dest)
  }
  return w.finish()
}

/** AF, PROTOCOL, ADDR (4 bytes for v4, as the kernel accepts), PORT (network order). */
function writeServiceKey (w: AttrWriter, s: VirtualServerKey): void {
  w.u16(IPVS_SVC_ATTR_AF, AF_OF[s.family])
  w.u16(IPVS_SVC_ATTR_PROTOCOL, IPPROTO_OF[s.protocol])
  w.bytes(IPVS_SVC_ATTR_ADDR, addressBytes(s.family, s.address) ?? Buffer.alloc(0))
  w.be16(IPVS_SVC_ATTR_PORT, s.port)
}

/** SCHED_NAME, FLAGS {flags, mask ~0: replace them all}, TIMEOUT, NETMASK (per family). */
function writeServiceRest (w: AttrWriter, s: VirtualServer): void {
  w.string(IPVS_SVC_ATTR_SCHED_NAME, s.scheduler)
  w.bytes(IPVS_SVC_ATTR_FLAGS, hostU32s((s.flags & ~IP_VS_SVC_F_HASHED) >>> 0, U32_MAX))
  w.u32(IPVS_SVC_ATTR_TIMEOUT, s.timeout)
  if (s.family === 'IPv4') w.be32(IPVS_SVC_ATTR_NETMASK, prefixToMask(s.netmask))
  else w.u32(IPVS_SVC_ATTR_NETMASK, s.netmask) // the kernel reads the v6 prefix length as a host u32
}

export function prefixToMask (prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
}

/** Leading one bits of a v4 mask (a non-contiguous mask counts up to its first zero). */
export function maskToPrefix (mask: number): number {
  let n = 0
  while (n < 32 && ((mask >>> (31 - n)) & 1) === 1) n++
  return n
}

/** GET_SERVICE as a dump (flags NLM_F_DUMP): every service of the namespace. */
export function encodeServiceDump (): Buffer {
  return genlHeader(IPVS_CMD_GET_SERVICE, IPVS_GENL_VERSION)
}

/** GET_DEST as a dump: the dests of one service, named by its identifying attributes. */
export function encodeDestinationDump (service: VirtualServerKey): Buffer {
  const problem = checkServiceKey(service)
  if (problem !== null) throw new FerryError('FERRY_ERR_INVALID_OBJECT', `IPVS destination dump ${describeKey(service)}: ${problem}`)
  const w = new AttrWriter(48).raw(genlHeader(IPVS_CMD_GET_DEST, IPVS_GENL_VERSION))
  const svc = w.nest(IPVS_CMD_ATTR_SERVICE)
  writeServiceKey(w, service)
  return w.end(svc).finish()
}

export function encodeGetInfo (): Buffer { return genlHeader(IPVS_CMD_GET_INFO, IPVS_GENL_VERSION) }
export function encodeFlush (): Buffer { return genlHeader(IPVS_CMD_FLUSH, IPVS_GENL_VERSION) }

// ---- Decoding ----

/** A service from a NEW_SERVICE reply payload; null for fwmark services and families/protocols ferry does not model. */
export function decodeServiceMessage (payload: Buffer): VirtualServer | null {
  const nest = need(parseGenl(payload).attrs, IPVS_CMD_ATTR_SERVICE, 'IPVS_CMD_ATTR_SERVICE', 0)
  return decodeService(parseAttrs(nest))
}

export function decodeService (a: Map<number, Buffer>): VirtualServer | null {
  const family = FAMILY_OF_AF.get(attrU16(a, IPVS_SVC_ATTR_AF, 'service AF'))
  if (family === undefined || a.has(IPVS_SVC_ATTR_FWMARK)) return null
  const protocol = PROTOCOL_OF_IPPROTO.get(attrU16(a, IPVS_SVC_ATTR_PROTOCOL, 'service PROTOCOL'))
  if (protocol === undefined) return null
  const address = formatAddress(family, need(a, IPVS_SVC_ATTR_ADDR, 'service ADDR', family === 'IPv4' ? 4 : 16))
  if (address === null) throw malformed('service ADDR')
  const flags = need(a, IPVS_SVC_ATTR_FLAGS, 'service FLAGS', 8)
  const mask = need(a, IPVS_SVC_ATTR_NETMASK, 'service NETMASK', 4)
  return {
    family,
    protocol,
    address,
    port: attrBE16(a, IPVS_SVC_ATTR_PORT, 'service PORT'),
    scheduler: attrString(a, IPVS_SVC_ATTR_SCHED_NAME, 'service SCHED_NAME'),
    // Replies carry {flags | HASHED, mask ~0}; HASHED is the kernel's own bookkeeping.
    flags: (readU32(flags, 0) & ~IP_VS_SVC_F_HASHED) >>> 0,
    timeout: attrU32(a, IPVS_SVC_ATTR_TIMEOUT, 'service TIMEOUT'),
    netmask: family === 'IPv4' ? maskToPrefix(mask.readUInt32BE(0)) : readU32(mask, 0),
  }
}

/** A dest from a NEW_DEST reply payload; `serviceFamily` stands in for a missing ADDR_FAMILY (kernels before 3.18). */
export function decodeDestinationMessage (payload: Buffer, serviceFamily: IPFamily): RealServer | null {
  const nest = need(parseGenl(payload).attrs, IPVS_CMD_ATTR_DEST, 'IPVS_CMD_ATTR_DEST', 0)
  return decodeDestination(parseAttrs(nest), serviceFamily)
}

export function decodeDestination (a: Map<number, Buffer>, serviceFamily: IPFamily): RealServer | null {
  const family = a.has(IPVS_DEST_ATTR_ADDR_FAMILY) ? FAMILY_OF_AF.get(attrU16(a, IPVS_DEST_ATTR_ADDR_FAMILY, 'dest ADDR_FAMILY')) : serviceFamily
  if (family === undefined) return null
  const address = formatAddress(family, need(a, IPVS_DEST_ATTR_ADDR, 'dest ADDR', family === 'IPv4' ? 4 : 16))
  if (address === null) throw malformed('dest ADDR')
  const fwd = attrU32(a, IPVS_DEST_ATTR_FWD_METHOD, 'dest FWD_METHOD') & IP_VS_CONN_F_FWD_MASK
  const forward = FORWARD_OF_FWD.get(fwd)
  if (forward === undefined) throw malformed(`dest FWD_METHOD ${fwd}`)
  const optional = (type: number, what: string): number => a.has(type) ? attrU32(a, type, what) : 0
  return {
    address,
    port: attrBE16(a, IPVS_DEST_ATTR_PORT, 'dest PORT'),
    weight: attrU32(a, IPVS_DEST_ATTR_WEIGHT, 'dest WEIGHT') | 0, // the kernel's int
    forward,
    upperThreshold: attrU32(a, IPVS_DEST_ATTR_U_THRESH, 'dest U_THRESH'),
    lowerThreshold: attrU32(a, IPVS_DEST_ATTR_L_THRESH, 'dest L_THRESH'),
    activeConns: optional(IPVS_DEST_ATTR_ACTIVE_CONNS, 'dest ACTIVE_CONNS'),
    inactiveConns: optional(IPVS_DEST_ATTR_INACT_CONNS, 'dest INACT_CONNS'),
    persistConns: optional(IPVS_DEST_ATTR_PERSIST_CONNS, 'dest PERSIST_CONNS'),
  }
}

/** The SET_INFO reply to GET_INFO: IP_VS_VERSION_CODE (0x010201 → "1.2.1") and the connection table size. */
export function decodeInfoMessage (payload: Buffer): IpvsInfo {
  const a = parseGenl(payload).attrs
  const v = attrU32(a, IPVS_INFO_ATTR_VERSION, 'INFO_ATTR_VERSION')
  return { version: `${v >>> 16}.${(v >>> 8) & 0xff}.${v & 0xff}`, connTableSize: attrU32(a, IPVS_INFO_ATTR_CONN_TAB_SIZE, 'INFO_ATTR_CONN_TAB_SIZE') }
}

/** "TCP 10.96.0.1:443" / "UDP [fd00::a]:53", for messages. */
export function describeKey (s: VirtualServerKey): string {
  const host = s.family === 'IPv6' ? `[${s.address}]` : s.address
  return `${s.protocol} ${host}:${s.port}`
}

/** "10.244.1.5:8080" / "[fd00::5]:8080". */
export function describeDest (d: RealServerKey): string {
  return d.address.includes(':') ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`
}
