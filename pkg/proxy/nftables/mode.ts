// nftables as a proxy mode: building the backend for one family, telling whether the node holds the
// mode's state, and removing it (--cleanup, or a switch to another mode): the two ferry tables.
import type { Registry } from 'prom-client'
import { spawnExec, type Exec } from '../../exec/exec.js'
import type { Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { ProxyOptionsInput } from '../options.js'
import { NftablesBackend } from './backend.js'
import { nftablesMetrics } from './metrics.js'
import { deleteTableText, ferryTables, nftApply } from './nft.js'

export interface NftablesModeDeps {
  readonly family: IPFamily
  readonly proxy: ProxyOptionsInput
  readonly masqueradeBit: number
  readonly log: Logger
  readonly registry?: Registry
  readonly exec?: Exec
}

export function createNftablesBackend (d: NftablesModeDeps): NftablesBackend {
  return new NftablesBackend({
    ...d.proxy,
    family: d.family,
    masqueradeBit: d.masqueradeBit,
    log: d.log,
    ...(d.exec !== undefined ? { exec: d.exec } : {}),
    ...(d.registry !== undefined ? { metrics: nftablesMetrics(d.registry) } : {}),
  })
}

/** Families whose ferry table exists; none when nft is missing (then no table can exist). */
async function presentFamilies (exec: Exec): Promise<Set<IPFamily>> {
  try { return await ferryTables(exec) } catch { return new Set() }
}

export async function nftablesModePresent (exec: Exec = spawnExec): Promise<boolean> {
  return (await presentFamilies(exec)).size > 0
}

/** Deletes both ferry tables in one transaction. Returns what failed. */
export async function cleanupNftablesMode (exec: Exec = spawnExec): Promise<Array<{ what: string, err: unknown }>> {
  const families = await presentFamilies(exec)
  if (families.size === 0) return []
  try {
    await nftApply(exec, deleteTableText(families), 'deleting the ferry nftables tables')
    return []
  } catch (err) {
    return [{ what: `nftables tables ${[...families].join(',')}`, err }]
  }
}
