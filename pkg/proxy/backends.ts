// Proxy modes by name: config picks one, each builds a Backend per IP family.
import type { Config } from '../config/config.js'
import type { Logger } from '../log/log.js'
import { parseCIDR, type IPFamily } from '../net/ip.js'
import { IptablesBackend } from './iptables/backend.js'
import type { Backend } from './types.js'

export type ProxyModeName = 'iptables'

export interface BackendDeps {
  readonly family: IPFamily
  readonly cfg: Config
  readonly nodeIPs: readonly string[]
  readonly log: Logger
}

const FACTORIES: Record<ProxyModeName, (d: BackendDeps) => Backend> = {
  iptables: ({ family, cfg, nodeIPs, log }) => new IptablesBackend({
    family,
    ...clusterCIDROf(cfg, family),
    masqueradeAll: cfg.masqueradeAll,
    masqueradeBit: cfg.masqueradeBit,
    ...(cfg.nodePortAddresses.length > 0 ? { nodePortAddresses: cfg.nodePortAddresses } : {}),
    localhostNodePorts: cfg.localhostNodePorts,
    nodeIPs,
    ...(cfg.iptablesVariant !== 'auto' ? { variant: cfg.iptablesVariant } : {}),
    log,
  }),
}

function clusterCIDROf (cfg: Config, family: IPFamily): { clusterCIDR?: string } {
  const cidr = cfg.clusterCIDRs.find(c => parseCIDR(c)?.family === family)
  return cidr !== undefined ? { clusterCIDR: cidr } : {}
}

/** Resolves `auto`: IPVS is not built yet, so every kernel gets iptables. */
export async function chooseProxyMode (cfg: Config): Promise<{ mode: ProxyModeName, reason: string }> {
  if (cfg.proxyMode === 'iptables') return { mode: 'iptables', reason: 'configured' }
  return { mode: 'iptables', reason: 'auto: iptables is the only mode built so far' }
}

export async function createBackend (mode: ProxyModeName, deps: BackendDeps): Promise<Backend> {
  return FACTORIES[mode](deps)
}
