// The bytes ferry sends upstream: the client's question with a fresh ID and an OPT advertising 1232
// (DNS.md §5.4), keeping the client's RD, CD and DO bits. Also the two in-place patches a reply needs
// before it goes back to a client: its ID and its question's case.
import { randomFillSync } from 'node:crypto'
import { CLASS_IN, TYPE, type Query } from '../message.js'
import { nameLabels } from '../wire/name.js'

/** The UDP payload size ferry advertises upstream (DNS flag day 2020). */
export const EDNS_UDP_SIZE = 1232

const RD = 0x0100
const CD = 0x0010
const DO = 0x8000

/** Writes `name` uncompressed at `at`; returns the offset past it. */
export function writeName (buf: Uint8Array, at: number, name: string): number {
  for (const label of nameLabels(name)) {
    buf[at++] = label.length
    for (let i = 0; i < label.length; i++) buf[at++] = label.charCodeAt(i) & 0xff
  }
  buf[at++] = 0
  return at
}

function nameLength (name: string): number {
  let n = 1
  for (const label of nameLabels(name)) n += label.length + 1
  return n
}

/** The upstream query for `q`, with ID 0 (each try writes its own with setId). */
export function upstreamQuery (q: Query): Buffer {
  const qname = q.question.name
  const len = 12 + nameLength(qname) + 4 + 11
  const buf = Buffer.alloc(len)
  buf.writeUInt16BE((q.rd ? RD : 0) | (q.cd ? CD : 0), 2)
  buf.writeUInt16BE(1, 4)
  buf.writeUInt16BE(1, 10)
  let at = writeName(buf, 12, qname)
  at = buf.writeUInt16BE(q.question.type, at)
  at = buf.writeUInt16BE(q.question.class, at)
  // OPT: root owner, type, UDP size, extended rcode 0, version 0, DO, no options.
  buf[at++] = 0
  at = buf.writeUInt16BE(TYPE.OPT, at)
  at = buf.writeUInt16BE(EDNS_UDP_SIZE, at)
  at = buf.writeUInt32BE(q.edns?.do === true ? DO : 0, at)
  buf.writeUInt16BE(0, at)
  return buf
}

/** The health probe: `. IN NS`, RD=1, no OPT (DNS.md §4.3). */
export function probeQuery (): Buffer {
  const buf = Buffer.alloc(12 + 1 + 4)
  buf.writeUInt16BE(RD, 2)
  buf.writeUInt16BE(1, 4)
  buf.writeUInt16BE(TYPE.NS, 13)
  buf.writeUInt16BE(CLASS_IN, 15)
  return buf
}

export function setId (buf: Uint8Array, id: number): void {
  buf[0] = id >>> 8
  buf[1] = id & 0xff
}

/**
 * Rewrites the question name at offset 12 to `name`'s exact bytes, for a reply whose question callers
 * already matched case-insensitively. Only letters differ, so lengths match; a mismatch stops the patch.
 */
export function patchQuestionCase (buf: Uint8Array, name: string): void {
  if (name.includes('\\')) {
    // Escaped labels are rare: encode into a scratch buffer and copy only if the layout matches.
    const scratch = new Uint8Array(nameLength(name))
    writeName(scratch, 0, name)
    if (12 + scratch.length > buf.length) return
    for (let i = 0; i < scratch.length; i++) if (((scratch[i] as number) | 0x20) !== ((buf[12 + i] as number) | 0x20)) return
    buf.set(scratch, 12)
    return
  }
  let pos = 12
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

/** Random 16-bit IDs from a refilled block of crypto-random bytes (Math.random is predictable). */
export class IdSource {
  private readonly block = Buffer.alloc(2048)
  private at = this.block.length
  next (): number {
    if (this.at >= this.block.length) { randomFillSync(this.block); this.at = 0 }
    const id = this.block.readUInt16BE(this.at)
    this.at += 2
    return id
  }
}
