// The declarations of the layout: the fixed chains, maps and sets every ferry table has, and the shared
// objects (endpoint maps, pick chains, policy chains) named by an ID (names.ts). Declarations are data,
// so the full and the partial renderer emit them the same way and count the same rules.
import { parseCIDR } from '../../net/ip.js'
import type { EndpointSet } from '../plan.js'
import { Chain, MapName, markHex, pickChain, type EntryClass, type FamilyWords } from './names.js'
import type { NftablesOptions } from './options.js'

export interface ChainDecl {
  readonly name: string
  /** The base chain spec (`{ type nat hook prerouting priority -100 ; policy accept ; }`); absent for regular chains. */
  readonly hook?: string
  readonly rules: readonly string[]
}

export interface SetDecl {
  readonly kind: 'map' | 'set'
  readonly name: string
  /** What goes inside the braces of `add map|set`, e.g. `type ipv4_addr ;`. */
  readonly body: string
}

export interface Decls {
  readonly chains: readonly ChainDecl[]
  readonly sets: readonly SetDecl[]
}

const base = (type: 'nat' | 'filter', hook: string, priority: number): string => `{ type ${type} hook ${hook} priority ${priority} ; policy accept ; }`

/** The key expression a VIP or a NodePort is matched with (and its shared map is keyed by). */
export function keyExpr (w: FamilyWords, k: EntryClass): string {
  return k === 'vip' ? `${w.addr} daddr . meta l4proto . th dport` : 'meta l4proto . th dport'
}

/** The `services` rule(s) that dispatch NodePorts: unrestricted, or one per nodePortAddresses CIDR. */
function nodePortRules (w: FamilyWords, opts: NftablesOptions): string[] {
  const vmap = `meta l4proto . th dport vmap @${MapName.SERVICE_NODEPORTS}`
  const any = `fib daddr type local ${w.addr} daddr != ${w.loopback} ${vmap}`
  if (opts.nodePortAddresses === undefined) return [any]
  const rules: string[] = []
  for (const text of opts.nodePortAddresses) {
    const c = parseCIDR(text)
    if (c === null || c.family !== w.family) continue
    if (c.prefix === 0) return [any]
    // Localhost NodePorts are unsupported in this mode: a loopback CIDR adds nothing.
    if (w.family === 'IPv4' ? c.ip.startsWith('127.') : c.ip === '::1') continue
    rules.push(`${w.addr} daddr ${c.text} fib daddr type local ${vmap}`)
  }
  return rules
}

export function fixedObjects (w: FamilyWords, opts: NftablesOptions): Decls {
  const mark = markHex(opts.masqueradeBit)
  const vip = keyExpr(w, 'vip')
  const verdictKey = `${w.type} . inet_proto . inet_service`
  const cluster = `ct state new ${vip} vmap @${MapName.NO_ENDPOINT_CLUSTER}`
  const external = `ct state new ${vip} vmap @${MapName.NO_ENDPOINT_EXTERNAL}`
  const firewall = `ct state new ${vip} @${MapName.FIREWALL_IPS} drop`
  // After DNAT: what still goes to a ClusterIP found no port of it (kube-proxy's nftables mode rejects it too).
  const otherPorts = `ct state new ${w.addr} daddr @${MapName.CLUSTER_IPS} reject`
  const chains: ChainDecl[] = [
    { name: Chain.NAT_PREROUTING, hook: base('nat', 'prerouting', -100), rules: [`jump ${Chain.SERVICES}`] },
    { name: Chain.NAT_OUTPUT, hook: base('nat', 'output', -100), rules: [`jump ${Chain.SERVICES}`] },
    { name: Chain.NAT_POSTROUTING, hook: base('nat', 'postrouting', 100), rules: [`jump ${Chain.MASQUERADING}`] },
    {
      name: Chain.FILTER_INPUT,
      hook: base('filter', 'input', 0),
      rules: [cluster, external, `ct state new fib daddr type local meta l4proto . th dport vmap @${MapName.NO_ENDPOINT_NODEPORTS}`, firewall],
    },
    {
      name: Chain.FILTER_FORWARD,
      hook: base('filter', 'forward', 0),
      rules: [...(opts.conntrackTCPBeLiberal ? [] : ['ct state invalid drop']), cluster, external, firewall, otherPorts],
    },
    // After nat output (-100): DNATed traffic no longer shows its VIP here.
    { name: Chain.FILTER_OUTPUT, hook: base('filter', 'output', 0), rules: [cluster, firewall, otherPorts] },
    { name: Chain.SERVICES, rules: [`${vip} vmap @${MapName.SERVICE_IPS}`, ...nodePortRules(w, opts)] },
    { name: Chain.MARK_FOR_MASQUERADE, rules: [`meta mark set meta mark | ${mark}`] },
    {
      name: Chain.MASQUERADING,
      rules: [
        `ct status dnat ${w.addr} saddr . ${w.addr} daddr @${MapName.HAIRPIN} masquerade`,
        `meta mark & ${mark} == 0 return`,
        `meta mark set meta mark ^ ${mark}`,
        'masquerade fully-random',
      ],
    },
    { name: Chain.REJECT, rules: ['reject'] },
  ]
  const sets: SetDecl[] = [
    { kind: 'map', name: MapName.SERVICE_IPS, body: `type ${verdictKey} : verdict ;` },
    { kind: 'map', name: MapName.SERVICE_NODEPORTS, body: 'type inet_proto . inet_service : verdict ;' },
    { kind: 'map', name: MapName.NO_ENDPOINT_CLUSTER, body: `type ${verdictKey} : verdict ;` },
    { kind: 'map', name: MapName.NO_ENDPOINT_EXTERNAL, body: `type ${verdictKey} : verdict ;` },
    { kind: 'map', name: MapName.NO_ENDPOINT_NODEPORTS, body: 'type inet_proto . inet_service : verdict ;' },
    { kind: 'set', name: MapName.FIREWALL_IPS, body: `type ${verdictKey} ;` },
    { kind: 'set', name: MapName.HAIRPIN, body: `type ${w.type} . ${w.type} ;` },
    { kind: 'set', name: MapName.CLUSTER_IPS, body: `type ${w.type} ;` },
  ]
  return { chains, sets }
}

/** The ClusterIP masquerade rule every ClusterIP policy chain starts with, or null (no detector). */
export function clusterMasqRule (w: FamilyWords, opts: NftablesOptions): string | null {
  if (opts.masqueradeAll) return `jump ${Chain.MARK_FOR_MASQUERADE}`
  if (opts.clusterCIDR !== undefined) return `${w.addr} saddr != ${opts.clusterCIDR} jump ${Chain.MARK_FOR_MASQUERADE}`
  return null
}

/**
 * The rules of an eTP=Local external policy chain: pods (detector) and the node itself short-circuit to
 * the cluster target (the node's traffic masqueraded), the rest goes to the local target; a missing
 * target is null (no DNAT: the filter maps refuse it).
 */
export function externalLocalRules (w: FamilyWords, opts: NftablesOptions, clusterTarget: string | null, localTarget: string | null): string[] {
  const rules: string[] = []
  if (clusterTarget !== null) {
    if (opts.clusterCIDR !== undefined) rules.push(`${w.addr} saddr ${opts.clusterCIDR} goto ${clusterTarget}`)
    rules.push(`fib saddr type local jump ${Chain.MARK_FOR_MASQUERADE}`, `fib saddr type local goto ${clusterTarget}`)
  }
  if (localTarget !== null) rules.push(`goto ${localTarget}`)
  return rules
}

const SETS: readonly EndpointSet[] = ['cluster', 'local']
function endpointSet (s: string | undefined): EndpointSet {
  const set = SETS.find(x => x === s)
  if (set === undefined) throw new Error(`bad endpoint set in shared object ID: ${String(s)}`)
  return set
}
function entryClass (k: string | undefined): EntryClass {
  if (k !== 'vip' && k !== 'np') throw new Error(`bad entry class in shared object ID: ${String(k)}`)
  return k
}

/** The declaration of a shared object from its ID (names.ts): "vip-cluster-5", "cip-local-2", "ext-np-3", "xl-vip-3-0". */
export function sharedObjects (id: string, w: FamilyWords, opts: NftablesOptions): Decls {
  const parts = id.split('-')
  const head = parts[0]
  if (head === 'vip' || head === 'np') {
    const k = entryClass(head)
    const n = Number(parts[2])
    const key = keyExpr(w, k)
    return {
      sets: [{ kind: 'map', name: id, body: `typeof ${key} . numgen random mod ${n} : ${w.addr} daddr . th dport ;` }],
      chains: [{ name: pickChain(id), rules: [`meta l4proto { tcp, udp, sctp } dnat ${w.addr} to ${key} . numgen random mod ${n} map @${id}`] }],
    }
  }
  if (head === 'cip') {
    const s = endpointSet(parts[1])
    const masq = clusterMasqRule(w, opts)
    return { sets: [], chains: [{ name: id, rules: [...(masq !== null ? [masq] : []), `goto ${pickChain(`vip-${s}-${Number(parts[2])}`)}`] }] }
  }
  if (head === 'ext') {
    const k = entryClass(parts[1])
    return { sets: [], chains: [{ name: id, rules: [`jump ${Chain.MARK_FOR_MASQUERADE}`, `goto ${pickChain(`${k}-cluster-${Number(parts[2])}`)}`] }] }
  }
  if (head === 'xl') {
    const k = entryClass(parts[1])
    const n = Number(parts[2])
    const m = Number(parts[3])
    return {
      sets: [],
      chains: [{
        name: id,
        rules: externalLocalRules(w, opts, n > 0 ? pickChain(`${k}-cluster-${n}`) : null, m > 0 ? pickChain(`${k}-local-${m}`) : null),
      }],
    }
  }
  throw new Error(`unknown shared object ID: ${id}`)
}
