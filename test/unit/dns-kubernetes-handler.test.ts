import t from 'tap'
import { RCODE, TYPE } from '../../pkg/dns/message.js'
import type { Answer } from '../../pkg/dns/message.js'
import { kubernetesPlugin } from '../../pkg/dns/kubernetes/handler.js'
import { RecordIndex } from '../../pkg/dns/kubernetes/index.js'
import type { PodRecords } from '../../pkg/dns/kubernetes/index.js'
import { NOW, ResponseRecorder, ZONE, clusterIndex, pod, show, upstream } from './fixtures/dns-cluster.js'

const S = 'shop.svc.cluster.local'
const SOA = 'cluster.local 5 SOA ns.dns.cluster.local hostmaster.cluster.local 1700000000 7200 1800 86400 5'
const V6_REV_SVC = '1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.0.d.f.ip6.arpa'
const V6_REV_EP = '1.0.0.0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.d.f.ip6.arpa'

function positive (...answer: string[]): { rcode: string, answer: string[] } { return { rcode: 'NOERROR', answer } }
const NODATA = { rcode: 'NOERROR', answer: [], authority: [SOA] }
const NXDOMAIN = { rcode: 'NXDOMAIN', answer: [], authority: [SOA] }

function recorder (podRecords: PodRecords = 'insecure', synced = true): ResponseRecorder {
  const index = clusterIndex(podRecords, synced)
  const { next } = upstream({})
  return new ResponseRecorder(kubernetesPlugin(index)(next))
}

type Row = [name: string, type: keyof typeof TYPE, want: Partial<ReturnType<typeof show>>]

// Every record form, both families and every rcode rule of DNS.md §2's table.
const rows: Row[] = [
  // ClusterIP, by family (§1.3, §1.8)
  [`web.${S}`, 'A', positive(`web.${S} 5 A 172.30.0.20`)],
  [`web.${S}`, 'AAAA', NODATA],
  [`v6only.${S}`, 'AAAA', positive(`v6only.${S} 5 AAAA fd00:30::11`)],
  [`v6only.${S}`, 'A', NODATA],
  [`dual.${S}`, 'A', positive(`dual.${S} 5 A 172.30.0.12`)],
  [`dual.${S}`, 'AAAA', positive(`dual.${S} 5 AAAA fd00:30::12`)],
  // SRV (§2.9): bare name lists every port, unnamed too; weight floor(100/n) over (address, port).
  [`dual.${S}`, 'SRV', {
    rcode: 'NOERROR',
    answer: [`dual.${S} 5 SRV 0 25 80 dual.${S}`, `dual.${S} 5 SRV 0 25 81 dual.${S}`],
    additional: [`dual.${S} 5 A 172.30.0.12`, `dual.${S} 5 AAAA fd00:30::12`],
  }],
  [`_http._tcp.dual.${S}`, 'SRV', {
    answer: [`_http._tcp.dual.${S} 5 SRV 0 50 80 dual.${S}`],
    additional: [`dual.${S} 5 A 172.30.0.12`, `dual.${S} 5 AAAA fd00:30::12`],
  }],
  [`_http._tcp.web.${S}`, 'SRV', { answer: [`_http._tcp.web.${S} 5 SRV 0 100 80 web.${S}`], additional: [`web.${S} 5 A 172.30.0.20`] }],
  [`_dns._udp.web.${S}`, 'SRV', { answer: [`_dns._udp.web.${S} 5 SRV 0 100 53 web.${S}`] }],
  [`web.${S}`, 'SRV', { answer: [`web.${S} 5 SRV 0 50 80 web.${S}`, `web.${S} 5 SRV 0 50 53 web.${S}`] }],
  [`_dns._tcp.web.${S}`, 'SRV', NXDOMAIN],
  [`_nope._tcp.web.${S}`, 'SRV', NXDOMAIN],
  [`http.tcp.web.${S}`, 'SRV', { answer: [`http.tcp.web.${S} 5 SRV 0 100 80 web.${S}`] }],
  [`_._udp.web.${S}`, 'SRV', { answer: [`_._udp.web.${S} 5 SRV 0 100 53 web.${S}`] }],
  [`_http._tcp.web.${S}`, 'A', positive(`_http._tcp.web.${S} 5 A 172.30.0.20`)],
  // Endpoint names on a ClusterIP service; not-ready endpoints and FQDN slices do not count.
  [`10-0-1-1.web.${S}`, 'A', positive(`10-0-1-1.web.${S} 5 A 10.0.1.1`)],
  [`10-0-1-2.web.${S}`, 'A', NXDOMAIN],
  [`backend-example-com.web.${S}`, 'A', NXDOMAIN],
  // Headless (§1.4): ready addresses per family, hostname endpoints, N endpoints x M ports SRV.
  [`db.${S}`, 'A', positive(`db.${S} 5 A 10.0.2.1`, `db.${S} 5 A 10.0.2.2`)],
  [`db.${S}`, 'AAAA', positive(`db.${S} 5 AAAA fd00:10::2:1`, `db.${S} 5 AAAA fd00:10::2:2`)],
  [`db.${S}`, 'SRV', {
    answer: [
      `db.${S} 5 SRV 0 12 5432 db-0.db.${S}`, `db.${S} 5 SRV 0 12 9187 db-0.db.${S}`,
      `db.${S} 5 SRV 0 12 5432 10-0-2-2.db.${S}`, `db.${S} 5 SRV 0 12 9187 10-0-2-2.db.${S}`,
      `db.${S} 5 SRV 0 12 5432 fd00-10--2-2.db.${S}`, `db.${S} 5 SRV 0 12 9187 fd00-10--2-2.db.${S}`,
    ],
    additional: [
      `db-0.db.${S} 5 A 10.0.2.1`, `10-0-2-2.db.${S} 5 A 10.0.2.2`,
      `db-0.db.${S} 5 AAAA fd00:10::2:1`, `fd00-10--2-2.db.${S} 5 AAAA fd00:10::2:2`,
    ],
  }],
  [`_pg._tcp.db.${S}`, 'SRV', {
    answer: [`_pg._tcp.db.${S} 5 SRV 0 25 5432 db-0.db.${S}`, `_pg._tcp.db.${S} 5 SRV 0 25 5432 10-0-2-2.db.${S}`, `_pg._tcp.db.${S} 5 SRV 0 25 5432 fd00-10--2-2.db.${S}`],
  }],
  [`db-0.db.${S}`, 'A', positive(`db-0.db.${S} 5 A 10.0.2.1`)],
  [`db-0.db.${S}`, 'AAAA', positive(`db-0.db.${S} 5 AAAA fd00:10::2:1`)],
  [`10-0-2-3.db.${S}`, 'A', NXDOMAIN],
  [`cold.${S}`, 'A', NXDOMAIN],
  [`cold.${S}`, 'SRV', NXDOMAIN],
  [`warm.${S}`, 'A', positive(`warm.${S} 5 A 10.0.4.1`)],
  [`warm.${S}`, 'AAAA', positive(`warm.${S} 5 AAAA fd00:10:0:0:4::`)],
  [`warm.${S}`, 'SRV', NODATA],
  [`fd00-10-0-0-4--0.warm.${S}`, 'AAAA', positive(`fd00-10-0-0-4--0.warm.${S} 5 AAAA fd00:10:0:0:4::`)],
  // ExternalName (§2.10), the parts that need no upstream.
  [`ext.${S}`, 'CNAME', positive(`ext.${S} 5 CNAME example.com`)],
  [`ext.${S}`, 'SRV', NODATA],
  [`ext.${S}`, 'TXT', NODATA],
  [`_http._tcp.ext.${S}`, 'SRV', NXDOMAIN],
  [`x.ext.${S}`, 'A', NXDOMAIN],
  [`extip.${S}`, 'A', NXDOMAIN],
  [`extin.${S}`, 'A', positive(`extin.${S} 5 CNAME web.shop.svc.cluster.local`, `web.${S} 5 A 172.30.0.20`)],
  [`extin.${S}`, 'AAAA', NODATA],
  // Apex, structure, dns-version, ns.dns (§1.1, §2.2, §2.3)
  [ZONE, 'SOA', positive(SOA)],
  [ZONE, 'NS', { rcode: 'NOERROR', answer: ['cluster.local 5 NS ns.dns.cluster.local'], additional: ['ns.dns.cluster.local 5 A 172.30.0.10', 'ns.dns.cluster.local 5 AAAA fd00:30::a'] }],
  [ZONE, 'A', NODATA],
  [ZONE, 'TXT', NODATA],
  ['dns-version.cluster.local', 'TXT', positive('dns-version.cluster.local 28800 TXT "1.1.0"')],
  ['dns-version.cluster.local', 'A', NXDOMAIN],
  ['ns.dns.cluster.local', 'A', positive('ns.dns.cluster.local 5 A 172.30.0.10')],
  ['ns.dns.cluster.local', 'AAAA', positive('ns.dns.cluster.local 5 AAAA fd00:30::a')],
  // CoreDNS says NXDOMAIN for TXT and PTR here (they miss its isDefaultNS shortcut and its parser rejects
  // "dns"), though the name holds A records: a resolver caching that NXDOMAIN (RFC 8020) would then hide
  // them. Ferry answers NODATA, as for every other type.
  ['ns.dns.cluster.local', 'TXT', NODATA],
  ['ns.dns.cluster.local', 'PTR', NODATA],
  ['ns.dns.cluster.local', 'MX', NODATA],
  ['ns.dns.cluster.local', 'SRV', NODATA],
  ['ns.dns.cluster.local', 'ANY', NODATA],
  ['ns.dns.cluster.local', 'HTTPS', NODATA],
  ['ns.dns.cluster.local', 'NS', NODATA],
  ['ns.dns.cluster.local', 'SOA', NODATA],
  ['x.ns.dns.cluster.local', 'A', NXDOMAIN],
  ['dns.cluster.local', 'A', NXDOMAIN],
  ['dns.cluster.local', 'TXT', NXDOMAIN],
  ['dns.cluster.local', 'MX', NXDOMAIN],
  ['dns.cluster.local', 'ANY', NXDOMAIN],
  ['dns.cluster.local', 'SOA', NODATA],
  ['dns-version.cluster.local', 'MX', NXDOMAIN],
  ['dns-version.cluster.local', 'ANY', NXDOMAIN],
  ['dns-version.cluster.local', 'PTR', NXDOMAIN],
  ['dns-version.cluster.local', 'SOA', NODATA],
  ['svc.cluster.local', 'A', NODATA],
  ['pod.cluster.local', 'A', NODATA],
  ['foo.cluster.local', 'A', NXDOMAIN],
  [S, 'A', NODATA],
  [S, 'SRV', NODATA],
  ['lonely.svc.cluster.local', 'A', NODATA],
  ['nope.svc.cluster.local', 'A', NXDOMAIN],
  [`nope.nope.svc.cluster.local`, 'A', NXDOMAIN],
  [`a.b.c.web.${S}`, 'A', NXDOMAIN],
  // SOA off the apex is NODATA even for a missing name; TXT/other types NODATA only if the name exists.
  [`web.${S}`, 'SOA', NODATA],
  [`missing.${S}`, 'SOA', NODATA],
  [`web.${S}`, 'TXT', NODATA],
  [`missing.${S}`, 'TXT', NXDOMAIN],
  [`web.${S}`, 'MX', NODATA],
  [`web.${S}`, 'HTTPS', NODATA],
  [`web.${S}`, 'ANY', NODATA],
  [`missing.${S}`, 'MX', NXDOMAIN],
  [`web.${S}`, 'NS', NODATA],
  [`missing.${S}`, 'NS', NXDOMAIN],
  [`web.${S}`, 'PTR', NODATA],
  [`web.${S}`, 'CNAME', NODATA],
  [ZONE, 'AXFR', { rcode: 'REFUSED', aa: false, answer: [], authority: [] }],
  [`web.${S}`, 'IXFR', { rcode: 'REFUSED', aa: false }],
  // Pods, insecure (§2.7): echoes any dashed IP in an existing namespace.
  ['10-0-1-1.shop.pod.cluster.local', 'A', positive('10-0-1-1.shop.pod.cluster.local 5 A 10.0.1.1')],
  ['1-2-3-4.shop.pod.cluster.local', 'A', positive('1-2-3-4.shop.pod.cluster.local 5 A 1.2.3.4')],
  ['1-2-3-4.shop.pod.cluster.local', 'AAAA', NODATA],
  ['fd00-10--1-5.shop.pod.cluster.local', 'AAAA', positive('fd00-10--1-5.shop.pod.cluster.local 5 AAAA fd00:10::1:5')],
  ['1-2-3-4.nope.pod.cluster.local', 'A', NXDOMAIN],
  ['not-an-ip.shop.pod.cluster.local', 'A', NXDOMAIN],
  ['shop.pod.cluster.local', 'A', NODATA],
  // Labels left of the dashed IP: CoreDNS's parser reads one as an endpoint and two as port and protocol,
  // and findPods ignores all three, so the pod's address answers under the longer name; three or more
  // labels is "too long" (parse.go parseRequest, kubernetes.go findPods).
  ['x.1-2-3-4.shop.pod.cluster.local', 'A', positive('x.1-2-3-4.shop.pod.cluster.local 5 A 1.2.3.4')],
  ['*.1-2-3-4.shop.pod.cluster.local', 'A', positive('*.1-2-3-4.shop.pod.cluster.local 5 A 1.2.3.4')],
  ['_http._tcp.1-2-3-4.shop.pod.cluster.local', 'A', positive('_http._tcp.1-2-3-4.shop.pod.cluster.local 5 A 1.2.3.4')],
  ['x.fd00-10--1-5.shop.pod.cluster.local', 'AAAA', positive('x.fd00-10--1-5.shop.pod.cluster.local 5 AAAA fd00:10::1:5')],
  ['x.1-2-3-4.shop.pod.cluster.local', 'AAAA', NODATA],
  ['x.1-2-3-4.shop.pod.cluster.local', 'TXT', NODATA],
  // SRV on a pod name: findPods's item has port 0 (not the -1 "no ports" mark), so backend_lookup.go SRV
  // writes a port-0 record whose target is the pod name from the item's key, with its address as glue.
  ['1-2-3-4.shop.pod.cluster.local', 'SRV', {
    answer: ['1-2-3-4.shop.pod.cluster.local 5 SRV 0 100 0 1-2-3-4.shop.pod.cluster.local'],
    additional: ['1-2-3-4.shop.pod.cluster.local 5 A 1.2.3.4'],
  }],
  ['_http._tcp.1-2-3-4.shop.pod.cluster.local', 'SRV', {
    answer: ['_http._tcp.1-2-3-4.shop.pod.cluster.local 5 SRV 0 100 0 1-2-3-4.shop.pod.cluster.local'],
    additional: ['1-2-3-4.shop.pod.cluster.local 5 A 1.2.3.4'],
  }],
  ['fd00-10--1-5.shop.pod.cluster.local', 'SRV', {
    answer: ['fd00-10--1-5.shop.pod.cluster.local 5 SRV 0 100 0 fd00-10--1-5.shop.pod.cluster.local'],
    additional: ['fd00-10--1-5.shop.pod.cluster.local 5 AAAA fd00:10::1:5'],
  }],
  ['a.b.c.1-2-3-4.shop.pod.cluster.local', 'A', NXDOMAIN],
  ['x.not-an-ip.shop.pod.cluster.local', 'A', NXDOMAIN],
  ['x.1-2-3-4.nope.pod.cluster.local', 'A', NXDOMAIN],
  // Wildcards went in CoreDNS 1.9: `*` is a plain label, so neither an IP nor a namespace.
  ['*.shop.pod.cluster.local', 'A', NXDOMAIN],
  ['1-2-3-4.*.pod.cluster.local', 'A', NXDOMAIN],
  // The IP as derived from the dashes, CoreDNS's way (3 dashes without "--": IPv4; else IPv6).
  ['2001-db8-0-0-0-0-0-1.shop.pod.cluster.local', 'AAAA', positive('2001-db8-0-0-0-0-0-1.shop.pod.cluster.local 5 AAAA 2001:db8::1')],
  ['--1.shop.pod.cluster.local', 'AAAA', positive('--1.shop.pod.cluster.local 5 AAAA ::1')],
  // An IPv4-mapped IPv6 is an IPv4 address to Go (To4 in msg.Service HostType): A, not AAAA.
  ['--ffff-102-304.shop.pod.cluster.local', 'A', positive('--ffff-102-304.shop.pod.cluster.local 5 A 1.2.3.4')],
  ['--ffff-102-304.shop.pod.cluster.local', 'AAAA', NODATA],
  ['0-0-0-0-0-ffff-a00-101.shop.pod.cluster.local', 'SRV', {
    answer: ['0-0-0-0-0-ffff-a00-101.shop.pod.cluster.local 5 SRV 0 100 0 0-0-0-0-0-ffff-a00-101.shop.pod.cluster.local'],
    additional: ['0-0-0-0-0-ffff-a00-101.shop.pod.cluster.local 5 A 10.0.1.1'],
  }],
  ['--102-304.shop.pod.cluster.local', 'AAAA', positive('--102-304.shop.pod.cluster.local 5 AAAA ::102:304')],
  // A zone ID ("%" is legal in a label) is no address to Go's ParseIP: NXDOMAIN, not an unencodable AAAA.
  ['fe80--1%eth0.shop.pod.cluster.local', 'AAAA', NXDOMAIN],
  ['1-2-3.shop.pod.cluster.local', 'A', NXDOMAIN],
  ['01-2-3-4.shop.pod.cluster.local', 'A', NXDOMAIN],
  ['1-2-3-4-5.shop.pod.cluster.local', 'A', NXDOMAIN],
  // PTR (§2.12), both families: ClusterIPs, then endpoints.
  ['20.0.30.172.in-addr.arpa', 'PTR', positive(`20.0.30.172.in-addr.arpa 5 PTR web.${S}`)],
  [V6_REV_SVC, 'PTR', positive(`${V6_REV_SVC} 5 PTR v6only.${S}`)],
  ['1.2.0.10.in-addr.arpa', 'PTR', positive(`1.2.0.10.in-addr.arpa 5 PTR db-0.db.${S}`)],
  ['1.1.0.10.in-addr.arpa', 'PTR', positive(`1.1.0.10.in-addr.arpa 5 PTR 10-0-1-1.web.${S}`)],
  [V6_REV_EP, 'PTR', positive(`${V6_REV_EP} 5 PTR db-0.db.${S}`)],
  ['2.1.0.10.in-addr.arpa', 'PTR', { rcode: 'NXDOMAIN', authority: ['in-addr.arpa 5 SOA ns.dns.in-addr.arpa hostmaster.in-addr.arpa 1700000000 7200 1800 86400 5'] }],
  ['1.1.1.1.in-addr.arpa', 'PTR', { rcode: 'NXDOMAIN' }],
  ['20.0.30.172.in-addr.arpa', 'A', { rcode: 'NXDOMAIN' }],
  ['in-addr.arpa', 'SOA', positive('in-addr.arpa 5 SOA ns.dns.in-addr.arpa hostmaster.in-addr.arpa 1700000000 7200 1800 86400 5')],
  ['ip6.arpa', 'A', { rcode: 'NOERROR', answer: [], authority: ['ip6.arpa 5 SOA ns.dns.ip6.arpa hostmaster.ip6.arpa 1700000000 7200 1800 86400 5'] }],
]

t.test('the §2 table: every record form and rcode rule, answered synchronously', async t => {
  const rec = recorder()
  for (const [name, type, want] of rows) {
    const reply = rec.serveSync(name, TYPE[type])
    const got = show(reply)
    t.match(got, { aa: true, ...want }, `${name} ${type}`)
    // CoreDNS's kubernetes plugin never sets RA on its own replies (DNS.md §2.1).
    t.equal(reply.ra, false, `${name} ${type}: RA=0`)
    if (want.answer !== undefined) t.same(got.answer, want.answer, `${name} ${type} answer`)
    if (want.additional !== undefined) t.same(got.additional, want.additional, `${name} ${type} additional`)
    if (got.rcode === 'NXDOMAIN' || (got.rcode === 'NOERROR' && got.answer.length === 0)) t.equal(got.authority.length, 1, `${name} ${type}: one SOA`)
  }
})

t.test('pod records in the three modes', async t => {
  const cases: Array<[PodRecords, string, keyof typeof TYPE, string]> = [
    ['disabled', '10-0-1-1.shop.pod.cluster.local', 'A', 'NXDOMAIN'],
    ['disabled', 'shop.pod.cluster.local', 'A', 'NXDOMAIN'],
    ['disabled', 'pod.cluster.local', 'A', 'NOERROR'],
    ['verified', '10-0-1-1.shop.pod.cluster.local', 'A', '10.0.1.1'],
    ['verified', 'fd00-10--1-5.shop.pod.cluster.local', 'AAAA', 'fd00:10::1:5'],
    ['verified', '1-2-3-4.shop.pod.cluster.local', 'A', 'NXDOMAIN'],
    ['verified', '10-0-1-9.shop.pod.cluster.local', 'A', 'NXDOMAIN'], // Succeeded
    ['verified', '10-0-1-8.shop.pod.cluster.local', 'A', 'NXDOMAIN'], // terminating
    ['verified', '10-0-1-1.lonely.pod.cluster.local', 'A', 'NXDOMAIN'], // wrong namespace
    ['verified', 'shop.pod.cluster.local', 'A', 'NOERROR'],
    ['verified', 'x.10-0-1-1.shop.pod.cluster.local', 'A', '10.0.1.1'],
    ['verified', 'x.1-2-3-4.shop.pod.cluster.local', 'A', 'NXDOMAIN'],
    ['disabled', 'x.10-0-1-1.shop.pod.cluster.local', 'A', 'NXDOMAIN'],
    ['insecure', '10-0-1-9.shop.pod.cluster.local', 'A', '10.0.1.9'],
  ]
  for (const [mode, name, type, want] of cases) {
    const got = show(recorder(mode).serveSync(name, TYPE[type]))
    if (want === 'NXDOMAIN' || want === 'NOERROR') t.match(got, { rcode: want, answer: [] }, `${mode} ${name}`)
    else t.same(got.answer, [`${name} 5 ${type} ${want}`], `${mode} ${name}`)
  }
})

t.test('verified pod SRV: weight floor(100/n) over the matching pods (hostNetwork pods share an IP)', async t => {
  const index = clusterIndex('verified')
  index.upsertPod(pod('shop', 'host-a', '10.0.0.5'))
  index.upsertPod(pod('shop', 'host-b', '10.0.0.5'))
  index.upsertPod(pod('lonely', 'host-c', '10.0.0.5'))
  const rec = new ResponseRecorder(kubernetesPlugin(index)(upstream({}).next))
  const name = '10-0-0-5.shop.pod.cluster.local'
  t.same(show(rec.serveSync(name, TYPE.SRV)), {
    rcode: 'NOERROR', aa: true, authority: [],
    answer: [`${name} 5 SRV 0 50 0 ${name}`],
    additional: [`${name} 5 A 10.0.0.5`],
  })
  t.same(show(rec.serveSync(name, TYPE.A)).answer, [`${name} 5 A 10.0.0.5`], 'one A however many pods')
})

t.test('case: owners equal to the question (and the SOA zone) keep the question bytes', async t => {
  const rec = recorder()
  t.same(show(rec.serveSync('WEB.Shop.svc.Cluster.Local', TYPE.A)).answer, ['WEB.Shop.svc.Cluster.Local 5 A 172.30.0.20'])
  const srv = show(rec.serveSync('_HTTP._Tcp.Web.shop.svc.cluster.local', TYPE.SRV))
  t.same(srv.answer, [`_HTTP._Tcp.Web.shop.svc.cluster.local 5 SRV 0 100 80 web.${S}`], 'port names match case-insensitively; targets stay lower')
  const nx = show(rec.serveSync('Missing.Shop.SVC.Cluster.LOCAL', TYPE.A))
  t.match(nx, { rcode: 'NXDOMAIN', authority: [/^Cluster\.LOCAL 5 SOA ns\.dns\.cluster\.local /] })
  t.same(show(rec.serveSync('Cluster.Local', TYPE.SOA)).answer, [SOA.replace('cluster.local 5', 'Cluster.Local 5')])
  const a1 = rec.serveSync(`web.${S}`, TYPE.A)
  const a2 = rec.serveSync(`web.${S}`, TYPE.A)
  t.equal(a1, a2, 'a lower-case question gets the stored answer itself')
  t.equal(rec.serveSync(`missing.${S}`, TYPE.A), rec.serveSync(`other.${S}`, TYPE.A), 'negative answers are shared until the serial moves')
})

t.test('until synced, a would-be NXDOMAIN is SERVFAIL; existing names answer', async t => {
  const rec = recorder('insecure', false)
  t.match(show(rec.serveSync(`missing.${S}`, TYPE.A)), { rcode: 'SERVFAIL', aa: true, authority: [SOA] })
  t.same(show(rec.serveSync(`web.${S}`, TYPE.A)).answer, [`web.${S} 5 A 172.30.0.20`])
  t.match(show(rec.serveSync(`web.${S}`, TYPE.AAAA)), { rcode: 'NOERROR', answer: [] })
})

t.test('names outside the zones go to next; reverse fallthrough hands unknown IPs on', async t => {
  const index = clusterIndex()
  const up = upstream({ 'example.org A': { kind: 'answer', rcode: RCODE.NOERROR, aa: false, answer: [{ name: 'example.org', ttl: 60, data: { type: TYPE.A, address: '192.0.2.1' } }], authority: [], additional: [], ra: true } })
  const plain = new ResponseRecorder(kubernetesPlugin(index)(up.next))
  t.same(show(await plain.serve('example.org', TYPE.A)).answer, ['example.org 60 A 192.0.2.1'])
  t.same(show(await plain.serve('1.1.1.1.in-addr.arpa', TYPE.PTR)).rcode, 'NXDOMAIN')
  t.same(up.asked, ['example.org A'])
  const ft = new ResponseRecorder(kubernetesPlugin(index, { reverseFallthrough: true })(up.next))
  t.same(show(await ft.serve('1.1.1.1.in-addr.arpa', TYPE.PTR)), { rcode: 'NXDOMAIN', aa: false, answer: [], authority: [], additional: [] }, 'the upstream stand-in answered')
  t.same(up.asked, ['example.org A', '1.1.1.1.in-addr.arpa PTR'])
  t.same(show(ft.serveSync('20.0.30.172.in-addr.arpa', TYPE.PTR)).answer, [`20.0.30.172.in-addr.arpa 5 PTR web.${S}`], 'cluster IPs still answer')
  t.match(show(ft.serveSync(`missing.${S}`, TYPE.A)), { rcode: 'NXDOMAIN', aa: true }, 'fallthrough is for the reverse zones only')
})

t.test('ExternalName targets resolve through next (§2.10)', async t => {
  const index = clusterIndex()
  const target: Answer = {
    kind: 'answer', rcode: RCODE.NOERROR, aa: false, authority: [], additional: [], ra: true,
    answer: [{ name: 'example.com', ttl: 60, data: { type: TYPE.A, address: '93.184.215.14' } }],
  }
  const up = upstream({ 'example.com A': target })
  const rec = new ResponseRecorder(kubernetesPlugin(index)(up.next))
  const merged = await rec.serve(`Ext.${S}`, TYPE.A)
  t.same(show(merged), {
    rcode: 'NOERROR', aa: true, authority: [], additional: [],
    answer: [`Ext.${S} 5 CNAME example.com`, 'example.com 60 A 93.184.215.14'],
  })
  t.equal(merged.kind === 'answer' && merged.ra, false, 'the plugin\'s own answer: RA=0 though the target\'s came with RA=1')
  t.same(show(await rec.serve(`extnx.${S}`, TYPE.A)), { rcode: 'NOERROR', aa: true, answer: [`extnx.${S} 5 CNAME nx.example`], authority: [], additional: [] }, 'target NXDOMAIN: the CNAME alone')
  t.same(up.asked, ['example.com A', 'nx.example A'])

  const failing = new ResponseRecorder(kubernetesPlugin(index)(async () => { throw new Error('upstream down') }))
  t.match(show(await failing.serve(`ext.${S}`, TYPE.A)), { rcode: 'NOERROR', answer: [], authority: [SOA] }, 'lookup error: NODATA')

  // A raw reply (from the forwarder or cache) is read back: CNAME chain and both families.
  const { default: dns2 } = await import('dns2')
  const p = new dns2.Packet()
  p.header.qr = 1
  p.questions.push(new dns2.Packet.Question('example.com', dns2.Packet.TYPE.A, dns2.Packet.CLASS.IN))
  p.answers.push(new dns2.Packet.Resource({ name: 'example.com', type: dns2.Packet.TYPE.CNAME, class: dns2.Packet.CLASS.IN, ttl: 60, domain: 'www.example.net' }))
  p.answers.push(new dns2.Packet.Resource({ name: 'www.example.net', type: dns2.Packet.TYPE.A, class: dns2.Packet.CLASS.IN, ttl: 30, address: '93.184.215.14' }))
  const raw = new ResponseRecorder(kubernetesPlugin(index)(() => ({ kind: 'raw', bytes: new Uint8Array(p.toBuffer()) })))
  t.same(show(await raw.serve(`ext.${S}`, TYPE.A)).answer, [`ext.${S} 5 CNAME example.com`, 'example.com 60 CNAME www.example.net', 'www.example.net 30 A 93.184.215.14'])

  // A signed target asked with DO=1 answers A + RRSIG: the RRSIG (which the model cannot carry) is left
  // out, the address is not.
  const signed = new dns2.Packet()
  signed.header.qr = 1
  signed.questions.push(new dns2.Packet.Question('example.com', dns2.Packet.TYPE.A, dns2.Packet.CLASS.IN))
  signed.answers.push(new dns2.Packet.Resource({ name: 'example.com', type: dns2.Packet.TYPE.A, class: dns2.Packet.CLASS.IN, ttl: 30, address: '93.184.215.14' }))
  const sigData = Buffer.concat([Buffer.from('0001' + '0d' + '02' + '0000001e' + '78000000' + '65000000' + '3039', 'hex'), Buffer.from('076578616d706c6503636f6d00', 'hex'), Buffer.alloc(64, 1)])
  const rrsig = Buffer.concat([Buffer.from('c00c' + '002e' + '0001' + '0000001e', 'hex'), Buffer.from([sigData.length >> 8, sigData.length & 0xff]), sigData])
  const signedBytes = Buffer.concat([signed.toBuffer(), rrsig])
  signedBytes.writeUInt16BE(2, 6)
  const withSig = new ResponseRecorder(kubernetesPlugin(index)(() => ({ kind: 'raw', bytes: new Uint8Array(signedBytes) })))
  t.same(show(await withSig.serve(`ext.${S}`, TYPE.A)).answer, [`ext.${S} 5 CNAME example.com`, 'example.com 30 A 93.184.215.14'], 'an RRSIG beside the target\'s A does not drop the A')
})

t.test('NS and ns.dns follow the configured addresses; an empty list still gives NS', async t => {
  const index = new RecordIndex({ zone: 'Cluster.Local.', now: () => NOW })
  index.markSynced()
  const rec = new ResponseRecorder(kubernetesPlugin(index)(upstream({}).next))
  t.same(show(rec.serveSync('cluster.local', TYPE.NS)).answer, ['cluster.local 5 NS ns.dns.cluster.local'])
  t.match(show(rec.serveSync('ns.dns.cluster.local', TYPE.A)), { rcode: 'NOERROR', answer: [] })
  t.match(show(rec.serveSync('shop.svc.cluster.local', TYPE.A)), { rcode: 'NXDOMAIN' }, 'an empty index has no namespaces')
  t.equal(index.zone, 'cluster.local')
  t.throws(() => new RecordIndex({ zone: ZONE, ttl: 3601 }), RangeError)
})
