// NftablesBackend: render (pure) + one `nft -f -` per sync. Full syncs (the first, after a failure, when
// asked, or when the table vanished) replace the table atomically; partial syncs send element deltas
// and the changed Services' own chains, diffed against the ownership the last sync left in memory, so
// no sync ever lists the kernel. Chains a partial sync flushed are deleted by a separate transaction
// at the start of a sync at least STALE_CHAIN_DELAY_MS later: on kernels before 6.2 a chain whose last
// map reference was just removed can still look referenced (NFTABLES.md §1.11, §4.3).
import { Lane } from '../../async/lane.js'
import { FerryError, errorMessage } from '../../errors/errors.js'
import { spawnExec, type Exec } from '../../exec/exec.js'
import { MeteredPieces } from '../../exec/metered.js'
import { silentLogger, type Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { Backend, DesiredState, SyncResult } from '../types.js'
import type { NftablesMetrics } from './metrics.js'
import { Chain } from './names.js'
import { deleteTableText, nftApply } from './nft.js'
import { resolveNftablesOptions, type NftablesOptions, type NftablesOptionsInput } from './options.js'
import type { NftOwned } from './owned.js'
import { netlinkRuleCount, type RuleCounter } from './rule-probe.js'
import { netlinkAffinityRead, type AffinityReader, type RememberedClient } from './affinity-read.js'
import { withRemembered } from './affinity-carry.js'
import { renderDeleteChains, renderFull, renderPartial, streamFull, type NftRender, type NftStreamed } from './render.js'
import { ElementEncoder, elementLayout } from './element-wire.js'
import { netlinkLoadElements, type ElementLoader } from './element-load.js'

export const STALE_CHAIN_DELAY_MS = 1000

export interface NftablesBackendOptions extends Omit<NftablesOptionsInput, 'family'> {
  readonly family: IPFamily
  /** Defaults to spawning nft directly. */
  readonly exec?: Exec
  readonly log?: Logger
  /** Where the mode's own metrics go; none in tests that do not look. */
  readonly metrics?: NftablesMetrics
  /** Milliseconds, monotonic; for the deferred chain deletion. */
  readonly now?: () => number
  /** Defaults to asking the kernel over nf_tables netlink. */
  readonly countRules?: RuleCounter
  /** The remembered affinity clients a full sync carries over; defaults to reading them over netlink. */
  readonly readAffinity?: AffinityReader
  /** Where a full sync of an idle table sends its elements; defaults to nf_tables netlink. */
  readonly loadElements?: ElementLoader
}

export interface NftSyncTimings {
  readonly renderMs: number
  /** `nft -f -` start to exit. */
  readonly applyMs: number
  readonly bytes: number
  /** The deferred `delete chain` transaction that ran first, if any. */
  readonly deleteMs: number
  /** Encoding and loading the elements over netlink (a full sync of an idle table), after nft. */
  readonly elementsMs: number
}

/** The sink of a declarations-only render that has to be repeated to quote nft's error line. */
const DISCARD_ENCODABLE = { takes: (map: string): boolean => elementLayout(map) !== null, add: (): void => {} }

export class NftablesBackend implements Backend {
  readonly name = 'nftables'
  readonly family: IPFamily
  readonly options: NftablesOptions
  private readonly exec: Exec
  private readonly log: Logger
  private readonly metrics: NftablesMetrics | undefined
  private readonly now: () => number
  private readonly countRules: RuleCounter
  private readonly readAffinity: AffinityReader
  private readonly loadElements: ElementLoader
  private readonly lane = new Lane()
  private owned: NftOwned | null = null
  private full = true
  /** Stale chain → when the sync that flushed it succeeded. */
  private readonly staleSince = new Map<string, number>()
  /** Timings of the last successful sync (bench, debug logs). */
  lastTimings: NftSyncTimings | undefined

  constructor (opts: NftablesBackendOptions) {
    this.family = opts.family
    this.exec = opts.exec ?? spawnExec
    this.log = (opts.log ?? silentLogger).child('nftables')
    this.metrics = opts.metrics
    this.now = opts.now ?? (() => performance.now())
    this.countRules = opts.countRules ?? netlinkRuleCount
    this.readAffinity = opts.readAffinity ?? netlinkAffinityRead
    this.loadElements = opts.loadElements ?? netlinkLoadElements
    const { exec: _e, log: _l, metrics: _m, now: _n, countRules: _c, readAffinity: _a, loadElements: _le, ...render } = opts
    this.options = resolveNftablesOptions(render)
  }

  /** True when the next sync will be full. */
  get needFullSync (): boolean { return this.full || this.owned === null }

  /** Chains flushed by earlier partial syncs, not yet deleted. */
  get pendingStaleChains (): readonly string[] { return this.owned === null ? [] : [...this.owned.stale] }

  requestFullSync (): void { this.full = true }

  async sync (state: DesiredState, changed: ReadonlySet<string> | null): Promise<SyncResult> {
    return await this.lane.run(async () => await this.syncNow(state, changed))
  }

  /**
   * Whether the table still holds rules: its prerouting chain always jumps to `services`, so an empty one
   * means the table is gone (`nft flush ruleset`, a firewall reload) or was flushed (`nft flush table`,
   * which keeps the sets and maps but empties every chain).
   */
  async rulesIntact (): Promise<boolean> {
    return await this.lane.run(async () => {
      if (this.owned === null) return true
      let present: boolean
      try {
        present = await this.countRules(this.family, Chain.NAT_PREROUTING) > 0
      } catch (e) {
        this.log.warn('cannot check the nftables table; next sync is full', { error: errorMessage(e) })
        present = false
      }
      if (!present) {
        this.full = true
        this.log.warn('ferry nftables rules missing (table deleted or flushed); next sync is full', { family: this.family })
      }
      return present
    })
  }

  /** Deletes this family's table (absent is fine). */
  async cleanup (): Promise<void> {
    await this.lane.run(async () => {
      await nftApply(this.exec, deleteTableText([this.family]), 'deleting the ferry table')
      this.owned = null
      this.full = true
      this.staleSince.clear()
    })
  }

  private async syncNow (state: DesiredState, changed: ReadonlySet<string> | null): Promise<SyncResult> {
    if (state.family !== this.family) {
      throw new FerryError('FERRY_ERR_APPLY', `state is ${state.family} but this backend programs ${this.family}`)
    }
    let full = changed === null || this.full || this.owned === null
    const t0 = this.now()
    if (!full) full = !await this.deleteDueStaleChains()
    const t1 = this.now()
    let partial: NftRender | undefined
    let streamed: MeteredPieces<NftStreamed> | undefined
    let text: string | Iterable<string>
    let encoder: ElementEncoder | undefined
    if (full || this.owned === null) {
      const remembered = await this.remembered()
      // A table that serves nothing (absent, or its rules flushed) is built in two steps: nft declares
      // the table, chains, rules and sets, then the elements go straight to the kernel over netlink
      // (element-wire.ts). A live table is replaced atomically by one nft transaction instead.
      if (remembered.size === 0 && await this.tableIdle()) encoder = new ElementEncoder(this.family)
      // Pulled by the pipe: the render runs while nft already parses the earlier pieces.
      streamed = new MeteredPieces(withRemembered(streamFull(state, this.options, encoder), this.family, remembered), this.now)
      text = streamed
    } else {
      try {
        partial = renderPartial(state, changed ?? new Set(), this.owned, this.options)
      } catch (e) {
        this.fail()
        throw e
      }
      text = partial.text
    }
    // The render took the ownership over: until this sync succeeds there is none.
    this.owned = null
    const t2 = this.now()
    let elementsMs = 0
    let elementBatches = 0
    try {
      if (text !== '') {
        const kind = partial?.kind ?? (encoder === undefined ? 'full' : 'full (declarations)')
        await nftApply(this.exec, text, `nftables ${kind} sync`, () => partial?.text ?? renderFull(state, this.options, encoder === undefined ? undefined : DISCARD_ENCODABLE).text)
      }
      if (encoder !== undefined && streamed?.result !== undefined) {
        const e0 = this.now()
        const batches = encoder.finish()
        elementBatches = batches.length
        await this.loadElements(this.family, batches)
        elementsMs = this.now() - e0
      }
    } catch (e) {
      this.fail()
      this.metrics?.syncFailures.inc({ ip_family: this.family })
      // Logged once, by the proxier that asked for the sync.
      throw e
    }
    const t3 = this.now()
    const r = partial ?? streamed?.result
    if (r === undefined) {
      // nft exited 0 without reading all of its input: nothing says what the kernel holds.
      this.fail()
      throw new FerryError('FERRY_ERR_APPLY', 'nft exited before reading the whole full-sync transaction')
    }
    this.owned = r.owned
    this.full = false
    if (r.kind === 'full') this.staleSince.clear()
    for (const c of r.staleChains) this.staleSince.set(c, t3)
    // A full render is interleaved with nft's reading; a partial one ran before t2.
    const renderMs = streamed?.produceMs ?? t2 - t1
    const bytes = streamed?.chars ?? partial?.text.length ?? 0
    this.lastTimings = { renderMs, applyMs: t3 - t2 - (streamed?.produceMs ?? 0) - elementsMs, bytes, deleteMs: t1 - t0, elementsMs }
    this.log.debug('nftables synced', {
      kind: r.kind, renderMs: Math.round(renderMs), applyMs: Math.round(this.lastTimings.applyMs), elementsMs: Math.round(elementsMs), elementBatches,
      stale: r.staleChains.length, ...r.written,
    })
    for (const kind of ['rules', 'elements', 'chains'] as const) {
      this.metrics?.objectsTotal.set({ ip_family: this.family, kind }, r.totals[kind])
      this.metrics?.objectsLast.set({ ip_family: this.family, kind }, r.written[kind])
    }
    return {
      kind: r.kind,
      summary: {
        rules: r.written.rules, elements: r.written.elements, chains: r.written.chains,
        rulesTotal: r.totals.rules, elementsTotal: r.totals.elements, chainsTotal: r.totals.chains,
      },
    }
  }

  /** Whether the table holds no rules that serve (absent or flushed); unknown counts as serving. */
  private async tableIdle (): Promise<boolean> {
    try {
      return await this.countRules(this.family, Chain.NAT_PREROUTING) === 0
    } catch (e) {
      this.log.debug('cannot count the table\'s rules; the full sync goes through nft alone', { error: errorMessage(e) })
      return false
    }
  }

  /** The clients the kernel's affinity sets remember now; none (logged) when they cannot be read. */
  private async remembered (): Promise<Map<string, RememberedClient[]>> {
    try {
      const r = await this.readAffinity(this.family)
      if (r.size > 0) this.log.info('carrying ClientIP affinity over the full sync', { sets: r.size, clients: [...r.values()].reduce((n, c) => n + c.length, 0) })
      return r
    } catch (e) {
      this.log.warn('cannot read the affinity sets; a full sync forgets remembered clients', { error: errorMessage(e) })
      return new Map()
    }
  }

  /**
   * Deletes the stale chains flushed at least STALE_CHAIN_DELAY_MS ago, in their own transaction.
   * Returns false when that failed (logged, counted): the caller then syncs fully, which replaces the
   * table and with it every stale chain.
   */
  private async deleteDueStaleChains (): Promise<boolean> {
    const owned = this.owned
    if (owned === null || owned.stale.size === 0) return true
    const cutoff = this.now() - STALE_CHAIN_DELAY_MS
    const due = [...owned.stale].filter(c => (this.staleSince.get(c) ?? -Infinity) <= cutoff)
    if (due.length === 0) return true
    try {
      await nftApply(this.exec, renderDeleteChains(this.family, due), 'deleting stale nftables chains')
    } catch (e) {
      this.metrics?.cleanupFailures.inc({ ip_family: this.family })
      this.log.warn('deleting stale chains failed; this sync is full', { chains: due.length, error: errorMessage(e) })
      this.full = true
      return false
    }
    owned.forgetStale(due)
    for (const c of due) this.staleSince.delete(c)
    return true
  }

  private fail (): void {
    this.full = true
    this.owned = null
    this.staleSince.clear()
  }
}
