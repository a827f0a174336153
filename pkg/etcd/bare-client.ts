// A Range and Watch etcd client on grpc-js alone, for the source. Loading etcd3 costs 150–220 ms of
// CPU in a fresh process (protobufjs compiles all of rpc.proto, proto-loader builds descriptors for
// every service) and ~11 MB of RSS, against ~40 ms for grpc-js itself; a ferryd start paid that before
// its first object. So the source lists and watches through this client, and loads etcd3 (which
// ferryctl and the overlay use) only once this client has failed. It dials the same hosts with the
// same credentials, channel options and per-call deadline as createClient (client.ts), logs in with
// the same username and password (the token rides in the "token" metadata, as etcd3 sends it), and
// tries the hosts in order. A failed list is only "did not work" to the caller, which then lists
// through etcd3, whose typed errors and hints are what users see.
import { createRequire } from 'node:module'
import type { CallOptions, Client, ClientDuplexStream, ClientUnaryCall, Metadata, ServiceError } from '@grpc/grpc-js'
import type { IDuplexStream, IWatchRequest, IWatchResponse } from 'etcd3'
import type { EtcdAuth, EtcdTLS } from './access.js'
import { CHANNEL_OPTIONS, quietIPServerNameWarning } from './client-options.js'
import { decodeRangeResponse, encodeRangeRequest, type RangePage, type RangePageRequest } from './range.js'
import { decodeWatchResponse, encodeWatchRequest } from './watch-codec.js'
import { Reader, putBytesField } from './wire.js'

type Grpc = typeof import('@grpc/grpc-js')

/** etcd3's own grpc-js (not a copy a different install might hoist), resolved next to etcd3. */
function loadGrpc (): Grpc {
  const req = createRequire(import.meta.url)
  return createRequire(req.resolve('etcd3'))('@grpc/grpc-js') as Grpc
}

export interface BareClientOptions {
  /** scheme://host:port, no userinfo (access.ts). */
  hosts: readonly string[]
  tls?: EtcdTLS | undefined
  auth?: EtcdAuth | undefined
  /** Deadline of each call, the login included; default 5000 ms. */
  requestTimeoutMs?: number | undefined
}

export class BareRangeClient {
  private readonly grpc: Grpc
  private readonly clients: Client[] = []
  private readonly calls = new Set<ClientUnaryCall | ClientDuplexStream<IWatchRequest, IWatchResponse>>()
  private readonly timeoutMs: number
  private chosen: { client: Client, metadata: Metadata } | undefined
  private closed = false

  constructor (private readonly opts: BareClientOptions) {
    if (opts.hosts.length === 0) throw new Error('no etcd hosts')
    this.grpc = loadGrpc()
    this.timeoutMs = opts.requestTimeoutMs ?? 5000
    const secure = opts.hosts.some(h => h.startsWith('https:'))
    if (secure) quietIPServerNameWarning()
    const creds = opts.tls !== undefined
      ? this.grpc.credentials.createSsl(opts.tls.ca ?? null, opts.tls.key ?? null, opts.tls.cert ?? null)
      : secure ? this.grpc.credentials.createSsl() : this.grpc.credentials.createInsecure()
    for (const h of opts.hosts) this.clients.push(new this.grpc.Client(h.replace(/^https?:\/\//, ''), creds, CHANNEL_OPTIONS))
  }

  /** One page; the first call picks the first host that answers (logging in there when asked to). */
  async page (req: RangePageRequest): Promise<RangePage> {
    if (this.chosen === undefined) {
      let last: unknown
      for (const client of this.clients) {
        try {
          const metadata = new this.grpc.Metadata()
          if (this.opts.auth !== undefined) metadata.set('token', await this.login(client, this.opts.auth))
          const page = await this.call(client, metadata, RANGE, encodeRangeRequest, decodeRangeResponse, req)
          this.chosen = { client, metadata }
          return page
        } catch (e) { last = e }
      }
      throw last instanceof Error ? last : new Error('etcd: no host answered')
    }
    return await this.call(this.chosen.client, this.chosen.metadata, RANGE, encodeRangeRequest, decodeRangeResponse, req)
  }

  /** Opens a Watch stream on the host the first page came from (see watch.ts), with the login token. */
  readonly watchClient = {
    watch: async (): Promise<IDuplexStream<IWatchRequest, IWatchResponse>> => {
      const chosen = this.chosen
      if (this.closed || chosen === undefined) throw new Error('bare etcd client: closed, or no page read yet')
      const stream = chosen.client.makeBidiStreamRequest(WATCH, encodeWatchRequest, decodeWatchResponse, chosen.metadata, {})
      this.calls.add(stream)
      const forget = (): void => { this.calls.delete(stream) }
      stream.once('error', forget)
      stream.once('end', forget)
      stream.once('close', forget)
      return stream
    },
  }

  /** Cancels calls in flight and closes every channel. */
  close (): void {
    this.closed = true
    for (const c of this.calls) c.cancel()
    for (const c of this.clients) { try { c.close() } catch {} }
  }

  private async login (client: Client, auth: EtcdAuth): Promise<string> {
    return await this.call(client, new this.grpc.Metadata(), AUTHENTICATE, encodeAuthenticateRequest, decodeAuthenticateResponse, auth)
  }

  private async call<Q, R> (client: Client, metadata: Metadata, method: string, encode: (q: Q) => Buffer, decode: (b: Buffer) => R, req: Q): Promise<R> {
    if (this.closed) throw new Error('closed')
    const options: CallOptions = { deadline: Date.now() + this.timeoutMs }
    return await new Promise<R>((resolve, reject) => {
      const call = client.makeUnaryRequest(method, encode, decode, req, metadata, options, (err: ServiceError | null, res?: R) => {
        this.calls.delete(call)
        if (err !== null || res === undefined) reject(err ?? new Error(`empty ${method} reply`)); else resolve(res)
      })
      this.calls.add(call)
    })
  }
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
