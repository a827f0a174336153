// The check that no upstream is ferry itself: a forwarding loop (DNS.md §7.3; systemd-resolved's
// 127.0.0.53 is the classic). The upstreams themselves, from flags or resolv.conf, are parsed in
// config/dns-addresses.ts.
import { networkInterfaces } from 'node:os'
import type { HostPort } from '../../config/dns-addresses.js'
import { isLoopback } from '../../net/ip.js'

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
