// The server's CoreDNS metrics (DNS.md §6), under CoreDNS 1.12's names and labels so its dashboards
// work unchanged. A query's observations are plain number and array increments: prom-client hashes the
// label set on every inc/observe (even through a cached child), which cost ~20% of the server's CPU under
// dnsperf. Counters are handed to prom-client at scrape time (its `collect` hook); the per-query
// histograms keep their own bucket counts and export them in prom-client's format.
import type { HistogramConfiguration, LabelValues, MetricObjectWithValues, MetricValueWithName, Registry } from 'prom-client'
import { Counter, Gauge, Histogram } from '../metrics/prom.js'
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
  // Counts not yet handed to prom-client, flushed by each counter's collect hook before a scrape.
  const pending: Array<{ child: { inc: (n: number) => void }, n: number }> = []
  const flush = (): void => { for (const p of pending) if (p.n > 0) { p.child.inc(p.n); p.n = 0 } }
  const deferred = (child: { inc: (n: number) => void }): { n: number } => { const p = { child, n: 0 }; pending.push(p); return p }
  const requests = new Counter({ name: 'coredns_dns_requests_total', help: 'DNS queries received, by protocol, address family and query type.', labelNames: ['server', 'zone', 'view', 'proto', 'family', 'type'], registers: [registry], collect: flush })
  const doRequests = new Counter({ name: 'coredns_dns_do_requests_total', help: 'DNS queries that set the DNSSEC OK bit.', labelNames: ['server', 'zone', 'view'], registers: [registry], collect: flush })
  const responses = new Counter({ name: 'coredns_dns_responses_total', help: 'DNS replies sent, by response code and the handler that wrote them.', labelNames: ['server', 'zone', 'view', 'rcode', 'plugin'], registers: [registry], collect: flush })
  const duration = new LocalHistogram({ name: 'coredns_dns_request_duration_seconds', help: 'Seconds from a query\'s arrival to its reply.', labelNames: ['server', 'zone', 'view'], buckets: TIME_BUCKETS, registers: [registry] })
  const reqSize = new LocalHistogram({ name: 'coredns_dns_request_size_bytes', help: 'Query sizes in bytes, by protocol.', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers: [registry] })
  const respSize = new LocalHistogram({ name: 'coredns_dns_response_size_bytes', help: 'Reply sizes in bytes, by protocol.', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers: [registry] })
  const programming = new Histogram({ name: 'coredns_kubernetes_dns_programming_duration_seconds', help: 'Seconds from an endpoint change (its last-change-trigger-time) to its names being served.', labelNames: ['service_kind'], buckets: PROGRAMMING_BUCKETS, registers: [registry] })
  const autopath = new Counter({ name: 'coredns_autopath_success_total', help: 'Queries answered through server-side search-path completion.', labelNames: ['server'], registers: [registry] })
  const panics = new Counter({ name: 'coredns_panics_total', help: 'Unexpected errors caught while answering a query.', registers: [registry] })
  new Gauge({ name: 'coredns_build_info', help: 'Always 1; the labels name the ferry version and the Node.js runtime serving DNS.', labelNames: ['version', 'revision', 'goversion'], registers: [registry] })
    .set({ version, revision: 'ferry', goversion: process.version }, 1)
  const enabled = new Gauge({ name: 'coredns_plugin_enabled', help: '1 for each DNS handler in the chain, per server and zone.', labelNames: ['server', 'zone', 'view', 'name'], registers: [registry] })
  for (const name of ['kubernetes', 'forward', 'cache', 'prometheus', 'errors']) enabled.set({ server, zone, view, name }, 1)

  const durationSeries = duration.series({ server, zone, view })
  const doCount = deferred(doRequests.labels({ server, zone, view }))
  const udpSizes = { req: reqSize.series({ server, zone, view, proto: 'udp' }), resp: respSize.series({ server, zone, view, proto: 'udp' }) }
  const tcpSizes = { req: reqSize.series({ server, zone, view, proto: 'tcp' }), resp: respSize.series({ server, zone, view, proto: 'tcp' }) }
  // Keyed by small integers: (proto, family, qtype) and (rcode, plugin) without building strings.
  const reqCounts = new Map<number, { n: number }>()
  const respCounts = new Map<string, Map<number, { n: number }>>()
  const autopathChild = autopath.labels({ server })

  return {
    observe (q, r) {
      const rk = (q.qtype << 3) | (q.family << 1) | (q.proto === 'tcp' ? 1 : 0)
      let rc = reqCounts.get(rk)
      if (rc === undefined) { rc = deferred(requests.labels({ server, zone, view, proto: q.proto, family: String(q.family), type: typeLabel(q.qtype) })); reqCounts.set(rk, rc) }
      rc.n++
      if (q.do) doCount.n++
      let byRcode = respCounts.get(r.plugin)
      if (byRcode === undefined) { byRcode = new Map(); respCounts.set(r.plugin, byRcode) }
      let sc = byRcode.get(r.rcode)
      if (sc === undefined) { sc = deferred(responses.labels({ server, zone, view, rcode: rcodeName(r.rcode), plugin: r.plugin })); byRcode.set(r.rcode, sc) }
      sc.n++
      durationSeries.observe(r.seconds)
      const sizes = q.proto === 'tcp' ? tcpSizes : udpSizes
      sizes.req.observe(q.requestSize)
      sizes.resp.observe(r.responseSize)
    },
    observeProgramming (serviceKind, seconds) { programming.observe({ service_kind: serviceKind }, seconds) },
    autopathSuccess () { autopathChild.inc() },
    panic () { panics.inc() },
  }
}

interface LocalSeries { readonly labels: LabelValues<string>, readonly counts: Float64Array, sum: number, count: number, observe: (v: number) => void }

/**
 * A prom-client Histogram whose series count into their own arrays; prom-client's registry reads them
 * through `getForPromString` (and `get`), so the exposition is the one a plain Histogram would give.
 * Only `series()` observes into it.
 */
class LocalHistogram<T extends string> extends Histogram<T> {
  private readonly bounds: readonly number[]
  private readonly all: LocalSeries[] = []
  private readonly metricName: string
  private readonly helpText: string

  constructor (cfg: HistogramConfiguration<T> & { buckets: number[] }) {
    super(cfg)
    this.bounds = [...cfg.buckets].sort((a, b) => a - b)
    this.metricName = cfg.name
    this.helpText = cfg.help
  }

  series (labels: LabelValues<T>): LocalSeries {
    const bounds = this.bounds
    const s: LocalSeries = {
      labels,
      counts: new Float64Array(bounds.length),
      sum: 0,
      count: 0,
      observe (v: number) {
        s.sum += v
        s.count++
        for (let i = 0; i < bounds.length; i++) if (v <= (bounds[i] as number)) { (s.counts[i] as number)++; return }
      },
    }
    this.all.push(s)
    return s
  }

  override reset (): void {
    super.reset()
    // prom-client's constructor calls reset() before this class's fields exist.
    const all = this.all as LocalSeries[] | undefined
    for (const s of all ?? []) { s.counts.fill(0); s.sum = 0; s.count = 0 }
  }

  // prom-client's registry calls this (when present) to render the text format; `get()` splays it.
  async getForPromString (): Promise<MetricObjectWithValues<MetricValueWithName<T>>> {
    const values: Array<MetricValueWithName<T> & { sharedLabels: LabelValues<T> }> = []
    const bucket = `${this.metricName}_bucket`
    for (const s of this.all) {
      // A series no query has touched is not exported, as prom-client omits label sets never observed.
      if (s.count === 0) continue
      const shared = s.labels as LabelValues<T>
      let acc = 0
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i] as number
        values.push({ labels: { le: this.bounds[i] } as unknown as LabelValues<T>, sharedLabels: shared, value: acc, metricName: bucket })
      }
      values.push({ labels: { le: '+Inf' } as unknown as LabelValues<T>, sharedLabels: shared, value: s.count, metricName: bucket })
      values.push({ labels: {}, sharedLabels: shared, value: s.sum, metricName: `${this.metricName}_sum` })
      values.push({ labels: {}, sharedLabels: shared, value: s.count, metricName: `${this.metricName}_count` })
    }
    // prom-client's typings declare `type` as an enum and `collect` as required; at run time (and in its
    // registry) `type` is the string and `collect` is optional.
    const data = { name: this.metricName, help: this.helpText, type: 'histogram', values, aggregator: 'sum' }
    return data as unknown as MetricObjectWithValues<MetricValueWithName<T>>
  }
}
