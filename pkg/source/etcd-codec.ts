// Stored values ⇄ objects, and the one way ferry builds an etcd client. Shared by the source (read side)
// and the store (ferryctl's write side) so both agree on the layout and on what a valid value is.
import { Etcd3, type IOptions } from 'etcd3'
import { validateObject } from '../api/validate.js'
import type { KObject } from '../api/types.js'
import { FerryError, errorMessage } from '../errors/errors.js'
import type { EtcdAuth, EtcdTLS } from './etcd-access.js'
import { keyFor } from './etcd-keys.js'

/** Parses and validates the value stored at `key`; throws a FerryError naming the key (and field). */
export function decodeValue (key: string, value: Buffer | string, prefix?: string): KObject {
  let raw: unknown
  try {
    raw = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'))
  } catch (e) {
    throw new FerryError('FERRY_ERR_PARSE', `etcd key ${key}: value is not valid JSON: ${errorMessage(e)}`, { origin: key })
  }
  const obj = validateObject(raw, `etcd key ${key}`)
  const want = keyFor(obj, prefix)
  if (want !== key) {
    throw new FerryError('FERRY_ERR_INVALID_OBJECT',
      `etcd key ${key}: holds ${obj.kind} "${obj.metadata.namespace !== undefined ? obj.metadata.namespace + '/' : ''}${obj.metadata.name}", whose key is ${want}`,
      { origin: key, kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name })
  }
  return obj
}

export function encodeValue (obj: KObject): string {
  return JSON.stringify(obj)
}

export interface ClientOptions {
  /** Deadline for each unary call (range, txn, compact); streams have none. */
  requestTimeoutMs?: number
  /** CA and client certificate for https:// endpoints (see etcd-access.ts). */
  tls?: EtcdTLS | undefined
  /** etcd's username/password login; the client trades it for a token and renews it. */
  auth?: EtcdAuth | undefined
}

export type ClientFactory = (endpoints: string[]) => Etcd3

/**
 * `endpoints` must carry no userinfo (etcd-access.ts takes it out). A client with a per-call deadline and gRPC keepalive, so a dead or hung etcd is noticed on the watch
 * stream too (etcd's default keepalive enforcement allows pings every 5s; we ping every 10s).
 */
export function createClient (endpoints: string[], opts: ClientOptions = {}): Etcd3 {
  const timeout = opts.requestTimeoutMs ?? 5000
  const options: IOptions = {
    hosts: endpoints,
    dialTimeout: timeout,
    defaultCallOptions: (ctx) => ctx.isStream ? {} : { deadline: Date.now() + timeout },
    grpcOptions: {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 0,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    },
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

/** "http://a:2379, b:2379" → ["http://a:2379", "http://b:2379"]. */
export function parseEndpoints (text: string): string[] {
  return text.split(',').map(s => s.trim()).filter(s => s !== '')
}

let quiet = false
/**
 * grpc-js sends the host as TLS server name even when it is an IP (https://10.0.0.10:2379, the usual etcd
 * endpoint), and Node then prints DEP0123 on stderr: noise nobody running ferry can act on. Drops only that.
 */
function quietIPServerNameWarning (): void {
  if (quiet) return
  quiet = true
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void
  process.emitWarning = ((...args: unknown[]) => {
    const opt = args[1]
    const code = typeof opt === 'object' && opt !== null ? (opt as { code?: unknown }).code : args[2]
    if (code !== 'DEP0123') emit(...args)
  }) as typeof process.emitWarning
}
