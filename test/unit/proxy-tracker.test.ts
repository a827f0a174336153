import t from 'tap'
import { TRIGGER_TIME_ANNOTATION } from '../../pkg/api/trigger-time.js'
import { SERVICE_PROXY_NAME_LABEL, type EndpointSlice } from '../../pkg/api/types.js'
import { EndpointsChangeTracker, ServiceChangeTracker } from '../../pkg/proxy/tracker.js'
import type { EndpointInfo, ServicePortInfo } from '../../pkg/proxy/types.js'
import { NODE, slice, sliceEp, svc } from '../helpers/fixtures.js'

function clock (): { now: () => number, set: (v: number) => void } {
  let v = 1000
  return { now: () => v, set: (x: number) => { v = x } }
}

const sorted = (s: Set<string>): string[] => [...s].sort()

t.test('ServiceChangeTracker', async t => {
  const a = svc()
  const a2 = svc({ ports: [{ name: 'p80', port: 80 }, { name: 'p443', port: 443 }] })
  const a3 = svc({ ports: [{ name: 'p80', port: 8080 }, { name: 'p443', port: 443 }] })

  t.test('add, update, delete; changed keys are exact', async t => {
    const c = clock()
    const tr = new ServiceChangeTracker('IPv4', c.now)
    const map = new Map<string, ServicePortInfo>()
    t.equal(tr.firstPendingAt(), undefined)
    t.equal(tr.update(undefined, a), true)
    t.equal(tr.pendingCount(), 1)
    t.equal(tr.firstPendingAt(), 1000)
    t.same(sorted(tr.apply(map)), ['ns1/svc1:p80/tcp'])
    t.same([...map.keys()], ['ns1/svc1:p80/tcp'])
    t.equal(tr.pendingCount(), 0)
    t.equal(tr.firstPendingAt(), undefined, 'cleared by apply')

    t.equal(tr.update(a, a2), true, 'a port added')
    t.same(sorted(tr.apply(map)), ['ns1/svc1:p443/tcp'], 'the unchanged port is not reported')
    t.equal(tr.update(a2, a3), true, 'one port changed')
    t.same(sorted(tr.apply(map)), ['ns1/svc1:p80/tcp'])
    t.equal(map.get('ns1/svc1:p80/tcp')?.port, 8080)

    t.equal(tr.update(a3, undefined), true, 'delete')
    t.same(sorted(tr.apply(map)), ['ns1/svc1:p443/tcp', 'ns1/svc1:p80/tcp'])
    t.equal(map.size, 0)
    t.same(sorted(tr.apply(map)), [], 'nothing pending: nothing changes')
  })

  t.test('no-op updates are dropped', async t => {
    const tr = new ServiceChangeTracker('IPv4')
    t.equal(tr.update(a, svc()), false, 'equal objects')
    const relabelled = svc({ labels: { app: 'x' } })
    relabelled.metadata.resourceVersion = '42'
    t.equal(tr.update(a, relabelled), false, 'metadata that does not affect ports')
    t.equal(tr.update(undefined, svc({ clusterIP: 'None' })), false, 'headless Service added')
    t.equal(tr.update(undefined, svc({ type: 'ExternalName', externalName: 'x.example' })), false, 'ExternalName added')
    t.equal(tr.update(undefined, svc({ clusterIP: 'fd00::1', clusterIPs: ['fd00::1'] })), false, 'other family added')
    t.equal(tr.update(undefined, undefined), false)
    t.equal(tr.pendingCount(), 0)
  })

  t.test('a change back to the applied state cancels the pending entry', async t => {
    const c = clock()
    const tr = new ServiceChangeTracker('IPv4', c.now)
    const map = new Map<string, ServicePortInfo>()
    tr.update(undefined, a)
    tr.apply(map)
    c.set(2000)
    t.equal(tr.update(a, a2), true)
    c.set(3000)
    t.equal(tr.update(a2, a3), true, 'still pending')
    t.equal(tr.firstPendingAt(), 2000, 'first pending time kept across further changes')
    t.equal(tr.update(a3, svc()), false, 'back to the original')
    t.equal(tr.pendingCount(), 0)
    t.equal(tr.firstPendingAt(), undefined)
    t.same(sorted(tr.apply(map)), [])
  })

  t.test('add then delete before apply is a no-op', async t => {
    const tr = new ServiceChangeTracker('IPv4')
    t.equal(tr.update(undefined, a), true)
    t.equal(tr.update(a, undefined), false)
    t.equal(tr.pendingCount(), 0)
    const map = new Map<string, ServicePortInfo>()
    t.same(sorted(tr.apply(map)), [])
    t.equal(map.size, 0)
  })

  t.test('several Services; becoming skipped removes ports', async t => {
    const c = clock()
    const tr = new ServiceChangeTracker('IPv4', c.now)
    const map = new Map<string, ServicePortInfo>()
    const b = svc({ name: 'svc2', clusterIP: '172.30.0.42' })
    tr.update(undefined, a)
    c.set(1500)
    tr.update(undefined, b)
    t.equal(tr.pendingCount(), 2)
    t.equal(tr.firstPendingAt(), 1000)
    t.same(sorted(tr.apply(map)), ['ns1/svc1:p80/tcp', 'ns1/svc2:p80/tcp'])
    const bHeadless = svc({ name: 'svc2', clusterIP: 'None' })
    t.equal(tr.update(b, bHeadless), true)
    t.same(sorted(tr.apply(map)), ['ns1/svc2:p80/tcp'])
    t.same([...map.keys()], ['ns1/svc1:p80/tcp'])
    t.equal(tr.update(a, svc({ labels: { 'service.kubernetes.io/service-proxy-name': 'other' } })), true, 'another proxy takes it over')
    t.same(sorted(tr.apply(map)), ['ns1/svc1:p80/tcp'])
    t.equal(map.size, 0)
  })

  t.test('protocol change: old key removed, new key added', async t => {
    const tr = new ServiceChangeTracker('IPv4')
    const map = new Map<string, ServicePortInfo>()
    tr.update(undefined, a)
    tr.apply(map)
    tr.update(a, svc({ ports: [{ name: 'p80', port: 80, protocol: 'UDP' }] }))
    t.same(sorted(tr.apply(map)), ['ns1/svc1:p80/tcp', 'ns1/svc1:p80/udp'])
    t.same([...map.keys()], ['ns1/svc1:p80/udp'])
  })

  t.test('first pending time, except some Services', async t => {
    const c = clock()
    const tr = new ServiceChangeTracker('IPv4', c.now)
    tr.update(undefined, a)
    c.set(2000)
    tr.update(undefined, svc({ name: 'svc2', clusterIP: '172.30.0.42' }))
    t.equal(tr.firstPendingAt(), 1000)
    t.equal(tr.firstPendingAt(new Set(['ns1/svc1'])), 2000)
    t.equal(tr.firstPendingAt(new Set(['ns1/svc1', 'ns1/svc2'])), undefined)
  })

  t.test('IPv6 tracker sees only the IPv6 side of a dual-stack Service', async t => {
    const tr = new ServiceChangeTracker('IPv6')
    const map = new Map<string, ServicePortInfo>()
    const dual = svc({ clusterIPs: ['172.30.0.41', 'fd00::41'] })
    t.equal(tr.update(undefined, dual), true)
    tr.apply(map)
    t.equal(map.get('ns1/svc1:p80/tcp')?.clusterIP, 'fd00::41')
    const v4Changed = svc({ clusterIP: '172.30.0.99', clusterIPs: ['172.30.0.99', 'fd00::41'] })
    t.equal(tr.update(dual, v4Changed), false, 'a change to the IPv4 ClusterIP is a no-op for IPv6')
  })
})

t.test('EndpointsChangeTracker', async t => {
  const key = 'ns1/svc1:p80/tcp'
  const s1 = slice({ name: 'svc1-a', endpoints: [sliceEp('10.180.0.1', { node: true })] })
  const s1b = slice({ name: 'svc1-a', endpoints: [sliceEp('10.180.0.1', { node: true }), sliceEp('10.180.0.2')] })
  const ipsOf = (m: Map<string, EndpointInfo[]>, k = key): string[] | undefined => m.get(k)?.map(e => `${e.ip}:${e.port}`)

  t.test('add, update, delete', async t => {
    const c = clock()
    const tr = new EndpointsChangeTracker('IPv4', NODE, c.now)
    const map = new Map<string, EndpointInfo[]>()
    t.equal(tr.update(undefined, s1), true)
    t.equal(tr.pendingCount(), 1)
    t.equal(tr.firstPendingAt(), 1000)
    t.same(sorted(tr.apply(map)), [key])
    t.same(ipsOf(map), ['10.180.0.1:80'])
    t.equal(map.get(key)?.[0]?.isLocal, true)
    t.equal(tr.firstPendingAt(), undefined)
    t.equal(tr.update(s1, s1b), true)
    t.same(sorted(tr.apply(map)), [key])
    t.same(ipsOf(map), ['10.180.0.1:80', '10.180.0.2:80'])
    t.equal(tr.update(s1b, undefined), true)
    t.same(sorted(tr.apply(map)), [key])
    t.equal(map.size, 0, 'empty lists are deleted')
    t.same(tr.slicesOf('ns1/svc1'), [])
  })

  t.test('a slice labelled for another service proxy is not ours; gaining or losing the label removes or adds it', async t => {
    const tr = new EndpointsChangeTracker('IPv4', NODE)
    const map = new Map<string, EndpointInfo[]>()
    const other = { ...s1b, metadata: { ...s1b.metadata, name: 'svc1-other', labels: { ...s1b.metadata.labels, [SERVICE_PROXY_NAME_LABEL]: 'other-proxy' } } }
    t.equal(tr.update(undefined, other), false, 'ignored, as kube-proxy\'s informers never see it')
    tr.update(undefined, s1)
    tr.apply(map)
    t.same(ipsOf(map), ['10.180.0.1:80'], 'the other proxy\'s endpoint is not used')
    const mine = { ...other, metadata: { ...other.metadata, labels: { ...s1b.metadata.labels } } }
    t.equal(tr.update(other, mine), true, 'label removed: the slice joins')
    tr.apply(map)
    t.same(ipsOf(map), ['10.180.0.1:80', '10.180.0.2:80'])
    t.equal(tr.update(mine, other), true, 'label added back: the slice leaves')
    tr.apply(map)
    t.same(ipsOf(map), ['10.180.0.1:80'])
  })

  t.test('no-op updates are dropped', async t => {
    const tr = new EndpointsChangeTracker('IPv4', NODE)
    const map = new Map<string, EndpointInfo[]>()
    tr.update(undefined, s1)
    tr.apply(map)
    const copy = structuredClone(s1)
    copy.metadata.resourceVersion = '7'
    copy.metadata.annotations = { 'endpoints.kubernetes.io/last-change-trigger-time': 'x' }
    t.equal(tr.update(s1, copy), false, 'metadata-only update')
    t.equal(tr.pendingCount(), 0)
    t.equal(tr.update(undefined, slice({ service: null, name: 'orphan', endpoints: [sliceEp('10.180.0.9')] })), false, 'slice without service label')
    t.equal(tr.update(undefined, slice({ name: 'v6', addressType: 'IPv6', endpoints: [sliceEp('fd00::1')] })), false, 'other family')
    t.equal(tr.update(undefined, { ...slice({ name: 'fqdn' }), addressType: 'FQDN' }), false, 'FQDN')
    t.equal(tr.pendingCount(), 0)
  })

  t.test('a change back before apply cancels; add+delete before apply is a no-op', async t => {
    const c = clock()
    const tr = new EndpointsChangeTracker('IPv4', NODE, c.now)
    const map = new Map<string, EndpointInfo[]>()
    tr.update(undefined, s1)
    tr.apply(map)
    c.set(2000)
    t.equal(tr.update(s1, s1b), true)
    t.equal(tr.update(s1b, structuredClone(s1)), false, 'back to applied')
    t.equal(tr.pendingCount(), 0)
    t.equal(tr.firstPendingAt(), undefined)
    const other = slice({ name: 'svc1-b', endpoints: [sliceEp('10.180.0.3')] })
    t.equal(tr.update(undefined, other), true)
    t.equal(tr.update(other, undefined), false)
    t.equal(tr.pendingCount(), 0)
    t.same(sorted(tr.apply(map)), [])
    t.same(ipsOf(map), ['10.180.0.1:80'])
  })

  t.test('a recomputation that yields the same lists reports no keys', async t => {
    const tr = new EndpointsChangeTracker('IPv4', NODE)
    const map = new Map<string, EndpointInfo[]>()
    tr.update(undefined, s1)
    tr.apply(map)
    // The same endpoint moves to a second slice: content changed, endpoint list did not.
    const emptied = slice({ name: 'svc1-a', endpoints: [] })
    const b = slice({ name: 'svc1-b', endpoints: [sliceEp('10.180.0.1', { node: true })] })
    t.equal(tr.update(s1, emptied), true)
    t.equal(tr.update(undefined, b), true)
    t.equal(tr.pendingCount(), 1, 'counted per Service')
    t.same(sorted(tr.apply(map)), [])
    t.same(ipsOf(map), ['10.180.0.1:80'])
  })

  t.test('multiple slices per service and duplicates merged', async t => {
    const tr = new EndpointsChangeTracker('IPv4', NODE)
    const map = new Map<string, EndpointInfo[]>()
    const a = slice({ name: 'svc1-a', endpoints: [sliceEp('10.180.0.1', { ready: false, serving: true, terminating: true }), sliceEp('10.180.0.2')] })
    const b = slice({ name: 'svc1-b', endpoints: [sliceEp('10.180.0.1'), sliceEp('10.180.0.3')] })
    tr.update(undefined, a)
    tr.update(undefined, b)
    t.same(sorted(tr.apply(map)), [key])
    t.same(ipsOf(map), ['10.180.0.1:80', '10.180.0.2:80', '10.180.0.3:80'])
    t.equal(map.get(key)?.[0]?.terminating, false, 'non-terminating duplicate wins')
    t.same(tr.slicesOf('ns1/svc1').map(s => s.metadata.name), ['svc1-a', 'svc1-b'])
    tr.update(b, undefined)
    tr.apply(map)
    t.same(ipsOf(map), ['10.180.0.1:80', '10.180.0.2:80'])
    t.equal(map.get(key)?.[0]?.terminating, true, 'the terminating copy remains once the other slice is gone')
  })

  t.test('changed keys are exact across ports', async t => {
    const tr = new EndpointsChangeTracker('IPv4', NODE)
    const map = new Map<string, EndpointInfo[]>()
    const ports = [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' as const }]
    const v1 = slice({ service: 'svc2', ports, endpoints: [sliceEp('10.180.0.1')] })
    tr.update(undefined, v1)
    t.same(sorted(tr.apply(map)), ['ns1/svc2:dns/udp', 'ns1/svc2:http/tcp'])
    const v2 = slice({ service: 'svc2', ports: [{ name: 'http', port: 80 }, { name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: [sliceEp('10.180.0.1')] })
    tr.update(v1, v2)
    t.same(sorted(tr.apply(map)), ['ns1/svc2:dns/udp'], 'only the port whose target changed')
    const v3 = slice({ service: 'svc2', ports: [{ name: 'http', port: 80 }], endpoints: [sliceEp('10.180.0.1')] })
    tr.update(v2, v3)
    t.same(sorted(tr.apply(map)), ['ns1/svc2:dns/udp'], 'a port removed')
    t.same([...map.keys()], ['ns1/svc2:http/tcp'])
  })

  t.test('a slice moved between services (label change)', async t => {
    const c = clock()
    const tr = new EndpointsChangeTracker('IPv4', NODE, c.now)
    const map = new Map<string, EndpointInfo[]>()
    const x = slice({ name: 'shared', service: 'svc1', endpoints: [sliceEp('10.180.0.1')] })
    const keep = slice({ name: 'svc2-keep', service: 'svc2', endpoints: [sliceEp('10.180.0.5')] })
    tr.update(undefined, x)
    tr.update(undefined, keep)
    tr.apply(map)
    const moved = slice({ name: 'shared', service: 'svc2', endpoints: [sliceEp('10.180.0.1')] })
    t.equal(tr.update(x, moved), true)
    t.equal(tr.pendingCount(), 2, 'both Services pending')
    t.same(sorted(tr.apply(map)), ['ns1/svc1:p80/tcp', 'ns1/svc2:p80/tcp'])
    t.same(ipsOf(map, 'ns1/svc1:p80/tcp'), undefined)
    t.same(ipsOf(map, 'ns1/svc2:p80/tcp'), ['10.180.0.1:80', '10.180.0.5:80'])

    t.test('moved, then label removed, with a stale prev', async t => {
      const unlabelled = slice({ name: 'shared', service: null, endpoints: [sliceEp('10.180.0.1')] })
      // The caller passes the pre-move object as prev: the tracker knows the slice now belongs to svc2.
      t.equal(tr.update(x, unlabelled), true)
      t.same(sorted(tr.apply(map)), ['ns1/svc2:p80/tcp'])
      t.same(ipsOf(map, 'ns1/svc2:p80/tcp'), ['10.180.0.5:80'])
    })

    t.test('moved and moved back before apply is a no-op', async t => {
      const tr2 = new EndpointsChangeTracker('IPv4', NODE)
      const m2 = new Map<string, EndpointInfo[]>()
      tr2.update(undefined, x)
      tr2.apply(m2)
      tr2.update(x, moved)
      t.equal(tr2.update(moved, x), false, 'svc1 is back to its applied state and svc2 never had it')
      t.equal(tr2.pendingCount(), 0)
      t.same(sorted(tr2.apply(m2)), [])
    })
  })

  t.test('pending count and first pending time', async t => {
    const c = clock()
    const tr = new EndpointsChangeTracker('IPv4', NODE, c.now)
    tr.update(undefined, s1)
    c.set(1200)
    tr.update(undefined, slice({ name: 'svc1-b', endpoints: [sliceEp('10.180.0.7')] }))
    c.set(1300)
    tr.update(undefined, slice({ service: 'svc2', endpoints: [sliceEp('10.180.0.8')] }))
    t.equal(tr.pendingCount(), 2)
    t.equal(tr.firstPendingAt(), 1000)
    tr.update(s1, undefined)
    t.equal(tr.firstPendingAt(), 1000, 'svc1 still has svc1-b pending since 1000')
    tr.apply(new Map())
    t.equal(tr.pendingCount(), 0)
    t.equal(tr.firstPendingAt(), undefined)
  })

  t.test('programming starts: the trigger time of every pending update, else the receipt', async t => {
    const triggered = (s: EndpointSlice, at: number | string): EndpointSlice =>
      ({ ...s, metadata: { ...s.metadata, annotations: { [TRIGGER_TIME_ANNOTATION]: typeof at === 'number' ? new Date(at).toISOString() : at } } })
    const c = clock() // the tracker starts at 1000
    const tr = new EndpointsChangeTracker('IPv4', NODE, c.now)
    tr.update(undefined, s1)
    tr.apply(new Map())
    c.set(5000)
    tr.update(s1, triggered(s1b, 3000))
    tr.update(s1b, triggered(slice({ name: 'svc1-a', endpoints: [sliceEp('10.180.0.3')] }), 4000))
    c.set(5100)
    tr.update(undefined, triggered(slice({ name: 'svc1-b', endpoints: [sliceEp('10.180.0.4')] }), 2000))
    c.set(5200)
    tr.update(undefined, slice({ service: 'svc2', endpoints: [sliceEp('10.180.0.8')] }))
    c.set(5300)
    tr.update(undefined, triggered(slice({ service: 'svc3', endpoints: [sliceEp('10.180.0.9')] }), 'not a time'))
    tr.update(undefined, triggered(slice({ service: 'svc4', endpoints: [sliceEp('10.180.0.10')] }), 900))
    t.same(tr.programmingStarts(), { triggers: [3000, 4000, 2000], covered: new Set(['ns1/svc1']), firstUntriggeredAt: 5200 },
      'svc1-a superseded: both its updates\' triggers; svc2 without one, svc3 with a bad one and svc4 with one from before we started: receipts')
    tr.update(undefined, slice({ name: 'svc1-c', endpoints: [sliceEp('10.180.0.5')] }))
    t.equal(tr.programmingStarts().firstUntriggeredAt, 5000, 'an untriggered slice of svc1 counts from svc1\'s receipt')
    tr.update(slice({ name: 'svc1-c', endpoints: [sliceEp('10.180.0.5')] }), undefined)
    t.same(tr.programmingStarts(), { triggers: [], covered: new Set(), firstUntriggeredAt: 5000 },
      'a removal, even of a slice never applied, drops every pending trigger time of its Service, as kube-proxy does: svc1 counts from receipt')
    tr.update(undefined, triggered(slice({ name: 'svc1-d', endpoints: [sliceEp('10.180.0.6')] }), 5250))
    t.same(tr.programmingStarts().triggers, [5250], 'a later update of the Service records its time again')
    tr.update(triggered(slice({ name: 'svc1-a', endpoints: [sliceEp('10.180.0.3')] }), 4000), undefined)
    t.same(tr.programmingStarts(), { triggers: [], covered: new Set(), firstUntriggeredAt: 5000 }, 'the removal of an applied slice too')
    tr.apply(new Map())
    t.same(tr.programmingStarts(), { triggers: [], covered: new Set(), firstUntriggeredAt: undefined })
    c.set(6000)
    tr.update(slice({ service: 'svc2', endpoints: [sliceEp('10.180.0.8')] }), undefined)
    t.same(tr.programmingStarts(), { triggers: [], covered: new Set(), firstUntriggeredAt: 6000 }, 'a removal alone counts from receipt')
  })

  t.test('only this node is local', async t => {
    const tr = new EndpointsChangeTracker('IPv4', 'node-b')
    const map = new Map<string, EndpointInfo[]>()
    tr.update(undefined, s1)
    tr.apply(map)
    t.equal(map.get(key)?.[0]?.isLocal, false)
  })

  t.test('IPv6 tracker', async t => {
    const tr = new EndpointsChangeTracker('IPv6', NODE)
    const map = new Map<string, EndpointInfo[]>()
    t.equal(tr.update(undefined, s1), false, 'IPv4 slice ignored')
    const v6: EndpointSlice = slice({ name: 'v6', addressType: 'IPv6', endpoints: [sliceEp('fd00::1')] })
    t.equal(tr.update(undefined, v6), true)
    t.same(sorted(tr.apply(map)), [key])
    t.same(ipsOf(map), ['fd00::1:80'])
  })
})

t.test('apply without comparing (a full sync) fills the maps; later applies still report exact keys', async t => {
  const svcs = new ServiceChangeTracker('IPv4')
  const eps = new EndpointsChangeTracker('IPv4', NODE)
  const svcMap = new Map<string, ServicePortInfo>()
  const epMap = new Map<string, EndpointInfo[]>()
  svcs.update(undefined, svc())
  svcs.update(undefined, svc({ name: 'svc2', clusterIP: '172.30.0.42' }))
  eps.update(undefined, slice({ endpoints: [sliceEp('10.180.0.2'), sliceEp('10.180.0.1')] }))
  t.same(sorted(svcs.apply(svcMap, false)), [], 'nothing compared')
  t.same(sorted(eps.apply(epMap, false)), [])
  t.same([...svcMap.keys()].sort(), ['ns1/svc1:p80/tcp', 'ns1/svc2:p80/tcp'])
  t.same(epMap.get('ns1/svc1:p80/tcp')?.map(e => e.ip), ['10.180.0.1', '10.180.0.2'])
  t.equal(svcs.pendingCount() + eps.pendingCount(), 0)

  svcs.update(svc({ name: 'svc2', clusterIP: '172.30.0.42' }), undefined)
  svcs.update(undefined, svc({ name: 'svc3', clusterIP: '172.30.0.43' }))
  t.same(sorted(svcs.apply(svcMap)), ['ns1/svc2:p80/tcp', 'ns1/svc3:p80/tcp'])
  eps.update(slice({ endpoints: [sliceEp('10.180.0.2'), sliceEp('10.180.0.1')] }), slice({ endpoints: [sliceEp('10.180.0.1'), sliceEp('10.180.0.2')] }))
  t.same(sorted(eps.apply(epMap)), [], 'the same endpoints in another order change nothing')
  eps.update(slice({ endpoints: [sliceEp('10.180.0.1'), sliceEp('10.180.0.2')] }), undefined)
  t.same(sorted(eps.apply(epMap)), ['ns1/svc1:p80/tcp'])
  t.equal(epMap.size, 0)
})
