// The fewest IPVS changes that take ferry's table (what the reconciler knows the kernel holds for the
// virtual servers ferry owns) to the desired one. Pure: the reconciler applies the ops and folds their
// results back into the table.
import { IP_VS_SVC_F_HASHED } from './constants.js'
import { rsKey, type DesiredVirtualServer } from './desired.js'
import { drainsGracefully } from './graceful.js'
import type { IpvsOp, RealServer, VirtualServer, VirtualServerKey } from './types.js'

export interface TableEntry {
  service: VirtualServer
  /** Keyed by rsKey. */
  readonly dests: Map<string, RealServer>
  /** The desired entry this one was last brought to, by a sync that applied cleanly. */
  applied?: DesiredVirtualServer
}

/** Owned virtual servers as the kernel holds them, keyed by vsKey. */
export type IpvsTable = Map<string, TableEntry>

export interface DiffOptions {
  /** A dest ferry already drains (its weight 0 was sent or found). */
  readonly isDraining: (vs: string, rs: string) => boolean
  /** A draining dest whose cap has passed: deleted now, without asking the kernel for its connections. */
  readonly isExpired: (vs: string, rs: string) => boolean
  /** false when the cap is 0: removed TCP/SCTP dests go at once, like UDP ones. */
  readonly graceful: boolean
  /**
   * Whether `applied` can be trusted (not right after a kernel re-read): an entry whose desired object is
   * the one applied last, with nothing draining, is in place and its dests are not compared. Callers keep
   * unchanged DesiredVirtualServer objects across syncs (and never mutate them), so a sync costs little
   * more than a lookup per unchanged virtual server.
   */
  readonly trustApplied: boolean
  readonly hasDrains: (vs: string) => boolean
}

export interface TableDiff {
  /** In an order the kernel accepts: each virtual server before its dests; deleted virtual servers last. */
  readonly ops: IpvsOp[]
  /**
   * Unwanted dests already at weight 0 that no drain tracks (a ferryd that stopped mid-drain left them):
   * they drain from now on, with no op.
   */
  readonly quietDrains: ReadonlyArray<{ readonly vs: string, readonly rs: string }>
  /** Desired entries that were compared: once every op applied, each table entry is at its `want`. */
  readonly compared: ReadonlyArray<{ readonly vs: string, readonly want: DesiredVirtualServer }>
}

/** Compares what NEW/SET_SERVICE sets; HASHED is the kernel's own bit. */
export function sameService (a: VirtualServer, b: VirtualServer): boolean {
  return a.scheduler === b.scheduler && (a.flags & ~IP_VS_SVC_F_HASHED) === (b.flags & ~IP_VS_SVC_F_HASHED) &&
    a.timeout === b.timeout && a.netmask === b.netmask
}

/** Compares what NEW/SET_DEST sets. */
export function sameDestination (a: RealServer, b: RealServer): boolean {
  return a.weight === b.weight && a.forward === b.forward && a.upperThreshold === b.upperThreshold && a.lowerThreshold === b.lowerThreshold
}

/**
 * `only`: the virtual server keys that may differ (a partial sync: those of the changed service ports and
 * those with draining dests). Every other entry is taken to be in place and is not visited, so the cost
 * follows the change, not the table. Undefined compares every desired and every held entry.
 */
export function diffTable (table: ReadonlyMap<string, TableEntry>, desired: ReadonlyMap<string, DesiredVirtualServer>, o: DiffOptions,
  only?: Iterable<string>): TableDiff {
  const ops: IpvsOp[] = []
  const quietDrains: Array<{ vs: string, rs: string }> = []
  const compared: Array<{ vs: string, want: DesiredVirtualServer }> = []
  const deletes: IpvsOp[] = []
  const one = (vk: string, want: DesiredVirtualServer): void => {
    const service = want.service
    const have = table.get(vk)
    if (have !== undefined && o.trustApplied && have.applied === want && !o.hasDrains(vk)) return
    compared.push({ vs: vk, want })
    if (have === undefined) {
      ops.push({ op: 'addService', service })
      for (const destination of want.destinations) ops.push({ op: 'addDestination', service, destination })
      return
    }
    // A changed scheduler, persistence or netmask is an edit in place: deleting would cut every connection.
    if (!sameService(have.service, service)) ops.push({ op: 'updateService', service })
    let kept = 0
    for (const destination of want.destinations) {
      const cur = have.dests.get(rsKey(destination))
      // An endpoint back while draining gets its weight again (no delete and re-add: its connections stay).
      if (cur === undefined) ops.push({ op: 'addDestination', service, destination })
      else {
        kept++
        if (!sameDestination(cur, destination)) ops.push({ op: 'updateDestination', service, destination })
      }
    }
    if (kept === have.dests.size) return // every dest the kernel has is wanted
    const wanted = new Set(want.destinations.map(rsKey))
    const graceful = o.graceful && drainsGracefully(service.protocol)
    for (const [rk, cur] of have.dests) {
      if (wanted.has(rk)) continue
      const destination = { address: cur.address, port: cur.port }
      if (o.isDraining(vk, rk)) {
        if (o.isExpired(vk, rk)) ops.push({ op: 'deleteDestination', service, destination })
      } else if (!graceful) {
        ops.push({ op: 'deleteDestination', service, destination })
      } else if (cur.weight === 0) {
        quietDrains.push({ vs: vk, rs: rk })
      } else {
        ops.push({ op: 'updateDestination', service, destination: { ...cur, weight: 0, activeConns: 0, inactiveConns: 0, persistConns: 0 } })
      }
    }
  }
  // A virtual server no longer wanted goes with its dests at once, draining none: new connections to it
  // could not be routed anyway, and kube-proxy deletes it the same way.
  if (only === undefined) {
    for (const [vk, want] of desired) one(vk, want)
    for (const [vk, have] of table) if (!desired.has(vk)) deletes.push({ op: 'deleteService', service: keyOf(have.service) })
  } else {
    for (const vk of new Set(only)) {
      const want = desired.get(vk)
      if (want !== undefined) { one(vk, want); continue }
      const have = table.get(vk)
      if (have !== undefined) deletes.push({ op: 'deleteService', service: keyOf(have.service) })
    }
  }
  for (const d of deletes) ops.push(d)
  return { ops, quietDrains, compared }
}

function keyOf (s: VirtualServer): VirtualServerKey {
  return { family: s.family, protocol: s.protocol, address: s.address, port: s.port }
}
