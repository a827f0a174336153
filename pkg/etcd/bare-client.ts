// A Range and Watch etcd client on node:http2 alone, for the source. Loading etcd3 costs 150–220 ms of
// CPU in a fresh process (protobufjs compiles all of rpc.proto, proto-loader builds descriptors for
// every service) and ~11 MB of RSS, and grpc-js under it ~40 ms more (h2-grpc.ts says what else); a
// ferryd start paid that before its first object. So the source lists and watches through this client,
// and loads etcd3 (which ferryctl and the overlay use) only once this client has failed. It dials the
// same hosts with the same credentials and per-call deadline as createClient (client.ts), pings as its
// keepalive does, logs in with the same username and password (the token rides in the "token"
// metadata, as etcd3 sends it), and tries the hosts in order. A failed list is only "did not work" to
// the caller, which then lists through etcd3, whose typed errors and hints are what users see.
import { EventEmitter } from 'node:events'
import type { IDuplexStream, IWatchRequest, IWatchResponse } from 'etcd3'
import type { EtcdAuth, EtcdTLS } from './access.js'
import { H2Channel, type GrpcStream } from './h2-grpc.js'
import { decodeRangeResponse, encodeRangeRequest, type RangePage, type RangePageRequest } from './range.js'
import { decodeWatchResponse, encodeWatchRequest } from './watch-codec.js'
import { Reader, putBytesField } from './wire.js'

export interface BareClientOptions {
  /** scheme://host:port, no userinfo (access.ts). */
  hosts: readonly string[]
  tls?: EtcdTLS | undefined
  auth?: EtcdAuth | undefined
  /** Deadline of each call, the login included; default 5000 ms. */
  requestTimeoutMs?: number | undefined
}

/** The etcd3 channel's keepalive (client-options.ts): a ping every 10 s, 5 s to answer. */
const KEEPALIVE = { intervalMs: 10_000, timeoutMs: 5_000 }

export class BareRangeClient {
  private readonly channels: H2Channel[]
  private readonly timeoutMs: number
  private chosen: { channel: H2Channel, metadata: Record<string, string> } | undefined
  private closed = false

  constructor (private readonly opts: BareClientOptions) {
    if (opts.hosts.length === 0) throw new Error('no etcd hosts')
    this.timeoutMs = opts.requestTimeoutMs ?? 5000
    this.channels = opts.hosts.map(url => new H2Channel({ url, tls: opts.tls, keepalive: KEEPALIVE }))
  }

  /** One page; the first call picks the first host that answers (logging in there when asked to). */
  async page (req: RangePageRequest): Promise<RangePage> {
    if (this.chosen === undefined) {
      let last: unknown
      for (const channel of this.channels) {
        try {
          const metadata: Record<string, string> = {}
          if (this.opts.auth !== undefined) metadata.token = await this.login(channel, this.opts.auth)
          const page = decodeRangeResponse(await channel.unary(RANGE, encodeRangeRequest(req), metadata, this.timeoutMs))
          this.chosen = { channel, metadata }
          return page
        } catch (e) { last = e }
      }
      throw last instanceof Error ? last : new Error('etcd: no host answered')
    }
    return decodeRangeResponse(await this.chosen.channel.unary(RANGE, encodeRangeRequest(req), this.chosen.metadata, this.timeoutMs))
  }

  /** Opens a Watch stream on the host the first page came from (see watch.ts), with the login token. */
  readonly watchClient = {
    watch: async (): Promise<IDuplexStream<IWatchRequest, IWatchResponse>> => {
      const chosen = this.chosen
      if (this.closed || chosen === undefined) throw new Error('bare etcd client: closed, or no page read yet')
      return new WatchStream(chosen.channel.stream(WATCH, chosen.metadata))
    },
  }

  /** Cancels calls in flight and closes every connection. */
  close (): void {
    this.closed = true
    for (const c of this.channels) c.close()
  }

  private async login (channel: H2Channel, auth: EtcdAuth): Promise<string> {
    return decodeAuthenticateResponse(await channel.unary(AUTHENTICATE, encodeAuthenticateRequest(auth), {}, this.timeoutMs))
  }
}

/** The Watch call in etcd3's stream shape (decoded messages), which watch.ts reads whichever client opened it. */
class WatchStream extends EventEmitter implements IDuplexStream<IWatchRequest, IWatchResponse> {
  constructor (private readonly call: GrpcStream) {
    super()
    call.on('data', (b: Buffer) => {
      let res: IWatchResponse
      try { res = decodeWatchResponse(b) } catch (e) {
        call.cancel()
        this.emit('error', e)
        return
      }
      this.emit('data', res)
    })
    call.on('error', (e: Error) => { this.emit('error', e) })
    call.on('end', () => { this.emit('end') })
  }

  write (req: IWatchRequest): void { this.call.write(encodeWatchRequest(req)) }
  end (): void { this.call.end() }
  cancel (): void { this.call.cancel() }
}

const RANGE = '/etcdserverpb.KV/Range'
const AUTHENTICATE = '/etcdserverpb.Auth/Authenticate'
const WATCH = '/etcdserverpb.Watch/Watch'

/** AuthenticateRequest{name=1, password=2}. */
export function encodeAuthenticateRequest (a: EtcdAuth): Buffer {
  const name = Buffer.from(a.username)
  const password = Buffer.from(a.password)
  const buf = Buffer.allocUnsafe(name.length + password.length + 20)
  const end = putBytesField(buf, putBytesField(buf, 0, 1, name), 2, password)
  return buf.subarray(0, end)
}

/** AuthenticateResponse{header=1, token=2}: the token. */
export function decodeAuthenticateResponse (buf: Buffer): string {
  const r = new Reader(buf, 0, buf.length)
  let token = ''
  while (!r.done) {
    const t = r.varint()
    if (t === 0x12) token = buf.toString('utf8', r.bytes(), r.pos)
    else r.skip(t & 7)
  }
  if (token === '') throw new RangeError('etcd Authenticate: no token in the reply')
  return token
}
