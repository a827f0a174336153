// Family-aware address helpers. Every address ferry stores is canonical text from parseIP.
import { isIPv4, BlockList } from 'node:net'

export type IPFamily = 'IPv4' | 'IPv6'

export interface ParsedIP { readonly family: IPFamily, readonly ip: string }
export interface ParsedCIDR { readonly family: IPFamily, readonly ip: string, readonly prefix: number, readonly text: string }

// Kubernetes still accepts legacy IPv4 with leading zeros ("192.168.099.011") and reads it as decimal.
const legacyV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

/**
 * Canonical dotted-quad IPv4 (nearly every address ferry sees, e.g. every endpoint at start-up) is its own
 * canonical text: answered by one scan, no regex, split or join. Anything else takes parseIPGeneral.
 */
export function parseIP (text: string): ParsedIP | null {
  return isPlainIPv4(text) ? { family: 'IPv4', ip: text } : parseIPGeneral(text)
}

/**
 * Four dotted decimal octets without leading zeros: canonical IPv4 text, which node:net's isIPv4 accepts
 * too. A scan without a regex or allocation, for the per-endpoint hot paths.
 */
export function isPlainIPv4 (text: string): boolean {
  const n = text.length
  if (n < 7 || n > 15) return false
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || dots === 3) return false
      dots++
      octet = 0
      digits = 0
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return false // leading zero: legacy form, canonicalised by parseIPGeneral
      octet = octet * 10 + (c - 48)
      if (++digits > 3 || octet > 255) return false
    } else return false
  }
  return dots === 3 && digits > 0
}

/**
 * `text[from, to)` as a number when it is four decimal octets of at most three digits each, else -1. A scan
 * without allocation, for the hot paths (endpoint sorting, element encoding).
 */
export function ipv4Number (text: string, from = 0, to = text.length): number {
  let n = 0
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (c === 46) { // '.'
      if (digits === 0 || octet > 255) return -1
      n = n * 256 + octet
      octet = 0
      digits = 0
      dots++
    } else if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + (c - 48)
      digits++
    } else return -1
  }
  return dots !== 3 || digits === 0 || octet > 255 ? -1 : n * 256 + octet
}

/** Every form parseIP accepts: legacy IPv4 with leading zeros, surrounding space, IPv6 in any spelling. */
export function parseIPGeneral (text: string): ParsedIP | null {
  const s = text.trim()
  const m = legacyV4.exec(s)
  if (m !== null) {
    const parts = m.slice(1).map(p => Number.parseInt(p, 10))
    if (parts.some(p => p > 255)) return null
    return { family: 'IPv4', ip: parts.join('.') }
  }
  const v6 = ipv6Canonical(s)
  return v6 === null ? null : { family: 'IPv6', ip: v6 }
}

export function familyOf (ip: string): IPFamily | null {
  if (isPlainIPv4(ip) || isIPv4(ip)) return 'IPv4'
  if (ipv6Canonical(ip) !== null) return 'IPv6'
  return null
}

const V6_CHARS = /^[0-9a-fA-F:.]+$/

/**
 * The RFC 5952 text of an IPv6 address, or null. The URL parser (native) validates and compresses it;
 * node:net's isIPv6 regex costs 5-30 ms on its first calls, which fell on ferryd's start-up path. Zone
 * IDs ("%eth0") are refused, as Kubernetes refuses them in addresses.
 */
function ipv6Canonical (s: string): string | null {
  if (!s.includes(':') || !V6_CHARS.test(s)) return null
  try { return canonicalV6(s) } catch { return null }
}

export function parseCIDR (text: string): ParsedCIDR | null {
  const s = text.trim()
  const slash = s.indexOf('/')
  if (slash < 0) return null
  const ip = parseIP(s.slice(0, slash))
  const prefixText = s.slice(slash + 1)
  if (ip === null || !/^\d{1,3}$/.test(prefixText)) return null
  const prefix = Number(prefixText)
  if (prefix > (ip.family === 'IPv4' ? 32 : 128)) return null
  const net = maskIP(ip, prefix)
  return { family: ip.family, ip: net, prefix, text: `${net}/${prefix}` }
}

export function cidrContains (cidr: ParsedCIDR, ip: string): boolean {
  const p = parseIP(ip)
  if (p === null || p.family !== cidr.family) return false
  const bl = new BlockList()
  bl.addSubnet(cidr.ip, cidr.prefix, cidr.family === 'IPv4' ? 'ipv4' : 'ipv6')
  return bl.check(p.ip, p.family === 'IPv4' ? 'ipv4' : 'ipv6')
}

function canonicalV6 (s: string): string {
  // URL parsing yields the RFC 5952 form, lower case and compressed.
  return new URL(`http://[${s}]/`).hostname.slice(1, -1)
}

/** The address's bytes in network order (4 or 16), or null when `text` is not an address. */
export function ipBytes (text: string): number[] | null {
  const p = parseIP(text)
  return p === null ? null : toBytes(p)
}

/** Canonical text of an address given as network-order bytes: 4 for IPv4, 16 for IPv6. */
export function ipFromBytes (b: Uint8Array): string {
  if (b.length === 4) return `${b[0] ?? 0}.${b[1] ?? 0}.${b[2] ?? 0}.${b[3] ?? 0}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16))
  return parseIP(groups.join(':'))?.ip ?? groups.join(':')
}

function toBytes (ip: ParsedIP): number[] {
  if (ip.family === 'IPv4') return ip.ip.split('.').map(Number)
  const full = expandV6(ip.ip)
  const out: number[] = []
  for (const g of full) { const v = Number.parseInt(g, 16); out.push(v >> 8, v & 0xff) }
  return out
}

function expandV6 (s: string): string[] {
  let text = s
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4?.[1] !== undefined) {
    const b = v4[1].split('.').map(Number)
    text = text.slice(0, -v4[1].length) + `${((b[0] ?? 0) << 8 | (b[1] ?? 0)).toString(16)}:${((b[2] ?? 0) << 8 | (b[3] ?? 0)).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0')
  return [...h, ...fill, ...t]
}

function maskIP (ip: ParsedIP, prefix: number): string {
  const bytes = toBytes(ip).map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8))
    return b & (0xff << (8 - bits)) & 0xff
  })
  if (ip.family === 'IPv4') return bytes.join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16))
  return canonicalV6(groups.join(':'))
}

/** 127.0.0.0/8, ::1, and IPv4 loopback seen through a dual-stack socket (::ffff:127.0.0.1); "localhost" too. */
export function isLoopback (address: string): boolean {
  if (address === 'localhost') return true
  const p = parseIP(address.replace(/^\[|\]$/g, '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, ''))
  if (p === null) return false
  return p.family === 'IPv4' ? p.ip.startsWith('127.') : p.ip === '::1'
}
