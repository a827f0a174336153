// A seeded manifest mutator for the fuzz tests: byte flips with YAML's significant characters, cut,
// copied and swapped spans, anchors and aliases, tags, deep nesting and odd scalars, one to four per input.

/** mulberry32's raw 32-bit outputs: small, fast, and the same sequence for the same seed. */
function uint32s (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

/** Seeded uniform numbers in [0, 1). */
export function rng (seed: number): () => number {
  const next = uint32s(seed)
  return () => next() / 4294967296
}

/** Seeded integers: r(n) is in [0, n). The generated-state tests draw from it. */
export function rngInt (seed: number): (n: number) => number {
  const next = uint32s(seed)
  return n => next() % n
}

const SIGNIFICANT = [':', '-', '[', ']', '{', '}', ',', '&', '*', '!', '|', '>', '\'', '"', '#', '\n', ' ', '\t', '%', '@', '`', '?', '\u0000', '\uFFFF', '\u2028', '\\', '0', 'null', '~']
const FRAGMENTS = [
  '&a ', '*a', '<<: *a\n', '&b [x, *a]', '!!binary ', '!!js/function ', '!!set ', '!!omap ', '!!timestamp ', '!!int ', '!!float ',
  '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[', '{"a":{"a":{"a":{"a":', '99999999999999999999999', '-1', '1e400', '0x1F', '.inf', '.nan',
  '"\\ud800"', '---\n', '...\n', '%YAML 1.1\n', '? complex\n', 'kind: List\nitems: [', '__proto__: {polluted: true}\n', 'constructor: {prototype: {x: 1}}\n',
]

/** One to four mutations of `text`, drawn from `r`. */
export function mutate (text: string, r: () => number): string {
  let s = text
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T
  const at = (): number => Math.floor(r() * (s.length + 1))
  const n = 1 + Math.floor(r() * 4)
  for (let i = 0; i < n; i++) {
    const p = at()
    switch (Math.floor(r() * 8)) {
      case 0: s = s.slice(0, p) + pick(SIGNIFICANT) + s.slice(p + 1); break
      case 1: s = s.slice(0, p) + s.slice(p + 1 + Math.floor(r() * 40)); break
      case 2: { const q = at(); const [a, b] = p < q ? [p, q] : [q, p]; s = s.slice(0, b) + s.slice(a, Math.min(b, a + 400)) + s.slice(b); break }
      case 3: s = s.slice(0, p); break
      case 4: s = s.slice(0, p) + pick(FRAGMENTS) + s.slice(p); break
      case 5: { const lines = s.split('\n'); const a = Math.floor(r() * lines.length); const b = Math.floor(r() * lines.length); [lines[a], lines[b]] = [lines[b] ?? '', lines[a] ?? '']; s = lines.join('\n'); break }
      case 6: s = s.replace(/\d+/g, m => (r() < 0.2 ? pick(['0', '-1', '65536', '99999999999', '1.5', '"80"', m + m]) : m)); break
      default: s = s.replace(/(\n\s*)(\w+):/g, (m, ws: string, k: string) => (r() < 0.1 ? `${ws}${pick([k.toUpperCase(), k + 'x', '', '"' + k + '"'])}:` : m))
    }
  }
  return s
}
