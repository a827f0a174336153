// Proxy modes by name (flannel's backend registry, STYLE.md §5): config picks one, each builds a Backend
// per IP family from its typed slice of the config, and each knows how to remove all of its state.
import type { Registry } from 'prom-client'
import type { Config } from '../config/config.js'
import type { Logger } from '../log/log.js'
import { parseCIDR, type IPFamily } from '../net/ip.js'
import { IptablesBackend } from './iptables/backend.js'
import { iptablesMetrics } from './iptables/metrics.js'
import type { Variant } from './iptables/restore.js'
import type { ProxyOptionsInput } from './options.js'
import type { Backend } from './types.js'

export type ProxyModeName = 'iptables'

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
  readonly log: Logger
  /** Where the mode registers its own metrics. */
  readonly registry?: Registry
}

interface ProxyMode {
  readonly create: (d: BackendDeps) => Backend
  /** Removes every trace of this mode, in both families and every variant, whatever is configured now. */
  readonly cleanup: (d: Omit<BackendDeps, 'family'>) => Promise<Array<{ what: string, err: unknown }>>
}

const MODES: Record<ProxyModeName, ProxyMode> = {
  iptables: {
    create: ({ family, proxy, iptables, log, registry }) => new IptablesBackend({
      ...proxy,
      family,
      masqueradeBit: iptables.masqueradeBit,
      ...(iptables.variant !== undefined ? { variant: iptables.variant } : {}),
      ...(registry !== undefined ? { metrics: iptablesMetrics(registry) } : {}),
      log,
    }),
    cleanup: async ({ proxy, iptables, log }) => {
      const failures: Array<{ what: string, err: unknown }> = []
      for (const family of ['IPv4', 'IPv6'] as const) {
        for (const variant of ['legacy', 'nft'] as const) {
          const { clusterCIDR: _c, ...neutral } = proxy
          const b = MODES.iptables.create({ family, proxy: { ...neutral, family }, iptables: { ...iptables, variant }, log })
          try { await b.cleanup() } catch (err) { failures.push({ what: `iptables ${variant} ${family}`, err }) }
        }
      }
      return failures
    },
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
    log,
    ...(registry !== undefined ? { registry } : {}),
  }
}

/** Resolves `auto`: IPVS is not built yet, so every kernel gets iptables. */
export async function chooseProxyMode (cfg: Config): Promise<{ mode: ProxyModeName, reason: string }> {
  if (cfg.proxyMode === 'iptables') return { mode: 'iptables', reason: 'configured' }
  return { mode: 'iptables', reason: 'auto: iptables is the only mode built so far' }
}

export function createBackend (mode: ProxyModeName, deps: BackendDeps): Backend {
  return MODES[mode].create(deps)
}

/** Every mode's cleanup, so switching modes or `--cleanup` leaves nothing of any mode behind. */
export async function cleanupAllModes (deps: Omit<BackendDeps, 'family'>): Promise<Array<{ what: string, err: unknown }>> {
  const failures: Array<{ what: string, err: unknown }> = []
  for (const mode of Object.values(MODES)) failures.push(...await mode.cleanup(deps))
  return failures
}
