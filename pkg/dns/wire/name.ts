// Domain names on the wire (RFC 1035 §3.1, §4.1.4). Labels are read as latin1 so that every byte
// survives a round trip, and a dot inside a label is escaped as "\." so names stay unambiguous.

export class WireError extends Error {
  constructor (message: string) { super(message); this.name = 'WireError' }
}

const MAX_NAME = 255

/**
 * Reads the name at `offset`, following compression pointers (each must point backwards, so loops are
 * impossible). Returns the name without the trailing dot and the offset just past it in the message.
 */
export function readName (buf: Uint8Array, offset: number): { name: string, end: number } {
  const labels: string[] = []
  let pos = offset
  let end = -1
  let wireLen = 1
  for (;;) {
    if (pos >= buf.length) throw new WireError('name runs past the message')
    const len = buf[pos] as number
    if (len === 0) { if (end < 0) end = pos + 1; break }
    const kind = len & 0xc0
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw new WireError('truncated compression pointer')
      const target = ((len & 0x3f) << 8) | (buf[pos + 1] as number)
      if (end < 0) end = pos + 2
      if (target >= pos) throw new WireError('compression pointer does not point backwards')
      pos = target
      continue
    }
    if (kind !== 0) throw new WireError('reserved label type')
    if (pos + 1 + len > buf.length) throw new WireError('label runs past the message')
    wireLen += len + 1
    if (wireLen > MAX_NAME) throw new WireError('name longer than 255 octets')
    let label = ''
    for (let i = pos + 1; i <= pos + len; i++) {
      const c = buf[i] as number
      label += c === 0x2e ? '\\.' : c === 0x5c ? '\\\\' : String.fromCharCode(c)
    }
    labels.push(label)
    pos += len + 1
  }
  return { name: labels.join('.'), end }
}

/** Splits a presentation name (no trailing dot, "\." escapes) into raw label strings. */
export function nameLabels (name: string): string[] {
  if (name === '') return []
  if (!name.includes('\\')) return name.split('.')
  const labels: string[] = []
  let cur = ''
  for (let i = 0; i < name.length; i++) {
    const c = name[i] as string
    if (c === '\\' && i + 1 < name.length) { cur += name[++i] as string; continue }
    if (c === '.') { labels.push(cur); cur = ''; continue }
    cur += c
  }
  labels.push(cur)
  return labels
}

/** Wire length of a name written without compression. */
export function nameWireLength (name: string): number {
  let n = 1
  for (const l of nameLabels(name)) n += l.length + 1
  return n
}
