// A thin typed layer over the netlink package's rtnetlink: links and addresses, as the IPVS mode needs
// them (its dummy device and the VIPs bound to it) and the overlay will. fake.ts keeps the same
// semantics in memory for unit tests.
import netlink from 'netlink'
import { FerryError } from '../errors/errors.js'
import { parseIP, type IPFamily } from '../net/ip.js'

export interface LinkInfo {
  readonly index: number
  readonly name: string
  readonly up: boolean
}

export interface AddressInfo {
  readonly index: number
  readonly family: IPFamily
  readonly ip: string
  readonly prefix: number
}

export interface Links {
  linkByName: (name: string) => Promise<LinkInfo | null>
  /** Creates a dummy device (left down: addresses on it are still local, and it never answers ARP). */
  createDummy: (name: string) => Promise<LinkInfo>
  deleteLink: (name: string) => Promise<void>
  /** Addresses of one link, or of every link without an index. */
  addresses: (index?: number) => Promise<AddressInfo[]>
  /** Adds ip/prefix; an address already there is not an error. */
  addAddress: (index: number, ip: string, prefix: number) => Promise<void>
  /** Removes ip/prefix; an address already gone is not an error. */
  deleteAddress: (index: number, ip: string, prefix: number) => Promise<void>
  close: () => void
}

const NLM_F_CREATE = 0x400
const NLM_F_EXCL = 0x200
const AF_INET = 2
const AF_INET6 = 10

function errnoName (e: unknown): string {
  const m = /Request rejected: (E[A-Z]+)/.exec(e instanceof Error ? e.message : String(e))
  return m?.[1] ?? ''
}

function fail (what: string, e: unknown): FerryError {
  return new FerryError('FERRY_ERR_NETLINK', `${what}: ${errnoName(e) !== '' ? errnoName(e) : (e instanceof Error ? e.message : String(e))}`, { errno: errnoName(e) })
}

/** IFLA_LINKINFO holding IFLA_INFO_KIND = kind: a nested attribute the package leaves to us. */
function linkInfoKind (kind: string): Buffer {
  const payload = Buffer.from(kind + '\0')
  const len = 4 + payload.length
  const out = Buffer.alloc((len + 3) & ~3)
  out.writeUInt16LE(len, 0)
  out.writeUInt16LE(1, 2)
  payload.copy(out, 4)
  return out
}

function ipBytes (ip: string): { family: number, bytes: Buffer } {
  const p = parseIP(ip)
  if (p === null) throw new FerryError('FERRY_ERR_NETLINK', `not an IP address: ${ip}`)
  if (p.family === 'IPv4') return { family: AF_INET, bytes: Buffer.from(p.ip.split('.').map(Number)) }
  const groups = p.ip.split('::')
  const head = (groups[0] ?? '') === '' ? [] : (groups[0] ?? '').split(':')
  const tail = groups.length > 1 && (groups[1] ?? '') !== '' ? (groups[1] ?? '').split(':') : []
  const all = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail]
  const bytes = Buffer.alloc(16)
  all.forEach((g, i) => { bytes.writeUInt16BE(parseInt(g, 16), i * 2) })
  return { family: AF_INET6, bytes }
}

function ipText (family: number, b: Buffer): string {
  if (family === AF_INET) return [...b.subarray(0, 4)].join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16))
  return parseIP(groups.join(':'))?.ip ?? groups.join(':')
}

export function openLinks (): Links {
  const s = netlink.createRtNetlink()
  const link = (l: { data: { index?: number, flags?: { up?: true } }, attrs: { ifname?: string } }): LinkInfo =>
    ({ index: l.data.index ?? 0, name: l.attrs.ifname ?? '', up: l.data.flags?.up === true })
  const api: Links = {
    linkByName: async name => {
      try {
        const r = await s.getLink({}, { ifname: name })
        return r[0] !== undefined ? link(r[0]) : null
      } catch (e) {
        if (errnoName(e) === 'ENODEV') return null
        throw fail(`reading link ${name}`, e)
      }
    },
    createDummy: async name => {
      try { await s.newLink({}, { ifname: name, linkinfo: linkInfoKind('dummy') }, { flags: NLM_F_CREATE | NLM_F_EXCL }) } catch (e) {
        if (errnoName(e) !== 'EEXIST') throw fail(`creating dummy device ${name} (is the dummy module available?)`, e)
      }
      const l = await api.linkByName(name)
      if (l === null) throw new FerryError('FERRY_ERR_NETLINK', `dummy device ${name} vanished after creation`)
      return l
    },
    deleteLink: async name => {
      const l = await api.linkByName(name)
      if (l === null) return
      try { await s.delLink({ index: l.index }) } catch (e) {
        if (errnoName(e) !== 'ENODEV') throw fail(`deleting link ${name}`, e)
      }
    },
    addresses: async index => {
      let r
      try { r = await s.getAddresses() } catch (e) { throw fail('listing addresses', e) }
      const out: AddressInfo[] = []
      for (const a of r) {
        const fam = a.data.family ?? 0
        if ((fam !== AF_INET && fam !== AF_INET6) || (index !== undefined && a.data.index !== index)) continue
        const raw = a.attrs.local ?? a.attrs.address
        if (raw === undefined) continue
        out.push({ index: a.data.index ?? 0, family: fam === AF_INET ? 'IPv4' : 'IPv6', ip: ipText(fam, raw), prefix: a.data.prefixlen ?? 0 })
      }
      return out
    },
    addAddress: async (index, ip, prefix) => {
      const { family, bytes } = ipBytes(ip)
      // nodad: an address on a down dummy device would otherwise stay tentative on IPv6.
      const attrs = family === AF_INET ? { local: bytes, address: bytes } : { address: bytes, flags: { nodad: true as const } }
      try { await s.newAddress({ family, prefixlen: prefix, index }, attrs, { flags: NLM_F_CREATE | NLM_F_EXCL }) } catch (e) {
        if (errnoName(e) !== 'EEXIST') throw fail(`adding ${ip}/${prefix}`, e)
      }
    },
    deleteAddress: async (index, ip, prefix) => {
      const { family, bytes } = ipBytes(ip)
      const attrs = family === AF_INET ? { local: bytes } : { address: bytes }
      try { await s.delAddress({ family, prefixlen: prefix, index }, attrs) } catch (e) {
        if (errnoName(e) !== 'EADDRNOTAVAIL' && errnoName(e) !== 'ENODEV') throw fail(`removing ${ip}/${prefix}`, e)
      }
    },
    close: () => { s.socket.close() },
  }
  return api
}
