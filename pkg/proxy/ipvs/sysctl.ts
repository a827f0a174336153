// The kernel settings IPVS mode needs (IPVS.md §1.1), each set once at start-up and logged with what it
// was before. conn_reuse_mode=0 only on kernels 4.1 to 5.8, where 1 stalls reused client ports for a
// second (kubernetes#70747) and 5.9 fixed it (#93297).
import { readFile, writeFile } from 'node:fs/promises'
import { kernelVersion } from '../../os/kernel.js'
import type { Logger } from '../../log/log.js'

export interface SysctlFS {
  read: (path: string) => Promise<string>
  write: (path: string, value: string) => Promise<void>
}

export const procFS: SysctlFS = {
  read: async path => (await readFile(path, 'utf8')).trim(),
  write: async (path, value) => { await writeFile(path, value) },
}

export interface Sysctl { readonly key: string, readonly value: string, readonly why: string }

export function ipvsSysctls (o: { strictARP: boolean, ipv6: boolean, kernel?: string }): Sysctl[] {
  const [major, minor] = kernelVersion(o.kernel)
  const out: Sysctl[] = [
    { key: 'net/ipv4/vs/conntrack', value: '1', why: 'IPVS flows get conntrack entries, so masquerade rules apply to them' },
    { key: 'net/ipv4/vs/expire_nodest_conn', value: '1', why: 'connections to a deleted destination end at once instead of hanging' },
    { key: 'net/ipv4/vs/expire_quiescent_template', value: '1', why: 'persistence stops pinning clients to draining (weight 0) destinations' },
    { key: 'net/ipv4/ip_forward', value: '1', why: 'replies from endpoints on other nodes are forwarded' },
  ]
  if (o.ipv6) out.push({ key: 'net/ipv6/conf/all/forwarding', value: '1', why: 'the same for IPv6' })
  const before59 = major < 5 || (major === 5 && minor < 9)
  const after41 = major > 4 || (major === 4 && minor >= 1)
  if (before59 && after41) out.push({ key: 'net/ipv4/vs/conn_reuse_mode', value: '0', why: 'kernels before 5.9 stall reused client ports for a second with 1' })
  if (o.strictARP) {
    out.push({ key: 'net/ipv4/conf/all/arp_ignore', value: '1', why: '--ipvs-strict-arp: answer ARP only for addresses on the asking interface' })
    out.push({ key: 'net/ipv4/conf/all/arp_announce', value: '2', why: '--ipvs-strict-arp: never announce VIPs of the dummy device' })
  }
  return out
}

/** Sets each value that differs; returns the keys it could not set (logged once here). */
export async function applySysctls (list: readonly Sysctl[], log: Logger, fs: SysctlFS = procFS): Promise<string[]> {
  const failed: string[] = []
  for (const s of list) {
    const path = `/proc/sys/${s.key}`
    try {
      const before = await fs.read(path)
      if (before === s.value) continue
      await fs.write(path, s.value)
      log.info('sysctl set', { key: s.key.replaceAll('/', '.'), from: before, to: s.value, why: s.why })
    } catch (e) {
      failed.push(s.key)
      log.warn('sysctl not set', { key: s.key.replaceAll('/', '.'), want: s.value, why: s.why, err: e })
    }
  }
  return failed
}
