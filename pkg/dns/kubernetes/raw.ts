// Reading a raw reply (from the forwarder or the cache) back into records, for the two places that must
// merge a reply they did not build: an ExternalName's target (CNAME + the target's records, DNS.md
// §2.10) and autopath's CNAME in front of a found answer (§3.3). Off the hot path: cluster names never
// come through here.
import { parseIP } from '../../net/ip.js'
import { TYPE, answer } from '../message.js'
import type { Answer, RData, Rcode, Reply, ResourceRecord } from '../message.js'
import { WireError, readName } from '../wire/name.js'

/** The rcode of any reply. */
export function replyRcode (reply: Reply): number {
  return reply.kind === 'answer' ? reply.rcode : reply.bytes.length >= 4 ? (reply.bytes[3] as number) & 0x0f : 2
}

/**
 * The reply as an Answer, or null when it holds a record type the model cannot carry (or is malformed).
 * OPT is dropped: the server writes its own.
 */
export function replyAnswer (reply: Reply): Answer | null {
  if (reply.kind === 'answer') return reply
  try {
    return decode(reply.bytes)
  } catch (e) {
    if (e instanceof WireError || e instanceof RangeError) return null
    throw e
  }
}

function decode (buf: Uint8Array): Answer | null {
  if (buf.length < 12) return null
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const aa = (view.getUint8(2) & 0x04) !== 0
  const rcode = view.getUint8(3) & 0x0f
  const counts = [view.getUint16(4), view.getUint16(6), view.getUint16(8), view.getUint16(10)] as const
  let pos = 12
  for (let i = 0; i < counts[0]; i++) pos = readName(buf, pos).end + 4
  const sections: ResourceRecord[][] = [[], [], []]
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < (counts[s + 1] as number); i++) {
      const { name, end } = readName(buf, pos)
      const type = view.getUint16(end)
      const ttl = view.getUint32(end + 4)
      const len = view.getUint16(end + 8)
      const rd = end + 10
      if (rd + len > buf.length) return null
      pos = rd + len
      if (type === TYPE.OPT) continue
      const data = rdata(buf, view, type, rd, len)
      if (data === null) return null
      ;(sections[s] as ResourceRecord[]).push({ name, ttl, data })
    }
  }
  return answer(rcode as Rcode, sections[0], sections[1], sections[2], aa)
}

function rdata (buf: Uint8Array, view: DataView, type: number, at: number, len: number): RData | null {
  switch (type) {
    case TYPE.A:
      if (len !== 4) return null
      return { type: TYPE.A, address: `${buf[at] as number}.${buf[at + 1] as number}.${buf[at + 2] as number}.${buf[at + 3] as number}` }
    case TYPE.AAAA: {
      if (len !== 16) return null
      const groups: string[] = []
      for (let i = 0; i < 16; i += 2) groups.push(view.getUint16(at + i).toString(16))
      const ip = parseIP(groups.join(':'))
      return ip === null ? null : { type: TYPE.AAAA, address: ip.ip }
    }
    case TYPE.NS: case TYPE.CNAME: case TYPE.PTR:
      return { type, target: readName(buf, at).name }
    case TYPE.SRV:
      if (len < 7) return null
      return { type: TYPE.SRV, priority: view.getUint16(at), weight: view.getUint16(at + 2), port: view.getUint16(at + 4), target: readName(buf, at + 6).name }
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
        type: TYPE.SOA, mname: m.name, rname: r.name, serial: view.getUint32(r.end), refresh: view.getUint32(r.end + 4),
        retry: view.getUint32(r.end + 8), expire: view.getUint32(r.end + 12), minimum: view.getUint32(r.end + 16),
      }
    }
    default:
      return null
  }
}
