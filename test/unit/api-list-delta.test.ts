// The JSON List scan and the decode of a re-read List against its last good decode: the scan's item
// texts parse to JSON.parse's items, it refuses what it cannot be sure of, and a delta decode gives
// what a full decode gives, reusing the objects of unchanged items.
import t from 'tap'
import { decodeManifests } from '../../pkg/api/decode.js'
import { decodeListDelta, type IndexedDecode } from '../../pkg/api/decode-delta.js'
import { DEFAULT_DECODE_LIMITS } from '../../pkg/api/limits.js'
import { listIndexOf, scanJSONList } from '../../pkg/api/list-index.js'

const svc = (i: number, port = 80): Record<string, unknown> => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'ns1', annotations: { note: `a "quoted" \\ [x] {y} ${i}` } },
  spec: { clusterIP: `10.96.0.${i}`, ports: [{ name: 'http', protocol: 'TCP', port }] },
})
const list = (items: unknown[], indent?: number, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ apiVersion: 'v1', kind: 'List', items, ...extra }, null, indent)

function decodedIndex (text: string): IndexedDecode {
  const r = decodeManifests(text, 'l.json')
  const index = listIndexOf(text, r.objects.length)
  if (index === undefined || r.errors.length > 0) throw new Error('not an indexable List')
  return { index, objects: r.objects, keys: r.keys }
}

t.test('item texts parse to the items JSON.parse gives, in any layout', async t => {
  const items = [svc(1), svc(2), { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: { podCIDR: '10.0.0.0/24' } }]
  const texts = [
    list(items), list(items, 1), list(items, '\t' as unknown as number),
    ` \n{ "kind" : "List" , "items" : [ ${items.map(i => JSON.stringify(i)).join(' ,\n ')} ] , "metadata" : { "x" : [1, {"y": "]"}] } }\n`,
    `{"items":[${items.map(i => JSON.stringify(i)).join(',')}],"kind":"List","apiVersion":"v1"}`,
  ]
  for (const text of texts) {
    const scan = scanJSONList(text)
    if (scan === null) { t.fail(`scanned: ${text.slice(0, 60)}`); continue }
    const want = (JSON.parse(text) as { items: unknown[] }).items
    t.same([...scan.starts].map((s, i) => JSON.parse(text.slice(s, scan.ends[i]))), want)
  }
  t.equal(scanJSONList(list([]))?.items.length, 0, 'an empty List')
})

t.test('what the scan refuses', async t => {
  const one = JSON.stringify(svc(1))
  const cases: Record<string, string> = {
    'not an object': `[${one}]`,
    'no kind': `{"items":[${one}]}`,
    'another kind': `{"kind":"Service","items":[${one}]}`,
    'kind twice (JSON.parse keeps the last)': `{"kind":"List","items":[${one}],"kind":"Service"}`,
    'items twice': `{"kind":"List","items":[${one}],"items":[]}`,
    'an escaped key that may spell items': `{"kind":"List","items":[${one}],"it\\u0065ms":[]}`,
    'items not an array': `{"kind":"List","items":{}}`,
    'an item that is not an object': `{"kind":"List","items":[${one},3]}`,
    'a missing comma': `{"kind":"List","items":[${one} ${one}]}`,
    'a trailing comma': `{"kind":"List","items":[${one},]}`,
    'text after the object': `{"kind":"List","items":[${one}]} x`,
    'an unterminated string': `{"kind":"List","items":[{"a":"b}]}`,
    'unbalanced': `{"kind":"List","items":[${one}`,
  }
  for (const [why, text] of Object.entries(cases)) t.equal(scanJSONList(text), null, why)
})

t.test('a mutated List: whenever the scan and every item text parse, the whole parses alike', async t => {
  const base = list([svc(1), svc(2), svc(3)], 1)
  const alphabet = '{}[]",:\\ \n0aList'
  let seed = 7
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
  let scanned = 0
  for (let k = 0; k < 3000; k++) {
    let text = base
    for (let m = 0; m <= rnd(3); m++) {
      const at = rnd(text.length)
      const op = rnd(3)
      const ch = alphabet[rnd(alphabet.length)] as string
      text = op === 0 ? text.slice(0, at) + text.slice(at + 1) : op === 1 ? text.slice(0, at) + ch + text.slice(at) : text.slice(0, at) + ch + text.slice(at + 1)
    }
    const scan = scanJSONList(text)
    if (scan === null) continue
    let items: unknown[]
    try { items = [...scan.starts].map((s, i) => JSON.parse(text.slice(s, scan.ends[i]))) } catch { continue }
    // The delta path also needs the envelope to hash as a valid List's did; here, check the whole text.
    let whole: { kind?: unknown, items?: unknown } | undefined
    try { whole = JSON.parse(text) } catch { whole = undefined }
    if (whole === undefined) continue // an envelope change, which the delta path refuses by hash
    scanned++
    if (whole.kind !== 'List' || !Array.isArray(whole.items)) { t.fail(`scan accepted a non-List: ${text}`); break }
    t.same(items, whole.items)
  }
  t.ok(scanned > 10, `some mutations still scan (${scanned})`)
})

t.test('a re-read List decodes its changed items only, as a full decode would', async t => {
  const items = [svc(1), svc(2), svc(3), svc(4)]
  const before = decodedIndex(list(items, 1))
  const edits: Record<string, unknown[]> = {
    'one item changed': [svc(1), svc(2, 81), svc(3), svc(4)],
    'one added, one removed, reordered': [svc(4), svc(5), svc(1), svc(2)],
    'nothing changed': items,
  }
  for (const [why, next] of Object.entries(edits)) {
    const text = list(next, 1)
    const d = decodeListDelta(text, 'l.json', DEFAULT_DECODE_LIMITS, before)
    if (d === null) { t.fail(why); continue }
    const full = decodeManifests(text, 'l.json')
    t.same(d.result.objects, full.objects, `${why}: the same objects`)
    t.same(d.result.keys, full.keys, `${why}: the same keys`)
    t.same(d.index, listIndexOf(text, full.objects.length), `${why}: the index of the new text`)
    const reused = d.result.objects.filter(o => before.objects.includes(o)).length
    t.equal(reused + d.validated, next.length, `${why}: each item reused or validated`)
  }
  const one = decodeListDelta(list([svc(1), svc(2, 81), svc(3), svc(4)], 1), 'l.json', DEFAULT_DECODE_LIMITS, before)
  t.equal(one?.validated, 1, 'one changed item is the only one validated')
  t.equal(one?.result.objects[0], before.objects[0], 'an unchanged item is the same object')
})

t.test('anything unusual falls back to the full decode', async t => {
  const before = decodedIndex(list([svc(1), svc(2)]))
  const cases: Record<string, string> = {
    'another envelope': list([svc(1), svc(2)], undefined, { metadata: { resourceVersion: '2' } }),
    'another layout around the items': list([svc(1), svc(2)], 2),
    'an invalid new item': list([svc(1), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'Bad_Name' }, spec: {} }]),
    'an item that is not JSON': list([svc(1), svc(2)]).replace('"s2"', '"s2" x'),
    'a duplicate key': list([svc(1), svc(1, 81)]),
    'a new item nested past the depth limit': list([svc(1), { ...svc(2), deep: JSON.parse('['.repeat(70) + ']'.repeat(70)) as unknown }]),
    'not a List any more': JSON.stringify(svc(1)),
  }
  for (const [why, text] of Object.entries(cases)) t.equal(decodeListDelta(text, 'l.json', DEFAULT_DECODE_LIMITS, before), null, why)
  t.equal(decodeListDelta(list([svc(1), svc(2), svc(3)]), 'l.json', { ...DEFAULT_DECODE_LIMITS, maxObjects: 2 }, before), null, 'over the object limit')
})
