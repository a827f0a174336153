// IptablesBackend: render (pure) + one iptables-restore per sync. It remembers the per-service chains
// its last successful sync left, so partial syncs never list the kernel. Full syncs (the first, after a
// failure, or when asked) read `iptables-save -t nat` and `-t filter` once: that finds FERRY- chains a
// previous run left behind, and shows which jumps from the built-in chains already exist. Missing jumps,
// the mangle canary and stale-chain deletions ride in the same restore transaction that writes the new
// rules: one process per sync, and working rules are never flushed before their replacements exist.
import { Lane } from '../../async/lane.js'
import { FerryError, errorMessage } from '../../errors/errors.js'
import { silentLogger, type Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { Backend, DesiredState, SyncResult } from '../types.js'
import type { IptablesMetrics } from './metrics.js'
import { chooseVariant } from './mode.js'
import { Chain, isFerryChain, isPerServiceChain } from './names.js'
import { resolveRenderOptions, type RenderOptions, type RenderOptionsInput } from './options.js'
import { OwnedChains } from './owned.js'
import { collect, streamFull, streamPartial, type RenderStream } from './render.js'
import { spawnExec, type Exec } from '../../exec/exec.js'
import { MeteredPieces } from '../../exec/metered.js'
import { chainsInSave, fullSyncExtras, jumpPresent, jumps, lineAt, removeJumps, restore, save, toolName, type Table, type Variant } from './restore.js'

export interface IptablesBackendOptions extends Omit<RenderOptionsInput, 'family'> {
  readonly family: IPFamily
  /** Where the mode's own metrics go; none in tests that do not look. */
  readonly metrics?: IptablesMetrics
  /** Defaults to spawning the tools directly. */
  readonly exec?: Exec
  /** Defaults to chooseVariant() on the first sync. */
  readonly variant?: Variant
  readonly log?: Logger
}

export interface SyncTimings {
  /** Rendering, both the part before the restore starts and the part streamed into it. */
  readonly renderMs: number
  /** iptables-restore start to exit; it includes rendering the nat rules, which are piped while they render. */
  readonly applyMs: number
  readonly payloadBytes: number
}

interface Scan { readonly nat: string, readonly filter: string, readonly chains: Set<string> }

/**
 * How old a prepared scan may be when the first sync uses it. Another writer (an old ferryd still
 * stopping) may add a chain meanwhile; a chain missed this way is deleted by the next full sync.
 */
const PREFETCH_MAX_AGE_MS = 10_000

export class IptablesBackend implements Backend {
  readonly name = 'iptables'
  readonly family: IPFamily
  private readonly exec: Exec
  private readonly log: Logger
  private readonly render: RenderOptions
  private readonly metrics: IptablesMetrics | undefined
  private chosen: Variant | undefined
  private owned: OwnedChains | null = null
  private full = true
  /** Full syncs asked for (a missing canary, requestFullSync()): one asked mid-sync outlives that sync. */
  private fullAsked = 0
  private readonly lane = new Lane()
  /** Variant detection in flight (prepare() or the first caller); shared so it runs once. */
  private choosing: Promise<Variant> | undefined
  /** The scan prepare() started for the first full sync, and when it started. */
  private prefetched: { readonly at: number, readonly scan: Promise<Scan> } | undefined
  /** Timings of the last successful sync (for the bench and debug logs). */
  lastTimings: SyncTimings | undefined

  constructor (opts: IptablesBackendOptions) {
    this.family = opts.family
    this.exec = opts.exec ?? spawnExec
    this.log = (opts.log ?? silentLogger).child('iptables')
    this.chosen = opts.variant
    this.metrics = opts.metrics
    const { exec: _e, variant: _v, log: _l, metrics: _m, ...render } = opts
    this.render = resolveRenderOptions(render)
  }

  /** The variant in use; undefined until the first sync picks one. */
  get variant (): Variant | undefined { return this.chosen }

  /** True when the next sync will be full (first sync, or the last sync failed). */
  get needFullSync (): boolean { return this.full }

  /** Forces the next sync to be full (e.g. after the canary vanished). */
  requestFullSync (): void { this.full = true; this.fullAsked++ }

  /**
   * Starts what the first full sync needs from the kernel (variant detection, the iptables-save scan)
   * now, so those programs run while the source is still loading. A scan older than PREFETCH_MAX_AGE_MS
   * by the time the first sync runs is taken again.
   */
  prepare (): void {
    if (this.prefetched !== undefined || this.owned !== null) return
    const at = performance.now()
    const scan = this.variantNow().then(async v => await this.scan(v))
    scan.catch(() => { /* the sync scans again and reports */ })
    this.prefetched = { at, scan }
  }

  async sync (state: DesiredState, changed: ReadonlySet<string> | null): Promise<SyncResult> {
    return await this.lane.run(async () => await this.syncNow(state, changed))
  }

  /**
   * The canary chain in filter, nat and mangle: a flush of any one table shows here (kube-proxy checks
   * mangle only). Beside syncs, not in their lane, so an edit never waits for its three processes: each
   * restore replaces a table in one commit and keeps the canary, so a sync never shows it missing.
   */
  async rulesIntact (): Promise<boolean> {
    if (this.owned === null || this.chosen === undefined) return true
    const cmd = toolName(this.chosen, this.family, 'cmd')
    for (const table of ['mangle', 'nat', 'filter'] as const) {
      const r = await this.exec([cmd, '-w', '5', '-t', table, '-S', Chain.CANARY])
      if (r.code !== 0) {
        this.requestFullSync()
        this.log.warn('canary chain missing: rules were flushed; next sync is full', { table })
        return false
      }
    }
    return true
  }

  async cleanup (): Promise<void> {
    await this.lane.run(async () => await this.cleanupNow())
  }

  private async variantNow (): Promise<Variant> {
    if (this.chosen !== undefined) return this.chosen
    this.choosing ??= chooseVariant(this.family, this.exec).then(choice => {
      this.log.info('iptables variant chosen', { variant: choice.variant, reason: choice.reason })
      this.chosen = choice.variant
      return choice.variant
    }).finally(() => { this.choosing = undefined })
    return await this.choosing
  }

  /** The prepared scan if it is fresh enough (used once), else a new one. */
  private async firstScan (variant: Variant): Promise<Scan> {
    const p = this.prefetched
    this.prefetched = undefined
    if (p !== undefined && performance.now() - p.at <= PREFETCH_MAX_AGE_MS) {
      try { return await p.scan } catch { /* scan again below: its error is the one to report */ }
    }
    return await this.scan(variant)
  }

  private async syncNow (state: DesiredState, changed: ReadonlySet<string> | null): Promise<SyncResult> {
    if (state.family !== this.family) {
      throw new FerryError('FERRY_ERR_APPLY', `state is ${state.family} but this backend programs ${this.family}`)
    }
    const variant = await this.variantNow()
    const asked = this.fullAsked
    const full = changed === null || this.full || this.owned === null
    let rendered: RenderStream
    // Rendering is pure: a failed restore's line is quoted from a second render, not from a copy kept
    // of every piece (the payload is the largest thing alive during a full sync).
    let again: () => RenderStream
    const t0 = performance.now()
    try {
      if (full) {
        const scan = await this.firstScan(variant)
        const missing = jumps(this.family).filter(j => !jumpPresent(scan[j.table === 'nat' ? 'nat' : 'filter'], j))
        const stale = new Set<string>(this.owned ?? [])
        for (const c of scan.chains) if (c.startsWith('nat/') && isPerServiceChain(c.slice(4))) stale.add(c.slice(4))
        again = () => streamFull(state, this.render, stale, fullSyncExtras(missing))
      } else {
        const owned = this.owned ?? new OwnedChains()
        const keys = changed ?? new Set<string>()
        again = () => streamPartial(state, keys, owned, this.render)
      }
      rendered = again()
    } catch (e) {
      this.full = true
      throw e
    }
    const t1 = performance.now()
    // The nat rules are rendered while iptables-restore already parses the first pieces.
    const pieces = new MeteredPieces(rendered.chunks())
    try {
      await restore(this.exec, variant, this.family, pieces, n => lineAt(collect(again()).payload, n))
    } catch (e) {
      // The restore is one transaction per table and the next full sync recomputes everything.
      this.full = true
      ;(rendered.kind === 'full' ? this.metrics?.restoreFailures : this.metrics?.partialRestoreFailures)?.inc({ ip_family: this.family })
      // Logged once, by the proxier that asked for the sync.
      throw e
    }
    const t2 = performance.now()
    this.owned = rendered.ownedChains
    this.full = this.fullAsked !== asked
    this.lastTimings = { renderMs: t1 - t0 + pieces.produceMs, applyMs: t2 - t1, payloadBytes: pieces.chars }
    this.log.debug('iptables synced', {
      kind: rendered.kind, renderMs: Math.round(t1 - t0 + pieces.produceMs), applyMs: Math.round(t2 - t1), deleted: rendered.deletedChains.length, ...rendered.rulesWritten,
    })
    const written = rendered.rulesWritten
    const total = rendered.rulesTotal
    for (const table of ['filter', 'nat'] as const) {
      this.metrics?.rulesTotal.set({ ip_family: this.family, table }, total[table])
      this.metrics?.rulesLast.set({ ip_family: this.family, table }, written[table])
    }
    return { kind: rendered.kind, summary: { filterRules: written.filter, natRules: written.nat, filterRulesTotal: total.filter, natRulesTotal: total.nat } }
  }

  /** One iptables-save per table: its text, and every chain as "table/name". */
  private async scan (variant: Variant): Promise<Scan> {
    const [nat, filter] = await Promise.all([save(this.exec, variant, this.family, 'nat'), save(this.exec, variant, this.family, 'filter')])
    const chains = new Set<string>()
    for (const c of chainsInSave(nat)) chains.add(`nat/${c}`)
    for (const c of chainsInSave(filter)) chains.add(`filter/${c}`)
    return { nat, filter, chains }
  }

  private async cleanupNow (): Promise<void> {
    const variant = await this.variantNow()
    await removeJumps(this.exec, variant, this.family)
    const parts: string[] = []
    for (const table of ['filter', 'nat', 'mangle'] as Table[]) {
      const chains = chainsInSave(await save(this.exec, variant, this.family, table)).filter(isFerryChain)
      if (chains.length === 0) continue
      // Declaring flushes every chain first, so the -X lines find no references left.
      parts.push(`*${table}`, ...chains.map(c => `:${c} - [0:0]`), ...chains.map(c => `-X ${c}`), 'COMMIT')
    }
    if (parts.length > 0) await restore(this.exec, variant, this.family, parts.join('\n') + '\n')
    this.owned = null
    this.full = true
  }
}
