// Arrays kept for the life of an object, trimmed to their length. V8 gives an array built by push()
// room for 17 elements; ferry keeps tens of thousands of one- to five-element lists (addresses, ports,
// endpoints, ipset members), where that room was 17 MB of a 126 MB heap at 10k Services.

/** The array at its exact length: `a` itself when empty, else a copy (slice() allocates exactly). */
export function fit<T> (a: T[]): T[] {
  return a.length === 0 ? a : a.slice()
}
