// Equality of JSON-like values, as the cache's no-op check: what JSON.stringify would print equal,
// minus key order. Comparing in place costs no string per object, where stringifying every object on
// every upsert made a second copy of the whole cluster in memory and a string per object at each list.

/** True when `a` and `b` would serialize to the same JSON (object keys in any order; undefined members ignored). */
export function sameJSON (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!sameJSON(a[i], b[i])) return false
    return true
  }
  if (Array.isArray(b)) return false
  const ra = a as Record<string, unknown>
  const rb = b as Record<string, unknown>
  let na = 0
  for (const k in ra) {
    if (!Object.hasOwn(ra, k) || ra[k] === undefined) continue
    na++
    if (!Object.hasOwn(rb, k) || !sameJSON(ra[k], rb[k])) return false
  }
  let nb = 0
  for (const k in rb) if (Object.hasOwn(rb, k) && rb[k] !== undefined) nb++
  return na === nb
}
