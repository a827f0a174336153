import t from 'tap'
import { DEFAULT_DECODE_LIMITS } from '../../pkg/api/limits.js'
import { checkJSONTree } from '../../pkg/api/tree-check.js'

// The depth a parsed JSON value reaches, counted like checkJSONTree: the root object or array is at 0.
function depthOf (v: unknown): number {
  if (typeof v !== 'object' || v === null) return -1
  let max = 0
  for (const c of Array.isArray(v) ? v : Object.values(v)) max = Math.max(max, depthOf(c) + 1)
  return max
}

const nest = (n: number, leaf: unknown, wrap: (x: unknown, i: number) => unknown): unknown => {
  let v = leaf
  for (let i = 0; i < n; i++) v = wrap(v, i)
  return v
}

t.test('JSON depth: objects, arrays and mixes, at and past the limit', async t => {
  const limits = { ...DEFAULT_DECODE_LIMITS, maxDepth: 5 }
  const cases: Array<[string, unknown]> = [
    ['scalar', 7], ['null', null], ['empty object', {}], ['empty array', []],
    ['objects 5 deep', nest(5, 1, x => ({ a: x }))], ['objects 6 deep', nest(6, 1, x => ({ a: x }))],
    ['arrays 5 deep', nest(5, 'x', x => [x])], ['arrays 6 deep', nest(6, 'x', x => [x])],
    ['mixed 6 deep', nest(6, true, (x, i) => (i % 2 === 0 ? [1, x] : { k: x, n: null }))],
    ['deep branch last', { a: 1, b: [1, 2, { c: nest(4, 0, x => [x]) }] }],
    ['wide and shallow', { items: Array.from({ length: 1000 }, (_, i) => ({ i, s: 'x' })) }],
  ]
  for (const [name, v] of cases) {
    const tooDeep = depthOf(v) >= limits.maxDepth
    const got = checkJSONTree(v, limits)
    if (tooDeep) t.equal(got, 'nesting deeper than the limit of 5', name)
    else t.equal(got, null, name)
  }
})

t.test('a key named __proto__ (own property from JSON.parse) is walked like any other', async t => {
  const v = JSON.parse('{"__proto__": {"a": {"b": {"c": {"d": {"e": 1}}}}}}') as unknown
  t.equal(checkJSONTree(v, { ...DEFAULT_DECODE_LIMITS, maxDepth: 5 }), 'nesting deeper than the limit of 5')
  t.equal(checkJSONTree(v, { ...DEFAULT_DECODE_LIMITS, maxDepth: 6 }), null)
})
