// Loads IPVS mode's companion state into the kernel: one `ipset restore` and at most one
// `iptables-restore` per sync, through the Exec seam. The IPVS backend calls sync() before it creates
// virtual servers, so masquerade is in place before the first packet is scheduled (kubernetes#133773).
//
// It remembers what its last successful sync loaded: a later sync writes only the sets that changed (as
// add/del lines, or a refill-and-swap when most of a set changed) and skips iptables-restore when the
// rules are the same, so an endpoint change costs one process. A full sync (the first, after a failure,
// or when asked) refills every set through a swap, rewrites every chain, and adds the jumps that
// `iptables-save` shows missing.
import { spawnExec, type Exec } from '../../exec/exec.js'
import { Lane } from '../../async/lane.js'
import { silentLogger, type Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { PortPlan } from '../plan.js'
import { chooseVariant } from '../iptables/mode.js'
import { jumpPresent, restore, save, toolName, type Table, type Variant } from '../iptables/restore.js'
import { resolveCompanionOptions, type CompanionOptions, type CompanionOptionsInput } from './companion-options.js'
import { companionJumps, IPVS_CHAIN_PREFIX, IPVS_CHAINS, removeChainsPayload, renderRules, TABLE_ORDER, type RuleCounts } from './companion-rules.js'
import { companionSetSpecs, CompanionSetsTracker, plansByIndex } from './companion-sets.js'
import { destroyRestore, ipsetNames, ipsetRestore, swapRestore, tempName } from './ipset.js'

export interface IpvsCompanionOptions extends CompanionOptionsInput {
  readonly exec?: Exec
  /** Defaults to chooseVariant() on the first sync. */
  readonly variant?: Variant
  readonly log?: Logger
}

/** Addresses that change while ferryd runs; each sync may pass the current ones. */
export interface CompanionAddresses {
  readonly nodePortIPs?: readonly string[]
  readonly boundAddresses?: readonly string[]
}

export interface CompanionSyncResult {
  readonly kind: 'full' | 'partial'
  /** Sets whose members were written (0: no `ipset restore` ran). */
  readonly setsWritten: number
  /** Members of every set after the sync. */
  readonly members: number
  /** Whether `iptables-restore` ran. */
  readonly rulesWritten: boolean
  /** Plans whose share of the sets was rebuilt or dropped (a partial sync visits only the changed ones). */
  readonly plansVisited: number
  readonly rules: RuleCounts
  readonly ipsetMs: number
  readonly iptablesMs: number
}

/** Over this share of a set's size, a change refills the set through a swap instead of add/del lines. */
const SWAP_SHARE = 0.5
const SWAP_MIN = 64

export class IpvsCompanion {
  readonly family: IPFamily
  private readonly exec: Exec
  private readonly log: Logger
  private readonly input: CompanionOptionsInput
  private chosen: Variant | undefined
  private full = true
  private resolved: { readonly nodePortIPs: CompanionAddresses['nodePortIPs'], readonly boundAddresses: CompanionAddresses['boundAddresses'], readonly opts: CompanionOptions } | undefined
  /** The rules payload (without jumps) of the last successful sync. */
  private lastRules: string | undefined
  private lastCounts: RuleCounts | undefined
  private readonly lane = new Lane()
  /** Full syncs asked for (a loss rulesIntact() found, requestFullSync()): one asked mid-sync outlives it. */
  private fullAsked = 0
  private tracker = new CompanionSetsTracker()

  constructor (opts: IpvsCompanionOptions) {
    const { exec, variant, log, ...input } = opts
    this.family = opts.family
    this.exec = exec ?? spawnExec
    this.log = (log ?? silentLogger).child('ipvs-companion')
    this.chosen = variant
    this.input = input
    resolveCompanionOptions(input)
  }

  get variant (): Variant | undefined { return this.chosen }
  get needFullSync (): boolean { return this.full }
  requestFullSync (): void { this.full = true; this.fullAsked++ }

  /**
   * Loads the companion state for `plans`, keyed by service port (a plain list is keyed by position).
   * `changed`: the keys whose plans may differ from the previous sync's; only those are visited, so keep
   * the map up to date in place (a new key goes last). null visits every key, skipping PortPlan objects
   * seen before. A full sync (the first, after a failure, or requested) rebuilds from scratch either way.
   */
  async sync (plans: ReadonlyMap<string, PortPlan> | Iterable<PortPlan>, addresses: CompanionAddresses = {}, changed: ReadonlySet<string> | null = null): Promise<CompanionSyncResult> {
    const keyed = plans instanceof Map ? plans as ReadonlyMap<string, PortPlan> : plansByIndex(plans as Iterable<PortPlan>)
    return await this.lane.run(async () => await this.syncNow(keyed, addresses, changed))
  }

  /**
   * Whether the companion chains and sets are still there (a firewall reload or a flush removes them).
   * It runs beside syncs, not in their lane: its four processes took 0.1-0.6 s under emulation, and an
   * edit's sync waited behind them. Reading beside a sync is safe: a restore replaces a table in one
   * commit and a set refill swaps names, so nothing of ferry's is ever missing mid-sync.
   */
  async rulesIntact (): Promise<boolean> {
    if (this.chosen === undefined || this.lastRules === undefined) return true
    const cmd = toolName(this.chosen, this.family, 'cmd')
    for (const table of TABLE_ORDER) {
      const chain = IPVS_CHAINS[table][0] as string
      const r = await this.exec([cmd, '-w', '5', '-t', table, '-S', chain])
      if (r.code !== 0) return this.lost(`chain ${table}/${chain} missing`)
    }
    const names = new Set(await ipsetNames(this.exec))
    for (const spec of companionSetSpecs(this.family)) if (!names.has(spec.name)) return this.lost(`set ${spec.name} missing`)
    return true
  }

  /** Removes the jumps, chains (both iptables variants) and sets of this family. */
  async cleanup (): Promise<void> {
    await this.lane.run(async () => {
      for (const variant of ['legacy', 'nft'] as const) await this.cleanupVariant(variant)
      const mine = new Set<string>()
      for (const spec of companionSetSpecs(this.family)) mine.add(spec.name).add(tempName(spec.name))
      const present = (await ipsetNames(this.exec)).filter(n => mine.has(n))
      if (present.length > 0) await ipsetRestore(this.exec, destroyRestore(present))
      this.lastRules = undefined
      this.full = true
    })
  }

  private lost (why: string): boolean {
    this.full = true
    this.fullAsked++
    this.log.warn('companion rules or sets missing; next sync is full', { why })
    return false
  }

  private async variantNow (): Promise<Variant> {
    if (this.chosen !== undefined) return this.chosen
    const choice = await chooseVariant(this.family, this.exec)
    this.log.info('iptables variant chosen', { variant: choice.variant, reason: choice.reason })
    this.chosen = choice.variant
    return choice.variant
  }

  private async syncNow (plans: ReadonlyMap<string, PortPlan>, addresses: CompanionAddresses, changed: ReadonlySet<string> | null): Promise<CompanionSyncResult> {
    const opts = this.optionsFor(addresses)
    const full = this.full
    const asked = this.fullAsked
    try {
      const variant = await this.variantNow()
      // A full sync starts the sets over: nothing the tracker held is trusted.
      if (full) this.tracker = new CompanionSetsTracker()
      const built = this.tracker.update(plans, full ? null : changed, opts)

      // Sets first: the rules refer to them by name.
      const t0 = performance.now()
      const lines: string[] = []
      let setsWritten = 0
      let members = 0
      for (const content of built.sets) {
        members += content.entries.size
        if (full || built.reset) { lines.push(swapRestore([content])); setsWritten++; continue }
        const change = built.changes.get(content.spec.name)
        if (change === undefined) continue
        const n = change.add.size + change.del.size
        setsWritten++
        if (n > Math.max(SWAP_MIN, content.entries.size * SWAP_SHARE)) { lines.push(swapRestore([content])); continue }
        for (const e of change.del) lines.push(`del ${content.spec.name} ${e}\n`)
        for (const e of change.add) lines.push(`add ${content.spec.name} ${e}\n`)
      }
      if (lines.length > 0) await ipsetRestore(this.exec, lines.join(''))
      const t1 = performance.now()

      // The rules follow the Services only through the short-circuits: unchanged ones keep the last payload.
      const sameRules = !full && !built.reset && !built.circuitsChanged && this.lastRules !== undefined && this.lastCounts !== undefined
      const rules = sameRules ? { payload: this.lastRules as string, rules: this.lastCounts as RuleCounts } : renderRules(built, opts, [])
      let rulesWritten = false
      if (full || rules.payload !== this.lastRules) {
        const missing = full ? await this.missingJumps(variant) : []
        const payload = missing.length > 0 ? renderRules(built, opts, missing).payload : rules.payload
        await restore(this.exec, variant, this.family, payload)
        rulesWritten = true
      }
      const t2 = performance.now()

      this.lastRules = rules.payload
      this.lastCounts = rules.rules
      this.full = this.fullAsked !== asked
      this.log.debug('companion synced', { full, plansVisited: built.visited, setsWritten, members, rulesWritten, ipsetMs: Math.round(t1 - t0), iptablesMs: Math.round(t2 - t1) })
      return { kind: full ? 'full' : 'partial', setsWritten, members, rulesWritten, plansVisited: built.visited, rules: rules.rules, ipsetMs: t1 - t0, iptablesMs: t2 - t1 }
    } catch (e) {
      // ipset restore is not a transaction and the sets may be half-written: start again from scratch.
      // The proxier logs the failure, once.
      this.full = true
      this.lastRules = undefined
      throw e
    }
  }

  /** Options resolved once per address lists: the backend passes the same arrays until the node's addresses change. */
  private optionsFor (addresses: CompanionAddresses): CompanionOptions {
    const last = this.resolved
    if (last !== undefined && last.nodePortIPs === addresses.nodePortIPs && last.boundAddresses === addresses.boundAddresses) return last.opts
    const opts = resolveCompanionOptions({ ...this.input, ...addresses })
    this.resolved = { nodePortIPs: addresses.nodePortIPs, boundAddresses: addresses.boundAddresses, opts }
    return opts
  }

  /** The jumps that iptables-save of their tables does not show. */
  private async missingJumps (variant: Variant): Promise<ReturnType<typeof companionJumps>> {
    const texts = new Map<Table, string>()
    for (const table of TABLE_ORDER) texts.set(table, await save(this.exec, variant, this.family, table))
    return companionJumps().filter(j => !jumpPresent(texts.get(j.table) ?? '', j))
  }

  private async cleanupVariant (variant: Variant): Promise<void> {
    const deletes = new Map<Table, string[]>()
    const chains = new Map<Table, string[]>()
    for (const table of TABLE_ORDER) {
      let text: string
      try {
        text = await save(this.exec, variant, this.family, table)
      } catch {
        return // this variant is not usable here (no tool, or no kernel tables): nothing of ferry's lives in it
      }
      const dels: string[] = []
      const mine: string[] = []
      for (const line of text.split('\n')) {
        if (line.startsWith(`:${IPVS_CHAIN_PREFIX}`)) mine.push(line.slice(1, line.indexOf(' ')))
        else if (line.startsWith('-A ') && !line.startsWith(`-A ${IPVS_CHAIN_PREFIX}`) && new RegExp(` -j ${IPVS_CHAIN_PREFIX}[A-Z-]+$`).test(line)) {
          dels.push('-D' + line.slice(2))
        }
      }
      deletes.set(table, dels)
      chains.set(table, mine)
    }
    // Per table, one transaction: the jumps go, then the chains they referred to are flushed and deleted.
    const payload = removeChainsPayload(chains, deletes)
    if (payload !== '') await restore(this.exec, variant, this.family, payload)
  }
}
