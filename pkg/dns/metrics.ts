// The server's CoreDNS metrics (DNS.md §6), under CoreDNS 1.12's names and labels so its dashboards
// work unchanged. Label children are cached: a query costs a few array reads, not label hashing.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { TYPE, rcodeName } from './message.js'

const TIME_BUCKETS = Array.from({ length: 16 }, (_, i) => 0.00025 * 2 ** i)
const SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3]
const PROGRAMMING_BUCKETS = Array.from({ length: 20 }, (_, i) => 0.001 * 2 ** i)

const TYPE_LABELS = new Map<number, string>([
  [TYPE.A, 'A'], [TYPE.AAAA, 'AAAA'], [TYPE.CNAME, 'CNAME'], [TYPE.DNSKEY, 'DNSKEY'], [TYPE.DS, 'DS'], [TYPE.MX, 'MX'],
  [TYPE.NSEC3, 'NSEC3'], [TYPE.NSEC, 'NSEC'], [TYPE.NS, 'NS'], [TYPE.PTR, 'PTR'], [TYPE.RRSIG, 'RRSIG'], [TYPE.SOA, 'SOA'],
  [TYPE.SRV, 'SRV'], [TYPE.TXT, 'TXT'], [TYPE.HTTPS, 'HTTPS'], [TYPE.IXFR, 'IXFR'], [TYPE.AXFR, 'AXFR'], [TYPE.ANY, 'ANY'],
])


export function typeLabel (qtype: number): string { return TYPE_LABELS.get(qtype) ?? 'other' }

export type Proto = 'udp' | 'tcp'

export interface DnsMetrics {
  /** One answered query: counted in requests, responses, duration and sizes. */
  observe (q: { proto: Proto, family: 1 | 2, qtype: number, do: boolean, requestSize: number }, r: { rcode: number, plugin: string, responseSize: number, seconds: number }): void
  observeProgramming (serviceKind: 'cluster_ip' | 'headless_with_selector', seconds: number): void
  autopathSuccess (): void
  panic (): void
}

/** `server` is CoreDNS's label for the listener block, e.g. "dns://:53". */
export function createDnsMetrics (registry: Registry, server: string, version: string): DnsMetrics {
  const zone = '.'
  const view = ''
  const requests = new Counter({ name: 'coredns_dns_requests_total', help: 'DNS queries received, by protocol, address family and query type.', labelNames: ['server', 'zone', 'view', 'proto', 'family', 'type'], registers: [registry] })
  const doRequests = new Counter({ name: 'coredns_dns_do_requests_total', help: 'DNS queries that set the DNSSEC OK bit.', labelNames: ['server', 'zone', 'view'], registers: [registry] })
  const responses = new Counter({ name: 'coredns_dns_responses_total', help: 'DNS replies sent, by response code and the handler that wrote them.', labelNames: ['server', 'zone', 'view', 'rcode', 'plugin'], registers: [registry] })
  const duration = new Histogram({ name: 'coredns_dns_request_duration_seconds', help: 'Seconds from a query\'s arrival to its reply.', labelNames: ['server', 'zone', 'view'], buckets: TIME_BUCKETS, registers: [registry] })
  const reqSize = new Histogram({ name: 'coredns_dns_request_size_bytes', help: 'Query sizes in bytes, by protocol.', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers: [registry] })
  const respSize = new Histogram({ name: 'coredns_dns_response_size_bytes', help: 'Reply sizes in bytes, by protocol.', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers: [registry] })
  const programming = new Histogram({ name: 'coredns_kubernetes_dns_programming_duration_seconds', help: 'Seconds from an endpoint change (its last-change-trigger-time) to its names being served.', labelNames: ['service_kind'], buckets: PROGRAMMING_BUCKETS, registers: [registry] })
  const autopath = new Counter({ name: 'coredns_autopath_success_total', help: 'Queries answered through server-side search-path completion.', labelNames: ['server'], registers: [registry] })
  const panics = new Counter({ name: 'coredns_panics_total', help: 'Unexpected errors caught while answering a query.', registers: [registry] })
  new Gauge({ name: 'coredns_build_info', help: 'Always 1; the labels name the ferry version and the Node.js runtime serving DNS.', labelNames: ['version', 'revision', 'goversion'], registers: [registry] })
    .set({ version, revision: 'ferry', goversion: process.version }, 1)
  const enabled = new Gauge({ name: 'coredns_plugin_enabled', help: '1 for each DNS handler in the chain, per server and zone.', labelNames: ['server', 'zone', 'view', 'name'], registers: [registry] })
  for (const name of ['kubernetes', 'forward', 'cache', 'prometheus', 'errors']) enabled.set({ server, zone, view, name }, 1)

  const durationChild = duration.labels({ server, zone, view })
  const doChild = doRequests.labels({ server, zone, view })
  const sizeChildren = new Map<Proto, { req: ReturnType<typeof reqSize.labels>, resp: ReturnType<typeof respSize.labels> }>()
  for (const proto of ['udp', 'tcp'] as const) sizeChildren.set(proto, { req: reqSize.labels({ server, zone, view, proto }), resp: respSize.labels({ server, zone, view, proto }) })
  const reqChildren = new Map<string, ReturnType<typeof requests.labels>>()
  const respChildren = new Map<string, ReturnType<typeof responses.labels>>()
  const autopathChild = autopath.labels({ server })

  return {
    observe (q, r) {
      const rk = `${q.proto}|${q.family}|${q.qtype}`
      let rc = reqChildren.get(rk)
      if (rc === undefined) { rc = requests.labels({ server, zone, view, proto: q.proto, family: String(q.family), type: typeLabel(q.qtype) }); reqChildren.set(rk, rc) }
      rc.inc()
      if (q.do) doChild.inc()
      const sk = `${r.rcode}|${r.plugin}`
      let sc = respChildren.get(sk)
      if (sc === undefined) { sc = responses.labels({ server, zone, view, rcode: rcodeName(r.rcode), plugin: r.plugin }); respChildren.set(sk, sc) }
      sc.inc()
      durationChild.observe(r.seconds)
      const sizes = sizeChildren.get(q.proto)
      sizes?.req.observe(q.requestSize)
      sizes?.resp.observe(r.responseSize)
    },
    observeProgramming (serviceKind, seconds) { programming.observe({ service_kind: serviceKind }, seconds) },
    autopathSuccess () { autopathChild.inc() },
    panic () { panics.inc() },
  }
}
