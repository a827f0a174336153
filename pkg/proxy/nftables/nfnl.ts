// Reading nf_tables over netlink: one NETLINK_NETFILTER socket, one dump at a time (the kernel runs one
// dump per socket), messages framed and attributes parsed here. nft 1.0.6 fetches every set of a table for
// `list chain`, `list set`s of other names and `monitor` (seconds at 10k Services); these dumps ask the
// kernel for just the chain or set wanted.
import netlink from 'netlink'
import { FerryError } from '../../errors/errors.js'
import type { IPFamily } from '../../net/ip.js'

const NETLINK_NETFILTER = 12
export const NFNL_SUBSYS_NFTABLES = 10
const NLMSG_ERROR = 2
const NLMSG_DONE = 3
const NLM_F_REQUEST = 0x1
const NLM_F_DUMP = 0x300
const NFPROTO = { IPv4: 2, IPv6: 10 } as const
export const ENOENT = 2
const TIMEOUT_MS = 5000

/** One string attribute (NUL-terminated, padded to 4). */
export function strAttr (type: number, value: string): Buffer {
  const payload = Buffer.from(value + '\0')
  const b = Buffer.alloc((4 + payload.length + 3) & ~3)
  b.writeUInt16LE(4 + payload.length, 0)
  b.writeUInt16LE(type, 2)
  payload.copy(b, 4)
  return b
}

/** A dump request of nf_tables message `msg` for the family, with its filter attributes. */
export function dumpRequest (msg: number, family: IPFamily, seq: number, attrs: readonly Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([NFPROTO[family], 0, 0, 0]), ...attrs])
  const h = Buffer.alloc(16)
  h.writeUInt32LE(16 + body.length, 0)
  h.writeUInt16LE((NFNL_SUBSYS_NFTABLES << 8) | msg, 4)
  h.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6)
  h.writeUInt32LE(seq, 8)
  return Buffer.concat([h, body])
}

export interface DumpChunk {
  /** Attribute areas (after the 4-byte nfgenmsg) of the messages of type `(subsys << 8) | reply`. */
  readonly bodies: Buffer[]
  readonly done: boolean
  /** The kernel's errno when it refused (0 otherwise). */
  readonly errno: number
}

/** Splits one reply datagram of sequence `seq` into the reply bodies, DONE and an error. */
export function readDump (datagram: Buffer, seq: number, reply: number): DumpChunk {
  const bodies: Buffer[] = []
  let done = false
  let errno = 0
  for (let off = 0; off + 16 <= datagram.length;) {
    const len = datagram.readUInt32LE(off)
    if (len < 16 || off + len > datagram.length) break
    const type = datagram.readUInt16LE(off + 4)
    if (datagram.readUInt32LE(off + 8) === seq) {
      if (type === NLMSG_DONE) done = true
      else if (type === NLMSG_ERROR) {
        errno = len >= 20 ? -datagram.readInt32LE(off + 16) : 0
        done = true
      } else if (type === ((NFNL_SUBSYS_NFTABLES << 8) | reply) && len >= 20) bodies.push(datagram.subarray(off + 20, off + len))
    }
    off += (len + 3) & ~3
  }
  return { bodies, done, errno }
}

/** Attributes of an area as type → payload (the last of a repeated type wins; use attrList for lists). */
export function attrs (area: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>()
  for (const [type, payload] of attrList(area)) out.set(type, payload)
  return out
}

/** Attributes in order; the nested flag (0x8000) and byte-order flag (0x4000) are masked off the type. */
export function attrList (area: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = []
  for (let off = 0; off + 4 <= area.length;) {
    const len = area.readUInt16LE(off)
    if (len < 4 || off + len > area.length) break
    out.push([area.readUInt16LE(off + 2) & 0x3fff, area.subarray(off + 4, off + len)])
    off += (len + 3) & ~3
  }
  return out
}

/** A NUL-terminated string attribute's text. */
export function attrText (b: Buffer | undefined): string {
  if (b === undefined) return ''
  const end = b.indexOf(0)
  return b.subarray(0, end < 0 ? b.length : end).toString()
}

/** Runs dumps one after another on one socket in this process's netns; `ask` gets a dump function. */
export async function withNfnl<T> (ask: (dump: (request: (seq: number) => Buffer, reply: number, what: string) => Promise<Buffer[]>) => Promise<T>): Promise<T> {
  const socket = new netlink.RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 16 })
  let seq = 0
  let pending: ((datagram: Buffer) => void) | null = null
  let failed: ((e: Error) => void) | null = null
  socket.on('message', (msg: Buffer) => { pending?.(msg) })
  socket.on('error', (e: Error) => { failed?.(e) })
  const dump = async (request: (seq: number) => Buffer, reply: number, what: string): Promise<Buffer[]> => {
    const s = ++seq
    return await new Promise<Buffer[]>((resolve, reject) => {
      const bodies: Buffer[] = []
      const end = (fn: () => void): void => { clearTimeout(timer); pending = null; failed = null; fn() }
      const timer = setTimeout(() => { end(() => { reject(new FerryError('FERRY_ERR_NETLINK', `no answer from nf_tables for ${what} within ${TIMEOUT_MS} ms`, {})) }) }, TIMEOUT_MS)
      failed = e => { end(() => { reject(new FerryError('FERRY_ERR_NETLINK', `${what}: ${e.message}`, {}, { cause: e })) }) }
      pending = datagram => {
        const r = readDump(datagram, s, reply)
        bodies.push(...r.bodies)
        if (!r.done) return
        if (r.errno === 0 || r.errno === ENOENT) end(() => { resolve(r.errno === 0 ? bodies : []) })
        else end(() => { reject(new FerryError('FERRY_ERR_NETLINK', `${what}: errno ${r.errno}`, { errno: r.errno })) })
      }
      socket.send(request(s), {}, (e?: Error | null) => { if (e != null) failed?.(e) })
    })
  }
  try {
    return await ask(dump)
  } finally {
    socket.close()
  }
}
