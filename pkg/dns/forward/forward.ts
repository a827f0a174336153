// CoreDNS's `forward` (DNS.md §4.1–4.4) as the last link of the chain. Upstream replies pass through as
// raw bytes, header flags (RA) as the upstream set them; the errors ferry makes itself (SERVFAIL when
// every try failed, REFUSED over max_concurrent, FORMERR for a reply to another question) are structured
// answers without RA, as CoreDNS writes them, so the cache never stores them.
import type { Registry } from 'prom-client'
import { formatHostPort, loopingUpstreams, type HostPort } from '../../config/dns-addresses.js'
import { FerryError } from '../../errors/errors.js'
import { RCODE, answer, type Handler, type Plugin, type Query, type Reply, type Request } from '../message.js'
import { inspectReply, patchId, patchQuestionCase, type RawInfo } from '../wire/raw.js'
import { EDNS_UDP_SIZE, encodeQuery } from '../wire/writer.js'
import { forwardMetrics, noForwardMetrics, type ForwardMetrics } from './metrics.js'
import { rcodeName } from '../message.js'
import { ExchangeError, IdSource, tcpExchange } from './transport.js'
import { Upstream } from './upstream.js'

export type ForwardPolicy = 'random' | 'round_robin' | 'sequential'

export interface ForwardOptions {
  readonly upstreams: readonly HostPort[]
  /** ferry's own DNS listen addresses: an upstream among them is a forwarding loop and is refused. */
  readonly selfAddresses?: readonly HostPort[]
  readonly policy?: ForwardPolicy
  /** Down after more than this many failed checks in a row; 0 turns health checks off. Default 2. */
  readonly maxFails?: number
  /** Queries in flight beyond this are REFUSED; 0 means no limit. Default 1000. */
  readonly maxConcurrent?: number
  /** Per try (default 2000) and per query (default 5000). */
  readonly tryTimeoutMs?: number
  readonly overallTimeoutMs?: number
  /** Health check interval (default 500) and probe timeout (default 1000). */
  readonly healthCheckIntervalMs?: number
  readonly healthCheckTimeoutMs?: number
  /** Connected UDP sockets per upstream (default 4), each replaced after socketExpireMs (default 10000). */
  readonly udpSockets?: number
  readonly socketExpireMs?: number
  /** Metrics: explicit hooks win over a registry; neither means none. */
  readonly metrics?: ForwardMetrics
  readonly registry?: Registry
  /** Injectable for tests: randomness for the policy, a millisecond clock, the host's addresses. */
  readonly random?: () => number
  readonly now?: () => number
  readonly localAddresses?: () => readonly string[]
}

export interface UpstreamStatus {
  readonly to: string
  readonly fails: number
  readonly down: boolean
}

/** The plugin, plus what the server needs to run it: its handler, its upstreams' state, and close(). */
export type ForwardPlugin = Plugin & {
  readonly handler: Handler
  status (): UpstreamStatus[]
  close (): void
}

/** CoreDNS's limit on upstreams per forward block. */
export const MAX_UPSTREAMS = 15

/**
 * The bytes sent upstream for `q`: its question with ID 0 (each try writes its own), its RD and CD bits,
 * and an OPT advertising 1232 with its DO bit (ferry always speaks EDNS upstream, DNS.md §5.4).
 */
export function upstreamQuery (q: Query): Uint8Array {
  const { name, type, class: qclass } = q.question
  return encodeQuery(0, name, type, { rd: q.rd, cd: q.cd, qclass, udpSize: EDNS_UDP_SIZE, do: q.edns?.do === true })
}

export function forwardPlugin (opts: ForwardOptions): ForwardPlugin {
  if (opts.upstreams.length === 0) throw new FerryError('FERRY_ERR_CONFIG', 'DNS forwarding needs at least one upstream')
  if (opts.upstreams.length > MAX_UPSTREAMS) throw new FerryError('FERRY_ERR_CONFIG', `DNS forwarding takes at most ${MAX_UPSTREAMS} upstreams`, { upstreams: opts.upstreams.length })
  const loops = loopingUpstreams(opts.upstreams, opts.selfAddresses ?? [], opts.localAddresses)
  if (loops.length > 0) {
    const list = loops.map(l => formatHostPort(l.upstream))
    throw new FerryError('FERRY_ERR_CONFIG', `DNS upstream ${list.join(', ')} is one of ferry's own listen addresses (a forwarding loop)`, { upstreams: list })
  }
  const metrics = opts.metrics ?? (opts.registry !== undefined ? forwardMetrics(opts.registry) : noForwardMetrics)
  const now = opts.now ?? (() => performance.now())
  const random = opts.random ?? Math.random
  const maxConcurrent = opts.maxConcurrent ?? 1000
  const tryTimeout = opts.tryTimeoutMs ?? 2000
  const overallTimeout = opts.overallTimeoutMs ?? 5000
  const policy = opts.policy ?? 'random'
  const ids = new IdSource()
  const upstreams = opts.upstreams.map(addr => new Upstream(addr, {
    maxFails: opts.maxFails ?? 2,
    healthCheckIntervalMs: opts.healthCheckIntervalMs ?? 500,
    healthCheckTimeoutMs: opts.healthCheckTimeoutMs ?? 1000,
    udpSockets: opts.udpSockets ?? 4,
    socketExpireMs: opts.socketExpireMs ?? 10_000,
    now,
    metrics,
  }))
  let rotate = 0
  let concurrent = 0

  const order = (): Upstream[] => {
    if (upstreams.length === 1 || policy === 'sequential') return upstreams
    if (policy === 'round_robin') {
      const start = rotate++ % upstreams.length
      return [...upstreams.slice(start), ...upstreams.slice(0, start)]
    }
    const list = upstreams.slice()
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      const t = list[i] as Upstream
      list[i] = list[j] as Upstream
      list[j] = t
    }
    return list
  }

  /** One exchange; a truncated UDP reply is fetched again over TCP, keeping the truncated one if that fails. */
  const exchange = async (up: Upstream, query: Uint8Array, proto: Request['proto'], deadline: number): Promise<{ bytes: Buffer, view: RawInfo }> => {
    const budget = Math.min(tryTimeout, deadline - now())
    const bytes = proto === 'tcp' ? await tcpExchange(up.addr, query, budget, ids) : await up.udp.exchange(query, budget)
    const view = inspectReply(bytes)
    // A malformed reply fails the try like a network error: the next upstream gets the query.
    if (view === null) throw new ExchangeError(`malformed reply from ${up.to}`, 'network')
    if (!view.tc || proto === 'tcp') return { bytes, view }
    const left = Math.min(tryTimeout, deadline - now())
    if (left <= 0) return { bytes, view }
    try {
      metrics.connCache(up.to, 'tcp', false)
      const full = await tcpExchange(up.addr, query, left, ids)
      const fullView = inspectReply(full)
      return fullView === null ? { bytes, view } : { bytes: full, view: fullView }
    } catch {
      return { bytes, view }
    }
  }

  const forward = async (req: Request): Promise<Reply> => {
    const q = req.query
    const query = upstreamQuery(q)
    const deadline = now() + overallTimeout
    const list = order()
    // CoreDNS wraps around the list until the deadline; ferry also stops after two failed passes so
    // refused ports give a quick SERVFAIL instead of a 5 s spin.
    const maxTries = 2 * list.length
    let tries = 0
    let i = 0
    let downSeen = 0
    while (now() < deadline && tries < maxTries) {
      if (i >= list.length) { i = 0; downSeen = 0 }
      let up = list[i++] as Upstream
      if (up.down()) {
        if (++downSeen < list.length) continue
        // Every upstream is down: health checking itself may be broken, so try one anyway.
        up = upstreams[Math.floor(random() * upstreams.length)] as Upstream
        metrics.healthcheckBroken()
      }
      tries++
      const started = now()
      let got: { bytes: Buffer, view: RawInfo }
      try {
        if (req.proto === 'tcp') metrics.connCache(up.to, 'tcp', false)
        got = await exchange(up, query, req.proto, deadline)
      } catch {
        up.healthcheck()
        continue
      }
      metrics.requestDuration(up.to, rcodeName(got.view.rcode), (now() - started) / 1000)
      if (!matches(got.view, q)) return answer(RCODE.FORMERR, [], [], [], false)
      patchId(got.bytes, q.id)
      patchQuestionCase(got.bytes, q.question.name)
      return { kind: 'raw', bytes: got.bytes, info: got.view }
    }
    return answer(RCODE.SERVFAIL, [], [], [], false)
  }

  const handler: Handler = async req => {
    if (maxConcurrent > 0 && concurrent >= maxConcurrent) {
      metrics.maxConcurrentReject()
      return answer(RCODE.REFUSED, [], [], [], false)
    }
    concurrent++
    try {
      return await forward(req)
    } finally {
      concurrent--
    }
  }

  const plugin: Plugin = () => handler
  return Object.assign(plugin, {
    handler,
    status: (): UpstreamStatus[] => upstreams.map(u => ({ to: u.to, fails: u.fails, down: u.down() })),
    close: (): void => { for (const u of upstreams) u.close() },
  })
}

/** The reply answers our question (CoreDNS `request.Match`); the ID was matched by the transport. */
function matches (view: RawInfo, q: Query): boolean {
  const rq = view.question
  return view.qr && view.qdcount === 1 && rq !== null && rq.lname === q.question.lname &&
    rq.type === q.question.type && rq.class === q.question.class
}
