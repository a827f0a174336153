// Decoder limits (issue 9, findings 1 and 3): hostile YAML and JSON are rejected with an error naming the
// file, before the costly work, and nothing ever throws.
import t from 'tap'
import { decodeManifests } from '../../pkg/api/decode.js'
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from '../../pkg/api/limits.js'
import { aliasBomb, bigSelectorService } from '../helpers/hostile.js'

const node = (name: string): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: {} })
const limits = (o: Partial<DecodeLimits>): DecodeLimits => ({ ...DEFAULT_DECODE_LIMITS, ...o })

t.test('an alias bomb is a limit error naming the file, not an exception', async t => {
  let r
  t.doesNotThrow(() => { r = decodeManifests(aliasBomb(), 'bomb.yaml') })
  t.same(r!.objects, [])
  t.equal(r!.errors[0]?.code, 'FERRY_ERR_LIMIT')
  t.match(r!.errors[0]?.message, /^bomb\.yaml, document 1: .*alias/i)
  const few = decodeManifests('apiVersion: v1\nkind: Node\nmetadata: {name: &n n1, labels: {x: *n, y: *n}}\nspec: {}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\nspec: {}\n', 'ok.yaml')
  t.same(few.errors, [], 'a handful of aliases is fine')
  t.equal(few.objects.length, 2)
})

t.test('alias nodes over the limit are refused before expansion', async t => {
  const many = `apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {a: &v x}}\nspec: {taints: [${Array(6).fill('*v').join(', ')}]}\n`
  const r = decodeManifests(many, 'many.yaml', limits({ maxAliases: 5 }))
  t.match(r.errors[0], { code: 'FERRY_ERR_LIMIT', message: /many\.yaml, document 1: more than 5 YAML aliases/ })
})

t.test('nesting deeper than the limit, in YAML and JSON', async t => {
  const deepJSON = JSON.stringify({ ...node('n'), metadata: { name: 'n', labels: JSON.parse('{"a":'.repeat(70) + '1' + '}'.repeat(70)) } })
  t.match(decodeManifests(deepJSON, 'deep.json').errors[0], { code: 'FERRY_ERR_LIMIT', message: /deep\.json, document 1: nesting deeper than the limit of 64/ })
  const deepYAML = 'apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: ' + '['.repeat(70) + ']'.repeat(70) + '\n'
  const r = decodeManifests(deepYAML, 'deep.yaml')
  t.equal(r.objects.length, 0)
  t.match(r.errors[0]?.message, /^deep\.yaml, document 1: /)
  const ok = decodeManifests(deepYAML, 'deep.yaml', limits({ maxDepth: 100 }))
  t.notMatch(ok.errors[0]?.message ?? '', /nesting/, 'a higher limit admits it (validation then judges it)')
})

t.test('size and object-count limits reject the file whole', async t => {
  const text = [1, 2, 3, 4].map(i => JSON.stringify(node(`n${i}`))).join('\n---\n')
  t.match(decodeManifests(text, 'four.yaml', limits({ maxObjects: 3 })).errors[0], { code: 'FERRY_ERR_LIMIT', message: /four\.yaml: 4 documents exceed the limit of 3/ })
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [1, 2, 3, 4].map(i => node(`n${i}`)) })
  const r = decodeManifests(list, 'list.json', limits({ maxObjects: 3 }))
  t.same(r.objects, [])
  t.match(r.errors[0], { code: 'FERRY_ERR_LIMIT', message: /list\.json: 4 objects exceed the limit of 3 per file/ })
  t.equal(decodeManifests(list, 'list.json', limits({ maxObjects: 4 })).objects.length, 4)
  t.match(decodeManifests(text, 'big.yaml', limits({ maxBytes: 100 })).errors[0], { code: 'FERRY_ERR_LIMIT', message: /big\.yaml: .* exceeds the manifest size limit of 100 B/ })
})

t.test('JSON is decoded as JSON: errors carry line and column', async t => {
  const good = decodeManifests(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [node('a'), node('b')] }, null, 2)}\n`, 'nodes.json')
  t.same(good.errors, [])
  t.same(good.objects.map(o => o.metadata.name), ['a', 'b'])
  const bad = decodeManifests('{\n  "apiVersion": "v1",\n  "kind": "Node",\n  "metadata": {"name": "n",}\n}\n', 'bad.json')
  t.match(bad.errors[0], { code: 'FERRY_ERR_PARSE', message: /^bad\.json: invalid JSON: .*\(line 4 column \d+\)/ })
  t.equal(decodeManifests(JSON.stringify(node('y')), 'in-yaml.yaml').objects.length, 1, 'a .yaml file holding a JSON object')
  t.equal(decodeManifests(`# comment\n${JSON.stringify(node('y'))}`, 'c.yaml').objects.length, 1, 'YAML that is not pure JSON still parses as YAML')
})

t.test('duplicate keys in a big mapping are still found, with their line', async t => {
  const text = bigSelectorService(20_000) + '    key7: again\n'
  const r = decodeManifests(text, 'dup.yaml')
  t.match(r.errors[0], { code: 'FERRY_ERR_PARSE', message: /dup\.yaml, document 1: duplicate mapping key "key7" at line 20008/ })
  const fine = decodeManifests(bigSelectorService(20_000), 'big.yaml')
  t.same(fine.errors, [])
  t.equal(Object.keys((fine.objects[0] as { spec: { selector: Record<string, string> } }).spec.selector).length, 20_000)
})
