// An in-memory ConntrackTable: holds entries like the kernel would and records every call.
import { FerryError } from '../../errors/errors.js'
import type { IPFamily } from '../../net/ip.js'
import type { ConntrackEntry } from './parse.js'
import type { DeleteSelector } from './plan.js'
import type { ConntrackTable } from './table.js'

export class FakeConntrackTable implements ConntrackTable {
  entries: ConntrackEntry[]
  readonly lists: IPFamily[] = []
  readonly deletes: Array<{ family: IPFamily, sel: DeleteSelector }> = []
  /** Behave like a node without conntrack-tools. */
  missing = false
  /** Fail the next n deletions. */
  failDeletes = 0

  constructor (entries: readonly ConntrackEntry[] = []) { this.entries = [...entries] }

  async listUDP (family: IPFamily): Promise<ConntrackEntry[]> {
    this.lists.push(family)
    if (this.missing) throw notInstalled()
    return this.entries.filter(e => e.proto === 'udp' && familyOf(e) === family)
  }

  async deleteUDP (family: IPFamily, sel: DeleteSelector): Promise<number> {
    this.deletes.push({ family, sel })
    if (this.missing) throw notInstalled()
    if (this.failDeletes > 0) { this.failDeletes--; throw new FerryError('FERRY_ERR_EXEC', 'fake conntrack -D failure') }
    const before = this.entries.length
    this.entries = this.entries.filter(e => !(e.proto === 'udp' && familyOf(e) === family &&
      e.origDst === sel.origDst && e.origDport === sel.origDport && e.replySrc === sel.replySrc))
    return before - this.entries.length
  }
}

function familyOf (e: ConntrackEntry): IPFamily { return e.origDst.includes(':') ? 'IPv6' : 'IPv4' }

function notInstalled (): FerryError {
  return new FerryError('FERRY_ERR_EXEC', 'cannot run conntrack: not installed (conntrack-tools)', { missing: true })
}
