// A packet-flow tracer for IPVS mode: a new connection walks the companion rules (with the sets' contents)
// and an IPVS stage built from the desired virtual servers, hook by hook as the kernel orders them:
//
//   off-node: mangle PREROUTING → nat PREROUTING → local destination? filter INPUT → IPVS (LOCAL_IN)
//             : filter FORWARD → nat POSTROUTING
//   the node: mangle OUTPUT → nat OUTPUT → IPVS (LOCAL_OUT) → filter OUTPUT
//             → (not taken by IPVS and local: filter INPUT through loopback) → nat POSTROUTING
//
// IPVS takes a packet whose destination is a local address (VIPs on ferry-ipvs0 count) and matches a
// virtual server: one branch per destination, or REJECT (ICMP port unreachable) when it has none. The
// answer has tracePlan's shape, so tests hold IPVS mode to the neutral plan (../trace.ts).
import { parseIP, type IPFamily } from '../../net/ip.js'
import type { Packet, TraceEnv } from '../trace.js'
import { loadRestore, runHook, summarize, type IptablesTrace, type RuleTables, type SetMatcher, type TraceState } from '../iptables/trace.js'
import type { CompanionRender } from './companion.js'
import type { DesiredVirtualServer } from './desired.js'
import { FakeIpset } from './fake-ipset.js'

export interface IpvsTraceInput {
  readonly family: IPFamily
  readonly tables: RuleTables
  readonly sets: SetMatcher
  /** Virtual servers keyed by vsKey (desiredVirtualServers). */
  readonly virtualServers: ReadonlyMap<string, DesiredVirtualServer>
}

export type IpvsTrace = IptablesTrace

/** The kernel state a render describes: its rules loaded into empty tables, its sets into a fresh ipset. */
export function loadCompanion (family: IPFamily, render: Pick<CompanionRender, 'iptables' | 'ipsetRestore'>,
  virtualServers: ReadonlyMap<string, DesiredVirtualServer>): IpvsTraceInput {
  const sets = new FakeIpset()
  sets.restore(render.ipsetRestore, true)
  return { family, tables: loadRestore([render.iptables]), sets, virtualServers }
}

const canon = (ip: string): string => parseIP(ip)?.ip ?? ip
const key = (protocol: string, ip: string, port: number): string => `${protocol}/${canon(ip)}:${port}`

const indexCache = new WeakMap<ReadonlyMap<string, DesiredVirtualServer>, Map<string, DesiredVirtualServer>>()
function index (vs: ReadonlyMap<string, DesiredVirtualServer>): Map<string, DesiredVirtualServer> {
  let m = indexCache.get(vs)
  if (m === undefined) {
    m = new Map()
    for (const v of vs.values()) m.set(key(v.service.protocol, v.service.address, v.service.port), v)
    indexCache.set(vs, m)
  }
  return m
}

export function traceIpvs (input: IpvsTraceInput, env: TraceEnv, pkt: Packet): IpvsTrace {
  const { tables, family, sets } = input
  const local = new Set(env.localAddresses.map(canon))
  const isLocal = (ip: string): boolean => local.has(canon(ip))
  const hook = (table: string, chain: string, st: TraceState): TraceState[] => runHook(tables, table, chain, pkt, family, env, st, sets)
  const vss = index(input.virtualServers)
  const finals: TraceState[] = []

  /** The IPVS stage: null when no virtual server takes the packet. */
  const ipvs = (st: TraceState): TraceState[] | null => {
    const dst = st.dnat?.ip ?? pkt.dst
    const port = st.dnat?.port ?? pkt.port
    if (!isLocal(dst)) return null
    const vs = vss.get(key(pkt.protocol, dst, port))
    if (vs === undefined) return null
    const at = `IPVS ${vs.entry} ${vs.servicePort}`
    if (vs.destinations.length === 0) return [{ ...st, verdict: 'REJECT', path: [...st.path, `${at}: no destinations, ICMP port unreachable`] }]
    return vs.destinations.map(d => ({ ...st, verdict: 'ACCEPT', dnat: { ip: d.address, port: d.port }, path: [...st.path, `${at} -> ${d.address}:${d.port}`] }))
  }
  const post = (st: TraceState): void => {
    for (const p of hook('nat', 'POSTROUTING', { ...st, masquerade: false })) finals.push({ ...st, verdict: 'ACCEPT', masquerade: p.masquerade })
  }
  /** Runs a filter chain; what it accepts goes on to `next`, the rest is final. */
  const filter = (chain: string, st: TraceState, next: (s: TraceState) => void): void => {
    for (const f of hook('filter', chain, st)) {
      if (f.verdict === 'ACCEPT') next(f)
      else finals.push(f)
    }
  }

  const fromNode = isLocal(pkt.src)
  const start: TraceState = { mark: 0, masquerade: false, path: [] }
  for (const m of hook('mangle', fromNode ? 'OUTPUT' : 'PREROUTING', start)) {
    if (m.verdict !== 'ACCEPT') { finals.push(m); continue }
    for (const n of hook('nat', fromNode ? 'OUTPUT' : 'PREROUTING', m)) {
      const dst = n.dnat?.ip ?? pkt.dst
      if (fromNode) {
        const taken = ipvs(n)
        if (taken !== null) {
          for (const b of taken) {
            if (b.verdict !== 'ACCEPT') finals.push(b)
            else filter('OUTPUT', b, post)
          }
        } else {
          filter('OUTPUT', n, s => { if (isLocal(dst)) filter('INPUT', s, x => { finals.push(x) }); else post(s) })
        }
      } else if (isLocal(dst)) {
        filter('INPUT', n, s => {
          const taken = ipvs(s)
          if (taken === null) { finals.push(s); return }
          for (const b of taken) {
            if (b.verdict !== 'ACCEPT') finals.push(b)
            else post(b)
          }
        })
      } else {
        filter('FORWARD', n, post)
      }
    }
  }
  return summarize(finals)
}
