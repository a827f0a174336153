// The fixed iptables ruleset of IPVS mode: what IPVS cannot decide by itself, asked of the ipsets
// (companion-sets.ts). Rules do not grow with Services, except one DNAT per eTP=Local short-circuit entry.
//
// Where each rule sits follows the hooks (ip_vs_core.c): IPVS schedules incoming traffic at LOCAL_IN
// (priority 99), after filter INPUT, and the node's own traffic at LOCAL_OUT (-98), after mangle and nat
// OUTPUT but before filter OUTPUT. So:
//  - DROPs sit in mangle (PREROUTING and OUTPUT): the only table before IPVS on both paths, and before
//    the nat short-circuit, so source ranges are judged on the address the client chose;
//  - REJECTs sit in filter INPUT (REJECT is filter-only); the node's own traffic to a local address with
//    no virtual server reaches INPUT through loopback;
//  - marks and the short-circuit DNAT sit in nat PREROUTING/OUTPUT, MASQUERADE in nat POSTROUTING.
// A virtual server without destinations refuses new flows itself (ICMP port unreachable).
import type { IPFamily } from '../../net/ip.js'
import { jumpLine, type Jump, type Table } from '../iptables/restore.js'
import { companionMark, type CompanionOptions } from './companion-options.js'
import { setName, type CompanionSets, type SetKind } from './companion-sets.js'

export const IPVS_CHAIN_PREFIX = 'FERRY-IPVS-'

export const IpvsChain = {
  /** mangle: DROPs before IPVS and before the short-circuit DNAT. */
  FIREWALL: 'FERRY-IPVS-FIREWALL',
  /** filter INPUT: health-check ACCEPT, REJECTs IPVS cannot answer, unused ports of bound VIPs. */
  FILTER: 'FERRY-IPVS-FILTER',
  /** filter FORWARD: service traffic through a host whose FORWARD policy drops. */
  FORWARD: 'FERRY-IPVS-FORWARD',
  /** nat PREROUTING/OUTPUT: masquerade marks and the short-circuit. */
  SERVICES: 'FERRY-IPVS-SERVICES',
  /** nat: one DNAT per eTP=Local entry point, to its ClusterIP virtual server. */
  SHORTCUT: 'FERRY-IPVS-SHORTCUT',
  MARK_MASQ: 'FERRY-IPVS-MARK-MASQ',
  POSTROUTING: 'FERRY-IPVS-POSTROUTING',
} as const

export const IPVS_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  mangle: [IpvsChain.FIREWALL],
  filter: [IpvsChain.FILTER, IpvsChain.FORWARD],
  nat: [IpvsChain.SERVICES, IpvsChain.SHORTCUT, IpvsChain.MARK_MASQ, IpvsChain.POSTROUTING],
}

export const TABLE_ORDER: readonly Table[] = ['mangle', 'filter', 'nat']

const NEW = ['-m', 'conntrack', '--ctstate', 'NEW']
const comment = (text: string): string[] => ['-m', 'comment', '--comment', text]

/** The jumps from built-in chains into the companion chains (the same for both families). */
export function companionJumps (): Jump[] {
  const j = (table: Table, from: string[], args: string[]): Jump[] => from.map(f => ({ table, from: f, args }))
  return [
    ...j('mangle', ['PREROUTING', 'OUTPUT'], [...NEW, ...comment('ferry ipvs firewall'), '-j', IpvsChain.FIREWALL]),
    ...j('filter', ['INPUT'], [...comment('ferry ipvs filter'), '-j', IpvsChain.FILTER]),
    ...j('filter', ['FORWARD'], [...comment('ferry ipvs forwarding rules'), '-j', IpvsChain.FORWARD]),
    ...j('nat', ['PREROUTING', 'OUTPUT'], [...comment('ferry ipvs services'), '-j', IpvsChain.SERVICES]),
    ...j('nat', ['POSTROUTING'], [...comment('ferry ipvs postrouting rules'), '-j', IpvsChain.POSTROUTING]),
  ]
}

export interface RuleCounts { readonly mangle: number, readonly filter: number, readonly nat: number }

export interface RenderedRules {
  /** For `iptables-restore --noflush --counters`: every companion chain declared (so flushed) and rewritten. */
  readonly payload: string
  readonly rules: RuleCounts
}

function hostPort (ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}

/** Renders the rules over the sets; `jumps` are the jumps to add (those the kernel lacks). */
export function renderRules (sets: CompanionSets, opts: CompanionOptions, jumps: readonly Jump[]): RenderedRules {
  const family: IPFamily = opts.family
  const S = (kind: SetKind): string => setName(family, kind)
  const m = (kind: SetKind, dirs: string, negate = false): string => `-m set ${negate ? '! ' : ''}--match-set ${S(kind)} ${dirs}`
  const mark = companionMark(opts)
  const cidr = opts.clusterCIDR
  const c = (text: string): string => `-m comment --comment "${text}"`
  const tables: Record<Table, string[]> = { mangle: [], filter: [], nat: [] }
  const rule = (table: Table, chain: string, spec: string): void => { tables[table].push(`-A ${chain} ${spec}`) }

  // mangle: refusals by DROP, judged on the destination the client chose.
  rule('mangle', IpvsChain.FIREWALL, `${c('load balancer source outside loadBalancerSourceRanges')} ${m('LB-FW', 'dst,dst')} ${m('LB-SOURCE-CIDR', 'dst,dst,src', true)} ${m('LB-SOURCE-IP', 'dst,dst,src', true)} -j DROP`)
  rule('mangle', IpvsChain.FIREWALL, `${c('usable endpoints exist, none for this node')} ${m('DROP', 'dst,dst')} -j DROP`)
  // Pods (by the detector) and the node itself short-circuit to the cluster set instead.
  rule('mangle', IpvsChain.FIREWALL, `${c('externalTrafficPolicy=Local without local endpoints, off-node client')} ${m('DROP-OFF-NODE', 'dst,dst')}${cidr !== undefined ? ` ! -s ${cidr}` : ''} -m addrtype ! --src-type LOCAL -j DROP`)

  // filter INPUT (before IPVS's LOCAL_IN hook).
  rule('filter', IpvsChain.FILTER, `${c('health check node ports')} -p tcp ${m('HC-NODE-PORT', 'dst')} -j ACCEPT`)
  rule('filter', IpvsChain.FILTER, `${c('node ports without endpoints on addresses without a virtual server')} ${m('REJECT', 'dst,dst')} -j REJECT`)
  rule('filter', IpvsChain.FILTER, `${c('ports of bound service addresses that no service uses')} ${NEW.join(' ')} ${m('BOUND-IPS', 'dst')} ${m('CLUSTER-IP', 'dst,dst', true)} ${m('EXTERNAL-IP', 'dst,dst', true)} -j REJECT`)
  rule('filter', IpvsChain.FORWARD, `${c('ferry forwarding rules')} -m mark --mark ${mark}/${mark} -j ACCEPT`)
  rule('filter', IpvsChain.FORWARD, `${c('ferry forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`)

  // nat: the short-circuit first (its DNAT ends the chain), then the masquerade marks.
  if (cidr !== undefined) {
    rule('nat', IpvsChain.SERVICES, `${c('pods reach externalTrafficPolicy=Local services through the cluster set')} ${m('SHORT-CIRCUIT', 'dst,dst')} -s ${cidr} -j ${IpvsChain.SHORTCUT}`)
  }
  rule('nat', IpvsChain.SERVICES, `${c('masquerade node traffic to externalTrafficPolicy=Local services')} ${m('SHORT-CIRCUIT', 'dst,dst')} -m addrtype --src-type LOCAL -j ${IpvsChain.MARK_MASQ}`)
  rule('nat', IpvsChain.SERVICES, `${c('node traffic to externalTrafficPolicy=Local services uses the cluster set')} ${m('SHORT-CIRCUIT', 'dst,dst')} -m addrtype --src-type LOCAL -j ${IpvsChain.SHORTCUT}`)
  if (opts.masqueradeAll) {
    rule('nat', IpvsChain.SERVICES, `${c('cluster IP traffic (masqueradeAll)')} ${m('CLUSTER-IP', 'dst,dst')} -j ${IpvsChain.MARK_MASQ}`)
  } else if (cidr !== undefined) {
    rule('nat', IpvsChain.SERVICES, `${c('cluster IP traffic from outside the pod network')} ${m('CLUSTER-IP', 'dst,dst')} ! -s ${cidr} -j ${IpvsChain.MARK_MASQ}`)
  }
  rule('nat', IpvsChain.SERVICES, `${c('externalTrafficPolicy=Cluster entry points')} ${m('EXTERNAL-MASQ', 'dst,dst')} -j ${IpvsChain.MARK_MASQ}`)
  for (const s of sets.shortCircuits) {
    const proto = s.protocol.toLowerCase()
    const to = `-j DNAT --to-destination ${hostPort(s.clusterIP, s.clusterPort)}`
    if (s.address !== null) rule('nat', IpvsChain.SHORTCUT, `${c(`${s.spn} external address`)} -d ${s.address} -p ${proto} -m ${proto} --dport ${s.port} ${to}`)
    else rule('nat', IpvsChain.SHORTCUT, `${c(`${s.spn} node port`)} -p ${proto} -m ${proto} --dport ${s.port} ${to}`)
  }
  rule('nat', IpvsChain.MARK_MASQ, `-j MARK --or-mark ${mark}`)
  rule('nat', IpvsChain.POSTROUTING, `${c('hairpin: an endpoint reaching itself through a service')} ${m('LOOP-BACK', 'dst,dst,src')} -j MASQUERADE`)
  rule('nat', IpvsChain.POSTROUTING, `-m mark ! --mark ${mark}/${mark} -j RETURN`)
  // Clear the bit so a packet that re-crosses the stack (after encapsulation) is not masqueraded twice.
  rule('nat', IpvsChain.POSTROUTING, `-j MARK --xor-mark ${mark}`)
  rule('nat', IpvsChain.POSTROUTING, `${c('ferry service traffic requiring SNAT')} -j MASQUERADE --random-fully`)

  const out: string[] = []
  for (const table of TABLE_ORDER) {
    out.push(`*${table}`)
    for (const chain of IPVS_CHAINS[table]) out.push(`:${chain} - [0:0]`)
    out.push(...tables[table])
    for (const j of jumps) if (j.table === table) out.push(jumpLine(j))
    out.push('COMMIT')
  }
  return {
    payload: out.join('\n') + '\n',
    rules: { mangle: tables.mangle.length, filter: tables.filter.length, nat: tables.nat.length },
  }
}

/**
 * A restore payload that removes the companion from each table in one transaction: `deletes` (the `-D`
 * lines of jumps into the chains) first, then the chains are declared (flushed) and deleted.
 */
export function removeChainsPayload (present: ReadonlyMap<Table, readonly string[]>, deletes: ReadonlyMap<Table, readonly string[]> = new Map()): string {
  const out: string[] = []
  for (const table of TABLE_ORDER) {
    const chains = present.get(table) ?? []
    const dels = deletes.get(table) ?? []
    if (chains.length === 0 && dels.length === 0) continue
    out.push(`*${table}`, ...dels, ...chains.map(ch => `:${ch} - [0:0]`), ...chains.map(ch => `-X ${ch}`), 'COMMIT')
  }
  return out.length === 0 ? '' : out.join('\n') + '\n'
}
