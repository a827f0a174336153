// The one way ferry builds an etcd client: the source (pkg/source), ferryctl's store and the overlay's subnet
// leases all come through here, so TLS, login and credential redaction behave the same everywhere.
import { Etcd3, type IOptions } from 'etcd3'
import { combineAccess, type EtcdAccess, type EtcdAuth, type EtcdTLS } from './access.js'
import { CHANNEL_OPTIONS, quietIPServerNameWarning } from './client-options.js'

export interface ClientOptions {
  /** Deadline for each unary call (range, txn, compact); streams have none. */
  requestTimeoutMs?: number
  /** CA and client certificate for https:// endpoints (see access.ts). */
  tls?: EtcdTLS | undefined
  /** etcd's username/password login; the client trades it for a token and renews it. */
  auth?: EtcdAuth | undefined
}

export type ClientFactory = (endpoints: string[]) => Etcd3

/**
 * `endpoints` must carry no userinfo (access.ts takes it out). A client with a per-call deadline and gRPC keepalive, so a dead or hung etcd is noticed on the watch
 * stream too (etcd's default keepalive enforcement allows pings every 5s; we ping every 10s).
 */
export function createClient (endpoints: string[], opts: ClientOptions = {}): Etcd3 {
  const timeout = opts.requestTimeoutMs ?? 5000
  const options: IOptions = {
    hosts: endpoints,
    dialTimeout: timeout,
    defaultCallOptions: (ctx) => ctx.isStream ? {} : { deadline: Date.now() + timeout },
    grpcOptions: { ...CHANNEL_OPTIONS },
  }
  if (endpoints.some(e => e.startsWith('https:'))) quietIPServerNameWarning()
  if (opts.tls !== undefined) {
    // grpc's createSsl takes null for "the system's roots"; etcd3's type insists on a Buffer.
    options.credentials = {
      rootCertificate: opts.tls.ca ?? (null as unknown as Buffer),
      ...(opts.tls.key !== undefined ? { privateKey: opts.tls.key } : {}),
      ...(opts.tls.cert !== undefined ? { certChain: opts.tls.cert } : {}),
    }
  }
  if (opts.auth !== undefined) options.auth = { username: opts.auth.username, password: opts.auth.password }
  return new Etcd3(options)
}

/** How a component reaches etcd: endpoints (userinfo allowed), TLS contents, login, client seams. */
export interface ConnectOptions {
  /** Client URLs; userinfo (user:password@) is used as the login, never shown. */
  endpoints: readonly string[]
  tls?: EtcdTLS | undefined
  auth?: EtcdAuth | undefined
  requestTimeoutMs?: number | undefined
  /** Test seam: builds the client from the userinfo-free hosts. Default createClient with the options above. */
  clientFactory?: ClientFactory | undefined
}

/** Settings checked once (FERRY_ERR_CONFIG on a bad endpoint) plus a maker of fresh clients for them. */
export interface EtcdConnector {
  readonly access: EtcdAccess
  /** "etcd <endpoints>", passwords redacted. */
  readonly name: string
  /** A new client; the caller closes it. */
  client: () => Etcd3
}

export function connector (opts: ConnectOptions): EtcdConnector {
  const access = combineAccess(opts.endpoints, opts.tls, opts.auth)
  const make = opts.clientFactory ?? ((eps: string[]) => createClient(eps, { requestTimeoutMs: opts.requestTimeoutMs, tls: access.tls, auth: access.auth }))
  return { access, name: `etcd ${access.shown.join(',')}`, client: () => make([...access.hosts]) }
}

/** "http://a:2379, b:2379" → ["http://a:2379", "http://b:2379"]. */
export function parseEndpoints (text: string): string[] {
  return text.split(',').map(s => s.trim()).filter(s => s !== '')
}
