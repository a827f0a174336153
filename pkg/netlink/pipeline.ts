// Requests pipelined on one netlink socket: a window of requests awaiting their answers, many messages
// per sendmsg, each answer matched by sequence number. The IPVS kernel and the VIP binder send their
// changes through it; a run of changes is a feed, encoded only as the window frees.
import { constants } from 'node:os'
import { getSystemErrorName } from 'node:util'
import { FerryError, errorMessage, isFerryError } from '../errors/errors.js'
import { NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN } from './constants.js'
import type { NetlinkTransport } from './transport.js'
import { errnoOf, frame, parseMessages, type NetlinkMessage } from './wire.js'

export interface PipelineOptions {
  /** Requests awaiting their answer at most; their acks must fit the receive buffer. Default 256. */
  window?: number
  /** Bytes per sendmsg at most (the kernel refuses more than SO_SNDBUF). Default 32 KiB. */
  maxDatagram?: number
  /** Fail everything outstanding when nothing arrives for this long while replies are due. Default 30 s. */
  timeoutMs?: number
}

/** 'ack': an NLMSG_ERROR ends it (changes); 'reply': the first answer (doit GETs); 'dump': parts until NLMSG_DONE. */
export type Want = 'ack' | 'reply' | 'dump'

/** One message to send: its type, flags and payload (the header is framed here). */
export interface Outgoing { readonly type: number, readonly flags: number, readonly payload: Buffer }

interface Request extends Outgoing {
  want: Want
  parts: NetlinkMessage[]
  /** errno 0 = ok, else the kernel's positive errno. */
  done: (errno: number, parts: NetlinkMessage[]) => void
  fail: (err: Error) => void
}

/**
 * A queued run of requests made one at a time as the window frees: tens of thousands of changes then
 * hold one window of encoded messages and callbacks at a time, not all of them at once.
 */
interface Feed {
  /** The next request, or undefined when the feed is spent. */
  next: () => Request | undefined
  fail: (err: Error) => void
}

const isFeed = (q: Request | Feed): q is Feed => 'next' in q

export class NetlinkPipeline {
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

  /** `peer` names the other end in errors ("IPVS", "rtnetlink"). */
  constructor (private readonly transport: NetlinkTransport, private readonly peer: string, options: PipelineOptions = {}) {
    this.window = Math.max(1, options.window ?? 256)
    this.maxDatagram = Math.max(1024, options.maxDatagram ?? 32 << 10)
    this.timeoutMs = options.timeoutMs ?? 30_000
    transport.onDatagram(d => this.receive(d))
    transport.onError(err => this.failAll(new FerryError('FERRY_ERR_NETLINK', `${peer} netlink socket failed: ${err.message}`, errnoDetail(err), { cause: err })))
  }

  /** One request; resolves with the kernel's errno (0 = ok) and the messages it answered with. */
  async request (type: number, flags: number, payload: Buffer, want: Want): Promise<{ errno: number, parts: NetlinkMessage[] }> {
    this.assertOpen()
    return await new Promise((resolve, reject) => {
      this.queue.push({ type, flags, payload, want, parts: [], done: (errno, parts) => resolve({ errno, parts }), fail: reject })
      this.pump()
    })
  }

  /**
   * Each item's errno (0 = ok), in item order, each sent as one acked message. An item `encode` refuses
   * with FERRY_ERR_INVALID_OBJECT is EINVAL, what the kernel answers to input it cannot parse, and is
   * never sent; any other throw fails the feed.
   */
  async feed<T> (items: readonly T[], encode: (item: T) => Outgoing): Promise<number[]> {
    this.assertOpen()
    const errnos = new Array<number>(items.length)
    if (items.length === 0) return errnos
    return await new Promise<number[]>((resolve, reject) => {
      let next = 0
      let left = items.length
      let failed = false
      const settle = (i: number, errno: number): void => {
        errnos[i] = errno
        if (--left === 0) resolve(errnos)
      }
      const fail = (err: Error): void => { if (!failed) { failed = true; reject(err) } }
      this.queue.push({
        next: () => {
          while (next < items.length && !failed) {
            const i = next++
            let out: Outgoing
            try {
              out = encode(items[i] as T)
            } catch (e) {
              if (isFerryError(e, 'FERRY_ERR_INVALID_OBJECT')) { settle(i, constants.errno.EINVAL); continue }
              fail(e as Error)
              return undefined
            }
            return { type: out.type, flags: out.flags, payload: out.payload, want: 'ack', parts: [], done: errno => { settle(i, errno) }, fail }
          }
          return undefined
        },
        fail,
      })
      this.pump()
    })
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.failAll(new FerryError('FERRY_ERR_NETLINK', `the ${this.peer} netlink socket is closed`))
    this.transport.close()
  }

  assertOpen (): void {
    if (this.closed) throw new FerryError('FERRY_ERR_NETLINK', `the ${this.peer} netlink socket is closed`)
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
        if (err !== undefined && err !== null) this.failAll(new FerryError('FERRY_ERR_NETLINK', `sending to ${this.peer} failed: ${err.message}`, errnoDetail(err), { cause: err }))
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
      // Armed once and left to lapse when it finds the socket idle, not set and cleared around every
      // request: a timer pair per sync was a measurable share of an edit's hand-off under emulation.
      if (this.timer === undefined && this.timeoutMs > 0) this.armTimer(this.timeoutMs)
    } else {
      if (this.referenced) { this.transport.unref(); this.referenced = false }
      if (this.closed && this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined }
    }
  }

  private armTimer (ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (this.closed || (this.inFlight.size === 0 && this.head >= this.queue.length)) return
      const quiet = Date.now() - this.lastActivity
      if (quiet >= this.timeoutMs) {
        this.failAll(new FerryError('FERRY_ERR_NETLINK', `${this.peer} sent no reply for ${this.timeoutMs} ms`, { timeoutMs: this.timeoutMs }))
      } else {
        this.armTimer(this.timeoutMs - quiet)
      }
    }, ms)
    this.timer.unref() // the socket's ref holds the loop while replies are due
  }
}

/** "EEXIST (17)", or "errno N" for a number the system does not name. */
export function errnoName (errno: number): string {
  try { return `${getSystemErrorName(-errno)} (${errno})` } catch { return `errno ${errno}` }
}

function errnoDetail (err: Error): Record<string, unknown> {
  const errno = (err as { errno?: unknown }).errno
  return typeof errno === 'number' ? { errno: Math.abs(errno) } : {}
}
