// The incremental merge of the manifest source: the same winners and conflicts as merging every file
// again in name order, after any sequence of per-file changes, and only the touched keys reported.
import t from 'tap'
import type { KObject, Service } from '../../pkg/api/types.js'
import { ManifestMerge, type FileObjects } from '../../pkg/source/manifest-merge.js'

const svc = (name: string, ip: string): Service => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns1' }, spec: { clusterIP: ip, ports: [{ port: 80 }] },
}) as Service
const ipOf = (o: KObject | undefined): string => (o as Service | undefined)?.spec.clusterIP ?? '-'
const keyOf = (o: KObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`
const keyed = (objects: readonly KObject[]): FileObjects => ({ objects, keys: objects.map(keyOf) })

/** The reference: every file merged again in name order, the first definition winning. */
function fullMerge (files: ReadonlyMap<string, readonly KObject[]>): Map<string, string> {
  const out = new Map<string, string>()
  for (const f of [...files.keys()].sort()) {
    for (const o of files.get(f) ?? []) {
      const key = keyOf(o)
      if (!out.has(key)) out.set(key, ipOf(o))
    }
  }
  return out
}

interface Step { readonly name: string, readonly file: string, readonly objects: readonly KObject[], readonly affected: readonly string[], readonly conflicts: ReadonlyArray<{ key: string, kept: string, ignored: string[] }> }

const A1 = svc('a', '10.96.0.1')
const A2 = svc('a', '10.96.0.2')
const A3 = svc('a', '10.96.0.3')
const B1 = svc('b', '10.96.1.1')
const steps: Step[] = [
  { name: 'a first file', file: 'm/2.yaml', objects: [A2, B1], affected: ['Service/ns1/a', 'Service/ns1/b'], conflicts: [] },
  { name: 'a later-named duplicate loses', file: 'm/3.yaml', objects: [A3], affected: ['Service/ns1/a'], conflicts: [{ key: 'Service/ns1/a', kept: 'm/2.yaml', ignored: ['m/3.yaml'] }] },
  { name: 'an earlier-named file wins when it appears', file: 'm/1.yaml', objects: [A1], affected: ['Service/ns1/a'], conflicts: [{ key: 'Service/ns1/a', kept: 'm/1.yaml', ignored: ['m/2.yaml', 'm/3.yaml'] }] },
  { name: 'an edit of an ignored definition keeps the winner (B1, the same object, is not touched)', file: 'm/2.yaml', objects: [svc('a', '10.96.0.22'), B1], affected: ['Service/ns1/a'], conflicts: [{ key: 'Service/ns1/a', kept: 'm/1.yaml', ignored: ['m/2.yaml', 'm/3.yaml'] }] },
  { name: 'the winner gone: the next file in name order takes over', file: 'm/1.yaml', objects: [], affected: ['Service/ns1/a'], conflicts: [{ key: 'Service/ns1/a', kept: 'm/2.yaml', ignored: ['m/3.yaml'] }] },
  { name: 'a duplicate inside one file: its first definition wins', file: 'm/3.yaml', objects: [svc('c', '10.96.2.1'), svc('c', '10.96.2.2')], affected: ['Service/ns1/a', 'Service/ns1/c'], conflicts: [{ key: 'Service/ns1/c', kept: 'm/3.yaml', ignored: ['m/3.yaml'] }] },
  { name: 'a file emptied: its keys are gone', file: 'm/2.yaml', objects: [], affected: ['Service/ns1/a', 'Service/ns1/b'], conflicts: [{ key: 'Service/ns1/c', kept: 'm/3.yaml', ignored: ['m/3.yaml'] }] },
]

t.test('per-file updates agree with a full merge after every step', async t => {
  const m = new ManifestMerge()
  const files = new Map<string, readonly KObject[]>()
  for (const s of steps) {
    m.update(s.file, keyed(files.get(s.file) ?? []), keyed(s.objects))
    files.set(s.file, s.objects)
    const affected = m.takeAffected()
    t.same([...affected].sort(), s.affected, `${s.name}: touched keys`)
    const want = fullMerge(files)
    const got = new Map(m.winners().map(([key, o]) => [key, ipOf(o)]))
    t.same(m.winners().map(([key, o]) => keyOf(o) === key), m.winners().map(() => true), `${s.name}: winners under their keys`)
    t.same([...got].sort(), [...want].sort(), `${s.name}: winners`)
    for (const [key, ip] of want) t.equal(ipOf(m.winner(key)), ip, `${s.name}: winner(${key})`)
    t.same(m.conflicts(), s.conflicts, `${s.name}: conflicts`)
  }
  t.equal(m.winner('Service/ns1/a'), undefined, 'no file defines a any more')
})

t.test('an unchanged object list touches nothing', async t => {
  const m = new ManifestMerge()
  const objs = keyed([A1, B1])
  m.update('x.yaml', keyed([]), objs)
  m.takeAffected()
  m.update('x.yaml', objs, objs)
  t.same([...m.takeAffected()], [])
  t.equal(m.winner('Service/ns1/b'), B1)
})

t.test('a re-read file whose objects are reused touches only the changed ones', async t => {
  const m = new ManifestMerge()
  const c1 = svc('c', '10.96.2.1')
  m.update('x.yaml', keyed([]), keyed([A1, B1, c1]))
  m.update('y.yaml', keyed([]), keyed([svc('b', '10.96.9.9')]))
  m.takeAffected()
  const b2 = svc('b', '10.96.1.2')
  m.update('x.yaml', keyed([A1, B1, c1]), keyed([A1, b2, c1]))
  t.same([...m.takeAffected()], ['Service/ns1/b'], 'only the replaced object')
  t.equal(m.winner('Service/ns1/b'), b2)
  t.same(m.conflicts(), [{ key: 'Service/ns1/b', kept: 'x.yaml', ignored: ['y.yaml'] }], 'its conflict is kept')
  // The same object moved to the end of the file, and one dropped: a and c are not touched again.
  m.update('x.yaml', keyed([A1, b2, c1]), keyed([c1, A1]))
  t.same([...m.takeAffected()], ['Service/ns1/b'])
  t.equal(ipOf(m.winner('Service/ns1/b')), '10.96.9.9', 'the other file takes over')
  t.same(m.conflicts(), [])
  // The same object twice in one file is not "unchanged": both definitions are recorded again.
  m.update('x.yaml', keyed([c1, A1]), keyed([c1, A1, c1]))
  t.same([...m.takeAffected()], ['Service/ns1/c'])
  t.same(m.conflicts(), [{ key: 'Service/ns1/c', kept: 'x.yaml', ignored: ['x.yaml'] }])
})
