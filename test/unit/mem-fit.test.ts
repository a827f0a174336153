// fit(): the same elements at the exact length, and an empty array passed through (nothing to trim).
import t from 'tap'
import { fit } from '../../pkg/mem/fit.js'

t.test('a pushed array comes back as an equal copy; an empty one as itself', async t => {
  const a: number[] = []
  t.equal(fit(a), a, 'empty: no copy')
  a.push(1, 2, 3)
  const b = fit(a)
  t.not(b, a, 'a copy')
  t.same(b, [1, 2, 3])
  t.equal(b.length, 3)
  a.push(4)
  t.same(b, [1, 2, 3], 'independent of the original')
})
