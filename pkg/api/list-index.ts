// Where each item of a JSON `kind: List` sits in its text, with a hash of each item's text and one of
// everything else (the envelope). A re-read List whose envelope hashes the same needs only the items
// whose text is new parsed and validated: an item with unchanged text is the object it was.
// The scan is structural, not a parser: it proves the separators between items and finds the top-level
// "kind" and "items" members; the envelope and unchanged items were valid JSON when first decoded, and
// each new item text goes through JSON.parse. Anything it is not sure of gives null (decode in full).

export interface ListIndex {
  /** Hashes of the text before and after the items array's contents. */
  readonly envelope: string
  /** One per item, in order: a hash of the item's text, its length mixed in. */
  readonly items: Float64Array
}

export interface ScannedList extends ListIndex {
  /** Each item's text is text.slice(starts[i], ends[i]). */
  readonly starts: Uint32Array
  readonly ends: Uint32Array
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const LBRACE = 0x7b
const RBRACE = 0x7d
const LBRACKET = 0x5b
const RBRACKET = 0x5d

function isSpace (c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}

function skipSpace (text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++
  return i
}

/** Index just past the string starting at `i` (a quote), or -1. indexOf keeps long strings native. */
function skipString (text: string, i: number): number {
  let j = i + 1
  for (;;) {
    const q = text.indexOf('"', j)
    if (q < 0) return -1
    let k = q - 1
    while (k > i && text.charCodeAt(k) === BACKSLASH) k--
    if ((q - 1 - k) % 2 === 0) return q + 1 // an even run of backslashes: the quote is not escaped
    j = q + 1
  }
}

/** Index just past the value starting at `i`, or -1; brackets are matched by depth only. */
function skipValue (text: string, i: number): number {
  const c = text.charCodeAt(i)
  if (c === QUOTE) return skipString(text, i)
  if (c !== LBRACE && c !== LBRACKET) {
    // A number, true, false or null: up to the next separator.
    let j = i
    while (j < text.length) {
      const d = text.charCodeAt(j)
      if (d === COMMA || d === RBRACE || d === RBRACKET || isSpace(d)) break
      j++
    }
    return j > i ? j : -1
  }
  let depth = 0
  for (let j = i; j < text.length; j++) {
    const d = text.charCodeAt(j)
    if (d === QUOTE) {
      j = skipString(text, j)
      if (j < 0) return -1
      j--
    } else if (d === LBRACE || d === LBRACKET) depth++
    else if (d === RBRACE || d === RBRACKET) {
      if (--depth === 0) return j + 1
    }
  }
  return -1
}

/**
 * Two 32-bit lanes, FNV-1a and a polynomial hash (its 21 high bits), folded into 53 bits with the
 * length mixed in. ~2 ns a character here; a shift per character in the second lane cost 1.7x.
 */
function hashRange (text: string, from: number, to: number): number {
  let h1 = 0x811c9dc5
  let h2 = 0
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 0x01000193)
    h2 = Math.imul(h2 + c, 0x5bd1e995)
  }
  return fold(h1, h2, to - from)
}

/**
 * Index just past the object starting at `i`, or -1; pushes its text's hash onto `hashes`. Strings are
 * skipped by a tight loop (most are short keys: an indexOf call each cost more), then hashed apart.
 */
function scanItem (text: string, i: number, hashes: number[]): number {
  let depth = 0
  const n = text.length
  for (let j = i; j < n; j++) {
    const c = text.charCodeAt(j)
    if (c === QUOTE) {
      for (j++; j < n; j++) {
        const d = text.charCodeAt(j)
        if (d === QUOTE) break
        if (d === BACKSLASH) j++
      }
    } else if (c === LBRACE || c === LBRACKET) depth++
    else if ((c === RBRACE || c === RBRACKET) && --depth === 0) {
      hashes.push(hashRange(text, i, j + 1))
      return j + 1
    }
  }
  return -1
}

function fold (h1: number, h2: number, length: number): number {
  return (h1 >>> 0) * 0x200000 + ((Math.imul(h2 ^ length, 0x27d4eb2d) >>> 11) & 0x1fffff)
}

/**
 * Scans `text` as a JSON object with one "kind" member whose value is "List" and one "items" member
 * holding objects. Null when the text is anything else, or when a top-level key is escaped (it could
 * spell "items" a second time, and JSON.parse keeps the last).
 */
export function scanJSONList (text: string): ScannedList | null {
  let i = skipSpace(text, 0)
  if (text.charCodeAt(i) !== LBRACE) return null
  i = skipSpace(text, i + 1)
  let kindSeen = false
  let itemsAt = -1
  let itemsEnd = -1
  const starts: number[] = []
  const ends: number[] = []
  const hashes: number[] = []
  if (text.charCodeAt(i) === RBRACE) return null
  for (;;) {
    if (text.charCodeAt(i) !== QUOTE) return null
    const keyEnd = skipString(text, i)
    if (keyEnd < 0) return null
    const key = text.slice(i + 1, keyEnd - 1)
    if (key.includes('\\')) return null
    i = skipSpace(text, keyEnd)
    if (text.charCodeAt(i) !== COLON) return null
    i = skipSpace(text, i + 1)
    if (key === 'items') {
      if (itemsAt >= 0 || text.charCodeAt(i) !== LBRACKET) return null
      itemsAt = i + 1
      i = skipSpace(text, i + 1)
      if (text.charCodeAt(i) !== RBRACKET) {
        for (;;) {
          if (text.charCodeAt(i) !== LBRACE) return null
          const end = scanItem(text, i, hashes)
          if (end < 0) return null
          starts.push(i)
          ends.push(end)
          i = skipSpace(text, end)
          const c = text.charCodeAt(i)
          if (c === RBRACKET) break
          if (c !== COMMA) return null
          i = skipSpace(text, i + 1)
        }
      }
      itemsEnd = i
      i++
    } else {
      const end = skipValue(text, i)
      if (end < 0) return null
      if (key === 'kind') {
        if (kindSeen || text.slice(i, end) !== '"List"') return null
        kindSeen = true
      }
      i = end
    }
    i = skipSpace(text, i)
    const c = text.charCodeAt(i)
    if (c === RBRACE) break
    if (c !== COMMA) return null
    i = skipSpace(text, i + 1)
  }
  if (!kindSeen || itemsAt < 0 || skipSpace(text, i + 1) !== text.length) return null
  const items = Float64Array.from(hashes)
  const envelope = `${hashRange(text, 0, itemsAt)}:${hashRange(text, itemsEnd, text.length)}`
  return { envelope, items, starts: Uint32Array.from(starts), ends: Uint32Array.from(ends) }
}

/** The index of a List decoded in full into `objects` objects, or undefined when the text is not one. */
export function listIndexOf (text: string, objects: number): ListIndex | undefined {
  const scan = scanJSONList(text)
  return scan !== null && scan.items.length === objects ? { envelope: scan.envelope, items: scan.items } : undefined
}
