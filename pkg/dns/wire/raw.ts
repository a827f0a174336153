// Reading whole replies from upstreams without decoding their records: enough for the forwarder to match
// a reply to its query and for the cache to store it as bytes, count its TTLs down in place and serve it
// with another client's ID and case (patchId, patchQuestionCase, or patchReply from the client's query
// bytes). Never throws: a malformed reply is null.
import { EDNS_UDP_SIZE, TYPE, type Edns, type Question } from '../message.js'
import { nameLabels } from './name.js'
import { HEADER_SIZE } from './query.js'
import { scanQuestionName, scanned, skipName, u16, u32 } from './scan.js'

export interface RawInfo {
  readonly id: number
  readonly qr: boolean
  readonly opcode: number
  readonly aa: boolean
  readonly tc: boolean
  readonly rd: boolean
  readonly ra: boolean
  readonly cd: boolean
  /** The full rcode: the header's 4 bits, plus OPT's extended bits (RFC 6891 §6.1.3) above them. */
  readonly rcode: number
  readonly qdcount: number
  readonly ancount: number
  readonly nscount: number
  readonly arcount: number
  /** The first question; null when the reply has none (some error replies). */
  readonly question: Question | null
  /** Offset just past the first question's name (12 without a question). */
  readonly nameEnd: number
  /** Offset just past the question section. */
  readonly questionEnd: number
  /** Offsets of the TTL field of every record in answer, authority and additional, except OPT. */
  readonly ttlOffsets: readonly number[]
  /** The smallest TTL over those records (MSB-set TTLs count as 0, RFC 2181 §8); null if there are none. */
  readonly minTtl: number | null
  /** The first SOA in the authority section: its TTL and MINIMUM (for negative caching, RFC 2308 §5). */
  readonly soa: { readonly ttl: number, readonly minimum: number } | null
  readonly edns: Edns | null
  /** The OPT record's bytes are buf[optStart, optEnd); both -1 without OPT. */
  readonly optStart: number
  readonly optEnd: number
  /** Offset just past the last record (anything after it is ignored). */
  readonly end: number
}

function ttlAt (buf: Uint8Array, off: number): number {
  const t = u32(buf, off)
  return t > 0x7fffffff ? 0 : t
}

/** SOA RDATA is two names and five 32-bit fields; returns the offset of MINIMUM, or -1. */
function soaMinimumAt (buf: Uint8Array, rdata: number, end: number): number {
  const mname = skipName(buf, rdata)
  if (mname < 0 || mname > end) return -1
  const rname = skipName(buf, mname)
  if (rname < 0 || rname + 20 !== end) return -1
  return end - 4
}

export function inspectReply (buf: Uint8Array): RawInfo | null {
  if (buf.length < HEADER_SIZE) return null
  const flags = u16(buf, 2)
  const qdcount = u16(buf, 4)
  const ancount = u16(buf, 6)
  const nscount = u16(buf, 8)
  const arcount = u16(buf, 10)

  let question: Question | null = null
  let nameEnd = HEADER_SIZE
  let off = HEADER_SIZE
  for (let i = 0; i < qdcount; i++) {
    if (i === 0) {
      if (!scanQuestionName(buf, off)) return null
      nameEnd = scanned.end
      if (nameEnd + 4 > buf.length) return null
      question = { name: scanned.name, lname: scanned.lname, type: u16(buf, nameEnd), class: u16(buf, nameEnd + 2) }
      off = nameEnd + 4
    } else {
      off = skipName(buf, off)
      if (off < 0 || off + 4 > buf.length) return null
      off += 4
    }
  }
  const questionEnd = off

  const ttlOffsets: number[] = []
  let minTtl = -1
  let soa: RawInfo['soa'] = null
  let edns: Edns | null = null
  let extRcode = 0
  let optStart = -1
  let optEnd = -1
  const total = ancount + nscount + arcount
  for (let i = 0; i < total; i++) {
    const start = off
    const n = skipName(buf, off)
    if (n < 0 || n + 10 > buf.length) return null
    const type = u16(buf, n)
    const end = n + 10 + u16(buf, n + 8)
    if (end > buf.length) return null
    if (type === TYPE.OPT) {
      // One OPT, owned by the root, in the additional section only (RFC 6891 §6.1.1).
      if (i < ancount + nscount || edns !== null || n !== start + 1) return null
      const ttl = u32(buf, n + 4)
      extRcode = ttl >>> 24
      edns = { udpSize: u16(buf, n + 2), version: (ttl >>> 16) & 0xff, do: (ttl & 0x8000) !== 0 }
      optStart = start
      optEnd = end
    } else {
      const ttl = ttlAt(buf, n + 4)
      ttlOffsets.push(n + 4)
      if (minTtl < 0 || ttl < minTtl) minTtl = ttl
      if (type === TYPE.SOA && soa === null && i >= ancount && i < ancount + nscount) {
        const at = soaMinimumAt(buf, n + 10, end)
        if (at < 0) return null
        soa = { ttl, minimum: u32(buf, at) }
      }
    }
    off = end
  }

  return {
    id: u16(buf, 0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    cd: (flags & 0x0010) !== 0,
    rcode: (extRcode << 4) | (flags & 0xf),
    qdcount,
    ancount,
    nscount,
    arcount,
    question,
    nameEnd,
    questionEnd,
    ttlOffsets,
    minTtl: minTtl < 0 ? null : minTtl,
    soa,
    edns,
    optStart,
    optEnd,
    end: off,
  }
}

/** Sets every TTL at `offsets` (from inspectReply) to `ttl`, in place. */
export function rewriteTtls (buf: Uint8Array, offsets: readonly number[], ttl: number): void {
  const v = ttl > 0 ? (ttl >= 0x7fffffff ? 0x7fffffff : Math.floor(ttl)) : 0
  for (let i = 0; i < offsets.length; i++) {
    const o = offsets[i] as number
    buf[o] = v >>> 24
    buf[o + 1] = (v >>> 16) & 0xff
    buf[o + 2] = (v >>> 8) & 0xff
    buf[o + 3] = v & 0xff
  }
}

/** Sets the message ID, in place. */
export function patchId (buf: Uint8Array, id: number): void {
  buf[0] = (id >>> 8) & 0xff
  buf[1] = id & 0xff
}

/**
 * Rewrites the question name at offset 12 to `name`'s exact bytes, in place, for a message whose question
 * the caller already matched case-insensitively (a reply going back to the client that asked in `name`'s
 * case). Only letters differ, so the layout is the same; a label that does not match stops the patch.
 * Unlike patchReply (writer.ts), the client's case comes from a presentation name, not from its query bytes.
 */
export function patchQuestionCase (buf: Uint8Array, name: string): void {
  if (name.includes('\\')) { patchEscapedCase(buf, name); return }
  let pos = HEADER_SIZE
  let si = 0
  for (;;) {
    const len = buf[pos]
    if (len === undefined || len === 0 || len > 63 || pos + len >= buf.length) return
    for (let i = 1; i <= len; i++) {
      const c = name.charCodeAt(si++)
      // Only case may change: a different letter means this is not the same name, so stop.
      if ((c | 0x20) !== ((buf[pos + i] as number) | 0x20)) return
      buf[pos + i] = c
    }
    si++
    pos += len + 1
  }
}

/** patchQuestionCase for a name with escapes (rare): checks the whole layout first, then copies. */
function patchEscapedCase (buf: Uint8Array, name: string): void {
  const labels = nameLabels(name)
  let pos = HEADER_SIZE
  for (const l of labels) {
    if (buf[pos] !== l.length || pos + 1 + l.length > buf.length) return
    for (let i = 0; i < l.length; i++) if (((l.charCodeAt(i) & 0xff) | 0x20) !== ((buf[pos + 1 + i] as number) | 0x20)) return
    pos += 1 + l.length
  }
  if (buf[pos] !== 0) return
  pos = HEADER_SIZE
  for (const l of labels) {
    for (let i = 0; i < l.length; i++) buf[pos + 1 + i] = l.charCodeAt(i) & 0xff
    pos += 1 + l.length
  }
}

/**
 * The reply for a client whose limit the upstream's reply overflows: header, question, the OPT if the
 * reply had one (its options dropped, so no upstream COOKIE leaks), no records, TC set (as CoreDNS's
 * forward does, DNS.md §4.4). A new buffer.
 */
export function truncatedCopy (buf: Uint8Array, info: RawInfo): Uint8Array {
  const optLen = info.optStart >= 0 ? 11 : 0
  const qEnd = info.qdcount > 0 ? info.nameEnd + 4 : HEADER_SIZE
  const out = Buffer.allocUnsafe(qEnd + optLen)
  out.set(buf.subarray(0, qEnd))
  if (optLen > 0) {
    // Root owner, type, class (size) and TTL (extended rcode, version, flags) as sent; RDLENGTH 0.
    out.set(buf.subarray(info.optStart, info.optStart + 9), qEnd)
    out[qEnd + 9] = 0; out[qEnd + 10] = 0
  }
  out[2] = (out[2] as number) | 0x02
  out[4] = 0; out[5] = info.qdcount > 0 ? 1 : 0
  out[6] = 0; out[7] = 0; out[8] = 0; out[9] = 0
  out[10] = 0; out[11] = optLen > 0 ? 1 : 0
  return out
}

/**
 * An upstream's reply made fit for this client: its OPT replaced by ferry's own (EDNS_UDP_SIZE, the client's DO,
 * the upstream's extended rcode, no options) when the client sent EDNS, removed when it did not; cut to
 * an empty TC reply when over `limit`. ID and question case are the caller's (patchReply). A new buffer.
 */
export function clientCopy (buf: Uint8Array, info: RawInfo, client: { edns: boolean, do: boolean }, limit: number): Uint8Array {
  const extRcode = info.optStart >= 0 ? (buf[info.optStart + 5] as number) : 0
  const body = info.optStart >= 0
    ? Buffer.concat([buf.subarray(0, info.optStart), buf.subarray(info.optEnd, info.end)])
    : Buffer.from(buf.subarray(0, info.end))
  let arcount = info.arcount - (info.optStart >= 0 ? 1 : 0)
  let out: Buffer = body
  if (client.edns) {
    const opt = Buffer.from([0, 0, 41, EDNS_UDP_SIZE >>> 8, EDNS_UDP_SIZE & 0xff, extRcode, 0, client.do ? 0x80 : 0, 0, 0, 0])
    out = Buffer.concat([body, opt])
    arcount++
  }
  out[10] = (arcount >>> 8) & 0xff
  out[11] = arcount & 0xff
  if (out.length <= limit) return out
  const again = inspectReply(out)
  return again === null ? out.subarray(0, HEADER_SIZE) : truncatedCopy(out, again)
}
