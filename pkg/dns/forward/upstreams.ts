// Where queries go: the default upstreams from /etc/resolv.conf, and the check that none of them is
// ferry itself (a forwarding loop, DNS.md §7.3: systemd-resolved's 127.0.0.53 is the classic).
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'

export interface HostPort {
  readonly host: string
  readonly port: number
}

/** The `nameserver` lines of a resolv.conf, on port 53, in file order (resolv.conf allows at most 3, CoreDNS reads all). */
export function upstreamsFromResolvConf (text: string): HostPort[] {
  const out: HostPort[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim()
    const [key, value] = line.split(/\s+/)
    if (key !== 'nameserver' || value === undefined) continue
    const host = value.replace(/^\[|\]$/g, '')
    if (isIP(host.replace(/%.*$/, '')) === 0) continue
    out.push({ host, port: 53 })
  }
  return out
}

/** "ip:port", with IPv6 in brackets, as CoreDNS's `to` label. */
export function hostPortLabel (a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

function canonicalHost (host: string): string {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)
  return mapped !== null ? mapped[1] as string : h
}

function isUnspecified (host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::'
}

function isLoopback (host: string): boolean {
  return host === '::1' || /^127\./.test(host)
}

function localAddresses (): string[] {
  const out: string[] = []
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(canonicalHost(a.address))
  return out
}

/**
 * The upstreams that are one of ferry's own listen addresses. A wildcard listener (0.0.0.0, ::) owns
 * its port on loopback and on every local address, so those count too.
 */
export function loopingUpstreams (upstreams: readonly HostPort[], self: readonly HostPort[], local: () => readonly string[] = localAddresses): HostPort[] {
  let locals: readonly string[] | undefined
  return upstreams.filter(u => {
    const host = canonicalHost(u.host)
    return self.some(s => {
      if (s.port !== u.port) return false
      const sh = canonicalHost(s.host)
      if (sh === host) return true
      if (!isUnspecified(sh)) return false
      if (isLoopback(host)) return true
      locals ??= local().map(canonicalHost)
      return locals.includes(host)
    })
  })
}
