import t from 'tap'
import dns2 from 'dns2'
import { RCODE, TYPE } from '../../pkg/dns/message.js'
import { answer, type Answer, type Handler, type Reply } from '../../pkg/dns/message.js'
import { autopathPlugin } from '../../pkg/dns/kubernetes/autopath.js'
import { kubernetesPlugin } from '../../pkg/dns/kubernetes/handler.js'
import { CLIENT, ResponseRecorder, ZONE, clusterIndex, show, upstream } from './fixtures/dns-cluster.js'

const RCODE_NAME = new Map<number, string>(Object.entries(RCODE).map(([k, v]) => [v, k]))

const EXAMPLE: Answer = {
  kind: 'answer', rcode: RCODE.NOERROR, aa: false, authority: [], additional: [], ra: true,
  answer: [{ name: 'example.com', ttl: 60, data: { type: TYPE.A, address: '93.184.215.14' } }],
}

function chain (searchDomains: string[] = ['corp.example'], next?: Handler, synced = true): { rec: ResponseRecorder, asked: string[] } {
  const index = clusterIndex('verified', synced)
  const up = upstream({ 'example.com A': EXAMPLE })
  const k8s = kubernetesPlugin(index)(next ?? up.next)
  const asked: string[] = []
  const spy: Handler = req => { asked.push(req.query.question.name); return k8s(req) }
  const ap = autopathPlugin({ zone: ZONE, podNamespace: ip => index.podNamespaceByIP(ip), searchDomains })(spy)
  return { rec: new ResponseRecorder(ap), asked }
}

t.test('a name found under the first element is the answer itself, with no CNAME', async t => {
  const { rec, asked } = chain()
  const r = await rec.serve('web.shop.svc.cluster.local', TYPE.A)
  t.same(show(r).answer, ['web.shop.svc.cluster.local 5 A 172.30.0.20'])
  t.same(asked, ['web.shop.svc.cluster.local'])
})

t.test('a later element wins behind a CNAME from the original name', async t => {
  const { rec, asked } = chain()
  const r = show(await rec.serve('kube-dns.kube-system.Shop.svc.cluster.local', TYPE.A))
  t.same(r.answer, [
    'kube-dns.kube-system.Shop.svc.cluster.local 5 CNAME kube-dns.kube-system.svc.cluster.local',
    'kube-dns.kube-system.svc.cluster.local 5 A 172.30.0.10',
  ])
  t.equal(r.rcode, 'NOERROR')
  t.same(asked, ['kube-dns.kube-system.Shop.svc.cluster.local', 'kube-dns.kube-system.svc.cluster.local'])
})

t.test('external names walk every element, the server search domains, then the bare name', async t => {
  const { rec, asked } = chain()
  const r = show(await rec.serve('example.com.shop.svc.cluster.local', TYPE.A))
  t.same(r.answer, ['example.com.shop.svc.cluster.local 60 CNAME example.com', 'example.com 60 A 93.184.215.14'])
  t.same(asked, [
    'example.com.shop.svc.cluster.local', 'example.com.svc.cluster.local', 'example.com.cluster.local',
    'example.com.corp.example', 'example.com',
  ])
})

t.test('a raw upstream reply is read back to carry the CNAME', async t => {
  const p = new dns2.Packet()
  p.header.qr = 1
  p.questions.push(new dns2.Packet.Question('example.com', dns2.Packet.TYPE.AAAA, dns2.Packet.CLASS.IN))
  p.answers.push(new dns2.Packet.Resource({ name: 'example.com', type: dns2.Packet.TYPE.AAAA, class: dns2.Packet.CLASS.IN, ttl: 30, address: '2001:db8::1' }))
  const raw: Handler = req => req.query.question.lname === 'example.com'
    ? { kind: 'raw', bytes: new Uint8Array(p.toBuffer()) }
    : { kind: 'answer', rcode: RCODE.NXDOMAIN, aa: false, answer: [], authority: [], additional: [], ra: true }
  const { rec } = chain([], raw)
  t.same(show(await rec.serve('example.com.shop.svc.cluster.local', TYPE.AAAA)).answer, [
    'example.com.shop.svc.cluster.local 30 CNAME example.com', 'example.com 30 AAAA 2001:db8::1',
  ])
})

// CoreDNS writes the found reply with its own flags: the upstream's RA, or none from the cluster.
t.test('the answer behind the CNAME keeps the found reply\'s RA: the upstream\'s, clear from the cluster', async t => {
  const rawA = (name: string, ra: boolean): Uint8Array => {
    const p = new dns2.Packet()
    Object.assign(p.header, { qr: 1, rd: 1, ra: ra ? 1 : 0 })
    p.questions.push(new dns2.Packet.Question(name, dns2.Packet.TYPE.A, dns2.Packet.CLASS.IN))
    p.answers.push(new dns2.Packet.Resource({ name, type: dns2.Packet.TYPE.A, class: dns2.Packet.CLASS.IN, ttl: 30, address: '192.0.2.7' }))
    return new Uint8Array(p.toBuffer())
  }
  for (const ra of [true, false]) {
    const raw: Handler = req => req.query.question.lname === 'example.com'
      ? { kind: 'raw', bytes: rawA('example.com', ra) }
      : answer(RCODE.NXDOMAIN, [], [], [], false, true)
    const { rec } = chain([], raw)
    const r = await rec.serve('example.com.shop.svc.cluster.local', TYPE.A)
    t.equal(show(r).answer.length, 2, 'CNAME and the forwarded record')
    t.equal(r.kind === 'answer' && r.ra, ra, `a raw upstream reply with RA=${Number(ra)}`)
  }
  const structured = await chain().rec.serve('example.com.shop.svc.cluster.local', TYPE.A)
  t.equal(structured.kind === 'answer' && structured.ra, true, 'a structured upstream answer\'s RA')
  const cluster = await chain().rec.serve('kube-dns.kube-system.shop.svc.cluster.local', TYPE.A)
  t.equal(cluster.kind === 'answer' && cluster.ra, false, 'a cluster answer: RA=0')
})

t.test('NODATA is a hit and comes back without a CNAME', async t => {
  const { rec, asked } = chain()
  const r = show(await rec.serve('web.shop.svc.cluster.local', TYPE.AAAA))
  t.match(r, { rcode: 'NOERROR', answer: [] })
  t.equal(asked.length, 1)
  const r2 = show(await rec.serve('kube-dns.kube-system.shop.svc.cluster.local', TYPE.AAAA))
  t.match(r2, { rcode: 'NOERROR', answer: [] })
})

t.test('every element NXDOMAIN: the first reply, as the client asked it', async t => {
  const { rec, asked } = chain([])
  const r = show(await rec.serve('nothing.Shop.svc.cluster.local', TYPE.A))
  t.match(r, { rcode: 'NXDOMAIN', authority: [/^cluster\.local 5 SOA /] })
  t.equal(asked.length, 4)
})

/** A raw upstream reply to `name` with this rcode and nothing else, as a resolver's SERVFAIL comes back. */
function rawFailure (name: string, rcode: number): Uint8Array {
  const p = new dns2.Packet()
  p.header.qr = 1
  p.header.rcode = rcode
  p.questions.push(new dns2.Packet.Question(name, dns2.Packet.TYPE.A, dns2.Packet.CLASS.IN))
  return new Uint8Array(p.toBuffer())
}

// CoreDNS continues only past NXDOMAIN: forward writes an upstream's SERVFAIL (so autopath returns it)
// and returns its own failures with an error (so autopath stops and the server answers that rcode).
t.test('a candidate that fails (upstream SERVFAIL, forward\'s own SERVFAIL/REFUSED/FORMERR) ends the walk with that rcode', async t => {
  const cases: Array<[string, number, (name: string) => Reply]> = [
    ['upstream SERVFAIL (raw)', RCODE.SERVFAIL, name => ({ kind: 'raw', bytes: rawFailure(name, RCODE.SERVFAIL) })],
    ['upstream REFUSED (raw)', RCODE.REFUSED, name => ({ kind: 'raw', bytes: rawFailure(name, RCODE.REFUSED) })],
    ['every try failed: SERVFAIL', RCODE.SERVFAIL, () => answer(RCODE.SERVFAIL, [], [], [], false)],
    ['over max_concurrent: REFUSED', RCODE.REFUSED, () => answer(RCODE.REFUSED, [], [], [], false)],
    ['wrong question: FORMERR', RCODE.FORMERR, () => answer(RCODE.FORMERR, [], [], [], false)],
  ]
  for (const [what, rcode, fail] of cases) {
    const next: Handler = async req => req.query.question.lname === 'example.com.corp.example' ? fail(req.query.question.name) : await upstream({ 'example.com A': EXAMPLE }).next(req)
    const { rec, asked } = chain(['corp.example'], next)
    const r = show(await rec.serve('example.com.shop.svc.cluster.local', TYPE.A))
    t.equal(r.rcode, RCODE_NAME.get(rcode), `${what}: the failure is the answer`)
    t.same(r.answer, [], `${what}: nothing to put behind a CNAME`)
    t.equal(asked.at(-1), 'example.com.corp.example', `${what}: the bare name is not tried`)
  }
})

t.test('before the first sync, the SERVFAIL for the first element is the answer', async t => {
  const { rec, asked } = chain([], undefined, false)
  t.equal(show(await rec.serve('kube-dns.kube-system.shop.svc.cluster.local', TYPE.A)).rcode, 'SERVFAIL')
  t.same(asked, ['kube-dns.kube-system.shop.svc.cluster.local'])
})

t.test('no autopath for unknown clients, other namespaces, the namespace name itself or outside the zone', async t => {
  const { rec, asked } = chain()
  t.same(show(await rec.serve('kube-dns.kube-system.shop.svc.cluster.local', TYPE.A, '10.99.0.1')).rcode, 'NXDOMAIN', 'not a pod')
  t.same(show(await rec.serve('web.other.svc.cluster.local', TYPE.A, CLIENT)).rcode, 'NXDOMAIN', 'not under the client namespace')
  t.same(show(await rec.serve('shop.svc.cluster.local', TYPE.A, CLIENT)).rcode, 'NOERROR')
  t.same(show(await rec.serve('example.com', TYPE.A, CLIENT)).answer, ['example.com 60 A 93.184.215.14'])
  t.same(asked, ['kube-dns.kube-system.shop.svc.cluster.local', 'web.other.svc.cluster.local', 'shop.svc.cluster.local', 'example.com'])
})
