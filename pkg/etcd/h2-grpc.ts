// gRPC over node:http2 for the bare etcd client (bare-client.ts): unary calls and one bidirectional
// stream kind, uncompressed, as etcd speaks them. Why not grpc-js: loading it was ~40 ms of a ferryd
// start, and its resolving, retrying and load-balancing call layers plus a copy of every message cost
// ~120 ms more CPU than this file for a 20k-key list (standalone list of the start-up bench's keys,
// 484–520 against 611–621 ms). What it leaves out is what the source does not need: retries (the
// source falls back to etcd3), name resolution beyond the URL's host, compression.
import { EventEmitter } from 'node:events'
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type SecureClientSessionOptions } from 'node:http2'
import { isIP } from 'node:net'
import type { EtcdTLS } from './access.js'

/** Stream and connection window: with HTTP/2's 64 KiB default, a page asked for ahead stalls while the current one decodes. */
const WINDOW = 16 * 1024 * 1024
/** Largest message accepted (a Range page of big objects); the same cap the etcd3 channel had. */
const MAX_MESSAGE = 64 * 1024 * 1024

/** A call ended by a grpc-status other than OK, or by the transport. */
export class GrpcError extends Error {
  constructor (message: string, readonly code: number | undefined) { super(message) }
}

export interface H2ChannelOptions {
  /** http://host:port or https://host:port, no userinfo. */
  url: string
  tls?: EtcdTLS | undefined
  /** Pings while a stream is open, so a dead or hung etcd ends it (etcd lets clients ping every 5 s). */
  keepalive?: { intervalMs: number, timeoutMs: number } | undefined
}

/** One HTTP/2 connection to one etcd member, opened on first use and again after it closes. */
export class H2Channel {
  private session: ClientHttp2Session | undefined
  private readonly streams = new Set<ClientHttp2Stream>()
  private pinger: NodeJS.Timeout | undefined
  private closed = false

  constructor (private readonly opts: H2ChannelOptions) {}

  /** Sends one request message and resolves with the one reply message. */
  async unary (method: string, request: Buffer, metadata: Record<string, string>, timeoutMs: number): Promise<Buffer> {
    return await new Promise<Buffer>((resolve, reject) => {
      const { req, outcome } = this.open(method, metadata, timeoutMs)
      let reply: Buffer | undefined
      let failed = false
      const fail = (e: Error): void => { if (!failed) { failed = true; clearTimeout(timer); reject(e) } }
      const timer = setTimeout(() => {
        fail(new GrpcError(`${method}: deadline of ${timeoutMs} ms exceeded`, 4))
        req.close(constants.NGHTTP2_CANCEL)
      }, timeoutMs)
      const frames = new FrameReader(method)
      req.on('data', (chunk: Buffer) => {
        try {
          for (const m of frames.push(chunk)) {
            if (reply !== undefined) throw new GrpcError(`${method}: more than one reply message`, 13)
            reply = m
          }
        } catch (e) { fail(e as Error); req.close(constants.NGHTTP2_CANCEL) }
      })
      req.on('error', fail)
      // 'end' once etcd has sent everything (trailers included); 'close' alone after a reset.
      const settle = (): void => {
        if (failed) return
        const status = outcome()
        if (status !== null) fail(status)
        else if (reply === undefined) fail(new GrpcError(`${method}: the stream ended without a reply`, 13))
        else { failed = true; clearTimeout(timer); resolve(reply) }
      }
      req.on('end', settle)
      req.on('close', settle)
      req.end(frame(request))
    })
  }

  /** Opens a bidirectional stream: messages in both directions, until either side ends it. */
  stream (method: string, metadata: Record<string, string>): GrpcStream {
    const call = this.open(method, metadata, 0)
    this.keepAlive()
    return new GrpcStream(method, call)
  }

  /** Cancels every call and closes the connection; later calls fail. */
  close (): void {
    this.closed = true
    for (const s of this.streams) s.close(constants.NGHTTP2_CANCEL)
    // destroy, not close: close() waits for streams, and one still connecting (a TLS handshake that
    // never ends) would keep the socket open until the kernel gives up.
    this.session?.destroy()
    this.session = undefined
    this.stopPinging()
  }

  private open (method: string, metadata: Record<string, string>, timeoutMs: number): OpenCall {
    if (this.closed) throw new GrpcError(`${method}: channel closed`, 1)
    const headers: Record<string, string> = {
      ':method': 'POST', ':path': method, 'content-type': 'application/grpc', te: 'trailers', ...metadata,
    }
    if (timeoutMs > 0) headers['grpc-timeout'] = grpcTimeout(timeoutMs)
    const req = this.connection().request(headers)
    this.streams.add(req)
    req.once('close', () => { this.streams.delete(req); if (this.streams.size === 0) this.stopPinging() })
    let response: IncomingHttpHeaders = {}
    let trailers: IncomingHttpHeaders = {}
    req.once('response', h => { response = h })
    req.once('trailers', t => { trailers = t })
    return { req, outcome: () => callOutcome(method, req, { ...response, ...trailers }) }
  }

  private connection (): ClientHttp2Session {
    const live = this.session
    if (live !== undefined && !live.closed && !live.destroyed) return live
    const { url, tls } = this.opts
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '')
    const options: SecureClientSessionOptions = {
      settings: { initialWindowSize: WINDOW },
      maxSessionMemory: 2 * MAX_MESSAGE / (1024 * 1024),
      // An IP is no TLS server name (RFC 6066); node warns (DEP0123) when one is set.
      ...(url.startsWith('https:') ? { servername: isIP(host) === 0 ? host : '', ca: tls?.ca, cert: tls?.cert, key: tls?.key } : {}),
    }
    const s = connect(url, options)
    // Failures reach every stream as its own 'error'; the session's copy only needs a listener.
    s.on('error', () => {})
    s.once('connect', () => { s.setLocalWindowSize(WINDOW) })
    s.once('close', () => { if (this.session === s) this.session = undefined })
    this.session = s
    return s
  }

  /** While a stream is open: a ping every intervalMs; no answer within timeoutMs ends the connection. */
  private keepAlive (): void {
    const k = this.opts.keepalive
    if (k === undefined || this.pinger !== undefined) return
    this.pinger = setInterval(() => {
      // The sessions that carry open streams: after a GOAWAY a stream stays on the old, draining one.
      const sessions = new Set<ClientHttp2Session>()
      for (const r of this.streams) if (r.session !== undefined && !r.session.destroyed) sessions.add(r.session as ClientHttp2Session)
      for (const s of sessions) {
        const dead = setTimeout(() => { s.destroy(new GrpcError(`no HTTP/2 ping answer from ${this.opts.url} within ${k.timeoutMs} ms`, 14)) }, k.timeoutMs)
        dead.unref()
        // A cancelled ping (a draining session refuses to send one) is no answer.
        try { s.ping(err => { if (err === null) clearTimeout(dead) }) } catch {}
      }
    }, k.intervalMs)
    this.pinger.unref()
  }

  private stopPinging (): void {
    if (this.pinger !== undefined) clearInterval(this.pinger)
    this.pinger = undefined
  }
}

/**
 * A bidirectional call: write() sends a message, 'data' gives each reply message, 'error' and 'end'
 * end it (a non-OK grpc-status is an error), cancel() ends it from this side.
 */
export class GrpcStream extends EventEmitter {
  private ended = false
  private readonly req: ClientHttp2Stream

  constructor (method: string, call: OpenCall) {
    super()
    const req = this.req = call.req
    const frames = new FrameReader(method)
    req.on('data', (chunk: Buffer) => {
      if (this.ended) return
      try {
        for (const m of frames.push(chunk)) this.emit('data', m)
      } catch (e) { this.finish(e as Error) }
    })
    req.on('error', (e: Error) => { this.finish(e) })
    // The server ends its side only to end the call: 'end' with its trailers, or 'close' on a reset.
    req.on('end', () => { this.finish(call.outcome()) })
    req.on('close', () => { this.finish(call.outcome()) })
  }

  write (message: Buffer): void { if (!this.ended) this.req.write(frame(message)) }

  /** Half-closes: no more messages from this side; replies still arrive. */
  end (): void { if (!this.ended) this.req.end() }

  cancel (): void {
    if (this.ended) return
    this.ended = true
    this.req.close(constants.NGHTTP2_CANCEL)
  }

  private finish (err: Error | null): void {
    if (this.ended) return
    this.ended = true
    if (!this.req.closed) this.req.close(err === null ? constants.NGHTTP2_NO_ERROR : constants.NGHTTP2_CANCEL)
    if (err !== null) this.emit('error', err); else this.emit('end')
  }
}

/** The 5-byte gRPC prefix (uncompressed, big-endian length) and the message. */
function frame (message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length)
  out[0] = 0
  out.writeUInt32BE(message.length, 1)
  message.copy(out, 5)
  return out
}

/** Splits a stream's DATA into gRPC messages, each copied once into a buffer of its own size. */
export class FrameReader {
  private head = Buffer.alloc(5)
  private headHave = 0
  private body: Buffer | undefined
  private bodyHave = 0

  constructor (private readonly method: string) {}

  push (chunk: Buffer): Buffer[] {
    const out: Buffer[] = []
    let at = 0
    while (at < chunk.length) {
      if (this.body === undefined) {
        const n = Math.min(5 - this.headHave, chunk.length - at)
        chunk.copy(this.head, this.headHave, at, at + n)
        this.headHave += n
        at += n
        if (this.headHave < 5) break
        if (this.head[0] !== 0) throw new GrpcError(`${this.method}: compressed reply, none was asked for`, 12)
        const len = this.head.readUInt32BE(1)
        if (len > MAX_MESSAGE) throw new GrpcError(`${this.method}: reply of ${len} bytes exceeds ${MAX_MESSAGE}`, 8)
        this.headHave = 0
        this.body = Buffer.allocUnsafe(len)
        this.bodyHave = 0
      }
      const n = Math.min(this.body.length - this.bodyHave, chunk.length - at)
      chunk.copy(this.body, this.bodyHave, at, at + n)
      this.bodyHave += n
      at += n
      if (this.bodyHave === this.body.length) { out.push(this.body); this.body = undefined }
    }
    return out
  }
}

interface OpenCall {
  readonly req: ClientHttp2Stream
  /** Once closed: null for grpc-status OK, else why the call failed. */
  readonly outcome: () => GrpcError | null
}

/** From the HTTP status and grpc-status (trailers, or the headers of a trailers-only reply). */
function callOutcome (method: string, req: ClientHttp2Stream, fields: IncomingHttpHeaders): GrpcError | null {
  const http = fields[':status']
  const status = fields['grpc-status']
  if (status === undefined) {
    if (req.rstCode !== undefined && req.rstCode !== constants.NGHTTP2_NO_ERROR) {
      return new GrpcError(`${method}: stream reset (HTTP/2 code ${req.rstCode})`, req.rstCode === constants.NGHTTP2_CANCEL ? 1 : 14)
    }
    if (http === undefined || String(http) === '200') return new GrpcError(`${method}: no grpc-status`, 14)
    return new GrpcError(`${method}: no grpc-status (HTTP ${String(http)})`, HTTP_TO_GRPC.get(Number(http)) ?? 2)
  }
  if (status === '0') return null
  const message = fields['grpc-message']
  let details = ''
  // A malformed percent-encoding (a proxy's literal "100%") is shown as sent, never thrown.
  if (typeof message === 'string') { try { details = decodeURIComponent(message) } catch { details = message } }
  const code = /^\d+$/.test(String(status)) ? Number(status) : 2
  return new GrpcError(`${method}: ${details !== '' ? details : `grpc-status ${String(status)}`}`, code)
}

/** gRPC's mapping of an HTTP status without grpc-status (PROTOCOL-HTTP2.md); others are UNKNOWN (2). */
const HTTP_TO_GRPC: ReadonlyMap<number, number> = new Map([[400, 13], [401, 16], [403, 7], [404, 12], [429, 14], [502, 14], [503, 14], [504, 14]])

/** grpc-timeout: at most 8 digits, so a coarser unit once milliseconds need more. */
export function grpcTimeout (ms: number): string {
  const m = Math.ceil(ms)
  if (m <= 99_999_999) return `${m}m`
  const sec = Math.ceil(m / 1000)
  if (sec <= 99_999_999) return `${sec}S`
  return `${Math.min(99_999_999, Math.ceil(sec / 3600))}H`
}
