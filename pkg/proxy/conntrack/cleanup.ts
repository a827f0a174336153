// UDP conntrack cleanup after each successful sync (PROXY.md §4): list the family's UDP table once,
// keep what plan.ts calls live, delete the rest. It runs as a Proxier afterSync hook, so the new
// rules are already in the kernel and the next datagram on a cleared 5-tuple takes them.
import { FerryError, errorMessage } from '../../errors/errors.js'
import { spawnExec, type Exec } from '../../exec/exec.js'
import { silentLogger, type Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { AfterSync } from '../proxier.js'
import type { DesiredState, EndpointInfo } from '../types.js'
import type { ConntrackMetrics } from './metrics.js'
import type { ConntrackEntry } from './parse.js'
import { deleteSelectors, planCleanup, staleEntries } from './plan.js'
import { ExecConntrackTable, isConntrackMissing, type ConntrackTable } from './table.js'

export interface ConntrackCleanerOptions {
  readonly family: IPFamily
  /** Runs the conntrack CLI; defaults to spawning it directly. Ignored when `table` is given. */
  readonly exec?: Exec
  /** The table to clean; defaults to the conntrack CLI through `exec`. Tests pass a FakeConntrackTable. */
  readonly table?: ConntrackTable
  readonly log?: Logger
  /** From createConntrackMetrics(registry), shared by both families' cleaners. */
  readonly metrics?: ConntrackMetrics
  /** Milliseconds, for the duration metric; defaults to performance.now. */
  readonly now?: () => number
}

export interface CleanupResult {
  /** False when the sync changed no UDP service port (nothing was listed). */
  readonly needed: boolean
  readonly listed: number
  readonly stale: number
  readonly deleted: number
}

const SKIPPED: CleanupResult = { needed: false, listed: 0, stale: 0, deleted: 0 }

export class ConntrackCleaner {
  readonly family: IPFamily
  private readonly table: ConntrackTable
  private readonly log: Logger
  private readonly now: () => number
  private warnedMissing = false

  constructor (private readonly o: ConntrackCleanerOptions) {
    this.family = o.family
    this.table = o.table ?? new ExecConntrackTable(o.exec ?? spawnExec)
    this.log = (o.log ?? silentLogger).child('conntrack')
    this.now = o.now ?? (() => performance.now())
  }

  /** The Proxier hook: `new Proxier({ ..., afterSync: [cleaner.afterSync] })`. */
  readonly afterSync: AfterSync = async (state, changed, endpoints) => { await this.reconcile(state, changed, endpoints) }

  /**
   * Deletes the stale UDP entries of this family. Resolves quietly when conntrack is not installed
   * (warning once); rejects with one FERRY_ERR_EXEC when listing or some deletion failed, after
   * trying every deletion.
   */
  async reconcile (state: DesiredState, changed: ReadonlySet<string> | null, endpoints: ReadonlyMap<string, readonly EndpointInfo[]>): Promise<CleanupResult> {
    if (state.family !== this.family) return SKIPPED
    const filter = planCleanup(this.family, state, changed, endpoints)
    if (filter === null) return SKIPPED
    const start = this.now()
    const labels = { ip_family: this.family }
    let entries: ConntrackEntry[]
    try {
      entries = await this.table.listUDP(this.family)
    } catch (e) {
      if (isConntrackMissing(e)) { this.warnMissing(e); return SKIPPED }
      throw e
    }
    const stale = staleEntries(entries, filter)
    let deleted = 0
    const failures: string[] = []
    for (const sel of deleteSelectors(stale)) {
      try {
        deleted += await this.table.deleteUDP(this.family, sel)
      } catch (e) {
        if (isConntrackMissing(e)) { this.warnMissing(e); break }
        failures.push(errorMessage(e))
      }
    }
    const ms = this.now() - start
    this.o.metrics?.syncDuration.observe(labels, ms / 1000)
    if (deleted > 0) this.o.metrics?.deletedEntries.inc(labels, deleted)
    const result = { needed: true, listed: entries.length, stale: stale.length, deleted }
    if (failures.length > 0) {
      throw new FerryError('FERRY_ERR_EXEC', `conntrack cleanup: ${failures.length} deletion(s) failed: ${failures[0] ?? ''}`, { family: this.family, ...result, failures })
    }
    const fields = { family: this.family, ...result, ms: Math.round(ms) }
    if (deleted > 0) this.log.info('deleted stale UDP conntrack entries', fields)
    else this.log.debug('conntrack reconciled', fields)
    this.warnedMissing = false
    return result
  }

  private warnMissing (e: unknown): void {
    if (this.warnedMissing) return
    this.warnedMissing = true
    this.log.warn('conntrack is not installed: stale UDP flows are not cleared after endpoint changes', { family: this.family, err: e })
  }
}
