// Encoding replies to a parsed query: the header from the query, the question echoed as the client's
// own bytes (so 0x20 case survives), compressed records, truncation with TC, and OPT. The result of
// encodeReply doubles as a template: patchReply turns it into the reply to another query for the same
// name and type in a copy and a few byte stores, which is the server's fast path.
import { CLASS_IN, EDNS_UDP_SIZE, RCODE, TYPE, type Answer, type Query, type Rcode } from '../message.js'
import { Encoder, MAX_MESSAGE } from './encoder.js'
import { HEADER_SIZE, type ParsedQuery, type QueryRefusal } from './query.js'

/** The UDP payload size ferry advertises (the DNS flag day 2020 value: no IP fragmentation). */
export { EDNS_UDP_SIZE } from '../message.js'
const MIN_LIMIT = 512
const OPT_SIZE = 11

const QR = 0x8000
const AA = 0x0400
const TC = 0x0200
const RD = 0x0100
const RA = 0x0080
const CD = 0x0010
/** The opcode (4 bits) and RD in the flags' first octet. */
const OPCODE_RD = 0x79

export interface ReplyOptions {
  /** The largest message the client takes (see replyLimit); clamped to [512, 65535]. */
  readonly limit: number
  /** What ferry's OPT advertises (default 1232). OPT is written only when the query carried one. */
  readonly edns?: { readonly udpSize: number }
}

/** DNS.md §5.3: TCP 65535; UDP 512 without OPT, else max(512, the client's size). */
export function replyLimit (query: Query, proto: 'udp' | 'tcp'): number {
  if (proto === 'tcp') return MAX_MESSAGE
  const size = query.edns?.udpSize ?? 0
  return size > MIN_LIMIT ? size : MIN_LIMIT
}

const enc = new Encoder()
/**
 * Offset just past each record written, in order (answer, authority, additional). A record takes at least
 * 11 octets, so fewer than 6000 start below MAX_MESSAGE.
 */
const ends = new Int32Array(8192)
let count = 0

/**
 * Encodes the reply to `parsed` (read from `queryBuf`). Records are dropped whole from the end (additional,
 * then authority, then answer) until the message fits `opts.limit`, and then TC is set, as miekg's
 * Truncate does. Throws WireError only for records that cannot be encoded (a bad address or name), which
 * the server answers with SERVFAIL.
 */
export function encodeReply (queryBuf: Uint8Array, parsed: ParsedQuery, a: Answer, opts: ReplyOptions): Uint8Array {
  const q = parsed.query
  const limit = opts.limit < MIN_LIMIT ? MIN_LIMIT : opts.limit > MAX_MESSAGE ? MAX_MESSAGE : opts.limit
  const optLen = q.edns !== undefined ? OPT_SIZE : 0
  enc.reset()
  enc.pos = HEADER_SIZE
  enc.copy(queryBuf, HEADER_SIZE, parsed.questionEnd)
  enc.seedQuestion(queryBuf, q.question.lname)

  count = 0
  let full = writeSection(a.answer) && writeSection(a.authority) && writeSection(a.additional)
  let kept = count
  let end = enc.pos
  if (!full || end + optLen > limit) {
    full = false
    while (kept > 0 && (ends[kept - 1] as number) + optLen > limit) kept--
    end = kept > 0 ? ends[kept - 1] as number : parsed.questionEnd
  }
  const an = Math.min(kept, a.answer.length)
  const ns = Math.min(kept - an, a.authority.length)
  const ar = kept - an - ns

  let flags = QR | (q.opcode << 11) | (a.rcode & 0xf)
  if (a.aa) flags |= AA
  if (!full) flags |= TC
  if (q.rd) flags |= RD
  if (a.ra) flags |= RA
  if (q.cd) flags |= CD
  writeHeader(q.id, flags, 1, an, ns, ar + (optLen > 0 ? 1 : 0))
  enc.pos = end
  if (optLen > 0) writeOpt(opts.edns?.udpSize ?? EDNS_UDP_SIZE, a.rcode >> 4, q.edns?.do === true)
  return take()
}

/** Writes records while they can still fit some limit; false once one was left out for size. */
function writeSection (rrs: Answer['answer']): boolean {
  for (let i = 0; i < rrs.length; i++) {
    if (enc.pos > MAX_MESSAGE) return false
    enc.record(rrs[i] as Answer['answer'][number])
    ends[count++] = enc.pos
  }
  return true
}

function writeHeader (id: number, flags: number, qd: number, an: number, ns: number, ar: number): void {
  enc.pos = 0
  enc.u16(id); enc.u16(flags); enc.u16(qd); enc.u16(an); enc.u16(ns); enc.u16(ar)
}

/** OPT (RFC 6891 §6.1.2): root owner, CLASS = payload size, TTL = extended rcode, version 0, DO; no options. */
function writeOpt (udpSize: number, extRcode: number, dnssecOk: boolean): void {
  enc.u8(0); enc.u16(TYPE.OPT); enc.u16(udpSize)
  enc.u8(extRcode); enc.u8(0); enc.u16(dnssecOk ? 0x8000 : 0)
  enc.u16(0)
}

function take (): Uint8Array {
  const out = Buffer.allocUnsafe(enc.pos)
  enc.buf.copy(out, 0, 0, enc.pos)
  return out
}

const EMPTY: Answer['answer'] = Object.freeze([])

/** A reply with the question echoed and no records: REFUSED, SERVFAIL, BADVERS (16, carried by OPT). */
export function encodeEmpty (queryBuf: Uint8Array, parsed: ParsedQuery, rcode: Rcode, opts: ReplyOptions): Uint8Array {
  return encodeReply(queryBuf, parsed, { kind: 'answer', rcode, aa: false, answer: EMPTY, authority: EMPTY, additional: EMPTY, ra: false }, opts)
}

/**
 * The reply to a query parseQuery refused: header only, no question (it may not have parsed), as miekg
 * does. `r.reject` picks NOTIMP or FORMERR. No RA: miekg's SetRcode leaves it clear.
 */
export function encodeRejection (r: QueryRefusal): Uint8Array {
  const rcode = r.reject === 'notimp' ? RCODE.NOTIMP : RCODE.FORMERR
  let flags = QR | (r.opcode << 11) | rcode
  if (r.rd) flags |= RD
  enc.reset()
  writeHeader(r.id, flags, 0, 0, 0, 0)
  return take()
}

/**
 * The reply to another query from a reply `template` that encodeReply made for the same question name
 * (case aside), type and class, the same EDNS presence and DO bit, and a size limit of the same class
 * (see fitsLimit): copies it and patches in the query's ID, opcode, RD and CD bits and the question
 * name's bytes, so the client's case comes back in the question and in every owner pointing at it.
 * The opcode too: a template made for a NOTIFY must not answer a QUERY as NOTIFY (resolvers drop it).
 * AA, RA and the rcode stay the template's: they belong to the answer, not to the query.
 */
export function patchReply (template: Uint8Array, queryBuf: Uint8Array, parsed: ParsedQuery): Uint8Array {
  const out = Buffer.allocUnsafe(template.length)
  out.set(template)
  out[0] = queryBuf[0] as number
  out[1] = queryBuf[1] as number
  out[2] = ((template[2] as number) & ~OPCODE_RD) | ((queryBuf[2] as number) & OPCODE_RD)
  out[3] = ((template[3] as number) & ~0x10) | ((queryBuf[3] as number) & 0x10)
  for (let i = HEADER_SIZE; i < parsed.nameEnd; i++) out[i] = queryBuf[i] as number
  return out
}

/**
 * Whether a template encoded without truncation serves a client whose limit is `limit`: it must not carry
 * TC (a truncated template was cut for some smaller limit) and must fit.
 */
export function fitsLimit (template: Uint8Array, limit: number): boolean {
  return ((template[2] as number) & 0x02) === 0 && template.length <= limit
}

export interface QueryOptions {
  /** Default true. */
  readonly rd?: boolean
  readonly cd?: boolean
  /** The question's class (default IN). */
  readonly qclass?: number
  /** Adds an OPT with this UDP payload size. */
  readonly udpSize?: number
  readonly do?: boolean
}

/**
 * A query for the forwarder and health probes: one question, optional OPT (no options). Throws WireError
 * for a name that cannot be encoded (an empty or over-long label, a character outside latin1).
 */
export function encodeQuery (id: number, name: string, type: number, opts: QueryOptions = {}): Uint8Array {
  enc.reset()
  let flags = 0
  if (opts.rd !== false) flags |= RD
  if (opts.cd === true) flags |= CD
  writeHeader(id, flags, 1, 0, 0, opts.udpSize !== undefined ? 1 : 0)
  enc.name(name, false)
  enc.u16(type)
  enc.u16(opts.qclass ?? CLASS_IN)
  if (opts.udpSize !== undefined) writeOpt(opts.udpSize, 0, opts.do === true)
  return take()
}
