// Proxy modes by name (flannel's backend registry, STYLE.md §5): config picks one, each builds a Backend
// per IP family from its typed slice of the config, and each knows how to remove all of its state.
import type { Registry } from 'prom-client'
import type { Config } from '../config/config.js'
import type { Logger } from '../log/log.js'
import { parseCIDR, type IPFamily } from '../net/ip.js'
import { IptablesBackend } from './iptables/backend.js'
import { iptablesMetrics } from './iptables/metrics.js'
import type { Variant } from './iptables/restore.js'
import type { IpvsProbe } from './ipvs/probe.js'
import { ipvsModePresent } from './ipvs/present.js'
import { ipvsProxyOptions } from './ipvs/companion-options.js'
import { resolveProxyOptions, type ProxyOptions, type ProxyOptionsInput } from './options.js'
import type { Backend } from './types.js'
import { spawnExec } from '../exec/exec.js'
import { Chain } from './iptables/names.js'
import { toolName } from './iptables/restore.js'
import type { IpvsConfig } from './ipvs/mode.js'
import { cleanupNftablesMode, createNftablesBackend, nftablesModePresent } from './nftables/mode.js'
import { nftablesRequired, probeNftables, type NftablesProbe } from './nftables/probe.js'
import { resolveNftablesOptions } from './nftables/options.js'
import { TABLE as NFT_TABLE } from './nftables/names.js'
import { tablesInUse, type TablesInUse } from './tables-in-use.js'

export type ProxyModeName = 'iptables' | 'ipvs' | 'nftables'

/** The iptables mode's slice of the config. */
export interface IptablesConfig {
  readonly masqueradeBit: number
  /** undefined: detect (prefer legacy). */
  readonly variant?: Variant
}

export interface BackendDeps {
  readonly family: IPFamily
  /** Backend-neutral options for this family. */
  readonly proxy: ProxyOptionsInput
  readonly iptables: IptablesConfig
  readonly ipvs: IpvsConfig
  readonly log: Logger
  /** Where the mode registers its own metrics. */
  readonly registry?: Registry
}

interface ProxyMode {
  readonly create: (d: BackendDeps) => Promise<Backend>
  /** The neutral options as this mode applies them (what the packet tracer plans with); default as given. */
  readonly options?: (proxy: ProxyOptionsInput) => ProxyOptions
  /**
   * Whether this node holds state of the mode: cheap, so a start in another mode can skip the cleanup.
   * `tables`: the netfilter tables that exist, when known: a mode whose table is absent has no state.
   */
  readonly present: (d: Omit<BackendDeps, 'family'>, tables?: TablesInUse) => Promise<boolean>
  /** Removes every trace of this mode, in both families and every variant, whatever is configured now. */
  readonly cleanup: (d: Omit<BackendDeps, 'family'>) => Promise<Array<{ what: string, err: unknown }>>
}

// The IPVS mode and its probe load the netlink client (~0.1 s): imported only when IPVS is asked for.
const ipvsMode = async (): Promise<typeof import('./ipvs/mode.js')> => await import('./ipvs/mode.js')
const probeIpvs = async (scheduler: string): Promise<IpvsProbe> => (await import('./ipvs/probe.js')).probeIpvs(scheduler)

const MODES: Record<ProxyModeName, ProxyMode> = {
  iptables: {
    create: async ({ family, proxy, iptables, log, registry }) => new IptablesBackend({
      ...proxy,
      family,
      masqueradeBit: iptables.masqueradeBit,
      ...(iptables.variant !== undefined ? { variant: iptables.variant } : {}),
      ...(registry !== undefined ? { metrics: iptablesMetrics(registry) } : {}),
      log,
    }),
    present: async (_d, tables) => {
      const saves = (['IPv4', 'IPv6'] as const).flatMap(family => (['legacy', 'nft'] as const).map(async variant => {
        if (tables !== undefined && tables[variant === 'legacy' ? 'legacy' : 'nftables'].get(family)?.has('nat') !== true) return false
        const r = await spawnExec([toolName(variant, family, 'save'), '-t', 'nat']).catch(() => undefined)
        return r?.code === 0 && r.stdout.includes(`:${Chain.SERVICES} `)
      }))
      return (await Promise.all(saves)).includes(true)
    },
    cleanup: async (d) => {
      const failures: Array<{ what: string, err: unknown }> = []
      for (const family of ['IPv4', 'IPv6'] as const) {
        for (const variant of ['legacy', 'nft'] as const) {
          const { clusterCIDR: _c, ...neutral } = d.proxy
          const b = await MODES.iptables.create({ ...d, family, proxy: { ...neutral, family }, iptables: { ...d.iptables, variant } })
          try { await b.cleanup() } catch (err) { failures.push({ what: `iptables ${variant} ${family}`, err }) }
        }
      }
      return failures
    },
  },
  ipvs: {
    options: proxy => ipvsProxyOptions(proxy),
    create: async ({ family, proxy, iptables, ipvs, log, registry }) => await (await ipvsMode()).createIpvsBackend({
      family, proxy, ipvs, masqueradeBit: iptables.masqueradeBit, log,
      ...(iptables.variant !== undefined ? { iptablesVariant: iptables.variant } : {}),
      ...(registry !== undefined ? { registry } : {}),
    }),
    present: async () => await ipvsModePresent(),
    cleanup: async ({ proxy, iptables, log }) => await (await ipvsMode()).cleanupIpvsMode({ proxy, masqueradeBit: iptables.masqueradeBit, log }),
  },
  nftables: {
    // No localhost NodePorts; other ports of a ClusterIP rejected.
    options: proxy => resolveNftablesOptions(proxy),
    create: async ({ family, proxy, iptables, log, registry }) => createNftablesBackend({
      family, proxy, masqueradeBit: iptables.masqueradeBit, log,
      ...(registry !== undefined ? { registry } : {}),
    }),
    present: async (_d, tables) => tables !== undefined
      ? [...tables.nftables.values()].some(names => names.has(NFT_TABLE))
      : await nftablesModePresent(),
    cleanup: async () => await cleanupNftablesMode(),
  },
}

/** The neutral options and each mode's slice, from the one config (STYLE.md §7). */
export function backendDeps (cfg: Config, family: IPFamily, nodeIPs: readonly string[], log: Logger, registry?: Registry): BackendDeps {
  const cidr = cfg.clusterCIDRs.find(c => parseCIDR(c)?.family === family)
  return {
    family,
    proxy: {
      family,
      ...(cidr !== undefined ? { clusterCIDR: cidr } : {}),
      masqueradeAll: cfg.masqueradeAll,
      ...(cfg.nodePortAddresses.length > 0 ? { nodePortAddresses: cfg.nodePortAddresses } : {}),
      localhostNodePorts: cfg.localhostNodePorts,
      nodeIPs,
    },
    iptables: { masqueradeBit: cfg.masqueradeBit, ...(cfg.iptablesVariant !== 'auto' ? { variant: cfg.iptablesVariant } : {}) },
    ipvs: { scheduler: cfg.ipvsScheduler, gracefulTerminationMs: cfg.ipvsGracefulTerminationMs, strictARP: cfg.ipvsStrictARP },
    log,
    ...(registry !== undefined ? { registry } : {}),
  }
}

/**
 * Resolves the mode: `auto` picks IPVS when the kernel has it (and the scheduler), else nftables when
 * its probe passes, else iptables; `ipvs` or `nftables` without kernel support is a start-up error,
 * never a silent fallback.
 */
export async function chooseProxyMode (cfg: Pick<Config, 'proxyMode' | 'ipvsScheduler'>,
  probe: (scheduler: string) => Promise<IpvsProbe> = probeIpvs,
  nftProbe: () => Promise<NftablesProbe> = probeNftables): Promise<{ mode: ProxyModeName, reason: string }> {
  if (cfg.proxyMode === 'iptables') return { mode: 'iptables', reason: 'configured' }
  if (cfg.proxyMode === 'nftables') {
    nftablesRequired(await nftProbe())
    return { mode: 'nftables', reason: 'configured' }
  }
  const p = await probe(cfg.ipvsScheduler)
  if (cfg.proxyMode === 'ipvs') {
    const { ipvsRequired } = await import('./ipvs/probe.js')
    ipvsRequired(cfg.ipvsScheduler, p)
    return { mode: 'ipvs', reason: 'configured' }
  }
  if (p.ok) return { mode: 'ipvs', reason: `auto: the kernel has IPVS and its ${cfg.ipvsScheduler} scheduler` }
  const n = await nftProbe()
  if (n.ok) return { mode: 'nftables', reason: `auto: IPVS unavailable (${p.reason}); the nftables probe passed` }
  return { mode: 'iptables', reason: `auto: IPVS unavailable (${p.reason}) and nftables unusable (${n.reason}); using iptables` }
}

/** The neutral options of `mode` for one family, as its rules apply them: the tracer must plan with these. */
export function modeProxyOptions (mode: ProxyModeName, proxy: ProxyOptionsInput): ProxyOptions {
  return MODES[mode].options?.(proxy) ?? resolveProxyOptions(proxy)
}

export async function createBackend (mode: ProxyModeName, deps: BackendDeps): Promise<Backend> {
  return await MODES[mode].create(deps)
}

/** Removes the state of every mode but `active` that this node holds, so a mode switch leaves nothing behind. */
export async function cleanupOtherModes (active: ProxyModeName, deps: Omit<BackendDeps, 'family'>): Promise<Array<{ mode: ProxyModeName, what: string, err: unknown }>> {
  const failures: Array<{ mode: ProxyModeName, what: string, err: unknown }> = []
  const others = (Object.entries(MODES) as Array<[ProxyModeName, ProxyMode]>).filter(([name]) => name !== active)
  // The checks at once (some wait on processes); the cleanups one by one.
  const tables = await tablesInUse()
  const present = await Promise.all(others.map(async ([, mode]) => await mode.present(deps, tables)))
  for (const [i, [name, mode]] of others.entries()) {
    if (present[i] !== true) continue
    deps.log.info('removing the state of the previous proxy mode', { mode: name })
    for (const f of await mode.cleanup(deps)) failures.push({ mode: name, ...f })
  }
  return failures
}

/** Every mode's cleanup, so switching modes or `--cleanup` leaves nothing of any mode behind. */
export async function cleanupAllModes (deps: Omit<BackendDeps, 'family'>): Promise<Array<{ what: string, err: unknown }>> {
  const failures: Array<{ what: string, err: unknown }> = []
  for (const mode of Object.values(MODES)) failures.push(...await mode.cleanup(deps))
  return failures
}
