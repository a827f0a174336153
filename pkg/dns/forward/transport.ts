// One exchange with one upstream, over UDP (a small pool of connected sockets, each with an ID→pending
// map) or TCP (a connection per exchange). Connected UDP sockets get ICMP refusals as errors, so a
// closed port fails at once instead of timing out, and the kernel drops datagrams from other sources.
import { randomFillSync } from 'node:crypto'
import dgram from 'node:dgram'
import net from 'node:net'
import type { HostPort } from '../../config/dns-addresses.js'
import { patchId } from '../wire/raw.js'
import { u16 } from '../wire/scan.js'
import type { ForwardMetrics } from './metrics.js'

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

export class ExchangeError extends Error {
  constructor (message: string, readonly reason: 'timeout' | 'network' | 'closed') {
    super(message)
    this.name = 'ExchangeError'
  }
}

interface Pending {
  readonly resolve: (reply: Buffer) => void
  readonly reject: (e: Error) => void
  readonly timer: NodeJS.Timeout
}

interface PooledSocket {
  readonly sock: dgram.Socket
  readonly pending: Map<number, Pending>
  readonly born: number
  ready: Promise<void> | undefined
  retired: boolean
}

export interface UdpPoolOptions {
  readonly size: number
  /** A socket is replaced after this long, so its source port does not stay fixed (CoreDNS `expire`). */
  readonly expireMs: number
  readonly now: () => number
  readonly metrics: ForwardMetrics
  readonly to: string
}

export class UdpPool {
  private readonly sockets: Array<PooledSocket | undefined>
  private next = 0
  private closed = false
  private readonly ids = new IdSource()

  constructor (private readonly addr: HostPort, private readonly opts: UdpPoolOptions) {
    this.sockets = new Array<PooledSocket | undefined>(Math.max(1, opts.size))
  }

  /** Sends `query` (its ID is overwritten) and resolves with the first reply carrying that ID. */
  async exchange (query: Uint8Array, timeoutMs: number): Promise<Buffer> {
    if (this.closed) throw new ExchangeError('upstream pool closed', 'closed')
    const s = this.pick()
    let id = this.ids.next()
    for (let i = 0; s.pending.has(id) && i < 64; i++) id = this.ids.next()
    if (s.pending.has(id)) throw new ExchangeError('no free query ID on the socket', 'network')
    const msg = Buffer.from(query)
    patchId(msg, id)
    return await new Promise<Buffer>((resolve, reject) => {
      const fail = (e: ExchangeError): void => { this.settle(s, id)?.reject(e) }
      const timer = setTimeout(() => fail(new ExchangeError(`no reply from ${this.opts.to} within ${timeoutMs} ms`, 'timeout')), timeoutMs)
      s.pending.set(id, { resolve, reject, timer })
      const send = (): void => {
        if (!s.pending.has(id)) return
        try {
          s.sock.send(msg, err => {
            if (err !== null && err !== undefined) fail(new ExchangeError(`send to ${this.opts.to}: ${err.message}`, 'network'))
          })
        } catch (e) {
          fail(new ExchangeError(`send to ${this.opts.to}: ${(e as Error).message}`, 'network'))
        }
      }
      // The first query on a new socket waits for connect(); a failed connect fails it through 'error'.
      if (s.ready === undefined) send(); else void s.ready.then(send)
    })
  }

  close (): void {
    this.closed = true
    for (let i = 0; i < this.sockets.length; i++) {
      const s = this.sockets[i]
      if (s !== undefined) this.shut(s, new ExchangeError('upstream pool closed', 'closed'))
      this.sockets[i] = undefined
    }
  }

  private pick (): PooledSocket {
    const i = this.next
    this.next = (i + 1) % this.sockets.length
    const s = this.sockets[i]
    const now = this.opts.now()
    if (s !== undefined && !s.retired && now - s.born < this.opts.expireMs) {
      this.opts.metrics.connCache(this.opts.to, 'udp', true)
      return s
    }
    if (s !== undefined) { s.retired = true; this.reap(s) }
    this.opts.metrics.connCache(this.opts.to, 'udp', false)
    const fresh = this.open(now)
    this.sockets[i] = fresh
    return fresh
  }

  private open (now: number): PooledSocket {
    const sock = dgram.createSocket(this.addr.host.includes(':') ? 'udp6' : 'udp4')
    const s: PooledSocket = { sock, pending: new Map(), born: now, ready: undefined, retired: false }
    s.ready = new Promise<void>(resolve => {
      sock.connect(this.addr.port, this.addr.host, () => { s.ready = undefined; resolve() })
    })
    sock.on('message', (msg: Buffer) => {
      if (msg.length < 12) return
      // A reply to no pending query (wrong ID, or after its timeout) is ignored.
      this.settle(s, u16(msg, 0))?.resolve(msg)
    })
    // A connected socket reports ICMP refusals here; we cannot tell which query it was for, so all
    // pending queries on this socket move on to their next upstream.
    sock.on('error', (e: Error) => this.failAll(s, new ExchangeError(`${this.opts.to}: ${e.message}`, 'network')))
    return s
  }

  private failAll (s: PooledSocket, e: ExchangeError): void {
    for (const p of s.pending.values()) { clearTimeout(p.timer); p.reject(e) }
    s.pending.clear()
    this.reap(s)
  }

  /** Takes the query waiting on `id` off the socket (stopping its timer); undefined if none waits. */
  private settle (s: PooledSocket, id: number): Pending | undefined {
    const p = s.pending.get(id)
    if (p === undefined) return undefined
    s.pending.delete(id)
    clearTimeout(p.timer)
    this.reap(s)
    return p
  }

  /** Closes a retired socket once nothing waits on it. */
  private reap (s: PooledSocket): void {
    if (s.retired && s.pending.size === 0) this.shut(s, new ExchangeError('socket retired', 'closed'))
  }

  private shut (s: PooledSocket, e: ExchangeError): void {
    s.retired = true
    for (const p of s.pending.values()) { clearTimeout(p.timer); p.reject(e) }
    s.pending.clear()
    try { s.sock.close() } catch { /* already closed */ }
  }
}

const MAX_TCP_BUFFER = 2 * 65537

/**
 * One query over a fresh TCP connection (RFC 1035 §4.2.2 length-prefixed). Frames with another ID are
 * skipped, as over UDP.
 */
export async function tcpExchange (addr: HostPort, query: Uint8Array, timeoutMs: number, ids: IdSource): Promise<Buffer> {
  const id = ids.next()
  const frame = Buffer.alloc(2 + query.length)
  frame.writeUInt16BE(query.length, 0)
  frame.set(query, 2)
  patchId(frame.subarray(2), id)
  return await new Promise<Buffer>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    let done = false
    const sock = net.connect({ host: addr.host, port: addr.port })
    const finish = (e: Error | undefined, reply?: Buffer): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      if (e !== undefined) reject(e); else resolve(reply as Buffer)
    }
    const timer = setTimeout(() => finish(new ExchangeError(`no TCP reply from ${addr.host}:${addr.port} within ${timeoutMs} ms`, 'timeout')), timeoutMs)
    sock.setNoDelay(true)
    sock.on('connect', () => sock.write(frame))
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      if (buf.length > MAX_TCP_BUFFER) return finish(new ExchangeError('TCP reply stream too long', 'network'))
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0)
        if (buf.length < 2 + len) return
        const msg = buf.subarray(2, 2 + len)
        buf = buf.subarray(2 + len)
        if (len >= 12 && msg.readUInt16BE(0) === id) return finish(undefined, Buffer.from(msg))
      }
    })
    sock.on('error', (e: Error) => finish(new ExchangeError(`TCP ${addr.host}:${addr.port}: ${e.message}`, 'network')))
    sock.on('close', () => finish(new ExchangeError(`TCP ${addr.host}:${addr.port} closed before replying`, 'closed')))
  })
}
