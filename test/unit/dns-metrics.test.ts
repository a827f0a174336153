// The server's CoreDNS metrics (DNS.md §6): the counts kept outside prom-client on the query path must
// expose exactly what plain prom-client counters and histograms fed the same queries expose, scrape
// after scrape, in the text format and through `getMetricsAsJSON`.
import t from 'tap'
import { Counter, Histogram, Registry } from 'prom-client'
import { RCODE, TYPE } from '../../pkg/dns/message.js'
import { cacheMetrics } from '../../pkg/dns/cache/metrics.js'
import { createDnsMetrics, typeLabel, type Proto } from '../../pkg/dns/metrics.js'
import { rcodeName } from '../../pkg/dns/message.js'

const SERVER = 'dns://127.0.0.1:53'
const TIME_BUCKETS = Array.from({ length: 16 }, (_, i) => 0.00025 * 2 ** i)
const SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3]
const FAMILIES = ['coredns_dns_requests_total', 'coredns_dns_do_requests_total', 'coredns_dns_responses_total',
  'coredns_dns_request_duration_seconds', 'coredns_dns_request_size_bytes', 'coredns_dns_response_size_bytes']

interface Obs { proto: Proto, family: 1 | 2, qtype: number, do: boolean, requestSize: number, rcode: number, plugin: string, responseSize: number, seconds: number }

/** The same metrics as plain prom-client objects, observed the slow way. */
function reference (registry: Registry): (o: Obs) => void {
  const base = { server: SERVER, zone: '.', view: '' }
  const requests = new Counter({ name: FAMILIES[0] as string, help: 'x', labelNames: ['server', 'zone', 'view', 'proto', 'family', 'type'], registers: [registry] })
  const doReq = new Counter({ name: FAMILIES[1] as string, help: 'x', labelNames: ['server', 'zone', 'view'], registers: [registry] })
  const responses = new Counter({ name: FAMILIES[2] as string, help: 'x', labelNames: ['server', 'zone', 'view', 'rcode', 'plugin'], registers: [registry] })
  const duration = new Histogram({ name: FAMILIES[3] as string, help: 'x', labelNames: ['server', 'zone', 'view'], buckets: TIME_BUCKETS, registers: [registry] })
  const reqSize = new Histogram({ name: FAMILIES[4] as string, help: 'x', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers: [registry] })
  const respSize = new Histogram({ name: FAMILIES[5] as string, help: 'x', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers: [registry] })
  return o => {
    requests.inc({ ...base, proto: o.proto, family: String(o.family), type: typeLabel(o.qtype) })
    if (o.do) doReq.inc(base)
    responses.inc({ ...base, rcode: rcodeName(o.rcode), plugin: o.plugin })
    duration.observe(base, o.seconds)
    reqSize.observe({ ...base, proto: o.proto }, o.requestSize)
    respSize.observe({ ...base, proto: o.proto }, o.responseSize)
  }
}

/** Only the sample lines of the families under test, sorted (HELP texts differ on purpose). */
async function samples (registry: Registry): Promise<string[]> {
  const text = await registry.metrics()
  return text.split('\n').filter(l => FAMILIES.some(f => l.startsWith(f + '{') || l.startsWith(f + '_') || l.startsWith(f + ' '))).sort()
}

async function jsonValues (registry: Registry): Promise<string[]> {
  const all = await registry.getMetricsAsJSON()
  return all.filter(m => FAMILIES.includes(m.name)).flatMap(m => m.values.map(v => JSON.stringify([m.name, m.type, (v as { metricName?: string }).metricName ?? m.name, Object.entries(v.labels).sort(), v.value]))).sort()
}

const q = (over: Partial<Obs>): Obs => ({ proto: 'udp', family: 1, qtype: TYPE.A, do: false, requestSize: 44, rcode: RCODE.NOERROR, plugin: 'kubernetes', responseSize: 97, seconds: 0.00012, ...over })

const batches: Array<{ name: string, obs: Obs[] }> = [
  { name: 'nothing observed yet', obs: [] },
  { name: 'cluster answers over UDP', obs: [q({}), q({ seconds: 0.0003 }), q({ qtype: TYPE.AAAA, rcode: RCODE.NXDOMAIN, responseSize: 150 })] },
  {
    name: 'every label form: TCP, IPv6, DO, other types, forward, bucket edges',
    obs: [
      q({ proto: 'tcp', family: 2, qtype: TYPE.SRV, do: true, requestSize: 100, responseSize: 511, seconds: 0.00025 }),
      q({ qtype: 65280, plugin: 'forward', rcode: RCODE.SERVFAIL, responseSize: 0, seconds: 9 }),
      q({ qtype: TYPE.PTR, plugin: '', rcode: RCODE.REFUSED, requestSize: 70000, responseSize: 64e3, seconds: 0 }),
      q({ proto: 'tcp', do: true, seconds: 8.192 }),
    ],
  },
  { name: 'the same series again after a scrape', obs: [q({}), q({ proto: 'tcp', family: 2, qtype: TYPE.SRV, do: true })] },
]

t.test('local counts expose what plain prom-client metrics expose, scrape after scrape', async t => {
  const mine = new Registry()
  const ref = new Registry()
  const m = createDnsMetrics(mine, SERVER, '0.0.0-test')
  const observeRef = reference(ref)
  for (const b of batches) {
    for (const o of b.obs) {
      m.observe({ proto: o.proto, family: o.family, qtype: o.qtype, do: o.do, requestSize: o.requestSize }, { rcode: o.rcode, plugin: o.plugin, responseSize: o.responseSize, seconds: o.seconds })
      observeRef(o)
    }
    const got = await samples(mine)
    t.same(got, await samples(ref), `${b.name}: text format`)
    t.same(await samples(mine), got, `${b.name}: a second scrape counts nothing twice`)
    t.same(await jsonValues(mine), await jsonValues(ref), `${b.name}: JSON`)
  }
  t.match(await mine.metrics(), /# TYPE coredns_dns_request_duration_seconds histogram/)
  t.match(await mine.metrics(), /coredns_dns_requests_total\{server="dns:\/\/127.0.0.1:53",zone=".",view="",proto="udp",family="1",type="A"\} 3/)
})

t.test('resetMetrics clears the local counts too', async t => {
  const mine = new Registry()
  const m = createDnsMetrics(mine, SERVER, '0.0.0-test')
  m.observe({ proto: 'udp', family: 1, qtype: TYPE.A, do: true, requestSize: 44 }, { rcode: 0, plugin: 'kubernetes', responseSize: 97, seconds: 0.001 })
  await mine.metrics()
  mine.resetMetrics()
  m.observe({ proto: 'udp', family: 1, qtype: TYPE.A, do: false, requestSize: 44 }, { rcode: 0, plugin: 'kubernetes', responseSize: 97, seconds: 0.001 })
  const text = await mine.metrics()
  t.match(text, /coredns_dns_request_duration_seconds_count\{server="dns:\/\/127.0.0.1:53",zone=".",view=""\} 1\n/)
  t.match(text, /coredns_dns_requests_total\{[^}]*type="A"\} 1\n/)
  t.notMatch(text, /coredns_dns_do_requests_total\{/)
})

t.test('cache counters: counted once across scrapes, per cache bound to one registry', async t => {
  const registry = new Registry()
  const a = cacheMetrics(registry, { server: 'dns://:53', zones: '.', view: '' })
  const b = cacheMetrics(registry, { server: 'dns://:5353', zones: '.', view: '' })
  const line = (text: string, name: string, server: string, type?: string): string | undefined =>
    text.split('\n').find(l => l.startsWith(`${name}{server="${server}",${type !== undefined ? `type="${type}",` : ''}zones="."`))
  const steps: Array<{ name: string, act: () => void, want: Array<[string, string, string | undefined, number]> }> = [
    { name: 'hits and a miss', act: () => { a.request(); a.hit('success'); a.request(); a.miss(); b.request(); b.hit('denial') }, want: [['coredns_cache_requests_total', 'dns://:53', undefined, 2], ['coredns_cache_hits_total', 'dns://:53', 'success', 1], ['coredns_cache_misses_total', 'dns://:53', undefined, 1], ['coredns_cache_requests_total', 'dns://:5353', undefined, 1], ['coredns_cache_hits_total', 'dns://:5353', 'denial', 1]] },
    { name: 'nothing new', act: () => {}, want: [['coredns_cache_requests_total', 'dns://:53', undefined, 2], ['coredns_cache_hits_total', 'dns://:5353', 'denial', 1]] },
    { name: 'more, and an eviction', act: () => { a.request(); a.hit('success'); a.eviction('success') }, want: [['coredns_cache_requests_total', 'dns://:53', undefined, 3], ['coredns_cache_hits_total', 'dns://:53', 'success', 2], ['coredns_cache_evictions_total', 'dns://:53', 'success', 1], ['coredns_cache_requests_total', 'dns://:5353', undefined, 1]] },
  ]
  for (const s of steps) {
    s.act()
    const text = await registry.metrics()
    for (const [name, server, type, n] of s.want) t.equal(line(text, name, server, type)?.split(' ').pop(), String(n), `${s.name}: ${name} ${server} ${type ?? ''}`)
  }
})
