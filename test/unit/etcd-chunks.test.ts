import t from 'tap'
import { chunkByLimits, putCost, requestBudget, DEFAULT_MAX_REQUEST_BYTES } from '../../pkg/etcd/chunks.js'

t.test('chunks respect the op limit and the byte budget, in order, covering everything', async t => {
  t.same(chunkByLimits([], 128, 1000), [])
  t.same(chunkByLimits([1, 1, 1, 1, 1], 2, 1000), [{ start: 0, end: 2 }, { start: 2, end: 4 }, { start: 4, end: 5 }])
  t.same(chunkByLimits([400, 400, 400, 100, 100], 128, 1000), [{ start: 0, end: 2 }, { start: 2, end: 5 }], 'bytes cut before the limit is crossed')
  t.same(chunkByLimits([1500, 10, 10], 128, 1000), [{ start: 0, end: 1 }, { start: 1, end: 3 }], 'an oversized item stands alone')
  t.same(chunkByLimits([500, 500, 500], 128, 1000), [{ start: 0, end: 2 }, { start: 2, end: 3 }], 'exactly at the budget fits')
  t.throws(() => chunkByLimits([1], 0, 10), RangeError)

  // Table: random sizes, every chunk within both limits, chunks contiguous.
  for (const [n, ops, budget] of [[20_000, 128, requestBudget(DEFAULT_MAX_REQUEST_BYTES)], [1000, 7, 5000], [300, 1000, 20_000]] as const) {
    const costs = Array.from({ length: n }, (_, i) => 100 + ((i * 7919) % 4000))
    const chunks = chunkByLimits(costs, ops, budget)
    let next = 0
    let ok = true
    for (const c of chunks) {
      const sum = costs.slice(c.start, c.end).reduce((a, b) => a + b, 0)
      if (c.start !== next || c.end - c.start > ops || c.end <= c.start || sum > budget) ok = false
      next = c.end
    }
    t.ok(ok && next === n, `${n} items, ${ops} ops, ${budget} bytes: ${chunks.length} valid chunks`)
  }
})

t.test('cost and budget leave room for etcd framing', async t => {
  t.equal(putCost('/k', 'vv'), 2 * 2 + 2 + 32)
  t.equal(putCost('/ü', ''), 2 * 3 + 32, 'bytes, not characters')
  t.ok(requestBudget(DEFAULT_MAX_REQUEST_BYTES) < DEFAULT_MAX_REQUEST_BYTES * 0.95)
})
