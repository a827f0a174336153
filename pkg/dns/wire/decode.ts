// Decoding a whole reply into the Answer model: the general decoder, for the places that must merge a
// reply they did not build, an ExternalName's target (CNAME + the target's records, DNS.md §2.10) and
// autopath's CNAME in front of a found answer (§3.3). Off the hot path: cluster names and forwarded or
// cached replies passed through never come here. inspectReply (raw.ts) checks the framing first, so the
// record loop below only reads inside bounds it already checked.
import { parseIP } from '../../net/ip.js'
import { RCODE, TYPE, answer } from '../message.js'
import type { Answer, RData, Rcode, Reply, ResourceRecord } from '../message.js'
import { WireError, readName } from './name.js'
import { inspectReply, type RawInfo } from './raw.js'
import { u16, u32 } from './scan.js'

/**
 * The rcode of any reply. For raw bytes, the header's 4 bits (no record walk): ferry's upstream queries
 * are EDNS version 0 without options, so no extended rcode comes back; too short a message is SERVFAIL.
 */
export function replyRcode (reply: Reply): number {
  return reply.kind === 'answer' ? reply.rcode : reply.bytes.length >= 4 ? (reply.bytes[3] as number) & 0x0f : RCODE.SERVFAIL
}

export interface DecodeOptions {
  /**
   * Leave out records of types the model cannot carry (RRSIG, DNAME, ...) instead of answering null.
   * For merges that need the addresses of a reply, not every record of it.
   */
  readonly skipUnknown?: boolean
}

/** Any reply as an Answer (a structured one as it is); null as for decodeReply. */
export function replyAnswer (reply: Reply, opts: DecodeOptions = {}): Answer | null {
  return reply.kind === 'answer' ? reply : decodeReply(reply.bytes, opts)
}

/**
 * A reply message as an Answer: its rcode (extended bits included), AA, RA, and the answer, authority and
 * additional records. OPT is dropped (the server writes its own). Null when the message is malformed or
 * holds a record type the model cannot carry (unless `skipUnknown` leaves those records out).
 */
export function decodeReply (buf: Uint8Array, opts: DecodeOptions = {}): Answer | null {
  const info = inspectReply(buf)
  if (info === null) return null
  try {
    return decodeRecords(buf, info, opts.skipUnknown === true)
  } catch (e) {
    // readName is stricter than the framing check about names inside RDATA.
    if (e instanceof WireError) return null
    throw e
  }
}

function decodeRecords (buf: Uint8Array, info: RawInfo, skipUnknown: boolean): Answer | null {
  const counts = [info.ancount, info.nscount, info.arcount]
  const sections: ResourceRecord[][] = [[], [], []]
  let pos = info.questionEnd
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < (counts[s] as number); i++) {
      if (pos === info.optStart) { pos = info.optEnd; continue }
      const { name, end } = readName(buf, pos)
      const type = u16(buf, end)
      const len = u16(buf, end + 8)
      const rd = end + 10
      pos = rd + len
      if (skipUnknown && !KNOWN_TYPES.has(type)) continue
      const data = rdata(buf, type, rd, len)
      if (data === null) return null
      ;(sections[s] as ResourceRecord[]).push({ name, ttl: u32(buf, end + 4), data })
    }
  }
  return answer(info.rcode as Rcode, sections[0], sections[1], sections[2], info.aa, info.ra)
}

/** The record types rdata() decodes. */
const KNOWN_TYPES = new Set<number>([TYPE.A, TYPE.AAAA, TYPE.NS, TYPE.CNAME, TYPE.PTR, TYPE.SRV, TYPE.TXT, TYPE.SOA])

function rdata (buf: Uint8Array, type: number, at: number, len: number): RData | null {
  switch (type) {
    case TYPE.A:
      if (len !== 4) return null
      return { type: TYPE.A, address: `${buf[at] as number}.${buf[at + 1] as number}.${buf[at + 2] as number}.${buf[at + 3] as number}` }
    case TYPE.AAAA: {
      if (len !== 16) return null
      const groups: string[] = []
      for (let i = 0; i < 16; i += 2) groups.push(u16(buf, at + i).toString(16))
      // parseIP gives the canonical (RFC 5952) text the rest of ferry compares.
      const ip = parseIP(groups.join(':'))
      return ip === null ? null : { type: TYPE.AAAA, address: ip.ip }
    }
    case TYPE.NS: case TYPE.CNAME: case TYPE.PTR:
      return { type, target: readName(buf, at).name }
    case TYPE.SRV:
      if (len < 7) return null
      return { type: TYPE.SRV, priority: u16(buf, at), weight: u16(buf, at + 2), port: u16(buf, at + 4), target: readName(buf, at + 6).name }
    case TYPE.TXT: {
      const texts: string[] = []
      for (let p = at; p < at + len;) {
        const n = buf[p] as number
        if (p + 1 + n > at + len) return null
        texts.push(Buffer.from(buf.subarray(p + 1, p + 1 + n)).toString('latin1'))
        p += 1 + n
      }
      return { type: TYPE.TXT, texts }
    }
    case TYPE.SOA: {
      const m = readName(buf, at)
      const r = readName(buf, m.end)
      if (r.end + 20 > at + len) return null
      return {
        type: TYPE.SOA, mname: m.name, rname: r.name, serial: u32(buf, r.end), refresh: u32(buf, r.end + 4),
        retry: u32(buf, r.end + 8), expire: u32(buf, r.end + 12), minimum: u32(buf, r.end + 16),
      }
    }
    default:
      return null
  }
}
