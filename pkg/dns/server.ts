// Moves bytes: UDP and TCP listeners in front of the handler chain. It parses the query, applies the
// server-level rules of DNS.md §5 (class, EDNS version, zone transfers), encodes the handler's answer
// for the client's size limit and counts everything. Encoded answers are memoized per answer object:
// the cluster index hands out the same object until that name changes, so a repeat query costs a copy
// with the client's ID and question bytes patched in.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { createServer, type Server, type Socket as TcpSocket } from 'node:net'
import { errorMessage } from '../errors/errors.js'
import type { Logger } from '../log/log.js'
import { CLASS_IN, EDNS_UDP_SIZE, RCODE, TYPE, answer, type Answer, type Handler, type Reply } from './message.js'
import type { DnsMetrics, Proto } from './metrics.js'
import { parseQuery, type ParsedQuery } from './wire/query.js'
import { encodeEmpty, encodeRejection, encodeReply, patchReply, replyLimit } from './wire/writer.js'
import { clientCopy, inspectReply } from './wire/raw.js'
import { ReadDeadline } from './read-deadline.js'

export interface ListenAddress { readonly host: string, readonly port: number }

export interface DnsServerOptions {
  listen: readonly ListenAddress[]
  handler: Handler
  metrics: DnsMetrics
  log: Logger
  queryLog?: boolean
  /**
   * TCP timeouts as CoreDNS sets miekg/dns's (DNS.md §5.2): the first message must arrive whole within
   * tcpReadMs (3 s), each later one within tcpIdleMs (10 s) of the last reply. tcpIdleMs also bounds how
   * long writes may make no progress.
   */
  tcpReadMs?: number
  tcpIdleMs?: number
}

/** Templates kept per answer object (negative answers are shared by every missing name in a zone). */
const MEMO_PER_ANSWER = 64


type Send = (bytes: Uint8Array) => void

/** An encoded reply and the question (class is always IN past serverRule) it answers. */

export class DnsServer {
  private readonly udp: Socket[] = []
  private readonly tcp: Server[] = []
  private readonly conns = new Set<TcpSocket>()
  private readonly memo = new WeakMap<Answer, Map<string, Uint8Array>>()
  private readonly bound: ListenAddress[] = []

  constructor (private readonly o: DnsServerOptions) {}

  /** The addresses actually bound (port 0 resolved), in listen order. */
  addresses (): readonly ListenAddress[] { return this.bound }

  async start (): Promise<void> {
    for (const l of this.o.listen) {
      const v6 = l.host.includes(':')
      const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, recvBufferSize: 4 << 20 })
      sock.on('message', (msg, rinfo) => { this.onUdp(sock, msg, rinfo) })
      sock.on('error', e => { this.o.log.warn('dns udp socket error', { err: e }) })
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject)
        sock.bind(l.port, l.host, () => { sock.off('error', reject); resolve() })
      })
      this.udp.push(sock)
      const port = sock.address().port
      // Half-open: a client may send its queries and shut its side; forwarded replies still go out.
      const server = createServer({ noDelay: true, allowHalfOpen: true }, c => { this.onTcp(c) })
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({ host: l.host, port, ipv6Only: v6 }, () => { server.off('error', reject); resolve() })
      })
      this.tcp.push(server)
      this.bound.push({ host: l.host, port })
    }
  }

  async stop (): Promise<void> {
    for (const s of this.udp) s.close()
    for (const c of this.conns) c.destroy()
    await Promise.all(this.tcp.map(async s => { await new Promise<void>(resolve => { s.close(() => { resolve() }) }) }))
    this.udp.length = 0
    this.tcp.length = 0
  }

  private onUdp (sock: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    this.serve(msg, 'udp', rinfo.address, rinfo.port, rinfo.family === 'IPv6' ? 2 : 1, bytes => {
      // send throws synchronously for source port 0 (legal on the wire, not a destination Node takes)
      // and once the socket is closed (a forwarded reply arriving after stop): drop the reply.
      try { sock.send(bytes, rinfo.port, rinfo.address) } catch {}
    })
  }

  private onTcp (c: TcpSocket): void {
    this.conns.add(c)
    const idleMs = this.o.tcpIdleMs ?? 10_000
    // A client that stops reading its replies: no progress for the idle time ends the connection.
    c.setTimeout(idleMs, () => { c.destroy() })
    const deadline = new ReadDeadline(() => { c.destroy() })
    deadline.start(this.o.tcpReadMs ?? 3_000)
    c.on('error', () => {})
    c.on('close', () => { this.conns.delete(c); deadline.close() })
    let pending: Buffer = Buffer.alloc(0)
    // A client that ends its side after its queries (allowHalfOpen) still gets every reply, forwarded
    // ones included, as from CoreDNS; ours ends once nothing is left to read or answer.
    let unanswered = 0
    let ended = false
    let pumping = false
    const family = c.remoteFamily === 'IPv6' ? 2 : 1
    let waiting = false
    const endIfDone = (): void => {
      if (ended && unanswered === 0 && !waiting && !pumping && !c.writableEnded) c.end()
    }
    // As miekg/dns, which reads the next message only once it has answered the last: the idle wait
    // starts when nothing is owed, and no deadline runs while a reply is owed or our writes are stuck.
    // Only these moments move it; bytes of an unfinished message never do.
    const aim = (): void => {
      if (ended || waiting || unanswered > 0) deadline.stop()
      else deadline.start(idleMs)
    }
    const send: Send = bytes => {
      unanswered--
      if (c.destroyed) return
      if (!pumping) aim()
      const frame = Buffer.allocUnsafe(bytes.length + 2)
      frame.writeUInt16BE(bytes.length, 0)
      frame.set(bytes, 2)
      c.write(frame)
      endIfDone()
    }
    const pump = (): void => {
      pumping = true
      if (drain()) aim()
      pumping = false
      endIfDone()
    }
    /** Serves every whole message buffered; true if there was at least one. */
    const drain = (): boolean => {
      let served = false
      while (pending.length >= 2) {
        // A client that does not read its replies must not make us buffer them: stop reading its
        // queries until the socket drains (the idle timeout ends a connection that never does).
        if (c.writableNeedDrain) {
          if (!waiting) {
            waiting = true
            c.pause()
            deadline.stop()
            c.once('drain', () => { waiting = false; aim(); c.resume(); pump() })
          }
          return served
        }
        const len = pending.readUInt16BE(0)
        if (pending.length < len + 2) break
        const msg = pending.subarray(2, len + 2)
        pending = pending.subarray(len + 2)
        served = true
        unanswered++
        if (!this.serve(msg, 'tcp', c.remoteAddress ?? '', c.remotePort ?? 0, family, send)) unanswered--
      }
      return served
    }
    c.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      pump()
    })
    c.on('end', () => { ended = true; deadline.stop(); endIfDone() })
  }

  /**
   * One query, start to reply. Never throws: a failure answers SERVFAIL. Returns false when the query gets
   * no reply at all (dropped); otherwise `send` is called exactly once, now or later.
   */
  private serve (msg: Uint8Array, proto: Proto, address: string, port: number, family: 1 | 2, send: Send): boolean {
    const start = performance.now()
    const parsed = parseQuery(msg)
    if ('reject' in parsed) {
      // Malformed queries are not counted, as in CoreDNS.
      if (parsed.reject === 'drop') return false
      send(encodeRejection(parsed))
      return true
    }
    const q = parsed.query
    const limit = replyLimit(q, proto)
    const finish = (reply: Reply, plugin: string): void => {
      let bytes: Uint8Array
      // The header holds only the low 4 bits: BADVERS (16) must be counted from the answer itself.
      let rcode: number = reply.kind === 'answer' ? reply.rcode : -1
      try {
        bytes = this.encode(msg, parsed, reply, limit)
      } catch (e) {
        this.o.metrics.panic()
        this.o.log.warn('dns encode failed', { err: e, name: q.question.name })
        bytes = encodeEmpty(msg, parsed, RCODE.SERVFAIL, { limit, edns: ednsOut(parsed) })
        rcode = RCODE.SERVFAIL
        plugin = ''
      }
      send(bytes)
      if (rcode < 0) rcode = bytes.length >= 4 ? (bytes[3] as number) & 0x0f : RCODE.SERVFAIL
      const seconds = (performance.now() - start) / 1000
      this.o.metrics.observe({ proto, family, qtype: q.question.type, do: q.edns?.do ?? false, requestSize: msg.length },
        { rcode, plugin, responseSize: bytes.length, seconds })
      if (this.o.queryLog === true) {
        this.o.log.info('query', { client: `${address}:${port}`, proto, name: q.question.name, type: q.question.type, rcode, size: bytes.length, ms: Math.round(seconds * 1e4) / 10 })
      }
    }
    const early = serverRule(parsed)
    if (early !== undefined) { finish(early, ''); return true }
    let reply: Reply | Promise<Reply>
    try {
      reply = this.o.handler({ query: q, client: { address, port }, proto })
    } catch (e) {
      this.failed(e, q.question.name)
      finish(answer(RCODE.SERVFAIL, [], [], [], false), '')
      return true
    }
    if (!(reply instanceof Promise)) { finish(reply, pluginOf(reply)); return true }
    reply.then(r => { finish(r, pluginOf(r)) }, (e: unknown) => {
      this.failed(e, q.question.name)
      finish(answer(RCODE.SERVFAIL, [], [], [], false), '')
    })
    return true
  }

  private failed (e: unknown, name: string): void {
    this.o.metrics.panic()
    this.o.log.warn('dns handler failed', { name, err: errorMessage(e) })
  }

  private encode (msg: Uint8Array, parsed: ParsedQuery, reply: Reply, limit: number): Uint8Array {
    if (reply.kind === 'raw') {
      const info = reply.info ?? inspectReply(reply.bytes)
      if (info === null) throw new Error('unreadable upstream reply')
      const e = parsed.query.edns
      return patchReply(clientCopy(reply.bytes, info, { edns: e !== undefined, do: e?.do === true }, limit), msg, parsed)
    }
    // A template serves queries with the same name (any case), type, limit, EDNS and DO: compression
    // points into the question, so an answer object shared by many names (a negative answer's SOA)
    // gets one per name, a bounded few.
    const q = parsed.query
    const key = `${limit}|${q.edns !== undefined ? (q.edns.do ? 2 : 1) : 0}|${q.question.type}|${q.question.lname}`
    let byKey = this.memo.get(reply)
    const hit = byKey?.get(key)
    if (hit !== undefined) return patchReply(hit, msg, parsed)
    const bytes = encodeReply(msg, parsed, reply, { limit, edns: ednsOut(parsed) })
    if (byKey === undefined) { byKey = new Map(); this.memo.set(reply, byKey) }
    if (byKey.size >= MEMO_PER_ANSWER) byKey.clear()
    byKey.set(key, bytes)
    return bytes
  }
}

function ednsOut (parsed: ParsedQuery): { udpSize: number, do: boolean } | undefined {
  const e = parsed.query.edns
  return e === undefined ? undefined : { udpSize: EDNS_UDP_SIZE, do: e.do }
}

/** DNS.md §5.2: what the server answers before any handler. */
function serverRule (parsed: ParsedQuery): Answer | undefined {
  const q = parsed.query
  // CoreDNS checks the class before the EDNS version: a CH query with EDNS version 1 is REFUSED.
  if (q.question.class !== CLASS_IN) return answer(RCODE.REFUSED, [], [], [], false)
  if (q.edns !== undefined && q.edns.version > 0) return answer(RCODE.BADVERS, [], [], [], false)
  if (q.question.type === TYPE.AXFR || q.question.type === TYPE.IXFR) return answer(RCODE.REFUSED, [], [], [], false)
  return undefined
}

function pluginOf (r: Reply): string { return r.kind === 'raw' ? 'forward' : 'kubernetes' }
