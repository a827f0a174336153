import t from 'tap'
import { sameJSON } from '../../pkg/cache/same.js'

t.test('sameJSON agrees with comparing JSON.stringify output, ignoring key order', async t => {
  const cases: Array<[unknown, unknown, boolean]> = [
    [1, 1, true], ['a', 'a', true], [null, null, true], [1, '1', false], [null, {}, false], [[], {}, false], [{}, [], false],
    [{ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }, true],
    [{ a: 1 }, { a: 1, b: 2 }, false], [{ a: 1, b: 2 }, { a: 1 }, false],
    [{ a: 1, u: undefined }, { a: 1 }, true], [{ a: 1 }, { a: 1, u: undefined }, true],
    [[1, 2], [2, 1], false], [[1, 2], [1, 2, 3], false], [{ a: { b: { c: [true] } } }, { a: { b: { c: [false] } } }, false],
    [{ a: [] }, { a: {} }, false],
  ]
  for (const [a, b, want] of cases) t.equal(sameJSON(a, b), want, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`)
})
