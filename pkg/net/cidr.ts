// Range arithmetic over IPv4 and IPv6 prefixes, for carving a cluster network into node subnets.
// Addresses are bigints (32 or 128 bits) so both families share one code path; text goes through
// parseIP (ip.ts) in and canonical text out, so keys built from a Cidr are stable.
import { parseIP, type IPFamily } from './ip.js'

export interface Cidr {
  readonly family: IPFamily
  /** The network address (host bits zero) as a number of `bits` bits. */
  readonly base: bigint
  readonly prefix: number
  /** "10.244.3.0/24", "fd00:10:244:3::/64": canonical text. */
  readonly text: string
}

export function familyBits (family: IPFamily): 32 | 128 {
  return family === 'IPv4' ? 32 : 128
}

/** Canonical address text → number; null when `text` is not an address. */
export function ipToBigInt (text: string): { family: IPFamily, value: bigint } | null {
  const p = parseIP(text)
  if (p === null) return null
  if (p.family === 'IPv4') {
    const [a = 0, b = 0, c = 0, d = 0] = p.ip.split('.').map(Number)
    return { family: 'IPv4', value: BigInt(((a << 24) >>> 0) + (b << 16) + (c << 8) + d) }
  }
  return { family: 'IPv6', value: v6ToBigInt(p.ip) }
}

function v6ToBigInt (canonical: string): bigint {
  let text = canonical
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text) // ::ffff:1.2.3.4
  if (v4?.[1] !== undefined) {
    const n = ipToBigInt(v4[1])?.value ?? 0n
    text = text.slice(0, -v4[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = [...h, ...Array<string>(tail === undefined ? 0 : 8 - h.length - t.length).fill('0'), ...t]
  let out = 0n
  for (const g of groups) out = (out << 16n) | BigInt(Number.parseInt(g, 16))
  return out
}

/** Number → canonical address text (RFC 5952 for IPv6). */
export function bigIntToIP (value: bigint, family: IPFamily): string {
  if (family === 'IPv4') {
    const n = Number(value & 0xffffffffn)
    return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`
  }
  const groups: string[] = []
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16))
  return parseIP(groups.join(':'))?.ip ?? groups.join(':')
}

function hostMask (prefix: number, bits: number): bigint {
  return (1n << BigInt(bits - prefix)) - 1n
}

/** A prefix from its parts; host bits of `base` are cleared. */
export function makeCidr (family: IPFamily, base: bigint, prefix: number): Cidr {
  const bits = familyBits(family)
  const net = base & ~hostMask(prefix, bits) & ((1n << BigInt(bits)) - 1n)
  return { family, base: net, prefix, text: `${bigIntToIP(net, family)}/${prefix}` }
}

export interface ParseCidrOptions {
  /** Reject "10.244.1.7/16" (host bits set) instead of masking it to 10.244.0.0/16. */
  strict?: boolean
}

/** "10.244.0.0/16" → Cidr; null when malformed (or, with strict, when host bits are set). */
export function parseCidr (text: string, opts: ParseCidrOptions = {}): Cidr | null {
  const slash = text.indexOf('/')
  if (slash < 0) return null
  const ip = ipToBigInt(text.slice(0, slash).trim())
  const prefixText = text.slice(slash + 1).trim()
  if (ip === null || !/^\d{1,3}$/.test(prefixText)) return null
  const prefix = Number(prefixText)
  const bits = familyBits(ip.family)
  if (prefix > bits) return null
  if (opts.strict === true && (ip.value & hostMask(prefix, bits)) !== 0n) return null
  return makeCidr(ip.family, ip.value, prefix)
}

/** Number of addresses in the prefix. */
export function cidrSize (c: Cidr): bigint {
  return 1n << BigInt(familyBits(c.family) - c.prefix)
}

/** The last address of the prefix (broadcast for IPv4). */
export function cidrLast (c: Cidr): bigint {
  return c.base + cidrSize(c) - 1n
}

export function containsAddress (c: Cidr, family: IPFamily, value: bigint): boolean {
  return c.family === family && value >= c.base && value <= cidrLast(c)
}

/** `inner` lies wholly inside `outer`. */
export function containsCidr (outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && inner.prefix >= outer.prefix && containsAddress(outer, inner.family, inner.base)
}

export function overlaps (a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.base <= cidrLast(b) && b.base <= cidrLast(a)
}

/** The address `offset` past the network address, as text: gateway(10.244.3.0/24) = offsetIP(c, 1n). */
export function offsetIP (c: Cidr, offset: bigint): string {
  return bigIntToIP(c.base + offset, c.family)
}

/**
 * The subnets of length `subnetLen` whose network addresses run from `min` to `max` (inclusive, both
 * aligned), in order. A generator: a /8 of /24s is 65536 subnets and a v6 range may be astronomically
 * large, so callers stop as soon as they have what they need.
 */
export function * subnetsBetween (family: IPFamily, subnetLen: number, min: bigint, max: bigint): Generator<Cidr> {
  const step = 1n << BigInt(familyBits(family) - subnetLen)
  for (let base = min; base <= max; base += step) yield makeCidr(family, base, subnetLen)
}

/** How many subnets of length `subnetLen` lie from `min` to `max` inclusive (both aligned). */
export function subnetCount (family: IPFamily, subnetLen: number, min: bigint, max: bigint): bigint {
  if (max < min) return 0n
  return ((max - min) >> BigInt(familyBits(family) - subnetLen)) + 1n
}
