// The low-level message builder: one reusable scratch buffer, names written with RFC 1035 §4.1.4
// compression (keyed case-insensitively), and the RDATA of the record types ferry answers with.
// Not reentrant, which is fine: Node runs one encode at a time and nothing here awaits.
import { CLASS_IN, TYPE, type ResourceRecord } from '../message.js'
import { WireError } from './name.js'

/** Past this offset no record can fit any limit (limits are at most 65535), so encoding stops. */
export const MAX_MESSAGE = 65535
/** Compression pointers hold 14 bits of offset. */
const MAX_POINTER = 0x3fff

export class Encoder {
  /** 128 KiB: the last record started below MAX_MESSAGE, and one record is under 64 KiB + a name. */
  readonly buf: Buffer = Buffer.alloc(131072)
  pos = 0
  /** Lower-cased presentation suffix → offset of its first label, for names written after the question. */
  private readonly names = new Map<string, number>()
  /** The question's lname, and for each of its labels the index in it and the wire offset (no strings). */
  private qlname = ''
  // A name has at most 127 labels. Typed arrays with a count: resetting a JS array's length is slow.
  private readonly qStarts = new Int32Array(128)
  private readonly qOffsets = new Int32Array(128)
  private qCount = 0

  reset (): void {
    this.pos = 0
    if (this.names.size > 0) this.names.clear()
    this.qlname = ''
    this.qCount = 0
  }

  u8 (v: number): void { this.buf[this.pos++] = v & 0xff }
  u16 (v: number): void {
    this.buf[this.pos++] = (v >>> 8) & 0xff
    this.buf[this.pos++] = v & 0xff
  }

  u32 (v: number): void {
    this.buf[this.pos++] = (v >>> 24) & 0xff
    this.buf[this.pos++] = (v >>> 16) & 0xff
    this.buf[this.pos++] = (v >>> 8) & 0xff
    this.buf[this.pos++] = v & 0xff
  }

  /** Copies src[from, to) in verbatim at the current offset. */
  copy (src: Uint8Array, from: number, to: number): void {
    for (let i = from; i < to; i++) this.buf[this.pos++] = src[i] as number
  }

  /**
   * Registers the question name that was copied in at offset 12, so that owners equal to it (or to one of
   * its suffixes) become pointers into the client's own bytes and keep the client's case. `lname` is the
   * question's lower-cased presentation name; the wire labels tell where each suffix starts. Kept as
   * indexes rather than Map keys: slicing and hashing five strings per reply was the encoder's top cost.
   */
  seedQuestion (wire: Uint8Array, lname: string): void {
    this.qlname = lname
    let p = 12
    let s = 0
    for (;;) {
      const len = wire[p] as number
      if (len === 0) return
      this.qStarts[this.qCount] = s
      this.qOffsets[this.qCount++] = p
      for (let i = p + 1; i <= p + len; i++) {
        const c = wire[i] as number
        s += c === 0x2e || c === 0x5c ? 2 : 1
      }
      s += 1
      p += len + 1
    }
  }

  /** The wire offset of the question suffix equal to lname[start..], or -1. Compares in place. */
  private questionSuffix (lname: string, start: number): number {
    const q = this.qlname
    const qs = q.length - (lname.length - start)
    if (qs < 0) return -1
    const starts = this.qStarts
    for (let k = 0; k < this.qCount; k++) {
      if (starts[k] !== qs) continue
      for (let i = start, j = qs; i < lname.length; i++, j++) if (lname.charCodeAt(i) !== q.charCodeAt(j)) return -1
      return this.qOffsets[k] as number
    }
    return -1
  }

  /**
   * Writes a presentation name (no trailing dot needed, "\." escapes a dot inside a label). With
   * `compress`, a known suffix becomes a pointer and new suffixes are remembered; without it (SRV
   * targets, RFC 2782) the name is written out in full and not offered to later names either.
   */
  name (name: string, compress: boolean): void {
    if (name === '.') name = ''
    const lname = compress ? lowerAscii(name) : name
    const n = name.length
    let start = 0
    let wire = 1
    while (start < n) {
      if (compress) {
        const inQuestion = this.questionSuffix(lname, start)
        if (inQuestion >= 0) { this.u16(0xc000 | inQuestion); return }
        const key = start === 0 ? lname : lname.slice(start)
        const at = this.names.get(key)
        if (at !== undefined) { this.u16(0xc000 | at); return }
        if (this.pos <= MAX_POINTER) this.names.set(key, this.pos)
      }
      const lenAt = this.pos++
      let i = start
      let len = 0
      for (; i < n; i++) {
        let c = name.charCodeAt(i)
        if (c === 0x2e) break
        if (c === 0x5c && i + 1 < n) c = name.charCodeAt(++i)
        if (c > 0xff) throw new WireError(`name ${JSON.stringify(name)} has a character outside latin1`)
        this.buf[this.pos++] = c
        len++
      }
      if (len === 0 || len > 63) throw new WireError(`name ${JSON.stringify(name)} has a label of ${len} octets`)
      wire += len + 1
      if (wire > 255) throw new WireError(`name ${JSON.stringify(name)} is longer than 255 octets`)
      this.buf[lenAt] = len
      start = i + 1
    }
    this.u8(0)
  }

  /** Writes one IN record. Throws WireError on data that cannot be encoded (bad address, bad name). */
  record (rr: ResourceRecord): void {
    const d = rr.data
    this.name(rr.name, true)
    this.u16(d.type)
    this.u16(CLASS_IN)
    const ttl = rr.ttl
    this.u32(ttl > 0 ? (ttl >= 0x7fffffff ? 0x7fffffff : Math.floor(ttl)) : 0)
    const lenAt = this.pos
    this.pos += 2
    switch (d.type) {
      case TYPE.A: this.ipv4(d.address); break
      case TYPE.AAAA: this.ipv6(d.address); break
      case TYPE.NS: case TYPE.CNAME: case TYPE.PTR: this.name(d.target, true); break
      case TYPE.SRV:
        this.u16(d.priority); this.u16(d.weight); this.u16(d.port)
        this.name(d.target, false)
        break
      case TYPE.TXT: this.texts(d.texts); break
      case TYPE.SOA:
        this.name(d.mname, true); this.name(d.rname, true)
        this.u32(d.serial); this.u32(d.refresh); this.u32(d.retry); this.u32(d.expire); this.u32(d.minimum)
        break
    }
    const rdlen = this.pos - lenAt - 2
    this.buf[lenAt] = rdlen >>> 8
    this.buf[lenAt + 1] = rdlen & 0xff
  }

  /** TXT character-strings: each text split into 255-octet pieces; "" is one empty string. */
  private texts (texts: readonly string[]): void {
    const start = this.pos
    for (const t of texts) {
      const bytes = Buffer.from(t, 'utf8')
      let off = 0
      do {
        const len = Math.min(255, bytes.length - off)
        if (this.pos + 1 + len - start > 65535) throw new WireError('TXT RDATA longer than 65535 octets')
        this.u8(len)
        bytes.copy(this.buf, this.pos, off, off + len)
        this.pos += len
        off += len
      } while (off < bytes.length)
    }
  }

  private ipv4 (text: string): void {
    let octet = -1
    let parts = 0
    for (let i = 0; i <= text.length; i++) {
      const c = i < text.length ? text.charCodeAt(i) : 0x2e
      if (c === 0x2e) {
        if (octet < 0 || parts === 4) throw new WireError(`bad IPv4 address ${JSON.stringify(text)}`)
        this.u8(octet)
        parts++
        octet = -1
      } else if (c >= 0x30 && c <= 0x39) {
        octet = (octet < 0 ? 0 : octet * 10) + c - 0x30
        if (octet > 255) throw new WireError(`bad IPv4 address ${JSON.stringify(text)}`)
      } else {
        throw new WireError(`bad IPv4 address ${JSON.stringify(text)}`)
      }
    }
    if (parts !== 4) throw new WireError(`bad IPv4 address ${JSON.stringify(text)}`)
  }

  private ipv6 (text: string): void {
    const bytes = parseIPv6(text)
    if (bytes === null) throw new WireError(`bad IPv6 address ${JSON.stringify(text)}`)
    this.buf.set(bytes, this.pos)
    this.pos += 16
  }
}

/** lowerName without a regular expression: the encoder calls it for every name it writes. */
function lowerAscii (name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c >= 0x41 && c <= 0x5a) return hasNonAscii(name) ? slowLower(name) : name.toLowerCase()
  }
  return name
}

function hasNonAscii (name: string): boolean {
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) > 0x7f) return true
  return false
}

/** ASCII-only lower-casing of a name that has non-ASCII characters too (toLowerCase would touch them). */
function slowLower (name: string): string {
  let out = ''
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    out += c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 32) : name[i] as string
  }
  return out
}

const v6 = new Uint8Array(16)

/** IPv6 text (RFC 4291 §2.2, with "::" and a trailing dotted quad) → 16 bytes in a shared array, or null. */
export function parseIPv6 (text: string): Uint8Array | null {
  const dbl = text.indexOf('::')
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) return null
  const head = groupsOf(dbl >= 0 ? text.slice(0, dbl) : text, dbl < 0)
  const tail = groupsOf(dbl >= 0 ? text.slice(dbl + 2) : '', true)
  if (head === null || tail === null) return null
  if (dbl < 0 ? head.length !== 8 : head.length + tail.length > 7) return null
  v6.fill(0)
  // Head groups fill from the front, tail groups from the back; "::" is the zeros between.
  for (let g = 0; g < head.length; g++) { v6[2 * g] = (head[g] as number) >> 8; v6[2 * g + 1] = (head[g] as number) & 0xff }
  for (let g = 0; g < tail.length; g++) {
    const at = 8 - tail.length + g
    v6[2 * at] = (tail[g] as number) >> 8; v6[2 * at + 1] = (tail[g] as number) & 0xff
  }
  return v6
}

/** Colon-separated hex groups; a dotted quad may end the address (and counts as two groups). */
function groupsOf (text: string, quadAllowed: boolean): number[] | null {
  if (text === '') return []
  const parts = text.split(':')
  const groups: number[] = []
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string
    if (quadAllowed && i === parts.length - 1 && part.includes('.')) {
      const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(part)
      if (m === null) return null
      const o = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])]
      if (o.some(x => x > 255)) return null
      groups.push(((o[0] as number) << 8) | (o[1] as number), ((o[2] as number) << 8) | (o[3] as number))
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return null
      groups.push(parseInt(part, 16))
    }
  }
  return groups
}
