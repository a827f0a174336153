// Non-throwing scanners shared by the query parser and the upstream reply reader. They return -1 (or
// false) instead of throwing, because malformed input is the normal case on a server's socket and a
// throw per bad packet is slow and easy to get wrong.

/** Where the last scanQuestionName() put the name it read (module-level, so the hot path allocates nothing else). */
export const scanned = { name: '', lname: '', end: 0 }

// Scratch for the two presentation forms of a name, turned into strings by one native latin1 decode
// each (a name is at most 255 octets, under 510 characters even with every byte escaped).
const nameBytes = Buffer.allocUnsafe(512)
const lnameBytes = Buffer.allocUnsafe(512)

/**
 * Reads an uncompressed name at `offset` (the question name of a query or reply, which has nothing before
 * it worth pointing to) into `scanned`. Returns false on a pointer, a reserved label type, a name over 255
 * octets, or a name running past the message. Dots and backslashes inside labels are escaped ("\.",
 * "\\") as readName does.
 */
export function scanQuestionName (buf: Uint8Array, offset: number): boolean {
  let pos = offset
  let wire = 1
  let n = 0
  let upper = false
  for (;;) {
    if (pos >= buf.length) return false
    const len = buf[pos] as number
    if (len === 0) break
    if (len > 63) return false
    wire += len + 1
    if (wire > 255 || pos + 1 + len > buf.length) return false
    if (n > 0) { nameBytes[n] = 0x2e; lnameBytes[n++] = 0x2e }
    for (let i = pos + 1; i <= pos + len; i++) {
      const c = buf[i] as number
      if (c === 0x2e || c === 0x5c) { nameBytes[n] = 0x5c; lnameBytes[n++] = 0x5c }
      nameBytes[n] = c
      if (c >= 0x41 && c <= 0x5a) { lnameBytes[n++] = c + 32; upper = true } else lnameBytes[n++] = c
    }
    pos += len + 1
  }
  scanned.name = nameBytes.toString('latin1', 0, n)
  scanned.lname = upper ? lnameBytes.toString('latin1', 0, n) : scanned.name
  scanned.end = pos + 1
  return true
}

/**
 * Validates the (possibly compressed) name at `offset` without building it and returns the offset just
 * past it in the message, or -1. Pointers must point backwards (so no loops), as in readName.
 */
export function skipName (buf: Uint8Array, offset: number): number {
  let pos = offset
  let end = -1
  let wire = 1
  for (;;) {
    if (pos >= buf.length) return -1
    const len = buf[pos] as number
    if (len === 0) return end < 0 ? pos + 1 : end
    if (len >= 0xc0) {
      if (pos + 1 >= buf.length) return -1
      const target = ((len & 0x3f) << 8) | (buf[pos + 1] as number)
      if (end < 0) end = pos + 2
      if (target >= pos) return -1
      pos = target
      continue
    }
    if (len > 63) return -1
    wire += len + 1
    if (wire > 255 || pos + 1 + len > buf.length) return -1
    pos += len + 1
  }
}

export function u16 (buf: Uint8Array, off: number): number {
  return ((buf[off] as number) << 8) | (buf[off + 1] as number)
}

export function u32 (buf: Uint8Array, off: number): number {
  return (((buf[off] as number) << 24) | ((buf[off + 1] as number) << 16) | ((buf[off + 2] as number) << 8) | (buf[off + 3] as number)) >>> 0
}
