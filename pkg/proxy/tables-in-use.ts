// Which netfilter tables exist in this netns, read without starting a process: nf_tables' table names
// per family over netlink, and the legacy x_tables in use from /proc/self/net/ip{,6}_tables_names. A
// start asks whether any other proxy mode left state behind; where the table a mode writes to does not
// exist, the answer is no without running iptables-save or nft (each ~7-10 ms of the main thread).
import { readFile } from 'node:fs/promises'
import type { IPFamily } from '../net/ip.js'
import { attrString, parseAttrs } from '../netlink/wire.js'
import { dumpRequest, withNfnl } from './nftables/nfnl.js'

const NFT_MSG_NEWTABLE = 0
const NFT_MSG_GETTABLE = 1
const NFTA_TABLE_NAME = 1

export interface TablesInUse {
  /** nf_tables tables by family (`ip`, `ip6`), as iptables-nft and the nftables mode write them. */
  readonly nftables: ReadonlyMap<IPFamily, ReadonlySet<string>>
  /** Legacy x_tables tables by family (iptables-legacy). */
  readonly legacy: ReadonlyMap<IPFamily, ReadonlySet<string>>
}

/** Table names of /proc/net/ip_tables_names text: one per line. */
export function legacyTableNames (text: string): Set<string> {
  return new Set(text.split('\n').map(l => l.trim()).filter(l => l !== ''))
}

/** The table names in a GETTABLE dump's reply bodies. */
export function tableNames (bodies: readonly Buffer[]): Set<string> {
  const out = new Set<string>()
  for (const b of bodies) out.add(attrString(parseAttrs(b), NFTA_TABLE_NAME, 'table name'))
  return out
}

/**
 * Both kinds of table in this netns; undefined when nf_tables cannot be asked (then callers run the
 * tools as before). A missing proc file means the legacy module is not loaded: no legacy table.
 */
export async function tablesInUse (): Promise<TablesInUse | undefined> {
  const legacy = new Map<IPFamily, Set<string>>()
  for (const [family, file] of [['IPv4', 'ip_tables_names'], ['IPv6', 'ip6_tables_names']] as const) {
    legacy.set(family, legacyTableNames(await readFile(`/proc/self/net/${file}`, 'utf8').catch(() => '')))
  }
  try {
    const nftables = await withNfnl(async dump => {
      const out = new Map<IPFamily, Set<string>>()
      for (const family of ['IPv4', 'IPv6'] as const) {
        out.set(family, tableNames(await dump(seq => dumpRequest(NFT_MSG_GETTABLE, family, seq, []), NFT_MSG_NEWTABLE, `listing the ${family} nf_tables tables`)))
      }
      return out
    })
    return { nftables, legacy }
  } catch {
    return undefined
  }
}
