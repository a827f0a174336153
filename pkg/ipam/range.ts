// Range arithmetic over both families as bigint offsets: parse a configured range once, check it like
// host-local does, and convert addresses to and from numbers for the allocator.
import { FerryError } from '../errors/errors.js'
import { parseCIDR, parseIP, type IPFamily } from '../net/ip.js'
import type { IpamRange } from './types.js'

export interface ResolvedRange {
  readonly index: number
  readonly family: IPFamily
  /** Canonical CIDR text of the subnet. */
  readonly subnet: string
  readonly prefix: number
  /** First and last address of the subnet (network and broadcast for IPv4). */
  readonly first: bigint
  readonly last: bigint
  /** The allocatable span, inclusive. */
  readonly start: bigint
  readonly end: bigint
  readonly gateway: bigint
  readonly gatewayText: string
  /** Addresses that can be handed out: the span less the gateway when it falls inside. */
  readonly size: bigint
}

/** Canonical text (from parseIP) to a number; the caller has parsed it. */
export function ipToBigint (ip: string, family: IPFamily): bigint {
  if (family === 'IPv4') {
    let n = 0
    for (const part of ip.split('.')) n = n * 256 + Number(part)
    return BigInt(n)
  }
  let v6 = ip
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(v6) // ::ffff:a.b.c.d forms
  if (dotted !== null) {
    const b = dotted.slice(1).map(Number) as [number, number, number, number]
    v6 = v6.slice(0, dotted.index) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`
  }
  const [head = '', tail] = v6.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  let n = 0n
  for (const g of groups) n = (n << 16n) | BigInt(Number.parseInt(g, 16))
  return n
}

export function bigintToIp (n: bigint, family: IPFamily): string {
  if (family === 'IPv4') {
    const v = Number(n)
    return `${Math.floor(v / 16777216) % 256}.${Math.floor(v / 65536) % 256}.${Math.floor(v / 256) % 256}.${v % 256}`
  }
  const groups: string[] = []
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((n >> shift) & 0xffffn).toString(16))
  return compressV6(groups)
}

/** RFC 5952 text: the longest run (≥2) of zero groups becomes "::", the first such run on ties. */
function compressV6 (groups: string[]): string {
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j
  }
  if (best < 0) return groups.join(':')
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`
}

function bad (r: IpamRange, index: number, why: string): FerryError {
  return new FerryError('FERRY_ERR_IPAM_RANGE', `invalid IPAM range ${index} (${r.subnet}): ${why}`, { range: index, subnet: r.subnet })
}

/** Checks one configured range and fills in host-local's defaults. */
export function resolveRange (r: IpamRange, index: number): ResolvedRange {
  const cidr = parseCIDR(r.subnet ?? '')
  if (cidr === null) throw bad(r, index, 'subnet is not a CIDR')
  const family = cidr.family
  const bits = family === 'IPv4' ? 32 : 128
  // A /31 or /32 (/127, /128) leaves nothing once network, gateway (and broadcast) are set aside.
  if (cidr.prefix > bits - 2) throw bad(r, index, `network ${cidr.text} too small to allocate from`)
  const first = ipToBigint(cidr.ip, family)
  const last = first + (1n << BigInt(bits - cidr.prefix)) - 1n
  const address = (text: string | undefined, field: string, fallback: bigint): bigint => {
    if (text === undefined || text === '') return fallback
    const ip = parseIP(text)
    if (ip === null || ip.family !== family) throw bad(r, index, `${field} ${text} is not an ${family} address`)
    const n = ipToBigint(ip.ip, family)
    if (n < first || n > last) throw bad(r, index, `${field} ${text} is outside ${cidr.text}`)
    return n
  }
  const lowest = first + 1n
  const highest = family === 'IPv4' ? last - 1n : last
  const gateway = address(r.gateway, 'gateway', first + 1n)
  const start = address(r.rangeStart, 'rangeStart', lowest)
  const end = address(r.rangeEnd, 'rangeEnd', highest)
  if (start < lowest || (family === 'IPv4' && start > highest)) throw bad(r, index, `rangeStart ${r.rangeStart ?? ''} is the network or broadcast address`)
  if (family === 'IPv4' && end > highest) throw bad(r, index, `rangeEnd ${r.rangeEnd ?? ''} is the broadcast address`)
  if (start > end) throw bad(r, index, `rangeStart ${bigintToIp(start, family)} is after rangeEnd ${bigintToIp(end, family)}`)
  const size = end - start + 1n - (gateway >= start && gateway <= end ? 1n : 0n)
  if (size <= 0n) throw bad(r, index, 'no address left to hand out besides the gateway')
  return { index, family, subnet: cidr.text, prefix: cidr.prefix, first, last, start, end, gateway, gatewayText: bigintToIp(gateway, family), size }
}

/** All ranges of one network: at least one, none overlapping (they share one store namespace). */
export function resolveRanges (ranges: readonly IpamRange[]): ResolvedRange[] {
  if (ranges.length === 0) throw new FerryError('FERRY_ERR_IPAM_RANGE', 'no IPAM range configured')
  const out = ranges.map(resolveRange)
  for (const a of out) {
    for (const b of out) {
      if (a.index < b.index && a.family === b.family && a.first <= b.last && b.first <= a.last) {
        throw new FerryError('FERRY_ERR_IPAM_RANGE', `IPAM ranges ${a.index} (${a.subnet}) and ${b.index} (${b.subnet}) overlap`, { range: b.index, subnet: b.subnet })
      }
    }
  }
  return out
}

/** "10.244.1.0/24 (10.244.1.1-10.244.1.254)": how errors name a range. */
export function rangeLabel (r: ResolvedRange): string {
  return `${r.subnet} (${bigintToIp(r.start, r.family)}-${bigintToIp(r.end, r.family)})`
}

/** The range an address belongs to (by subnet), or undefined. */
export function rangeOf (ranges: readonly ResolvedRange[], ip: string): { range: ResolvedRange, n: bigint } | undefined {
  const family: IPFamily = ip.includes(':') ? 'IPv6' : 'IPv4'
  const n = ipToBigint(ip, family)
  for (const r of ranges) if (r.family === family && n >= r.first && n <= r.last) return { range: r, n }
  return undefined
}
