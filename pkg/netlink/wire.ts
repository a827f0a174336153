// Netlink framing and attributes: nlmsghdr, genlmsghdr, nlattr (TLV, 4-byte aligned, host byte order
// unless the kernel says network order). Pure; codec.ts builds IPVS messages from these pieces, and the
// nftables mode's nf_tables dumps (nftables/nfnl.ts) use the same framing.
import { endianness } from 'node:os'
import { FerryError } from '../errors/errors.js'
import {
  CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_CMD_GETFAMILY, CTRL_VERSION, GENL_HDRLEN, NLA_F_NESTED, NLA_HDRLEN,
  NLA_TYPE_MASK, NLMSG_HDRLEN,
} from './constants.js'

/** Netlink integers are in the host's byte order; every Linux host node runs on today is little-endian. */
export const HOST_LE = endianness() === 'LE'

export const align4 = (n: number): number => (n + 3) & ~3

/** Appends attributes to one growing buffer, nests patched in place like nla_nest_start/nla_nest_end. */
export class AttrWriter {
  private buf: Buffer
  private off = 0

  constructor (size = 128) { this.buf = Buffer.alloc(size) }

  /** Raw bytes with no attribute header (a genlmsghdr). */
  raw (bytes: Uint8Array): this {
    this.reserve(bytes.length)
    this.buf.set(bytes, this.off)
    this.off += bytes.length
    return this
  }

  u8 (type: number, v: number): this { return this.put(type, 1, (b, o) => b.writeUInt8(v, o)) }
  u16 (type: number, v: number): this { return this.put(type, 2, (b, o) => HOST_LE ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o)) }
  u32 (type: number, v: number): this { return this.put(type, 4, (b, o) => HOST_LE ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o)) }
  be16 (type: number, v: number): this { return this.put(type, 2, (b, o) => b.writeUInt16BE(v, o)) }
  be32 (type: number, v: number): this { return this.put(type, 4, (b, o) => b.writeUInt32BE(v, o)) }
  bytes (type: number, v: Uint8Array): this { return this.put(type, v.length, (b, o) => b.set(v, o)) }
  /** A NUL-terminated string (NLA_NUL_STRING / NLA_STRING). */
  string (type: number, s: string): this {
    const text = Buffer.from(s, 'utf8')
    return this.put(type, text.length + 1, (b, o) => { b.set(text, o); b[o + text.length] = 0 })
  }

  /** Opens a nest; pass the result to end(). NLA_F_NESTED is set (the kernel's non-strict parser accepts both). */
  nest (type: number): number {
    const start = this.off
    this.reserve(NLA_HDRLEN)
    this.header(0, type | NLA_F_NESTED)
    return start
  }

  end (start: number): this {
    this.writeU16At(start, this.off - start)
    return this
  }

  /** The bytes written so far (a copy, so the writer's buffer can be dropped). */
  finish (): Buffer { return Buffer.from(this.buf.subarray(0, this.off)) }

  private put (type: number, len: number, write: (b: Buffer, at: number) => void): this {
    const start = this.off
    this.reserve(align4(NLA_HDRLEN + len))
    this.header(NLA_HDRLEN + len, type)
    write(this.buf, this.off)
    this.off = start + align4(NLA_HDRLEN + len) // padding bytes stay zero
    return this
  }

  private header (len: number, type: number): void {
    this.writeU16At(this.off, len)
    this.writeU16At(this.off + 2, type)
    this.off += NLA_HDRLEN
  }

  private writeU16At (at: number, v: number): void {
    if (HOST_LE) this.buf.writeUInt16LE(v, at); else this.buf.writeUInt16BE(v, at)
  }

  private reserve (n: number): void {
    if (this.off + n <= this.buf.length) return
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n))
    this.buf.copy(next, 0, 0, this.off)
    this.buf = next
  }
}

/** genlmsghdr: cmd u8, version u8, reserved u16. */
export function genlHeader (cmd: number, version: number): Buffer {
  return Buffer.from([cmd, version, 0, 0])
}

export interface NetlinkMessage { type: number, flags: number, seq: number, pid: number, payload: Buffer }

/** One nlmsghdr (len u32, type u16, flags u16, seq u32, pid u32) in front of a payload, padded to 4. */
export function frame (type: number, flags: number, seq: number, payload: Uint8Array, pid = 0): Buffer {
  const len = NLMSG_HDRLEN + payload.length
  const out = Buffer.alloc(align4(len))
  writeU32(out, 0, len)
  writeU16(out, 4, type)
  writeU16(out, 6, flags)
  writeU32(out, 8, seq >>> 0)
  writeU32(out, 12, pid >>> 0)
  out.set(payload, NLMSG_HDRLEN)
  return out
}

/** Splits one received datagram into its messages; a length that runs past the end is a malformed reply. */
export function parseMessages (buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = []
  let off = 0
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = readU32(buf, off)
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw malformed(`netlink message length ${len} at offset ${off} of ${buf.length}`)
    out.push({
      type: readU16(buf, off + 4),
      flags: readU16(buf, off + 6),
      seq: readU32(buf, off + 8),
      pid: readU32(buf, off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    })
    off += align4(len)
  }
  return out
}

/** The errno of an NLMSG_ERROR (0 for an ack) or NLMSG_DONE payload, as a positive number. */
export function errnoOf (payload: Buffer): number {
  if (payload.length < 4) return 0 // a bare DONE from an old kernel
  const v = HOST_LE ? payload.readInt32LE(0) : payload.readInt32BE(0)
  return v < 0 ? -v : v
}

export interface GenlMessage { cmd: number, version: number, attrs: Map<number, Buffer> }

export function parseGenl (payload: Buffer): GenlMessage {
  if (payload.length < GENL_HDRLEN) throw malformed(`generic netlink payload of ${payload.length} bytes`)
  return { cmd: payload[0] ?? 0, version: payload[1] ?? 0, attrs: parseAttrs(payload.subarray(GENL_HDRLEN)) }
}

/** Attributes by type (flags masked off); a repeated type keeps the last, as nla_parse does. */
export function parseAttrs (buf: Buffer): Map<number, Buffer> {
  return new Map(parseAttrList(buf))
}

/** Attributes in order, repeats kept (a nest of list elements); types with their flags masked off. */
export function parseAttrList (buf: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = []
  let off = 0
  while (off + NLA_HDRLEN <= buf.length) {
    const len = readU16(buf, off)
    if (len < NLA_HDRLEN || off + len > buf.length) throw malformed(`attribute length ${len} at offset ${off} of ${buf.length}`)
    out.push([readU16(buf, off + 2) & NLA_TYPE_MASK, buf.subarray(off + NLA_HDRLEN, off + len)])
    off += align4(len)
  }
  return out
}

export function attrU16 (attrs: Map<number, Buffer>, type: number, what: string): number {
  const b = need(attrs, type, what, 2)
  return readU16(b, 0)
}

export function attrU32 (attrs: Map<number, Buffer>, type: number, what: string): number {
  const b = need(attrs, type, what, 4)
  return readU32(b, 0)
}

export function attrBE16 (attrs: Map<number, Buffer>, type: number, what: string): number {
  return need(attrs, type, what, 2).readUInt16BE(0)
}

/** An NLA_NUL_STRING: up to the first NUL. */
export function attrString (attrs: Map<number, Buffer>, type: number, what: string): string {
  return nulString(need(attrs, type, what, 1))
}

/** A string payload up to its first NUL ('' for none). */
export function nulString (b: Buffer | undefined): string {
  if (b === undefined) return ''
  const nul = b.indexOf(0)
  return b.toString('utf8', 0, nul < 0 ? b.length : nul)
}

export function need (attrs: Map<number, Buffer>, type: number, what: string, min: number): Buffer {
  const b = attrs.get(type)
  if (b === undefined) throw malformed(`${what} is missing`)
  if (b.length < min) throw malformed(`${what} has ${b.length} bytes, want ${min}`)
  return b
}

/** A struct of u32s in host order (struct ip_vs_flags). */
export function hostU32s (...values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 4)
  values.forEach((v, i) => writeU32(out, i * 4, v))
  return out
}

export function readU16 (b: Buffer, at: number): number { return HOST_LE ? b.readUInt16LE(at) : b.readUInt16BE(at) }
export function readU32 (b: Buffer, at: number): number { return HOST_LE ? b.readUInt32LE(at) : b.readUInt32BE(at) }
function writeU16 (b: Buffer, at: number, v: number): void { if (HOST_LE) b.writeUInt16LE(v, at); else b.writeUInt16BE(v, at) }
function writeU32 (b: Buffer, at: number, v: number): void { if (HOST_LE) b.writeUInt32LE(v, at); else b.writeUInt32BE(v, at) }

export function malformed (detail: string): FerryError {
  return new FerryError('FERRY_ERR_NETLINK', `malformed netlink reply: ${detail}`, { detail })
}

// ---- nlctrl: resolving a generic-netlink family name to its id ----

/** CTRL_CMD_GETFAMILY payload asking for `name`. */
export function encodeGetFamily (name: string): Buffer {
  return new AttrWriter(32).raw(genlHeader(CTRL_CMD_GETFAMILY, CTRL_VERSION)).string(CTRL_ATTR_FAMILY_NAME, name).finish()
}

/** The family id (u16) from a CTRL_CMD_NEWFAMILY reply. */
export function decodeFamilyId (payload: Buffer): number {
  return attrU16(parseGenl(payload).attrs, CTRL_ATTR_FAMILY_ID, 'CTRL_ATTR_FAMILY_ID')
}
