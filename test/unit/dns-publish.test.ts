// The publisher holds each Service and slice change back until every proxier has programmed it.
import t from 'tap'
import { ClusterStore } from '../../pkg/cache/store.js'
import { TRIGGER_TIME_ANNOTATION } from '../../pkg/api/trigger-time.js'
import { Publisher, type ProgrammedGate, type PublishSink } from '../../pkg/dns/publish.js'
import { slice, sliceEp, svc } from '../helpers/fixtures.js'

class Gate implements ProgrammedGate {
  rev = 0
  broken = false
  private readonly fns: Array<() => void> = []
  programmedRevision (): number { return this.rev }
  onProgrammed (fn: () => void): void { this.fns.push(fn) }
  failed (): boolean { return this.broken }
  program (rev: number): void { this.rev = rev; for (const f of this.fns) f() }
}

function recorder (): PublishSink & { log: string[] } {
  const log: string[] = []
  return {
    log,
    upsertService: s => { log.push(`+svc ${s.metadata.name} ${s.spec.clusterIP ?? ''}`) },
    deleteService: (_, n) => { log.push(`-svc ${n}`) },
    upsertSlice: s => { log.push(`+slice ${s.metadata.name}`) },
    deleteSlice: (_, n) => { log.push(`-slice ${n}`) },
    upsertPod: p => { log.push(`+pod ${p.metadata.name}`) },
    deletePod: (_, n) => { log.push(`-pod ${n}`) },
  }
}

t.test('changes wait for every family, in cache order, and deletions go in the same step', async t => {
  const store = new ClusterStore()
  const [v4, v6] = [new Gate(), new Gate()]
  const sink = recorder()
  const pub = new Publisher({ store, sink, gates: [v4, v6] })
  store.upsert(svc({ name: 'a', clusterIP: '172.30.0.1' }))
  store.upsert(slice({ service: 'a', endpoints: [sliceEp('10.180.0.1')] }))
  t.same(sink.log, [], 'nothing before any sync')
  t.equal(pub.pending, 2)
  v4.program(store.revision)
  t.same(sink.log, [], 'one family is not enough')
  v6.program(1)
  t.same(sink.log, ['+svc a 172.30.0.1'], 'only what both programmed')
  v6.program(store.revision)
  t.same(sink.log, ['+svc a 172.30.0.1', '+slice a-abcde'])
  store.remove('Service', 'ns1', 'a')
  t.equal(sink.log.length, 2, 'a deleted Service keeps resolving until its rules are gone')
  v4.program(store.revision); v6.program(store.revision)
  t.same(sink.log.at(-1), '-svc a')
  t.equal(pub.pending, 0)
})

t.test('pods are not gated; a failed proxy makes DNS fall back to the cache', async t => {
  const store = new ClusterStore()
  const gate = new Gate()
  const sink = recorder()
  const pub = new Publisher({ store, sink, gates: [gate] })
  store.upsert({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns1' }, spec: {} })
  t.same(sink.log, ['+pod p'])
  store.upsert(svc({ name: 'b', clusterIP: '172.30.0.2' }))
  t.equal(pub.fallingBack, false)
  gate.broken = true
  gate.program(0)
  t.equal(pub.fallingBack, true)
  t.same(sink.log, ['+pod p', '+svc b 172.30.0.2'], 'published from the cache')
})

t.test('no proxy: published as it comes; programming latency from the trigger time', async t => {
  const store = new ClusterStore()
  const sink = recorder()
  const seen: number[] = []
  const now = Date.parse('2026-01-01T00:00:02.500Z')
  const pub = new Publisher({ store, sink, gates: [], now: () => now, observeProgramming: (_, s) => { seen.push(s) } })
  const sl = slice({ service: 'c', endpoints: [sliceEp('10.180.0.3')] })
  store.upsert({ ...sl, metadata: { ...sl.metadata, annotations: { [TRIGGER_TIME_ANNOTATION]: '2026-01-01T00:00:00Z' } } })
  t.same(sink.log, ['+slice c-abcde'])
  t.same(seen, [2.5])
  t.equal(pub.revision, store.revision)
  store.upsert({ ...sl, metadata: { ...sl.metadata, annotations: { [TRIGGER_TIME_ANNOTATION]: '2026-01-01T00:00:01' } } })
  t.same(seen, [2.5], 'a trigger time without a zone is not RFC 3339: not observed')
})

t.test('a first list arrives in batches and is held back as a whole until programmed', async t => {
  const store = new ClusterStore()
  const gate = new Gate()
  const sink = recorder()
  const pub = new Publisher({ store, sink, gates: [gate] })
  store.replace([svc({ name: 'a', clusterIP: '172.30.0.1' }), slice({ service: 'a', endpoints: [sliceEp('10.180.0.1')] }), svc({ name: 'b', clusterIP: '172.30.0.2' })])
  t.same(sink.log, [])
  t.equal(pub.pending, 3)
  gate.program(2)
  t.same(sink.log, ['+svc a 172.30.0.1', '+svc b 172.30.0.2'], 'revisions are consecutive per kind: the Services first')
  gate.program(store.revision)
  t.same(sink.log.at(-1), '+slice a-abcde')
  t.equal(pub.revision, 3)
})
