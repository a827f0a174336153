// Decoding limits: every manifest is untrusted input, so each cost it can drive (bytes read, alias
// expansion, nesting, objects validated) has a cap that is checked before that work starts.

export interface DecodeLimits {
  /** Largest file (or stored value) decoded, in bytes. */
  readonly maxBytes: number
  /** Most YAML aliases per document, counting nested expansion (the "billion laughs" guard). */
  readonly maxAliases: number
  /** Deepest nesting of mappings and sequences. */
  readonly maxDepth: number
  /** Most objects (documents plus `kind: List` items) one file may hold. */
  readonly maxObjects: number
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = Object.freeze({
  maxBytes: 16 * 1024 * 1024,
  maxAliases: 100,
  maxDepth: 64,
  maxObjects: 100_000,
})

/** 1536 → "1.5 KiB", for messages that quote a limit. */
export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u] ?? 'B'}`
}
