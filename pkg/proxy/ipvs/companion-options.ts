// Options of IPVS mode's companion rules: the neutral proxy options, the masquerade bit (shared with the
// iptables mode's meaning), and the two address lists the rules depend on: where NodePort virtual
// servers exist and which addresses sit on ferry-ipvs0. Validated once, then frozen.
import { FerryError } from '../../errors/errors.js'
import { parseIP } from '../../net/ip.js'
import { acceptsNodePorts, isLoopback, resolveProxyOptions, type ProxyOptions, type ProxyOptionsInput } from '../options.js'
import type { PortPlan } from '../plan.js'
import { DEFAULT_MASQUERADE_BIT, masqueradeMark } from '../iptables/options.js'

export interface CompanionOptions extends ProxyOptions {
  /** Bit of the packet mark that asks for masquerade; 14 gives 0x4000. */
  readonly masqueradeBit: number
  /**
   * Local addresses with NodePort virtual servers: the list given to desiredVirtualServers (loopback never;
   * IPVS mode has no localhost NodePorts). Undefined: every node IP that accepts NodePorts.
   */
  readonly nodePortIPs?: readonly string[]
  /** Addresses bound on ferry-ipvs0. Undefined: every VIP of the family that is not a node IP. */
  readonly boundAddresses?: readonly string[]
}

export type CompanionOptionsInput = ProxyOptionsInput & Partial<Pick<CompanionOptions, 'masqueradeBit' | 'nodePortIPs' | 'boundAddresses'>>

function addresses (what: string, list: readonly string[], opts: ProxyOptions): string[] {
  // A Set, not includes(): at 10k VIPs a list scan per address cost seconds per sync under emulation.
  const out = new Set<string>()
  for (const text of list) {
    const p = parseIP(text)
    if (p === null) throw new FerryError('FERRY_ERR_CONFIG', `${what} holds an invalid address`, { ip: text })
    if (p.family === opts.family) out.add(p.ip)
  }
  return [...out]
}

/**
 * The neutral options as IPVS mode applies them: no localhost NodePorts (NodePort virtual servers are
 * never on loopback), and a bound VIP refuses the ports no Service defines (IPVS answers for the address).
 */
export function ipvsProxyOptions (input: ProxyOptionsInput): ProxyOptions {
  return resolveProxyOptions({ ...input, localhostNodePorts: false, rejectOtherPorts: 'boundVIPs' })
}

export function resolveCompanionOptions (input: CompanionOptionsInput): CompanionOptions {
  const base = ipvsProxyOptions(input)
  const bit = input.masqueradeBit ?? DEFAULT_MASQUERADE_BIT
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) {
    throw new FerryError('FERRY_ERR_CONFIG', 'masqueradeBit must be an integer in 0..31', { masqueradeBit: bit })
  }
  return Object.freeze({
    ...base,
    masqueradeBit: bit,
    ...(input.nodePortIPs !== undefined ? { nodePortIPs: Object.freeze(addresses('nodePortIPs', input.nodePortIPs, base)) } : {}),
    ...(input.boundAddresses !== undefined ? { boundAddresses: Object.freeze(addresses('boundAddresses', input.boundAddresses, base)) } : {}),
  })
}

/** Node IPs that accept NodePorts, loopback excluded: the default NodePort virtual server addresses. */
export function defaultNodePortIPs (opts: ProxyOptions): string[] {
  return opts.nodeIPs.filter(ip => !isLoopback(ip) && acceptsNodePorts(opts, ip))
}

export function nodePortIPsOf (opts: CompanionOptions): readonly string[] {
  return opts.nodePortIPs ?? defaultNodePortIPs(opts)
}

/** Every ClusterIP, externalIP and LB IP of the family that is not a node IP (those are local already). */
export function boundVIPs (plans: Iterable<PortPlan>, opts: ProxyOptions): string[] {
  const node = new Set(opts.nodeIPs)
  const out = new Set<string>()
  for (const p of plans) {
    if (p.sp.info.family !== opts.family) continue
    for (const e of p.entryPoints) {
      if (e.address === null) continue
      const ip = parseIP(e.address)?.ip
      if (ip !== undefined && !node.has(ip)) out.add(ip)
    }
  }
  return [...out]
}

/** The mark as iptables prints it ("0x4000"). */
export function companionMark (opts: CompanionOptions): string {
  return masqueradeMark(opts.masqueradeBit)
}
