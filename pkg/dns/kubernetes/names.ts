// The name forms of cluster DNS (DNS.md §1, §2.7, §2.8, §2.12): dashed endpoint and pod names, the
// reverse-zone names of an address, and which of the plugin's zones a name falls in.
import { isIPv4, isIPv6 } from 'node:net'
import { parseIP } from '../../net/ip.js'

export const REVERSE_V4 = 'in-addr.arpa'
export const REVERSE_V6 = 'ip6.arpa'

/** 4 for a dotted quad, 6 for IPv6, 0 for anything else (e.g. "" or "None"). */
export function ipFamily (ip: string): 0 | 4 | 6 {
  if (isIPv4(ip)) return 4
  if (isIPv6(ip)) return 6
  return 0
}

/**
 * An endpoint's DNS label: the slice `hostname`, else the IP with '.' or ':' turned into '-', plus a
 * trailing '0' when that leaves a trailing '-' (an IPv6 ending in "::"), so the label stays valid.
 */
export function endpointLabel (ip: string, hostname: string | undefined): string {
  if (hostname !== undefined && hostname !== '') return hostname.toLowerCase()
  return dashedIP(ip)
}

export function dashedIP (ip: string): string {
  const dashed = ip.includes(':') ? ip.replaceAll(':', '-').toLowerCase() : ip.replaceAll('.', '-')
  return dashed.endsWith('-') ? dashed + '0' : dashed
}

/**
 * The IP a pod name stands for, CoreDNS's way: three dashes and no "--" is IPv4, anything else IPv6
 * with every dash a colon. Returns the text as derived (not canonical) and null when it is not an IP.
 */
export function podNameIP (label: string): string | null {
  let dashes = 0
  for (let i = 0; i < label.length; i++) if (label.charCodeAt(i) === 45) dashes++
  const ip = dashes === 3 && !label.includes('--') ? label.replaceAll('-', '.') : label.replaceAll('-', ':')
  // isIPv6 takes a zone ID ("fe80::1%eth0"), which Go's ParseIP refuses and no AAAA can carry.
  return isIPv4(ip) || (isIPv6(ip) && !ip.includes('%')) ? ip : null
}

/**
 * The address a pod name's IP answers with: canonical text, an IPv4-mapped IPv6 (::ffff:a.b.c.d) read as
 * its IPv4 address, as Go's To4 reads it in CoreDNS (msg.Service HostType), so it is A, not AAAA.
 */
export function podAddress (ip: string): string {
  const p = parseIP(ip)
  if (p === null) return ip
  if (p.family === 'IPv4') return p.ip
  const g = expandV6(p.ip)
  if (g.length !== 8 || g.slice(0, 5).some(x => x !== 0) || g[5] !== 0xffff) return p.ip
  const hi = g[6] ?? 0
  const lo = g[7] ?? 0
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
}

/** The PTR owner of an address (lower case, no trailing dot), or null when it is not an IP. */
export function reverseName (ip: string): string | null {
  const p = parseIP(ip)
  if (p === null) return null
  if (p.family === 'IPv4') return `${p.ip.split('.').reverse().join('.')}.${REVERSE_V4}`
  const groups = expandV6(p.ip)
  let out = ''
  for (let g = 7; g >= 0; g--) {
    const hex = (groups[g] ?? 0).toString(16).padStart(4, '0')
    for (let i = 3; i >= 0; i--) out += hex[i] + '.'
  }
  return out + REVERSE_V6
}

/** The eight 16-bit groups of a canonical IPv6 address (parseIP's form never has a dotted tail). */
function expandV6 (ip: string): number[] {
  const [head = '', rest] = ip.split('::')
  const h = head === '' ? [] : head.split(':').map(g => Number.parseInt(g, 16))
  const r = rest === undefined || rest === '' ? [] : rest.split(':').map(g => Number.parseInt(g, 16))
  const fill = rest === undefined ? [] : Array<number>(Math.max(0, 8 - h.length - r.length)).fill(0)
  return [...h, ...fill, ...r]
}

/** The address a reverse name stands for (full names only), else null. */
export function ipFromReverse (lname: string): string | null {
  if (lname.endsWith('.' + REVERSE_V4)) {
    const parts = lname.slice(0, -REVERSE_V4.length - 1).split('.')
    if (parts.length !== 4) return null
    const ip = parts.reverse().join('.')
    return isIPv4(ip) ? ip : null
  }
  if (lname.endsWith('.' + REVERSE_V6)) {
    const nibbles = lname.slice(0, -REVERSE_V6.length - 1).split('.')
    if (nibbles.length !== 32 || nibbles.some(n => !/^[0-9a-f]$/.test(n))) return null
    nibbles.reverse()
    const groups: string[] = []
    for (let i = 0; i < 32; i += 4) groups.push(nibbles.slice(i, i + 4).join(''))
    return parseIP(groups.join(':'))?.ip ?? null
  }
  return null
}

/** True when `lname` is `zone` or under it (both lower case, no trailing dot; "" is the root). */
export function inZone (lname: string, zone: string): boolean {
  if (zone === '') return true
  return lname === zone || (lname.length > zone.length && lname.endsWith(zone) && lname.charCodeAt(lname.length - zone.length - 1) === 46)
}

/** The labels of `lname` left of `zone` (which it must be in), leftmost first. */
export function labelsUnder (lname: string, zone: string): string[] {
  if (lname === zone) return []
  const base = zone === '' ? lname : lname.slice(0, lname.length - zone.length - 1)
  return base.split('.')
}
