// Neighbour (ARP/NDP) entries: the vxlan backend's permanent `<remote>.0 lladdr <VtepMAC>` per remote
// lease, so the kernel never resolves the onlink gateway itself.
import type { rt } from 'netlink'
import type { IPFamily } from '../net/ip.js'
import { AF_INET, AF_INET6, errnoName, fail, familyName, ipBytes, ipText, macBytes, macText, NLM_F_CREATE, NLM_F_REPLACE, type RtSocket } from './socket.js'

export interface NeighbourInfo {
  readonly dev: number
  readonly family: IPFamily
  readonly ip: string
  /** Link-layer address; null while unresolved (incomplete, failed). */
  readonly mac: string | null
  readonly permanent: boolean
}

export interface NeighbourSpec {
  readonly dev: number
  readonly ip: string
  readonly mac: string
  /** NUD_PERMANENT (the default) or NUD_REACHABLE. */
  readonly permanent?: boolean
}

export interface Neighbours {
  /** Adds the entry, or replaces the one for (dev, ip). */
  replaceNeighbour: (spec: NeighbourSpec) => Promise<void>
  /** Deletes the entry for (dev, ip); one already gone is not an error. */
  deleteNeighbour: (spec: { readonly dev: number, readonly ip: string }) => Promise<void>
  /** IPv4 and IPv6 entries of one link, or of all links without one. */
  neighbours: (dev?: number) => Promise<NeighbourInfo[]>
}

export interface NeighbourRequest { readonly data: rt.Neighbor, readonly attrs: rt.NeighborAttrs }

/** RTM_NEWNEIGH body for replaceNeighbour (pure, for the unit tests). */
export function neighbourRequest (spec: NeighbourSpec): NeighbourRequest {
  const { family, bytes } = ipBytes(spec.ip)
  return {
    data: { family, ifindex: spec.dev, state: spec.permanent === false ? { reachable: true } : { permanent: true } },
    attrs: { dst: bytes, lladdr: macBytes(spec.mac) },
  }
}

export function neighbourInfoOf (n: rt.NeighborMessage): NeighbourInfo | null {
  const fam = n.data.family ?? 0
  const family = familyName(fam)
  if (family === null || n.attrs.dst === undefined) return null
  return {
    dev: n.data.ifindex ?? 0,
    family,
    ip: ipText(fam, n.attrs.dst),
    mac: n.attrs.lladdr !== undefined && n.attrs.lladdr.length === 6 ? macText(n.attrs.lladdr) : null,
    permanent: n.data.state?.permanent === true,
  }
}

export function neighbourOps (s: RtSocket): Neighbours {
  return {
    replaceNeighbour: async spec => {
      const { data, attrs } = neighbourRequest(spec)
      try { await s.newNeighbor(data, attrs, { flags: NLM_F_CREATE | NLM_F_REPLACE }) } catch (e) {
        throw fail(`replacing neighbour ${spec.ip} lladdr ${spec.mac} dev ${spec.dev}`, e)
      }
    },
    deleteNeighbour: async ({ dev, ip }) => {
      const { family, bytes } = ipBytes(ip)
      try { await s.delNeighbor({ family, ifindex: dev }, { dst: bytes }) } catch (e) {
        if (errnoName(e) !== 'ENOENT' && errnoName(e) !== 'ENODEV') throw fail(`deleting neighbour ${ip} dev ${dev}`, e)
      }
    },
    neighbours: async dev => {
      const out: NeighbourInfo[] = []
      // One dump per family: an AF_UNSPEC dump would walk every bridge FDB too.
      for (const family of [AF_INET, AF_INET6]) {
        let r
        try { r = await s.getNeighbors({ family }) } catch (e) { throw fail(`listing ${familyName(family) ?? ''} neighbours`, e) }
        for (const m of r) {
          const i = neighbourInfoOf(m)
          if (i !== null && (dev === undefined || i.dev === dev)) out.push(i)
        }
      }
      return out
    },
  }
}

