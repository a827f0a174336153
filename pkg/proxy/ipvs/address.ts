// Address text <-> the bytes IPVS carries (in_addr / in6_addr, network order). Text out is ferry's
// canonical form (parseIP), so decoded kernel state compares equal to desired state.
import { parseIP } from '../../net/ip.js'
import type { IPFamily } from './types.js'

/** 4 bytes for IPv4, 16 for IPv6; null when `text` is not an address of `family`. */
export function addressBytes (family: IPFamily, text: string): Buffer | null {
  const p = parseIP(text)
  if (p === null || p.family !== family) return null
  if (family === 'IPv4') return Buffer.from(p.ip.split('.').map(Number))
  return v6Bytes(p.ip)
}

/** The family of an address text, or null. */
export function addressFamily (text: string): IPFamily | null {
  return parseIP(text)?.family ?? null
}

/** Canonical text of an address; IPv4 reads the first 4 bytes (replies carry 16, v4 in front). */
export function formatAddress (family: IPFamily, b: Uint8Array): string | null {
  if (family === 'IPv4') {
    if (b.length < 4) return null
    return `${b[0] ?? 0}.${b[1] ?? 0}.${b[2] ?? 0}.${b[3] ?? 0}`
  }
  if (b.length < 16) return null
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16))
  return parseIP(groups.join(':'))?.ip ?? null
}

/** Canonical text for an address (any family), or null. */
export function canonicalAddress (text: string): string | null {
  return parseIP(text)?.ip ?? null
}

function v6Bytes (canonical: string): Buffer | null {
  let text = canonical
  // An embedded dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const dot = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (dot !== null) {
    const q = dot.slice(1).map(Number)
    text = text.slice(0, dot.index) + `${(((q[0] ?? 0) << 8) | (q[1] ?? 0)).toString(16)}:${(((q[2] ?? 0) << 8) | (q[3] ?? 0)).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return null
  const head = halves[0] === '' || halves[0] === undefined ? [] : halves[0].split(':')
  const tail = halves.length === 1 || halves[1] === '' || halves[1] === undefined ? [] : halves[1].split(':')
  const groups = halves.length === 2 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head
  if (groups.length !== 8) return null
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(Number.parseInt(g, 16), i * 2))
  return out
}
