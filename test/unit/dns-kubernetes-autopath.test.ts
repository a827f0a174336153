import t from 'tap'
import dns2 from 'dns2'
import { RCODE, TYPE } from '../../pkg/dns/message.js'
import type { Answer, Handler } from '../../pkg/dns/message.js'
import { autopathPlugin } from '../../pkg/dns/kubernetes/autopath.js'
import { kubernetesPlugin } from '../../pkg/dns/kubernetes/handler.js'
import { CLIENT, ResponseRecorder, ZONE, clusterIndex, show, upstream } from './fixtures/dns-cluster.js'

const EXAMPLE: Answer = {
  kind: 'answer', rcode: RCODE.NOERROR, aa: false, authority: [], additional: [],
  answer: [{ name: 'example.com', ttl: 60, data: { type: TYPE.A, address: '93.184.215.14' } }],
}

function chain (searchDomains: string[] = ['corp.example'], next?: Handler): { rec: ResponseRecorder, asked: string[] } {
  const index = clusterIndex('verified')
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
    : { kind: 'answer', rcode: RCODE.NXDOMAIN, aa: false, answer: [], authority: [], additional: [] }
  const { rec } = chain([], raw)
  t.same(show(await rec.serve('example.com.shop.svc.cluster.local', TYPE.AAAA)).answer, [
    'example.com.shop.svc.cluster.local 30 CNAME example.com', 'example.com 30 AAAA 2001:db8::1',
  ])
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

t.test('no autopath for unknown clients, other namespaces, the namespace name itself or outside the zone', async t => {
  const { rec, asked } = chain()
  t.same(show(await rec.serve('kube-dns.kube-system.shop.svc.cluster.local', TYPE.A, '10.99.0.1')).rcode, 'NXDOMAIN', 'not a pod')
  t.same(show(await rec.serve('web.other.svc.cluster.local', TYPE.A, CLIENT)).rcode, 'NXDOMAIN', 'not under the client namespace')
  t.same(show(await rec.serve('shop.svc.cluster.local', TYPE.A, CLIENT)).rcode, 'NOERROR')
  t.same(show(await rec.serve('example.com', TYPE.A, CLIENT)).answer, ['example.com 60 A 93.184.215.14'])
  t.same(asked, ['kube-dns.kube-system.shop.svc.cluster.local', 'web.other.svc.cluster.local', 'shop.svc.cluster.local', 'example.com'])
})
