// Sends encoded element batches (element-wire.ts) to nf_tables over one NETLINK_NETFILTER socket and
// waits for every message's answer. Each batch is its own transaction: a refused message aborts its
// batch only, and the error names the map and the kernel's errno.
import { NETLINK_NETFILTER, RawNetlinkSocket } from '../../netlink/raw.js'
import { FerryError } from '../../errors/errors.js'
import type { IPFamily } from '../../net/ip.js'
import { NLMSG_ERROR } from '../ipvs/constants.js'
import { errnoOf, parseMessages } from '../../netlink/wire.js'
import { BATCH_BYTES, type EncodedBatch } from './element-wire.js'

const TIMEOUT_MS = 10_000

/** Loads the batches into the family's ferry table, in order; rejects once all were answered if any failed. */
export type ElementLoader = (family: IPFamily, batches: readonly EncodedBatch[]) => Promise<void>

export const netlinkLoadElements: ElementLoader = async (_family, batches) => {
  if (batches.length === 0) return
  const maps = new Map<number, { map: string, count: number }>()
  for (const b of batches) for (const m of b.messages) maps.set(m.seq, m)
  const socket = new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 1 << 20, sendBufferSize: 2 * BATCH_BYTES })
  try {
    await new Promise<void>((resolve, reject) => {
      let answered = 0
      let failure: FerryError | undefined
      const finish = (e?: FerryError): void => {
        clearTimeout(timer)
        if (e !== undefined) reject(e); else resolve()
      }
      const timer = setTimeout(() => {
        finish(new FerryError('FERRY_ERR_NETLINK', `nf_tables answered ${answered} of ${maps.size} element messages within ${TIMEOUT_MS} ms`, {}))
      }, TIMEOUT_MS)
      socket.on('error', (e: Error) => { finish(new FerryError('FERRY_ERR_NETLINK', `loading map elements: ${e.message}`, {}, { cause: e })) })
      socket.on('message', (datagram: Buffer) => {
        let msgs
        try {
          msgs = parseMessages(datagram)
        } catch (e) {
          finish(e instanceof FerryError ? e : new FerryError('FERRY_ERR_NETLINK', 'malformed reply to element messages', {}))
          return
        }
        for (const msg of msgs) {
          if (msg.type !== NLMSG_ERROR) continue
          const m = maps.get(msg.seq)
          const errno = errnoOf(msg.payload)
          if (m === undefined) {
            // The batch as a whole was refused (its BEGIN answered): nothing more comes for it.
            if (errno !== 0) finish(new FerryError('FERRY_ERR_APPLY', `nf_tables refused an element batch: errno ${errno}`, { errno }))
            continue
          }
          maps.delete(msg.seq)
          answered++
          if (errno !== 0 && failure === undefined) {
            failure = new FerryError('FERRY_ERR_APPLY', `nf_tables refused ${m.count} elements of ${m.map}: errno ${errno}`, { map: m.map, errno })
          }
        }
        if (maps.size === 0) finish(failure)
      })
      const send = (i: number): void => {
        const b = batches[i]
        if (b === undefined) return
        socket.send(b.bytes, {}, (e?: Error | null) => {
          if (e != null) finish(new FerryError('FERRY_ERR_NETLINK', `sending element batch ${i + 1} of ${batches.length}: ${e.message}`, {}, { cause: e }))
          else send(i + 1)
        })
      }
      send(0)
    })
  } finally {
    socket.close()
  }
}
