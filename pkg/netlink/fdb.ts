// Bridge forwarding entries (AF_BRIDGE, NTF_SELF) on a vxlan device: `<VtepMAC> dst <PublicIP>`, the
// remote VTEP that frames for a peer's MAC are tunnelled to. Keyed by MAC: a changed VtepMAC leaves the
// old entry behind until deleteFdb removes it. Measured (test/e2e/netlink-overlay.test.ts): for a unicast
// MAC, append with another dst is a silent no-op (only the all-zeros and multicast MACs take several
// remotes), so a peer whose PublicIP changed needs replaceFdb.
import type { rt } from 'netlink'
import { AF_BRIDGE, errnoName, fail, ipBytes, ipText, macBytes, macText, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE, type RtSocket } from './socket.js'

export interface FdbEntry {
  readonly dev: number
  readonly mac: string
  /** Remote VTEP address; null for an entry without one (a bridge port's learned or local MAC). */
  readonly dst: string | null
  readonly permanent: boolean
  /** NTF_SELF: the device's own table (vxlan), not its bridge master's. */
  readonly self: boolean
}

export interface FdbSpec {
  readonly dev: number
  readonly mac: string
  readonly dst: string
}

export interface Fdb {
  /**
   * `bridge fdb append <mac> dev <dev> dst <dst> self permanent`: creates the entry; adds a remote only for
   * the all-zeros or a multicast MAC; a unicast MAC already there is left as it is (no error).
   */
  appendFdb: (spec: FdbSpec) => Promise<void>
  /** `bridge fdb replace …`: creates the entry or moves a unicast MAC to dst (EOPNOTSUPP for multicast/zero MACs). */
  replaceFdb: (spec: FdbSpec) => Promise<void>
  /** Deletes (mac, dst), or every dst of mac without one; an entry already gone is not an error. */
  deleteFdb: (spec: { readonly dev: number, readonly mac: string, readonly dst?: string }) => Promise<void>
  /** Entries of one link, or of all links without one. */
  fdb: (dev?: number) => Promise<FdbEntry[]>
}

export interface FdbRequest { readonly data: rt.Neighbor, readonly attrs: rt.NeighborAttrs }

/** RTM_NEWNEIGH/DELNEIGH body (pure, for the unit tests). */
export function fdbRequest (spec: { readonly dev: number, readonly mac: string, readonly dst?: string }): FdbRequest {
  const attrs: rt.NeighborAttrs = { lladdr: macBytes(spec.mac) }
  if (spec.dst !== undefined) attrs.dst = ipBytes(spec.dst).bytes
  return { data: { family: AF_BRIDGE, ifindex: spec.dev, state: { permanent: true }, flags: { self: true } }, attrs }
}

export function fdbEntryOf (n: rt.NeighborMessage): FdbEntry | null {
  if ((n.data.family ?? 0) !== AF_BRIDGE || n.attrs.lladdr === undefined) return null
  const d = n.attrs.dst
  return {
    dev: n.data.ifindex ?? 0,
    mac: macText(n.attrs.lladdr),
    dst: d === undefined ? null : d.length === 4 ? ipText(2, d) : d.length === 16 ? ipText(10, d) : null,
    permanent: n.data.state?.permanent === true,
    self: n.data.flags?.self === true,
  }
}

export function fdbOps (s: RtSocket): Fdb {
  return {
    appendFdb: async spec => {
      const { data, attrs } = fdbRequest(spec)
      try { await s.newNeighbor(data, attrs, { flags: NLM_F_CREATE | NLM_F_APPEND }) } catch (e) {
        if (errnoName(e) !== 'EEXIST') throw fail(`appending FDB ${spec.mac} dst ${spec.dst} dev ${spec.dev}`, e)
      }
    },
    replaceFdb: async spec => {
      const { data, attrs } = fdbRequest(spec)
      try { await s.newNeighbor(data, attrs, { flags: NLM_F_CREATE | NLM_F_REPLACE }) } catch (e) {
        throw fail(`replacing FDB ${spec.mac} dst ${spec.dst} dev ${spec.dev}`, e)
      }
    },
    deleteFdb: async spec => {
      const { data, attrs } = fdbRequest(spec)
      try { await s.delNeighbor(data, attrs) } catch (e) {
        if (errnoName(e) !== 'ENOENT' && errnoName(e) !== 'ENODEV') throw fail(`deleting FDB ${spec.mac} dev ${spec.dev}`, e)
      }
    },
    fdb: async dev => {
      let r
      try { r = await s.getNeighbors({ family: AF_BRIDGE }) } catch (e) { throw fail('listing FDB entries', e) }
      const out: FdbEntry[] = []
      for (const m of r) {
        const i = fdbEntryOf(m)
        if (i !== null && (dev === undefined || i.dev === dev)) out.push(i)
      }
      return out
    },
  }
}
