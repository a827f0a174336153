// The DNS flags' address forms: HOST:PORT with IPv6 in brackets, and the nameserver and search lines of
// resolv.conf(5), the forwarder's default upstreams (as CoreDNS's `forward . /etc/resolv.conf`).
// Also the one check that no upstream is ferry itself, used by the config and by the forwarder.
import { networkInterfaces } from 'node:os'
import { isLoopback, parseIP, type IPFamily } from '../net/ip.js'

export interface HostPort { readonly host: string, readonly port: number }

/**
 * "10.0.0.1:53", "[fd00::1]:53", and with `defaultPort` also "10.0.0.1", "fd00::1", "[fd00::1]". The host
 * must be an IP literal (sockets bind and send without a lookup); it comes back canonical, with an IPv6
 * zone ("fe80::1%eth0") kept. Null when malformed.
 */
export function parseHostPort (text: string, defaultPort?: number): (HostPort & { family: IPFamily }) | null {
  const s = text.trim()
  let host: string
  let port: string | undefined
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s)
  if (bracket !== null) {
    host = bracket[1] ?? ''
    port = bracket[2]
  } else if ((s.match(/:/g)?.length ?? 0) === 1) {
    const i = s.indexOf(':')
    host = s.slice(0, i)
    port = s.slice(i + 1)
    if (!/^\d+$/.test(port)) return null
  } else {
    host = s // IPv4 or an unbracketed IPv6: no port
  }
  if (port === undefined && defaultPort === undefined) return null
  const n = port === undefined ? defaultPort ?? 0 : Number(port)
  if (!Number.isInteger(n) || n < 0 || n > 65535) return null
  const pct = host.indexOf('%')
  const ip = parseIP(pct < 0 ? host : host.slice(0, pct))
  if (ip === null || (pct >= 0 && (ip.family !== 'IPv6' || pct === host.length - 1))) return null
  return { host: pct < 0 ? ip.ip : ip.ip + host.slice(pct), port: n, family: ip.family }
}

/** "HOST:PORT" with IPv6 in brackets, as parseHostPort reads it. */
export function formatHostPort (hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`
}

export interface ResolvConf { readonly nameservers: readonly string[], readonly search: readonly string[] }

/** The nameserver and search lines of resolv.conf(5); later `search`/`domain` lines replace earlier ones. */
export function parseResolvConf (text: string): ResolvConf {
  const nameservers: string[] = []
  let search: string[] = []
  for (const line of text.split('\n')) {
    const words = line.replace(/[#;].*$/, '').trim().split(/\s+/)
    const [key, ...args] = words
    if (key === 'nameserver' && args[0] !== undefined) nameservers.push(args[0])
    else if (key === 'search' || key === 'domain') search = args.filter(a => a !== '').map(a => a.replace(/\.$/, ''))
  }
  return { nameservers, search }
}

/** A DNS name in presentation form (no trailing dot): labels of letters, digits and inner hyphens, 1-63 bytes each, 253 in all. */
export function isDNSName (name: string): boolean {
  if (name.length === 0 || name.length > 253) return false
  return name.split('.').every(l => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(l))
}

function canonicalHost (host: string): string {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)
  return mapped !== null ? mapped[1] as string : h
}

function isUnspecified (host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::'
}

function localAddresses (): string[] {
  const out: string[] = []
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(canonicalHost(a.address))
  return out
}

/**
 * The upstreams that are one of ferry's own listen addresses (DNS.md §7.3: forwarding to ourselves
 * loops each unknown name until it times out; systemd-resolved's 127.0.0.53 is the classic), each with
 * the listen address it hits. A wildcard listener (0.0.0.0, ::) owns its port on loopback and on every
 * local address, so those count too.
 */
export function loopingUpstreams (upstreams: readonly HostPort[], self: readonly HostPort[], local: () => readonly string[] = localAddresses): Array<{ upstream: HostPort, self: HostPort }> {
  let locals: readonly string[] | undefined
  const out: Array<{ upstream: HostPort, self: HostPort }> = []
  for (const u of upstreams) {
    const host = canonicalHost(u.host)
    const hit = self.find(s => {
      if (s.port !== u.port) return false
      const sh = canonicalHost(s.host)
      if (sh === host) return true
      if (!isUnspecified(sh)) return false
      if (isLoopback(host)) return true
      locals ??= local().map(canonicalHost)
      return locals.includes(host)
    })
    if (hit !== undefined) out.push({ upstream: u, self: hit })
  }
  return out
}
