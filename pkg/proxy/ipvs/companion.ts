// IPVS mode's companion state, rendered (pure) from the neutral plans: the ipsets and the small fixed
// iptables ruleset that do what virtual servers cannot (masquerade, hairpin, the eTP=Local short-circuit,
// DROP, source ranges, unused ports of bound VIPs, health-check ports). companion-apply.ts loads it.
//
// IPVS mode has no localhost NodePorts (virtual servers are never made on loopback): plan with
// localhostNodePorts off.
import type { PortPlan } from '../plan.js'
import type { Jump } from '../iptables/restore.js'
import type { CompanionOptions } from './companion-options.js'
import { companionJumps, renderRules, type RuleCounts } from './companion-rules.js'
import { buildCompanionSets, type ShortCircuit } from './companion-sets.js'
import { swapRestore, type IpsetContent } from './ipset.js'

export interface CompanionRender {
  /** Every set of the family with its members. */
  readonly sets: readonly IpsetContent[]
  /** For `ipset restore -exist`: each set created if missing, refilled through a temporary set and a swap. */
  readonly ipsetRestore: string
  /** For `iptables-restore --noflush --counters`: mangle, filter and nat; the companion chains rewritten. */
  readonly iptables: string
  readonly rules: RuleCounts
  readonly shortCircuits: readonly ShortCircuit[]
}

export interface RenderExtras {
  /** Jumps from built-in chains to write (-I ... 1); default every jump, as for an empty table. */
  readonly jumps?: readonly Jump[]
}

export function renderCompanion (plans: Iterable<PortPlan>, opts: CompanionOptions, extras: RenderExtras = {}): CompanionRender {
  const built = buildCompanionSets(plans, opts)
  const rendered = renderRules(built, opts, extras.jumps ?? companionJumps())
  return {
    sets: built.sets,
    ipsetRestore: swapRestore(built.sets),
    iptables: rendered.payload,
    rules: rendered.rules,
    shortCircuits: built.shortCircuits,
  }
}

export { resolveCompanionOptions, defaultNodePortIPs, boundVIPs, type CompanionOptions, type CompanionOptionsInput } from './companion-options.js'
export { companionJumps, IpvsChain, IPVS_CHAIN_PREFIX } from './companion-rules.js'
export { setName, companionSetSpecs, SET_KINDS, type SetKind, type ShortCircuit } from './companion-sets.js'
