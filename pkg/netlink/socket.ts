// The plumbing every rtnetlink module shares: the socket, kernel errno → FerryError, address and MAC
// bytes, and raw attribute (TLV) encoding for the nests the netlink package leaves as bytes.
import netlink from 'netlink'
import { FerryError } from '../errors/errors.js'
import { AF_INET, AF_INET6 } from './constants.js'
import { ipBytes as addressBytes, ipFromBytes, parseIP, type IPFamily } from '../net/ip.js'

export type RtSocket = ReturnType<typeof netlink.createRtNetlink>

export function openRtSocket (): RtSocket {
  try { return netlink.createRtNetlink() } catch (e) { throw fail('opening the rtnetlink socket', e) }
}

// Request flags and address families live in constants.ts with the rest of netlink's numbers.
export { AF_BRIDGE, AF_INET, AF_INET6, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE } from './constants.js'

/** The errno name the package puts in its "Request rejected: EEXIST" message, or ''. */
export function errnoName (e: unknown): string {
  if (e instanceof FerryError && typeof e.details.errno === 'string') return e.details.errno
  const m = /Request rejected: (E[A-Z0-9]+)/.exec(e instanceof Error ? e.message : String(e))
  return m?.[1] ?? ''
}

/** FERRY_ERR_NETLINK naming the step and the errno (also in details.errno, for callers that branch on it). */
export function fail (what: string, e: unknown): FerryError {
  const errno = errnoName(e)
  const why = errno !== '' ? errno : (e instanceof Error ? e.message : String(e))
  return new FerryError('FERRY_ERR_NETLINK', `${what}: ${why}`, { errno }, { cause: e })
}

/** A kernel-style refusal raised without asking the kernel (bad input; the fake's answers). */
export function refuse (what: string, errno: string): FerryError {
  return new FerryError('FERRY_ERR_NETLINK', `${what}: ${errno}`, { errno })
}

export const familyNumber = (f: IPFamily): number => f === 'IPv4' ? AF_INET : AF_INET6
export const familyName = (n: number): IPFamily | null => n === AF_INET ? 'IPv4' : n === AF_INET6 ? 'IPv6' : null

/** Network-order bytes of an address in any spelling parseIP accepts (IPv6 with an embedded IPv4 too). */
export function ipBytes (ip: string): { family: number, bytes: Buffer } {
  const p = parseIP(ip)
  const bytes = p === null ? null : addressBytes(p.ip)
  if (p === null || bytes === null) throw refuse(`not an IP address: ${ip}`, 'EINVAL')
  return { family: p.family === 'IPv4' ? AF_INET : AF_INET6, bytes: Buffer.from(bytes) }
}

/** Canonical text of an address the kernel sent (4 or 16 bytes). */
export function ipText (family: number, b: Buffer): string {
  return ipFromBytes(b.subarray(0, family === AF_INET ? 4 : 16))
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i

export function macBytes (mac: string): Buffer {
  if (!MAC.test(mac)) throw refuse(`not a MAC address: ${mac}`, 'EINVAL')
  return Buffer.from(mac.split(':').map(h => parseInt(h, 16)))
}

export function macText (b: Buffer | undefined): string {
  if (b === undefined) return ''
  return [...b].map(x => x.toString(16).padStart(2, '0')).join(':')
}

/** A random locally administered unicast MAC, as the kernel's eth_random_addr makes. */
export function randomMac (): string {
  const b = Buffer.alloc(6)
  for (let i = 0; i < 6; i++) b[i] = Math.floor(Math.random() * 256)
  b[0] = ((b[0] ?? 0) & 0xfe) | 0x02
  return macText(b)
}

/** One netlink attribute: 4-byte header (length, type), payload, zero padding to 4 bytes. */
export function nla (type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length
  const out = Buffer.alloc((len + 3) & ~3)
  out.writeUInt16LE(len, 0)
  out.writeUInt16LE(type, 2)
  payload.copy(out, 4)
  return out
}

export const nlaU8 = (type: number, v: number): Buffer => nla(type, Buffer.from([v]))
export const nlaU32 = (type: number, v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return nla(type, b) }
export const nlaU16be = (type: number, v: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return nla(type, b) }
export const nlaString = (type: number, s: string): Buffer => nla(type, Buffer.from(s + '\0'))

/** Attributes of a nest by type (the NLA_F_NESTED and byte-order bits masked off); the last of a type wins. */
export function parseAttrs (b: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>()
  let off = 0
  while (off + 4 <= b.length) {
    const len = b.readUInt16LE(off)
    if (len < 4 || off + len > b.length) break
    out.set(b.readUInt16LE(off + 2) & 0x3fff, b.subarray(off + 4, off + len))
    off += (len + 3) & ~3
  }
  return out
}
