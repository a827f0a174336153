// The real IpvsKernel: the IPVS generic-netlink family over one NETLINK_GENERIC socket. Changes are
// pipelined (a window of requests in flight, many per sendmsg, each acked and matched by sequence
// number); dumps run one at a time, as the kernel allows one per socket.
import { getSystemErrorName } from 'node:util'
import { FerryError, errorMessage, isFerryError } from '../../errors/errors.js'
import {
  decodeDestinationMessage, decodeInfoMessage, decodeServiceMessage, describeKey, encodeDestinationDump, encodeFlush,
  encodeGetInfo, encodeOp, encodeServiceDump,
} from './codec.js'
import {
  EINVAL, ENOENT, GENL_ID_CTRL, IPVS_GENL_NAME, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
  NLMSG_NOOP, NLMSG_OVERRUN,
} from './constants.js'
import { openGenericNetlink, type GenericNetlinkOptions, type NetlinkTransport } from './transport.js'
import type { IpvsInfo, IpvsKernel, IpvsOp, IpvsOpResult, RealServer, VirtualServer, VirtualServerKey } from './types.js'
import { decodeFamilyId, encodeGetFamily, errnoOf, frame, parseMessages, type NetlinkMessage } from './wire.js'

export interface IpvsKernelOptions extends GenericNetlinkOptions {
  /** Requests awaiting their ack at most; their acks must fit the receive buffer. Default 256. */
  window?: number
  /** Bytes per sendmsg at most (the kernel refuses more than SO_SNDBUF). Default 32 KiB. */
  maxDatagram?: number
  /** Fail everything outstanding when nothing arrives for this long while replies are due. Default 30 s. */
  timeoutMs?: number
}

/** 'ack': an NLMSG_ERROR ends it (changes); 'reply': the first answer (doit GETs); 'dump': parts until NLMSG_DONE. */
type Want = 'ack' | 'reply' | 'dump'

interface Request {
  type: number
  flags: number
  payload: Buffer
  want: Want
  parts: NetlinkMessage[]
  /** errno 0 = ok, else the kernel's positive errno. */
  done: (errno: number, parts: NetlinkMessage[]) => void
  fail: (err: Error) => void
}

/**
 * A queued run of requests made one at a time as the window frees: a full sync's tens of thousands of
 * changes then hold one window of encoded messages and callbacks at a time, not all of them at once.
 */
interface Feed {
  /** The next request, or undefined when the feed is spent. */
  next: () => Request | undefined
  fail: (err: Error) => void
}

const isFeed = (q: Request | Feed): q is Feed => 'next' in q

export class NetlinkIpvsKernel implements IpvsKernel {
  /** The IPVS family's id, as nlctrl resolved it (-1 until then). */
  familyId = -1
  private readonly window: number
  private readonly maxDatagram: number
  private readonly timeoutMs: number
  private readonly queue: Array<Request | Feed> = []
  private head = 0
  private readonly inFlight = new Map<number, Request>()
  private seq = 0
  private closed = false
  private referenced = false
  private lastActivity = 0
  private timer: NodeJS.Timeout | undefined
  /** Dumps queue behind each other: a second dump on one socket gets EBUSY. */
  private dumpLane: Promise<unknown> = Promise.resolve()

  constructor (private readonly transport: NetlinkTransport, options: IpvsKernelOptions = {}) {
    this.window = Math.max(1, options.window ?? 256)
    this.maxDatagram = Math.max(1024, options.maxDatagram ?? 32 << 10)
    this.timeoutMs = options.timeoutMs ?? 30_000
    transport.onDatagram(d => this.receive(d))
    transport.onError(err => this.failAll(new FerryError('FERRY_ERR_NETLINK', `IPVS netlink socket failed: ${err.message}`, errnoDetail(err), { cause: err })))
  }

  /** Resolves the "IPVS" family through nlctrl; ENOENT means the module is not loaded. */
  async resolveFamily (): Promise<number> {
    const id = await this.lookupFamily(IPVS_GENL_NAME)
    if (id === null) {
      throw new FerryError('FERRY_ERR_IPVS_UNAVAILABLE',
        'IPVS is not available in this kernel: generic netlink family "IPVS" not found (module ip_vs not loaded; modprobe ip_vs)',
        { errno: ENOENT, family: IPVS_GENL_NAME })
    }
    this.familyId = id
    return id
  }

  /** A generic-netlink family's id (CTRL_CMD_GETFAMILY), or null when the kernel has none of that name. */
  async lookupFamily (name: string): Promise<number | null> {
    const { errno, parts } = await this.request(GENL_ID_CTRL, NLM_F_REQUEST, encodeGetFamily(name), 'reply')
    if (errno === ENOENT) return null
    if (errno !== 0) throw kernelError(`resolving generic netlink family "${name}"`, errno)
    const reply = parts.find(m => m.type === GENL_ID_CTRL)
    if (reply === undefined) throw new FerryError('FERRY_ERR_NETLINK', `nlctrl answered the lookup of "${name}" with no family`)
    return decodeFamilyId(reply.payload)
  }

  async listServices (): Promise<VirtualServer[]> {
    const parts = await this.dump(encodeServiceDump(), 'listing IPVS services')
    const out: VirtualServer[] = []
    for (const m of parts) {
      const s = m.type === this.familyId ? decodeServiceMessage(m.payload) : null
      if (s !== null) out.push(s)
    }
    return out
  }

  async listDestinations (service: VirtualServerKey): Promise<RealServer[]> {
    const parts = await this.dump(encodeDestinationDump(service), `listing the destinations of ${describeKey(service)}`)
    const out: RealServer[] = []
    for (const m of parts) {
      const d = m.type === this.familyId ? decodeDestinationMessage(m.payload, service.family) : null
      if (d !== null) out.push(d)
    }
    return out
  }

  async apply (ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
    this.assertResolved()
    const results = new Array<IpvsOpResult>(ops.length)
    if (ops.length === 0) return results
    return await new Promise<IpvsOpResult[]>((resolve, reject) => {
      let next = 0
      let left = ops.length
      let failed = false
      const settle = (i: number, op: IpvsOp, errno: number): void => {
        results[i] = { op, errno }
        if (--left === 0) resolve(results)
      }
      const fail = (err: Error): void => { if (!failed) { failed = true; reject(err) } }
      this.queue.push({
        next: () => {
          while (next < ops.length && !failed) {
            const i = next++
            const op = ops[i] as IpvsOp
            let payload: Buffer
            try {
              payload = encodeOp(op)
            } catch (e) {
              if (!isFerryError(e, 'FERRY_ERR_INVALID_OBJECT')) { fail(e as Error); return undefined }
              settle(i, op, EINVAL) // what the kernel answers to input it cannot parse
              continue
            }
            return { type: this.familyId, flags: NLM_F_REQUEST | NLM_F_ACK, payload, want: 'ack', parts: [], done: errno => { settle(i, op, errno) }, fail }
          }
          return undefined
        },
        fail,
      })
      this.pump()
    })
  }

  async flush (): Promise<void> {
    this.assertResolved()
    const { errno } = await this.request(this.familyId, NLM_F_REQUEST | NLM_F_ACK, encodeFlush(), 'ack')
    if (errno !== 0) throw kernelError('flushing IPVS', errno)
  }

  async info (): Promise<IpvsInfo> {
    this.assertResolved()
    const { errno, parts } = await this.request(this.familyId, NLM_F_REQUEST, encodeGetInfo(), 'reply')
    if (errno !== 0) throw kernelError('reading IPVS info', errno)
    const reply = parts.find(m => m.type === this.familyId)
    if (reply === undefined) throw new FerryError('FERRY_ERR_NETLINK', 'IPVS answered GET_INFO with nothing')
    return decodeInfoMessage(reply.payload)
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.failAll(new FerryError('FERRY_ERR_NETLINK', 'the IPVS netlink socket is closed'))
    this.transport.close()
  }

  private async dump (payload: Buffer, what: string): Promise<NetlinkMessage[]> {
    this.assertResolved()
    const run = async (): Promise<NetlinkMessage[]> => {
      const { errno, parts } = await this.request(this.familyId, NLM_F_REQUEST | NLM_F_DUMP, payload, 'dump')
      if (errno !== 0) throw kernelError(what, errno)
      return parts
    }
    const result = this.dumpLane.then(run, run)
    this.dumpLane = result.catch(() => undefined)
    return await result
  }

  private async request (type: number, flags: number, payload: Buffer, want: Want): Promise<{ errno: number, parts: NetlinkMessage[] }> {
    this.assertOpen()
    return await new Promise((resolve, reject) => {
      this.enqueue(type, flags, payload, want, (errno, parts) => resolve({ errno, parts }), reject)
      this.pump()
    })
  }

  private enqueue (type: number, flags: number, payload: Buffer, want: Want, done: Request['done'], fail: Request['fail']): void {
    this.queue.push({ type, flags, payload, want, parts: [], done, fail })
  }

  /** Sends queued requests while the window has room; refills only once half of it drained, so sends stay batched. */
  private pump (): void {
    if (this.closed) return
    if (this.inFlight.size > 0 && this.inFlight.size > this.window / 2) return
    let chunk: Buffer[] = []
    let bytes = 0
    const send = (): void => {
      if (chunk.length === 0) return
      const datagram = chunk.length === 1 ? chunk[0] as Buffer : Buffer.concat(chunk, bytes)
      chunk = []
      bytes = 0
      this.transport.send(datagram, err => {
        if (err !== undefined && err !== null) this.failAll(new FerryError('FERRY_ERR_NETLINK', `sending to IPVS failed: ${err.message}`, errnoDetail(err), { cause: err }))
      })
    }
    while (this.inFlight.size < this.window) {
      const req = this.dequeue()
      if (req === undefined) break
      this.seq = this.seq >= 0xffffffff ? 1 : this.seq + 1
      this.inFlight.set(this.seq, req)
      const f = frame(req.type, req.flags, this.seq, req.payload)
      if (bytes + f.length > this.maxDatagram) send()
      chunk.push(f)
      bytes += f.length
    }
    if (this.head === this.queue.length) { this.queue.length = 0; this.head = 0 }
    send()
    this.lastActivity = Date.now()
    this.updateRef()
  }

  /** The next request to send: the queue's head, or the next of the feed at its head. */
  private dequeue (): Request | undefined {
    while (this.head < this.queue.length) {
      const q = this.queue[this.head] as Request | Feed
      if (!isFeed(q)) { this.head++; return q }
      const req = q.next()
      if (req !== undefined) return req
      this.head++
    }
    return undefined
  }

  private receive (datagram: Buffer): void {
    let messages: NetlinkMessage[]
    try {
      messages = parseMessages(datagram)
    } catch (e) {
      this.failAll(isFerryError(e) ? e : new FerryError('FERRY_ERR_NETLINK', errorMessage(e)))
      return
    }
    this.lastActivity = Date.now()
    for (const m of messages) {
      const req = this.inFlight.get(m.seq)
      if (req === undefined || m.type === NLMSG_NOOP) continue // a late answer to a request already failed
      if (m.type === NLMSG_ERROR || m.type === NLMSG_DONE) {
        this.finish(m.seq, req, errnoOf(m.payload))
      } else if (m.type === NLMSG_OVERRUN) {
        this.failAll(new FerryError('FERRY_ERR_NETLINK', 'netlink overrun: replies were lost'))
        return
      } else {
        req.parts.push(m)
        if (req.want === 'reply' && (m.flags & NLM_F_MULTI) === 0) this.finish(m.seq, req, 0)
      }
    }
    this.pump()
    this.updateRef()
  }

  private finish (seq: number, req: Request, errno: number): void {
    this.inFlight.delete(seq)
    req.done(errno, req.parts)
  }

  /** Fails every queued and in-flight request; the socket stays usable for new ones (late replies are ignored). */
  private failAll (err: Error): void {
    const victims = [...this.inFlight.values(), ...this.queue.slice(this.head)]
    this.inFlight.clear()
    this.queue.length = 0
    this.head = 0
    for (const r of victims) r.fail(err)
    this.updateRef()
  }

  private updateRef (): void {
    const busy = this.inFlight.size > 0 || this.head < this.queue.length
    if (busy && !this.closed) {
      if (!this.referenced) { this.transport.ref(); this.referenced = true }
      if (this.timer === undefined && this.timeoutMs > 0) this.armTimer(this.timeoutMs)
    } else {
      if (this.referenced) { this.transport.unref(); this.referenced = false }
      if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined }
    }
  }

  private armTimer (ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined
      const quiet = Date.now() - this.lastActivity
      if (quiet >= this.timeoutMs) {
        this.failAll(new FerryError('FERRY_ERR_NETLINK', `IPVS sent no reply for ${this.timeoutMs} ms`, { timeoutMs: this.timeoutMs }))
      } else {
        this.armTimer(this.timeoutMs - quiet)
      }
    }, ms)
    this.timer.unref() // the socket's ref holds the loop while replies are due
  }

  private assertOpen (): void {
    if (this.closed) throw new FerryError('FERRY_ERR_NETLINK', 'the IPVS netlink socket is closed')
  }

  /** Every IPVS request is addressed to the family id. */
  private assertResolved (): void {
    this.assertOpen()
    if (this.familyId < 0) throw new FerryError('FERRY_ERR_NETLINK', 'the IPVS generic netlink family is not resolved yet (resolveFamily)')
  }
}

/** Opens a generic netlink socket and resolves the IPVS family; FERRY_ERR_IPVS_UNAVAILABLE when the kernel lacks it. */
export async function openIpvsKernel (options: IpvsKernelOptions = {}): Promise<NetlinkIpvsKernel> {
  return await openIpvsKernelWith(openGenericNetlink(options), options)
}

/** openIpvsKernel over a given transport (tests script one); the transport is closed if resolution fails. */
export async function openIpvsKernelWith (transport: NetlinkTransport, options: IpvsKernelOptions = {}): Promise<NetlinkIpvsKernel> {
  const kernel = new NetlinkIpvsKernel(transport, options)
  try {
    await kernel.resolveFamily()
    return kernel
  } catch (e) {
    kernel.close()
    throw e
  }
}

export type IpvsSupport = { ok: true } | { ok: false, reason: string, code?: string }

/** Whether this kernel speaks IPVS (the family resolves); the socket is closed either way. */
export async function ipvsSupported (open: () => Promise<IpvsKernel> = openIpvsKernel): Promise<IpvsSupport> {
  try {
    const kernel = await open()
    kernel.close()
    return { ok: true }
  } catch (e) {
    return isFerryError(e) ? { ok: false, reason: e.message, code: e.code } : { ok: false, reason: errorMessage(e) }
  }
}

function kernelError (what: string, errno: number): FerryError {
  return new FerryError('FERRY_ERR_NETLINK', `${what}: ${errnoName(errno)}`, { errno })
}

export function errnoName (errno: number): string {
  try { return `${getSystemErrorName(-errno)} (${errno})` } catch { return `errno ${errno}` }
}

function errnoDetail (err: Error): Record<string, unknown> {
  const errno = (err as { errno?: unknown }).errno
  return typeof errno === 'number' ? { errno: Math.abs(errno) } : {}
}
