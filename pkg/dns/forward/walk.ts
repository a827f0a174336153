// A minimal walk over a raw reply: the header, the question and where each record's TTL sits, without
// decoding records into objects. The forwarder and the cache need nothing more. This is a stand-in for
// wire/raw.ts's inspectReply: swap the body of inspectReply() when that lands.
import { TYPE, lowerName } from '../message.js'
import { WireError, readName } from '../wire/name.js'

export interface ReplyView {
  readonly id: number
  /** The 16 header flag bits (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode). */
  readonly flags: number
  /** The header's 4-bit rcode (extended bits in OPT are ignored: ferry never sends them upstream). */
  readonly rcode: number
  readonly qr: boolean
  readonly tc: boolean
  readonly qdcount: number
  readonly ancount: number
  /** The first question, lower-cased; undefined when QDCOUNT is 0. */
  readonly question?: { readonly lname: string, readonly type: number, readonly class: number }
  /** Where the first question's name starts and where the question ends. */
  readonly questionStart: number
  readonly questionEnd: number
  /** Offsets of the 32-bit TTL field of every record except OPT (whose TTL field holds flags). */
  readonly ttlOffsets: Uint32Array
  /** The smallest TTL over those records; -1 when there are none. */
  readonly minTtl: number
  /** An SOA in the authority section: min(its TTL, its MINIMUM) per RFC 2308 §5; -1 when absent. */
  readonly soaTtl: number
  /** Every record except OPT in answer, authority and additional. */
  readonly records: number
}

const FLAG_QR = 0x8000
const FLAG_TC = 0x0200

/** Skips a name without building it; a pointer ends the name. */
function skipName (buf: Uint8Array, pos: number): number {
  for (;;) {
    if (pos >= buf.length) throw new WireError('name runs past the message')
    const len = buf[pos] as number
    if (len === 0) return pos + 1
    if ((len & 0xc0) === 0xc0) return pos + 2
    if ((len & 0xc0) !== 0) throw new WireError('reserved label type')
    pos += len + 1
  }
}

function u16 (buf: Uint8Array, at: number): number {
  return ((buf[at] as number) << 8) | (buf[at + 1] as number)
}

function u32 (buf: Uint8Array, at: number): number {
  return (((buf[at] as number) << 24) >>> 0) + (((buf[at + 1] as number) << 16) | ((buf[at + 2] as number) << 8) | (buf[at + 3] as number))
}

/** Walks a whole reply. Throws WireError when it is malformed or runs past its end. */
export function inspectReply (buf: Uint8Array): ReplyView {
  if (buf.length < 12) throw new WireError('message shorter than its header')
  const flags = u16(buf, 2)
  const qdcount = u16(buf, 4)
  const ancount = u16(buf, 6)
  const nscount = u16(buf, 8)
  const arcount = u16(buf, 10)
  let pos = 12
  let question: ReplyView['question']
  for (let i = 0; i < qdcount; i++) {
    if (i === 0) {
      const { name, end } = readName(buf, pos)
      if (end + 4 > buf.length) throw new WireError('question runs past the message')
      question = { lname: lowerName(name), type: u16(buf, end), class: u16(buf, end + 2) }
      pos = end + 4
    } else {
      pos = skipName(buf, pos) + 4
    }
  }
  if (pos > buf.length) throw new WireError('question runs past the message')
  const questionEnd = pos
  const total = ancount + nscount + arcount
  const offsets = new Uint32Array(total)
  let n = 0
  let minTtl = -1
  let soaTtl = -1
  for (let i = 0; i < total; i++) {
    pos = skipName(buf, pos)
    if (pos + 10 > buf.length) throw new WireError('record header runs past the message')
    const type = u16(buf, pos)
    const ttl = u32(buf, pos + 4)
    const rdlen = u16(buf, pos + 8)
    const rdata = pos + 10
    if (rdata + rdlen > buf.length) throw new WireError('record data runs past the message')
    if (type !== TYPE.OPT) {
      offsets[n++] = pos + 4
      if (minTtl < 0 || ttl < minTtl) minTtl = ttl
      if (type === TYPE.SOA && i >= ancount && i < ancount + nscount && rdlen >= 20) {
        const minimum = u32(buf, rdata + rdlen - 4)
        const t = Math.min(ttl, minimum)
        if (soaTtl < 0 || t < soaTtl) soaTtl = t
      }
    }
    pos = rdata + rdlen
  }
  return {
    id: u16(buf, 0),
    flags,
    rcode: flags & 0x0f,
    qr: (flags & FLAG_QR) !== 0,
    tc: (flags & FLAG_TC) !== 0,
    qdcount,
    ancount,
    question,
    questionStart: 12,
    questionEnd,
    ttlOffsets: n === total ? offsets : offsets.subarray(0, n),
    minTtl,
    soaTtl,
    records: n,
  }
}
