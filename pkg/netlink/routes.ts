// Routes of the main table: the overlay's per-remote-subnet routes (vxlan: `via <remote>.0 dev flannel.1
// onlink`; host-gw: `via <PublicIP> dev <uplink>`). The netlink package's RouteFlags has no onlink bit
// (RTNH_F_ONLINK, shared with rtm_flags), so it travels in __unknown.
import netlink, { type rt } from 'netlink'
import { parseCIDR, type IPFamily } from '../net/ip.js'
import { errnoName, fail, familyName, familyNumber, ipBytes, ipText, NLM_F_CREATE, NLM_F_REPLACE, refuse, type RtSocket } from './socket.js'

export const RTNH_F_ONLINK = 4
export const RT_TABLE_MAIN = 254
export const RTPROT_KERNEL = 2
/** What `ip route` sets; the default for replaceRoute. */
export const RTPROT_BOOT = 3
/** The protocol ferry tags its overlay routes with (unassigned in iproute2's rt_protos), so a restarted ferryd knows its own. */
export const RTPROT_FERRY = 240
export const RT_SCOPE_UNIVERSE = 0
export const RT_SCOPE_LINK = 253
const RT_SCOPE_NOWHERE = 255
const RTN_UNICAST = 1

export interface RouteInfo {
  readonly family: IPFamily
  /** Canonical CIDR; 0.0.0.0/0 or ::/0 for a default route. */
  readonly dst: string
  readonly gateway: string | null
  /** Output link index; 0 for a multipath route. */
  readonly dev: number
  readonly onlink: boolean
  readonly scope: number
  readonly protocol: number
  /** Preferred source (RTA_PREFSRC). */
  readonly src: string | null
  /** RTN_* (1 unicast, 6 blackhole, …). */
  readonly type: number
}

export interface RouteSpec {
  readonly dst: string
  readonly gateway?: string
  readonly dev: number
  /** Take the gateway as on the link without a covering route (the vxlan backend's routes). */
  readonly onlink?: boolean
  readonly src?: string
  /** RTPROT_*; RTPROT_BOOT when omitted. */
  readonly protocol?: number
}

/** What deleteRoute matches: dst always; dev and gateway only when given. */
export interface RouteMatch {
  readonly dst: string
  readonly dev?: number
  readonly gateway?: string
}

export interface Routes {
  /** Main-table routes of one family. */
  routes: (family: IPFamily) => Promise<RouteInfo[]>
  /** Adds the route, or replaces the main-table route to the same dst. */
  replaceRoute: (spec: RouteSpec) => Promise<void>
  /** Deletes a main-table route; one already gone is not an error. */
  deleteRoute: (match: RouteMatch) => Promise<void>
}

export interface RouteRequest { readonly data: rt.Route, readonly attrs: rt.RouteAttrs }

function dstOf (text: string): { family: number, prefix: number, bytes: Buffer, cidr: string } {
  const c = parseCIDR(text)
  if (c === null) throw refuse(`not a CIDR: ${text}`, 'EINVAL')
  return { family: familyNumber(c.family), prefix: c.prefix, bytes: ipBytes(c.ip).bytes, cidr: c.text }
}

function gatewayOf (gw: string, family: number, cidr: string): Buffer {
  const g = ipBytes(gw)
  if (g.family !== family) throw refuse(`gateway ${gw} is not in the family of ${cidr}`, 'EINVAL')
  return g.bytes
}

/** RTM_NEWROUTE body for replaceRoute (pure: the unit tests check its bytes). */
export function routeRequest (spec: RouteSpec): RouteRequest {
  const d = dstOf(spec.dst)
  const attrs: rt.RouteAttrs = {}
  if (d.prefix > 0) attrs.dst = d.bytes
  attrs.oif = spec.dev
  if (spec.gateway !== undefined) attrs.gateway = gatewayOf(spec.gateway, d.family, d.cidr)
  if (spec.src !== undefined) attrs.prefsrc = gatewayOf(spec.src, d.family, d.cidr)
  const data: rt.Route = {
    family: d.family,
    dstLen: d.prefix,
    table: RT_TABLE_MAIN,
    protocol: spec.protocol ?? RTPROT_BOOT,
    // A route via a gateway reaches beyond the link; a direct one stays on it (as `ip route` chooses).
    scope: spec.gateway !== undefined ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
    type: RTN_UNICAST,
  }
  if (spec.onlink === true) data.flags = { __unknown: RTNH_F_ONLINK }
  return { data, attrs }
}

/** RTM_DELROUTE body: scope NOWHERE and protocol/type 0 are the kernel's wildcards. */
export function routeDeleteRequest (m: RouteMatch): RouteRequest {
  const d = dstOf(m.dst)
  const attrs: rt.RouteAttrs = {}
  if (d.prefix > 0) attrs.dst = d.bytes
  if (m.dev !== undefined) attrs.oif = m.dev
  if (m.gateway !== undefined) attrs.gateway = gatewayOf(m.gateway, d.family, d.cidr)
  return { data: { family: d.family, dstLen: d.prefix, table: RT_TABLE_MAIN, scope: RT_SCOPE_NOWHERE }, attrs }
}

// The package decodes known enum values to their names ('KERNEL', 'LINK'): back to numbers.
function num (mapping: Record<string, string | number>, v: number | string | undefined): number {
  if (typeof v === 'number') return v
  const n = v === undefined ? undefined : mapping[v]
  return typeof n === 'number' ? n : 0
}

/** A dumped route in ferry's terms; null for another family or table. */
export function routeInfoOf (r: rt.RouteMessage): RouteInfo | null {
  const fam = r.data.family ?? 0
  const family = familyName(fam)
  if (family === null || (r.attrs.table ?? r.data.table ?? 0) !== RT_TABLE_MAIN) return null
  const dstLen = r.data.dstLen ?? 0
  const dst = r.attrs.dst !== undefined ? ipText(fam, r.attrs.dst) : (fam === 2 ? '0.0.0.0' : '::')
  return {
    family,
    dst: `${dst}/${dstLen}`,
    gateway: r.attrs.gateway !== undefined ? ipText(fam, r.attrs.gateway) : null,
    dev: r.attrs.oif ?? 0,
    onlink: ((r.data.flags?.__unknown ?? 0) & RTNH_F_ONLINK) !== 0,
    scope: num(netlink.rt.RouteScope, r.data.scope),
    protocol: num(netlink.rt.RouteProtocol, r.data.protocol),
    src: r.attrs.prefsrc !== undefined ? ipText(fam, r.attrs.prefsrc) : null,
    type: num(netlink.rt.RouteType, r.data.type),
  }
}

export function routeOps (s: RtSocket): Routes {
  return {
    routes: async family => {
      let r
      try { r = await s.getRoutes({ family: familyNumber(family) }) } catch (e) { throw fail(`listing ${family} routes`, e) }
      const out: RouteInfo[] = []
      for (const m of r) {
        const i = routeInfoOf(m)
        if (i !== null && i.family === family) out.push(i)
      }
      return out
    },
    replaceRoute: async spec => {
      const { data, attrs } = routeRequest(spec)
      try { await s.newRoute(data, attrs, { flags: NLM_F_CREATE | NLM_F_REPLACE }) } catch (e) {
        throw fail(`replacing route ${spec.dst}${spec.gateway !== undefined ? ` via ${spec.gateway}` : ''} dev ${spec.dev}${spec.onlink === true ? ' onlink' : ''}`, e)
      }
    },
    deleteRoute: async m => {
      const { data, attrs } = routeDeleteRequest(m)
      try { await s.delRoute(data, attrs) } catch (e) {
        // ESRCH: no such route; ENODEV: its link (and so the route) is gone.
        if (errnoName(e) !== 'ESRCH' && errnoName(e) !== 'ENODEV') throw fail(`deleting route ${m.dst}`, e)
      }
    },
  }
}
