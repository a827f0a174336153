// Map and set elements as nf_tables netlink: NEWSETELEM messages in batches (BATCH_BEGIN … BATCH_END),
// encoded from the same element text the renderer prints, so one model feeds both `nft -f` and the
// kernel directly. nft 1.0.6 spends ~0.7 s of a 10k-Service load parsing and evaluating 60k element
// lines in userspace; the kernel takes ~50 ms for the same elements sent as bytes. Pure: no socket here.
import { FerryError } from '../../errors/errors.js'
import { ipBytes, ipFromBytes, ipv4Number, type IPFamily } from '../../net/ip.js'
import { NLA_F_NESTED, NLM_F_ACK, NLM_F_REQUEST, NLMSG_HDRLEN } from '../ipvs/constants.js'
import { align4, frame, nulString, parseAttrList, parseAttrs, parseMessages } from '../../netlink/wire.js'
import { MapName, TABLE } from './names.js'
import { NFNL_SUBSYS_NFTABLES, NFPROTO } from './nfnl.js'

export const NFT_MSG_NEWSETELEM = 12
export const NFNL_MSG_BATCH_BEGIN = 16
export const NFNL_MSG_BATCH_END = 17
const NLM_F_CREATE = 0x400

const NFTA_SET_ELEM_LIST_TABLE = 1
const NFTA_SET_ELEM_LIST_SET = 2
const NFTA_SET_ELEM_LIST_ELEMENTS = 3
const NFTA_LIST_ELEM = 1
const NFTA_SET_ELEM_KEY = 1
const NFTA_SET_ELEM_DATA = 2
const NFTA_DATA_VALUE = 1
const NFTA_DATA_VERDICT = 2
const NFTA_VERDICT_CODE = 1
const NFTA_VERDICT_CHAIN = 2

/** Verdict codes (linux/netfilter.h, linux/netfilter/nf_tables.h). */
const VERDICT: Readonly<Record<string, number>> = { drop: 0, accept: 1, jump: -3, goto: -4, return: -5 }
const VERDICT_NAME = new Map(Object.entries(VERDICT).map(([k, v]) => [v, k]))
const PROTO: Readonly<Record<string, number>> = { tcp: 6, udp: 17, sctp: 132 }
const PROTO_NAME = new Map(Object.entries(PROTO).map(([k, v]) => [v, k]))

/** One field of a concatenation; each takes a multiple of 4 bytes in the key (the kernel's registers). */
export type Field = 'addr' | 'proto' | 'port' | 'u32'

export interface ElementLayout {
  readonly key: readonly Field[]
  /** A verdict map, a map to a concatenation (dnat's address . port), or a set. */
  readonly data: 'verdict' | readonly Field[] | null
}

const VIP_KEY: readonly Field[] = ['addr', 'proto', 'port']
const NP_KEY: readonly Field[] = ['proto', 'port']
const FIXED: ReadonlyMap<string, ElementLayout> = new Map<string, ElementLayout>([
  [MapName.SERVICE_IPS, { key: VIP_KEY, data: 'verdict' }],
  [MapName.NO_ENDPOINT_CLUSTER, { key: VIP_KEY, data: 'verdict' }],
  [MapName.NO_ENDPOINT_EXTERNAL, { key: VIP_KEY, data: 'verdict' }],
  [MapName.SERVICE_NODEPORTS, { key: NP_KEY, data: 'verdict' }],
  [MapName.NO_ENDPOINT_NODEPORTS, { key: NP_KEY, data: 'verdict' }],
  [MapName.FIREWALL_IPS, { key: VIP_KEY, data: null }],
  [MapName.HAIRPIN, { key: ['addr', 'addr'], data: null }],
  [MapName.CLUSTER_IPS, { key: ['addr'], data: null }],
])
const PICK_VIP: ElementLayout = { key: [...VIP_KEY, 'u32'], data: ['addr', 'port'] }
const PICK_NP: ElementLayout = { key: [...NP_KEY, 'u32'], data: ['addr', 'port'] }
const PICK_MAP = /^(vip|np)-(cluster|local)-\d+$/

/** The element layout of a map or set of the ferry table, from its name (layout.ts declares them); null for others. */
export function elementLayout (map: string): ElementLayout | null {
  const fixed = FIXED.get(map)
  if (fixed !== undefined) return fixed
  const m = PICK_MAP.exec(map)
  if (m === null) return null
  return m[1] === 'vip' ? PICK_VIP : PICK_NP
}

const fieldBytes = (f: Field, family: IPFamily): number => f === 'addr' && family === 'IPv6' ? 16 : 4

function bad (map: string, element: string, why: string): FerryError {
  return new FerryError('FERRY_ERR_APPLY', `cannot encode element "${element}" of ${map}: ${why}`, { map, element })
}

/** Digits only, at most `max`; -1 otherwise. Scanned in place: the hot path allocates nothing. */
function decimal (s: string, from: number, to: number, max: number): number {
  if (to <= from || to - from > 10) return -1
  let v = 0
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v > max ? -1 : v
}

/**
 * Writes one concatenation field, the text `s[from, to)`, at `at` (its 4-byte slots zeroed first);
 * returns the bytes taken.
 */
function writeField (b: Buffer, at: number, f: Field, s: string, from: number, to: number, family: IPFamily, map: string): number {
  const size = fieldBytes(f, family)
  for (let i = 0; i < size; i++) b[at + i] = 0
  if (f === 'addr') {
    if (family === 'IPv4') {
      const v = ipv4Number(s, from, to)
      if (v < 0) throw bad(map, s, `"${s.slice(from, to)}" is not an IPv4 address`)
      b[at] = v >>> 24
      b[at + 1] = (v >>> 16) & 0xff
      b[at + 2] = (v >>> 8) & 0xff
      b[at + 3] = v & 0xff
    } else {
      const bytes = s.includes(':') ? ipBytes(s.slice(from, to)) : null
      if (bytes === null || bytes.length !== 16) throw bad(map, s, `"${s.slice(from, to)}" is not an IPv6 address`)
      for (let i = 0; i < 16; i++) b[at + i] = bytes[i] as number
    }
  } else if (f === 'proto') {
    const p = PROTO[s.slice(from, to)]
    if (p === undefined) throw bad(map, s, `unknown protocol "${s.slice(from, to)}"`)
    b[at] = p
  } else if (f === 'port') {
    const v = decimal(s, from, to, 0xffff)
    if (v < 0) throw bad(map, s, `"${s.slice(from, to)}" is not a port`)
    b[at] = v >>> 8
    b[at + 1] = v & 0xff
  } else {
    const v = decimal(s, from, to, 0xffffffff)
    if (v < 0) throw bad(map, s, `"${s.slice(from, to)}" is not a 32-bit number`)
    // numgen's register is in host order, and every node host is little-endian
    b[at] = v & 0xff
    b[at + 1] = (v >>> 8) & 0xff
    b[at + 2] = (v >>> 16) & 0xff
    b[at + 3] = v >>> 24
  }
  return size
}

/** A message's elements are one nested attribute: its length is 16 bits. */
const LIST_MAX = 60_000
/** The largest element: a 64-byte key and a verdict naming a 256-byte chain, with their headers. */
const ELEMENT_MAX = 400
/**
 * Bytes per batch (one sendmsg): far below the socket's send buffer where `net.core.wmem_max` is the
 * default 212992 (the buffer is twice that), and large enough that 60k elements take ~25 batches.
 */
export const BATCH_BYTES = 256 * 1024

export interface EncodedMessage {
  readonly seq: number
  readonly map: string
  readonly count: number
  readonly bytes: Buffer
}

/** One batch: the bytes of one sendmsg, and the element messages in it (each asks for an ack). */
export interface EncodedBatch {
  readonly bytes: Buffer
  readonly messages: readonly EncodedMessage[]
}

/**
 * An open NEWSETELEM message body of one map, elements appended until its list is full. Written in place
 * with byte stores rather than through AttrWriter (ipvs/wire.ts): a failed element rolls the offset back,
 * and 100k elements per full load are on ferryd's start-up path.
 */
class OpenMessage {
  readonly buf = Buffer.alloc(LIST_MAX + 512)
  off = 0
  count = 0
  private listAt = 0

  constructor (readonly map: string, readonly layout: ElementLayout, family: IPFamily) {
    this.buf[this.off] = NFPROTO[family]
    this.off += 4
    this.string(NFTA_SET_ELEM_LIST_TABLE, TABLE)
    this.string(NFTA_SET_ELEM_LIST_SET, map)
    this.listAt = this.off
    this.header(0, NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED)
  }

  get full (): boolean { return this.off - this.listAt > LIST_MAX - ELEMENT_MAX }

  header (len: number, type: number): void {
    const b = this.buf
    const o = this.off
    b[o] = len & 0xff
    b[o + 1] = len >>> 8
    b[o + 2] = type & 0xff
    b[o + 3] = type >>> 8
    this.off += 4
  }

  nest (type: number): number { const at = this.off; this.header(0, type | NLA_F_NESTED); return at }
  end (at: number): void { const len = this.off - at; this.buf[at] = len & 0xff; this.buf[at + 1] = len >>> 8 }

  string (type: number, s: string): void {
    const n = Buffer.byteLength(s)
    this.header(4 + n + 1, type)
    this.buf.write(s, this.off)
    this.buf.fill(0, this.off + n, this.off + align4(n + 1))
    this.off += align4(n + 1)
  }

  /**
   * A value attribute holding the concatenation `s[from, to)`, fields separated by " . " (writeField
   * throws on a malformed one; `what` names the part in the error).
   */
  value (fields: readonly Field[], s: string, from: number, to: number, family: IPFamily, what: string): void {
    const at = this.off
    this.header(0, NFTA_DATA_VALUE)
    let pos = from
    for (let i = 0; i < fields.length; i++) {
      const sep = s.indexOf(' . ', pos)
      const last = i === fields.length - 1
      if (last ? sep >= 0 && sep < to : sep < 0 || sep >= to) {
        const n = s.slice(from, to).split(' . ').length
        throw bad(this.map, s, `the ${what} has ${n} fields, not ${fields.length}`)
      }
      const end = last ? to : sep
      this.off += writeField(this.buf, this.off, fields[i] as Field, s, pos, end, family, this.map)
      pos = end + 3
    }
    this.end(at)
  }

  close (seq: number): EncodedMessage {
    this.end(this.listAt)
    const bytes = frame((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, seq, this.buf.subarray(0, this.off))
    return { seq, map: this.map, count: this.count, bytes }
  }
}

/** BATCH_BEGIN or BATCH_END: an nfgenmsg naming the nf_tables subsystem in res_id (big-endian). */
function batchMarker (type: number, seq: number): Buffer {
  return frame(type, NLM_F_REQUEST, seq, Uint8Array.of(0, 0, NFNL_SUBSYS_NFTABLES >> 8, NFNL_SUBSYS_NFTABLES & 0xff))
}

/**
 * Element text (`key : data` or `key`, the renderer's form) encoded into NEWSETELEM messages per map and
 * packed into batches. `add` throws FERRY_ERR_APPLY naming the map and the element it cannot encode.
 */
export class ElementEncoder {
  private readonly open = new Map<string, OpenMessage>()
  private readonly done: EncodedMessage[] = []
  private seq: number

  constructor (readonly family: IPFamily, firstSeq = 1) { this.seq = firstSeq }

  /** Whether `map`'s elements can be encoded here. */
  takes (map: string): boolean { return this.open.has(map) || elementLayout(map) !== null }

  add (map: string, element: string): void {
    let m = this.open.get(map)
    if (m === undefined) {
      const layout = elementLayout(map)
      if (layout === null) throw bad(map, element, 'no element layout for this map')
      m = new OpenMessage(map, layout, this.family)
      this.open.set(map, m)
    }
    const layout = m.layout
    const colon = element.indexOf(' : ')
    if ((colon >= 0) !== (layout.data !== null)) throw bad(map, element, layout.data === null ? 'a set element has no data' : 'a map element needs data')
    const start = m.off
    try {
      const el = m.nest(NFTA_LIST_ELEM)
      const key = m.nest(NFTA_SET_ELEM_KEY)
      m.value(layout.key, element, 0, colon < 0 ? element.length : colon, this.family, 'key')
      m.end(key)
      if (layout.data !== null) {
        const data = m.nest(NFTA_SET_ELEM_DATA)
        if (layout.data === 'verdict') this.verdict(m, map, element, element.slice(colon + 3))
        else m.value(layout.data, element, colon + 3, element.length, this.family, 'data')
        m.end(data)
      }
      m.end(el)
    } catch (e) {
      m.off = start
      throw e
    }
    m.count++
    if (m.full) { this.done.push(m.close(++this.seq)); this.open.delete(map) }
  }

  private verdict (m: OpenMessage, map: string, element: string, text: string): void {
    const space = text.indexOf(' ')
    const word = space < 0 ? text : text.slice(0, space)
    const chain = space < 0 ? undefined : text.slice(space + 1)
    const code = VERDICT[word]
    const needsChain = word === 'goto' || word === 'jump'
    if (code === undefined || needsChain !== (chain !== undefined) || chain === '' || chain?.includes(' ') === true) throw bad(map, element, `"${text}" is not a verdict`)
    const v = m.nest(NFTA_DATA_VERDICT)
    m.header(8, NFTA_VERDICT_CODE)
    m.buf.writeInt32BE(code, m.off)
    m.off += 4
    if (chain !== undefined) m.string(NFTA_VERDICT_CHAIN, chain)
    m.end(v)
  }

  /** Every element added so far, in batches of at most `batchBytes` (a message is never split). */
  finish (batchBytes = BATCH_BYTES): EncodedBatch[] {
    for (const m of this.open.values()) if (m.count > 0) this.done.push(m.close(++this.seq))
    this.open.clear()
    const batches: EncodedBatch[] = []
    let parts: Buffer[] = []
    let messages: EncodedMessage[] = []
    let size = 0
    const flush = (): void => {
      if (messages.length === 0) return
      parts.unshift(batchMarker(NFNL_MSG_BATCH_BEGIN, ++this.seq))
      parts.push(batchMarker(NFNL_MSG_BATCH_END, ++this.seq))
      batches.push({ bytes: Buffer.concat(parts), messages })
      parts = []
      messages = []
      size = 0
    }
    for (const m of this.done) {
      if (size + m.bytes.length > batchBytes - 2 * (NLMSG_HDRLEN + 4)) flush()
      parts.push(m.bytes)
      messages.push(m)
      size += m.bytes.length
    }
    flush()
    this.done.length = 0
    return batches
  }
}

function readField (b: Buffer, at: number, f: Field, family: IPFamily): string {
  if (f === 'addr') return ipFromBytes(b.subarray(at, at + fieldBytes(f, family)))
  if (f === 'proto') return PROTO_NAME.get(b[at] ?? 0) ?? String(b[at])
  if (f === 'port') return String(b.readUInt16BE(at))
  return String(b.readUInt32LE(at))
}

function readValue (v: Buffer, fields: readonly Field[], family: IPFamily): string {
  const out: string[] = []
  let at = 0
  for (const f of fields) { out.push(readField(v, at, f, family)); at += fieldBytes(f, family) }
  return out.join(' . ')
}

export interface DecodedElements { readonly seq: number, readonly map: string, readonly elements: readonly string[] }

/**
 * The element messages of batches, back as text (the stateful fake's and the tests' view of what the
 * kernel would receive). Throws on anything this encoder does not produce.
 */
export function decodeBatches (batches: readonly Buffer[], family: IPFamily): DecodedElements[] {
  const out: DecodedElements[] = []
  for (const batch of batches) {
    const msgs = parseMessages(batch)
    if (msgs[0]?.type !== NFNL_MSG_BATCH_BEGIN || msgs[msgs.length - 1]?.type !== NFNL_MSG_BATCH_END) throw new Error('a batch must start with BATCH_BEGIN and end with BATCH_END')
    for (const msg of msgs.slice(1, -1)) {
      if (msg.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM)) throw new Error(`unexpected message type ${msg.type}`)
      if (msg.payload[0] !== NFPROTO[family]) throw new Error(`message family ${String(msg.payload[0])} is not ${family}`)
      const attrs = parseAttrs(msg.payload.subarray(4))
      const map = nulString(attrs.get(NFTA_SET_ELEM_LIST_SET))
      const layout = elementLayout(map)
      if (layout === null || nulString(attrs.get(NFTA_SET_ELEM_LIST_TABLE)) !== TABLE) throw new Error(`unexpected table or map ${map}`)
      const elements: string[] = []
      for (const [type, body] of parseAttrList(attrs.get(NFTA_SET_ELEM_LIST_ELEMENTS) ?? Buffer.alloc(0))) {
        if (type !== NFTA_LIST_ELEM) continue
        const el = parseAttrs(body)
        const key = parseAttrs(el.get(NFTA_SET_ELEM_KEY) ?? Buffer.alloc(0)).get(NFTA_DATA_VALUE) ?? Buffer.alloc(0)
        let text = readValue(key, layout.key, family)
        const data = el.get(NFTA_SET_ELEM_DATA)
        if (data !== undefined) {
          const d = parseAttrs(data)
          const verdict = d.get(NFTA_DATA_VERDICT)
          if (verdict !== undefined) {
            const v = parseAttrs(verdict)
            const code = (v.get(NFTA_VERDICT_CODE) ?? Buffer.alloc(4)).readInt32BE(0)
            const chain = v.get(NFTA_VERDICT_CHAIN)
            text += ` : ${VERDICT_NAME.get(code) ?? String(code)}${chain === undefined ? '' : ` ${nulString(chain)}`}`
          } else if (layout.data !== null && layout.data !== 'verdict') {
            text += ` : ${readValue(d.get(NFTA_DATA_VALUE) ?? Buffer.alloc(0), layout.data, family)}`
          }
        }
        elements.push(text)
      }
      out.push({ seq: msg.seq, map, elements })
    }
  }
  return out
}
