// IPVS as a proxy mode: building the backend for one family (kernel socket, links, companion rules,
// ownership file, sysctls) and removing every trace of the mode (--cleanup, or a switch to another mode).
import { rm } from 'node:fs/promises'
import type { Registry } from 'prom-client'
import type { Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import { openLinks } from '../../netlink/links.js'
import type { ProxyOptionsInput } from '../options.js'
import type { Variant } from '../iptables/restore.js'
import { IpvsBackend } from './backend.js'
import { IpvsCompanion } from './companion-apply.js'
import { vsKey } from './desired.js'
import { openIpvsKernel } from './kernel.js'
import { DEFAULT_OWNERSHIP_PATH, FileOwnershipStore } from './ownership.js'
import { applySysctls, ipvsSysctls } from './sysctl.js'
import { IPVS_DEVICE } from './vips.js'

export interface IpvsConfig {
  readonly scheduler: string
  readonly gracefulTerminationMs: number
  readonly strictARP: boolean
}

export interface IpvsModeDeps {
  readonly family: IPFamily
  readonly proxy: ProxyOptionsInput
  readonly ipvs: IpvsConfig
  readonly masqueradeBit: number
  readonly iptablesVariant?: Variant
  readonly log: Logger
  readonly registry?: Registry
}

/** One file for both families: each reconciler saves its own family's keys into it. */
const ownership = new FileOwnershipStore(DEFAULT_OWNERSHIP_PATH)

export async function createIpvsBackend (d: IpvsModeDeps): Promise<IpvsBackend> {
  await applySysctls(ipvsSysctls({ strictARP: d.ipvs.strictARP, ipv6: d.family === 'IPv6' }), d.log)
  const kernel = await openIpvsKernel()
  return new IpvsBackend({
    family: d.family,
    proxy: d.proxy,
    scheduler: d.ipvs.scheduler,
    gracefulTerminationMs: d.ipvs.gracefulTerminationMs,
    kernel,
    links: openLinks(),
    companion: new IpvsCompanion({
      ...d.proxy, family: d.family, masqueradeBit: d.masqueradeBit, log: d.log,
      ...(d.iptablesVariant !== undefined ? { variant: d.iptablesVariant } : {}),
    }),
    ownership: ownership.forFamily(d.family),
    log: d.log,
    ...(d.registry !== undefined ? { registry: d.registry } : {}),
  })
}

/**
 * Removes ferry's virtual servers (those in the ownership file and those on addresses of ferry-ipvs0;
 * an operator's own stay), the device, the ownership file, and the companion chains and sets of both
 * families. Returns what failed.
 */
export async function cleanupIpvsMode (d: Omit<IpvsModeDeps, 'family' | 'ipvs'>): Promise<Array<{ what: string, err: unknown }>> {
  const failures: Array<{ what: string, err: unknown }> = []
  const links = openLinks()
  try {
    const dev = await links.linkByName(IPVS_DEVICE)
    const bound = new Set(dev === null ? [] : (await links.addresses(dev.index)).map(a => a.ip))
    const owned = await ownership.load().catch(() => new Set<string>())
    if (owned.size > 0 || bound.size > 0) {
      const kernel = await openIpvsKernel().catch(() => undefined) // no IPVS here: no virtual servers either
      if (kernel !== undefined) {
        try {
          const mine = (await kernel.listServices()).filter(v => owned.has(vsKey(v)) || bound.has(v.address))
          const results = await kernel.apply(mine.map(service => ({ op: 'deleteService' as const, service })))
          for (const r of results) if (r.errno !== 0 && r.errno !== 3) failures.push({ what: `deleting virtual server ${vsKey(r.op.service)}`, err: new Error(`errno ${r.errno}`) })
        } finally { kernel.close() }
      }
    }
    if (dev !== null) await links.deleteLink(IPVS_DEVICE)
    await rm(DEFAULT_OWNERSHIP_PATH, { force: true })
  } catch (err) {
    failures.push({ what: 'IPVS virtual servers and ferry-ipvs0', err })
  } finally {
    links.close()
  }
  for (const family of ['IPv4', 'IPv6'] as const) {
    const { clusterCIDR: _c, ...neutral } = d.proxy
    try {
      await new IpvsCompanion({ ...neutral, family, masqueradeBit: d.masqueradeBit, log: d.log }).cleanup()
    } catch (err) { failures.push({ what: `IPVS companion rules ${family}`, err }) }
  }
  return failures
}
