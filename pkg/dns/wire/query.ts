// Parsing a client's query, with the acceptance rules CoreDNS inherits from miekg/dns (DNS.md §5.1):
// what is dropped silently, what gets NOTIMP, what gets FORMERR. Never throws: every path that can
// meet hostile bytes checks bounds and returns a rejection instead.
import { TYPE, type Edns, type Query } from '../message.js'
import { scanQuestionName, scanned, skipName, u16, u32 } from './scan.js'

export const HEADER_SIZE = 12
const OPCODE_NOTIFY = 4

export interface ParsedQuery {
  readonly query: Query
  /** Offset just past the question (name, type, class): the question's bytes are buf[12, questionEnd). */
  readonly questionEnd: number
  /** Offset just past the question name: the name's bytes are buf[12, nameEnd). */
  readonly nameEnd: number
}

/** No reply at all (short header, or a response sent to us). */
export interface QueryDrop { readonly reject: 'drop' }

/** Reply with this rcode, an empty question and empty sections (RFC 1035 leaves the rest unknowable). */
export interface QueryRefusal {
  readonly reject: 'notimp' | 'formerr'
  readonly id: number
  readonly opcode: number
  readonly rd: boolean
}

export type QueryRejection = QueryDrop | QueryRefusal

export function isRejection (r: ParsedQuery | QueryRejection): r is QueryRejection {
  return (r as QueryRejection).reject !== undefined
}

const DROP: QueryDrop = Object.freeze({ reject: 'drop' })

function refuse (reject: 'notimp' | 'formerr', id: number, flags: number): QueryRefusal {
  return { reject, id, opcode: (flags >> 11) & 0xf, rd: (flags & 0x0100) !== 0 }
}

/**
 * Skips one resource record at `off` and returns the offset past it, or -1 if it does not fit. When the
 * record is an OPT, `opt` receives its fields (a second OPT is an error, RFC 6891 §6.1.1).
 */
function skipRecord (buf: Uint8Array, off: number, opt: OptScratch | null): number {
  const nameEnd = skipName(buf, off)
  if (nameEnd < 0 || nameEnd + 10 > buf.length) return -1
  const type = u16(buf, nameEnd)
  const rdlen = u16(buf, nameEnd + 8)
  const end = nameEnd + 10 + rdlen
  if (end > buf.length) return -1
  if (type === TYPE.OPT) {
    // OPT belongs in the additional section only, once, owned by the root.
    if (opt === null || opt.seen || nameEnd !== off + 1) return -1
    if (!optionsFit(buf, nameEnd + 10, end)) return -1
    const ttl = u32(buf, nameEnd + 4)
    opt.seen = true
    opt.udpSize = u16(buf, nameEnd + 2)
    opt.version = (ttl >>> 16) & 0xff
    opt.do = (ttl & 0x8000) !== 0
  }
  return end
}

/** The options of an OPT RDATA are {code, length, data} triples that must tile the RDATA exactly. */
function optionsFit (buf: Uint8Array, off: number, end: number): boolean {
  while (off < end) {
    if (off + 4 > end) return false
    off += 4 + u16(buf, off + 2)
  }
  return off === end
}

interface OptScratch { seen: boolean, udpSize: number, version: number, do: boolean }
const opt: OptScratch = { seen: false, udpSize: 0, version: 0, do: false }

export function parseQuery (buf: Uint8Array): ParsedQuery | QueryRejection {
  if (buf.length < HEADER_SIZE) return DROP
  const flags = u16(buf, 2)
  if ((flags & 0x8000) !== 0) return DROP
  const id = u16(buf, 0)
  const opcode = (flags >> 11) & 0xf
  if (opcode !== 0 && opcode !== OPCODE_NOTIFY) return refuse('notimp', id, flags)
  const an = u16(buf, 6)
  const ns = u16(buf, 8)
  const ar = u16(buf, 10)
  if (u16(buf, 4) !== 1 || an > 1 || ns > 1 || ar > 2) return refuse('formerr', id, flags)

  if (!scanQuestionName(buf, HEADER_SIZE)) return refuse('formerr', id, flags)
  const nameEnd = scanned.end
  const questionEnd = nameEnd + 4
  if (questionEnd > buf.length) return refuse('formerr', id, flags)

  let off = questionEnd
  opt.seen = false
  for (let i = 0; i < an + ns; i++) {
    off = skipRecord(buf, off, null)
    if (off < 0) return refuse('formerr', id, flags)
  }
  for (let i = 0; i < ar; i++) {
    off = skipRecord(buf, off, opt)
    if (off < 0) return refuse('formerr', id, flags)
  }

  let edns: Edns | undefined
  if (opt.seen) edns = { udpSize: opt.udpSize, version: opt.version, do: opt.do }
  const query: Query = {
    id,
    opcode,
    rd: (flags & 0x0100) !== 0,
    cd: (flags & 0x0010) !== 0,
    question: { name: scanned.name, lname: scanned.lname, type: u16(buf, nameEnd), class: u16(buf, nameEnd + 2) },
    edns,
  }
  return { query, questionEnd, nameEnd }
}
