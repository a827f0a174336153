// Reading nf_tables over netlink: one NETLINK_NETFILTER socket, one dump at a time (the kernel runs one
// dump per socket), messages framed and attributes parsed here. nft 1.0.6 fetches every set of a table for
// `list chain`, `list set`s of other names and `monitor` (seconds at 10k Services); these dumps ask the
// kernel for just the chain or set wanted.
import { NETLINK_NETFILTER, RawNetlinkSocket } from '../../netlink/raw.js'
import { FerryError } from '../../errors/errors.js'
import type { IPFamily } from '../../net/ip.js'
import { NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_DUMP, NLM_F_REQUEST } from '../ipvs/constants.js'
import { AttrWriter, align4, errnoOf, frame } from '../../netlink/wire.js'

export const NFNL_SUBSYS_NFTABLES = 10
const NFGENMSG_LEN = 4
/** nfgenmsg's family per address family (linux/netfilter.h). */
export const NFPROTO = { IPv4: 2, IPv6: 10 } as const
export const ENOENT = 2
const TIMEOUT_MS = 5000

/** A dump request of nf_tables message `msg` for the family, filtered by string attributes (type, value). */
export function dumpRequest (msg: number, family: IPFamily, seq: number, filters: ReadonlyArray<readonly [number, string]>): Buffer {
  const body = new AttrWriter(64).raw(Buffer.from([NFPROTO[family], 0, 0, 0]))
  for (const [type, value] of filters) body.string(type, value)
  return frame((NFNL_SUBSYS_NFTABLES << 8) | msg, NLM_F_REQUEST | NLM_F_DUMP, seq, body.finish())
}

export interface DumpChunk {
  /** Attribute areas (after the 4-byte nfgenmsg) of the messages of type `(subsys << 8) | reply`. */
  readonly bodies: Buffer[]
  readonly done: boolean
  /** The kernel's errno when it refused (0 otherwise). */
  readonly errno: number
}

/**
 * Splits one reply datagram of sequence `seq` into the reply bodies, DONE and an error. Unlike
 * parseMessages it stops at a malformed length instead of throwing: it runs in the socket's handler.
 */
export function readDump (datagram: Buffer, seq: number, reply: number): DumpChunk {
  const bodies: Buffer[] = []
  let done = false
  let errno = 0
  for (let off = 0; off + NLMSG_HDRLEN <= datagram.length;) {
    const len = datagram.readUInt32LE(off)
    if (len < NLMSG_HDRLEN || off + len > datagram.length) break
    const type = datagram.readUInt16LE(off + 4)
    if (datagram.readUInt32LE(off + 8) === seq) {
      if (type === NLMSG_DONE) done = true
      else if (type === NLMSG_ERROR) {
        errno = errnoOf(datagram.subarray(off + NLMSG_HDRLEN, off + len))
        done = true
      } else if (type === ((NFNL_SUBSYS_NFTABLES << 8) | reply) && len >= NLMSG_HDRLEN + NFGENMSG_LEN) {
        bodies.push(datagram.subarray(off + NLMSG_HDRLEN + NFGENMSG_LEN, off + len))
      }
    }
    off += align4(len)
  }
  return { bodies, done, errno }
}

/** Runs dumps one after another on one socket in this process's netns; `ask` gets a dump function. */
export async function withNfnl<T> (ask: (dump: (request: (seq: number) => Buffer, reply: number, what: string) => Promise<Buffer[]>) => Promise<T>): Promise<T> {
  const socket = new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 16 })
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
