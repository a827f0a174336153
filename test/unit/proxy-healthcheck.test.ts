// Health-check node ports (PROXY.md §5, scenario 12): which Services get one and what they answer.
import t from 'tap'
import { HealthCheckIndex, healthAnswer, servicesNeedingHealthChecks } from '../../pkg/proxy/healthcheck/report.js'
import { servicePortKey, type EndpointInfo } from '../../pkg/proxy/types.js'
import { SERVING_TERMINATING, ep, portInfo } from '../helpers/fixtures.js'

const lb = (name: string, hc: number, ports = [{ name: 'p80', port: 80, nodePort: 3001 }]): ReturnType<typeof portInfo>[] =>
  ports.map(p => portInfo({ name, type: 'LoadBalancer', eTP: 'Local', lbIngress: ['1.2.3.4'], healthCheckNodePort: hc, ports: [p] }))

t.test('only Services with a healthCheckNodePort; local ready endpoints counted once per IP', async t => {
  const [a80, a443] = [...lb('a', 30000, [{ name: 'http', port: 80, nodePort: 3001 }, { name: 'https', port: 443, nodePort: 3002 }])]
  const plain = portInfo({ name: 'plain' })
  if (a80 === undefined || a443 === undefined) throw new Error('fixture')
  const endpoints = new Map<string, EndpointInfo[]>([
    [servicePortKey(a80), [ep('.1', { local: true }), ep('.2', { local: true }), ep('.3', { local: true, ...SERVING_TERMINATING }), ep('.5', { local: false })]],
    [servicePortKey(a443), [ep('.1', { local: true, port: 8443 }), ep('.4', { local: true, port: 8443 })]],
    [servicePortKey(plain), [ep('.9', { local: true })]],
  ])
  const got = servicesNeedingHealthChecks([a80, a443, plain], endpoints, servicePortKey)
  t.same([...got.keys()], ['ns1/a'])
  t.same(got.get('ns1/a'), { namespace: 'ns1', name: 'a', port: 30000, localEndpoints: 3 }, '.1, .2 and .4: terminating and remote ones count 0')
})

t.test('answers', async t => {
  const svc = { namespace: 'ns1', name: 'svc1', port: 30000, localEndpoints: 2 }
  const ok = healthAnswer(svc, true)
  t.equal(ok.status, 200)
  t.same(JSON.parse(ok.body), { service: { namespace: 'ns1', name: 'svc1' }, localEndpoints: 2, serviceProxyHealthy: true })
  t.equal(ok.headers['X-Load-Balancing-Endpoint-Weight'], '2')
  t.equal(ok.headers['Content-Type'], 'application/json')
  t.equal(healthAnswer(svc, false).status, 503, 'an unhealthy proxy fails the check')
  const none = healthAnswer({ ...svc, localEndpoints: 0 }, true)
  t.equal(none.status, 503)
  t.equal(none.headers['X-Load-Balancing-Endpoint-Weight'], '0')
  t.match(none.body, /"localEndpoints":0/)
})

t.test('kept per sync from the changed keys, the index agrees with a recount of every Service', async t => {
  const infos = new Map<string, { info: ReturnType<typeof portInfo> }>()
  const endpoints = new Map<string, EndpointInfo[]>()
  const index = new HealthCheckIndex()
  let seed = 11
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
  for (let step = 0; step < 400; step++) {
    const changed = new Set<string>()
    for (let k = 0; k <= rnd(3); k++) {
      const name = `s${rnd(8)}`
      const port = rnd(2) === 0 ? { name: 'http', port: 80, nodePort: 3001 } : { name: 'https', port: 443, nodePort: 3002 }
      const [info] = lb(name, rnd(3) === 0 ? 0 : 30000 + rnd(4), [port])
      if (info === undefined) throw new Error('fixture')
      const key = servicePortKey(info)
      changed.add(key)
      const what = rnd(4)
      if (what === 0) { infos.delete(key); endpoints.delete(key) } else if (what === 1) {
        endpoints.set(key, [ep(`.${rnd(5)}`, { local: rnd(2) === 0 }), ep(`.${rnd(5)}`, { local: true })])
      } else infos.set(key, { info })
    }
    const full = step % 50 === 0
    const affected = index.update(infos, full ? null : changed, endpoints)
    const want = servicesNeedingHealthChecks([...infos.values()].map(d => d.info), endpoints, servicePortKey)
    const got = new Map(index.entries())
    if (!t.same([...got].sort(), [...want].sort(), `step ${step}`)) break
    if (!full && affected.size > changed.size) { t.fail(`step ${step}: ${affected.size} Services recounted for ${changed.size} keys`); break }
  }
})
