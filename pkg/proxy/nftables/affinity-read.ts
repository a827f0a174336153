// The clients the kernel remembers for ClientIP affinity: every `aff-*` set of ferry's table with its
// elements and their time left, read over nf_tables netlink before a full sync replaces the table, so the
// sync can put them back (a restart or a repair then breaks no session's stickiness, as kube-proxy's
// table, never replaced, does not).
import { ipFromBytes } from '../../net/ip.js'
import type { IPFamily } from '../../net/ip.js'
import { TABLE } from './names.js'
import { nulString, parseAttrList, parseAttrs } from '../../netlink/wire.js'
import { dumpRequest, withNfnl } from './nfnl.js'

/** A remembered client: its address and the milliseconds until the kernel forgets it. */
export interface RememberedClient { readonly ip: string, readonly expiresMs: number }

/** Set name → its remembered clients (sets without any are left out). */
export type AffinityReader = (family: IPFamily) => Promise<Map<string, RememberedClient[]>>

const NFT_MSG_NEWSET = 9
const NFT_MSG_GETSET = 10
const NFT_MSG_NEWSETELEM = 12
const NFT_MSG_GETSETELEM = 13
const NFTA_SET_TABLE = 1
const NFTA_SET_NAME = 2
const NFTA_SET_ELEM_LIST_TABLE = 1
const NFTA_SET_ELEM_LIST_SET = 2
const NFTA_SET_ELEM_LIST_ELEMENTS = 3
const NFTA_SET_ELEM_KEY = 1
const NFTA_SET_ELEM_EXPIRATION = 5
const NFTA_DATA_VALUE = 1
const AFFINITY_PREFIX = 'aff-'

/** Names of the affinity sets in the bodies of a GETSET dump. */
export function affinitySetNames (bodies: readonly Buffer[]): string[] {
  const out: string[] = []
  for (const b of bodies) {
    const name = nulString(parseAttrs(b).get(NFTA_SET_NAME))
    if (name.startsWith(AFFINITY_PREFIX)) out.push(name)
  }
  return out
}

/** The elements of a GETSETELEM dump: address and time left; elements without an expiry are skipped. */
export function rememberedClients (bodies: readonly Buffer[], family: IPFamily): RememberedClient[] {
  const width = family === 'IPv4' ? 4 : 16
  const out: RememberedClient[] = []
  for (const b of bodies) {
    const list = parseAttrs(b).get(NFTA_SET_ELEM_LIST_ELEMENTS)
    if (list === undefined) continue
    for (const [, elem] of parseAttrList(list)) {
      const a = parseAttrs(elem)
      const key = a.get(NFTA_SET_ELEM_KEY)
      const value = key === undefined ? undefined : parseAttrs(key).get(NFTA_DATA_VALUE)
      const exp = a.get(NFTA_SET_ELEM_EXPIRATION)
      if (value === undefined || value.length < width || exp === undefined || exp.length < 8) continue
      const expiresMs = Number(exp.readBigUInt64BE(0))
      if (expiresMs <= 0) continue
      out.push({ ip: ipFromBytes(value.subarray(0, width)), expiresMs })
    }
  }
  return out
}

/** The real reader: one socket, one dump for the set names, then one per affinity set. */
export const netlinkAffinityRead: AffinityReader = async family => await withNfnl(async dump => {
  const out = new Map<string, RememberedClient[]>()
  const sets = affinitySetNames(await dump(seq => dumpRequest(NFT_MSG_GETSET, family, seq, [[NFTA_SET_TABLE, TABLE]]), NFT_MSG_NEWSET, 'listing the sets'))
  for (const set of sets) {
    const clients = rememberedClients(await dump(seq => dumpRequest(NFT_MSG_GETSETELEM, family, seq,
      [[NFTA_SET_ELEM_LIST_TABLE, TABLE], [NFTA_SET_ELEM_LIST_SET, set]]), NFT_MSG_NEWSETELEM, `reading set ${set}`), family)
    if (clients.length > 0) out.set(set, clients)
  }
  return out
})
