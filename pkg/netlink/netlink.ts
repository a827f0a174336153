// Everything the overlay programs, over one rtnetlink socket: links and addresses, routes, neighbours,
// FDB. The socket lives in the netns of the thread that opened it (OVERLAY.md §5.1).
import { addressBatchOps, linkOps, type Links } from './links.js'
import { routeOps, type Routes } from './routes.js'
import { neighbourOps, type Neighbours } from './neigh.js'
import { fdbOps, type Fdb } from './fdb.js'
import { openRtSocket } from './socket.js'

export interface Netlink extends Links, Routes, Neighbours, Fdb {}

export function openNetlink (): Netlink {
  const s = openRtSocket()
  const batch = addressBatchOps()
  return {
    ...linkOps(s), ...routeOps(s), ...neighbourOps(s), ...fdbOps(s),
    changeAddresses: batch.changeAddresses,
    close: () => { batch.close(); s.socket.close() },
  }
}

export type { AddressInfo, BridgeSpec, LinkDetails, LinkInfo, Links, VethPeer, VethSpec, VxlanDetails, VxlanSpec } from './links.js'
export type { RouteInfo, RouteMatch, RouteSpec, Routes } from './routes.js'
export type { NeighbourInfo, NeighbourSpec, Neighbours } from './neigh.js'
export type { Fdb, FdbEntry, FdbSpec } from './fdb.js'
