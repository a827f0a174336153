// Keeps the kernel's IPVS table (the part ferry owns, one IP family) equal to the desired one. It diffs
// against its own record of the kernel, so a normal sync reads nothing and sends only the changes, all in
// one pipelined apply(); the kernel is read at the first sync, on resync() and after any failure. Removed
// TCP/SCTP dests drain (weight 0) under one timer, first checked just after the sync that began them;
// UDP dests go at once.
import { Lane } from '../../async/lane.js'
import { FerryError, errorMessage } from '../../errors/errors.js'
import { silentLogger, type Logger } from '../../log/log.js'
import { realClock, type Clock } from '../runner.js'
import { describeDest, describeKey } from './codec.js'
import { ENOENT, ESRCH } from './constants.js'
import { rsKey, vsKey, type DesiredVirtualServer } from './desired.js'
import { diffTable, type IpvsTable } from './diff.js'
import { DEFAULT_DRAIN_CHECK_MS, DEFAULT_DRAIN_FIRST_CHECK_MS, DEFAULT_GRACEFUL_TERMINATION_MS, DrainSet, drainVerdict } from './graceful.js'
import { errnoName } from '../../netlink/pipeline.js'
import type { OwnershipStore } from './ownership.js'
import type { IPFamily, IpvsKernel, IpvsOp, IpvsOpResult, RealServer, RealServerKey, VirtualServer, VirtualServerKey } from './types.js'

export interface IpvsReconcilerOptions {
  readonly family: IPFamily
  readonly kernel: IpvsKernel
  /** Which virtual servers ferry created; only those (and desired ones) are ever touched. */
  readonly ownership: OwnershipStore
  readonly clock?: Clock
  /** --ipvs-graceful-termination: the longest a removed TCP/SCTP dest drains; 0 deletes at once. Default 15 min. */
  readonly gracefulTerminationMs?: number
  /** How often draining dests are checked while any drain. Default 2 s. */
  readonly drainCheckIntervalMs?: number
  /** How soon after a reconcile that began drains they are first checked. Default 50 ms. */
  readonly drainFirstCheckMs?: number
  readonly log?: Logger
}

export interface ReconcileFailure {
  /** The op, virtual server, dest and errno name: "addDestination TCP 10.96.0.1:443 -> 10.244.1.5:6443: EEXIST (17)". */
  readonly what: string
  readonly errno: number
}

export interface RemovedDestination { readonly service: VirtualServerKey, readonly destination: RealServerKey }

export interface ReconcileResult {
  /** 'full' when the kernel was read first. */
  readonly kind: 'full' | 'partial'
  /** Netlink messages sent. */
  readonly ops: number
  /** Ops the kernel refused; the rest applied, and the next reconcile is full. */
  readonly failed: readonly ReconcileFailure[]
  /** UDP dests deleted (with their own or their virtual server's removal): the caller clears their conntrack entries. */
  readonly removedUDPDestinations: readonly RemovedDestination[]
  readonly draining: number
}

export interface ReconcilerStatus { readonly virtualServers: number, readonly destinations: number, readonly draining: number }

export interface OwnedVirtualServer { readonly service: VirtualServer, readonly destinations: readonly RealServer[], readonly draining: readonly string[] }

interface Outcome { failed: ReconcileFailure[], removedUDP: RemovedDestination[] }

export class IpvsReconciler {
  readonly family: IPFamily
  private readonly kernel: IpvsKernel
  private readonly ownership: OwnershipStore
  private readonly clock: Clock
  private readonly capMs: number
  private readonly checkMs: number
  private readonly firstCheckMs: number
  private readonly log: Logger
  private table: IpvsTable = new Map()
  /** Dests in `table`, all virtual servers together. */
  private destinations = 0
  private readonly drains = new DrainSet()
  /** Read the kernel before the next diff: first sync, resync(), any failure. */
  private needFull = true
  private started = false
  /** The owned set as last saved or loaded; undefined until then. */
  private saved: ReadonlySet<string> | undefined
  /** The owned set (the table's keys) differs from `saved`. */
  private ownedChanged = true
  /** Reconciles and drain checks run one at a time, each over a settled table. */
  private readonly lane = new Lane()
  private timer: unknown
  /** When the drain timer fires (clock ms). */
  private timerAt = Infinity
  private stopped = false

  constructor (o: IpvsReconcilerOptions) {
    this.family = o.family
    this.kernel = o.kernel
    this.ownership = o.ownership
    this.clock = o.clock ?? realClock
    this.capMs = Math.max(0, o.gracefulTerminationMs ?? DEFAULT_GRACEFUL_TERMINATION_MS)
    this.checkMs = Math.max(1, Math.min(o.drainCheckIntervalMs ?? DEFAULT_DRAIN_CHECK_MS, this.capMs || Infinity))
    this.firstCheckMs = Math.max(0, Math.min(o.drainFirstCheckMs ?? DEFAULT_DRAIN_FIRST_CHECK_MS, this.checkMs))
    this.log = (o.log ?? silentLogger).child(`ipvs-reconciler-${o.family === 'IPv4' ? 'v4' : 'v6'}`)
  }

  /**
   * Brings the owned table to `desired` (keyed by vsKey, of this family). Throws FERRY_ERR_APPLY when the
   * kernel cannot be read or written at all. `only` (a partial sync): the only keys whose desired entry
   * may have changed since the last reconcile; every other entry is neither read nor compared. It is
   * ignored when the kernel must be read first (full, resync(), after a failure).
   */
  async reconcile (desired: ReadonlyMap<string, DesiredVirtualServer>, opts: { full?: boolean, only?: ReadonlySet<string> } = {}): Promise<ReconcileResult> {
    return await this.lane.run(async () => await this.reconcileNow(desired, opts.full === true, opts.only))
  }

  /** The next reconcile reads the kernel again (the slow periodic resync). */
  resync (): void {
    this.needFull = true
  }

  /** O(1): the destination count is kept as the table changes (a gauge set on every sync). */
  status (): ReconcilerStatus {
    return { virtualServers: this.table.size, destinations: this.destinations, draining: this.drains.size }
  }

  /** The owned table as ferry believes the kernel holds it, for /debug/state. */
  snapshot (): OwnedVirtualServer[] {
    return [...this.table].map(([vk, e]) => ({
      service: { ...e.service },
      destinations: [...e.dests.values()].map(d => ({ ...d })),
      draining: [...e.dests.keys()].filter(rk => this.drains.has(vk, rk)),
    }))
  }

  /** Stops the drain timer; draining dests stay at weight 0 (a restarted ferryd resumes their drain). */
  stop (): void {
    this.stopped = true
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
  }

  private async reconcileNow (desired: ReadonlyMap<string, DesiredVirtualServer>, forceFull: boolean, only: ReadonlySet<string> | undefined): Promise<ReconcileResult> {
    const full = forceFull || this.needFull
    if (full) {
      this.needFull = true
      await this.readKernel(desired)
      this.needFull = false
    }
    const now = this.clock.now()
    const diff = diffTable(this.table, desired, {
      isDraining: (vs, rs) => this.drains.has(vs, rs),
      isExpired: (vs, rs) => this.drains.expired(vs, rs, now, this.capMs),
      graceful: this.capMs > 0,
      trustApplied: !full,
      hasDrains: vs => this.drains.hasService(vs),
    }, full || only === undefined ? undefined : this.partialKeys(only))
    const begun = this.drains.started
    for (const { vs, rs } of diff.quietDrains) this.drains.start(vs, rs, now)
    const results = await this.apply(diff.ops)
    const out = this.absorb(results)
    if (out.failed.length > 0) {
      this.log.warn('IPVS changes failed; the next sync re-reads the kernel', { family: this.family, failed: out.failed.slice(0, 10).map(f => f.what), count: out.failed.length })
    }
    if (out.failed.length === 0) {
      for (const { vs, want } of diff.compared) {
        const entry = this.table.get(vs)
        if (entry !== undefined) entry.applied = want
      }
    }
    await this.saveOwnership()
    this.armTimer(this.drains.started !== begun ? this.firstCheckMs : this.checkMs)
    return { kind: full ? 'full' : 'partial', ops: diff.ops.length, failed: out.failed, removedUDPDestinations: out.removedUDP, draining: this.drains.size }
  }

  /** The changed keys and those with draining dests (an expired drain is deleted by the next sync, as in a full diff). */
  private partialKeys (only: ReadonlySet<string>): Iterable<string> {
    if (this.drains.size === 0) return only
    const keys = new Set(only)
    for (const [vk] of this.drains.services()) keys.add(vk)
    return keys
  }

  /** Rebuilds the table from the kernel: the owned virtual servers (adopting desired ones found there) and their dests. */
  private async readKernel (desired: ReadonlyMap<string, DesiredVirtualServer>): Promise<void> {
    const first = !this.started
    let owned: ReadonlySet<string> = new Set(this.table.keys())
    if (first) owned = await this.loadOwnership()
    let services: VirtualServer[]
    let lists: RealServer[][]
    try {
      services = (await this.kernel.listServices()).filter(s => s.family === this.family)
      const mine = services.filter(s => { const k = vsKey(s); return owned.has(k) || desired.has(k) })
      // The kernel answers dumps one after another; asking for all at once keeps its queue full.
      lists = await Promise.all(mine.map(async s => await this.kernel.listDestinations(s)))
      services = mine
    } catch (e) {
      throw new FerryError('FERRY_ERR_APPLY', `reading the ${this.family} IPVS table failed: ${errorMessage(e)}`, { family: this.family }, { cause: e })
    }
    const table: IpvsTable = new Map()
    services.forEach((s, i) => {
      table.set(vsKey(s), { service: s, dests: new Map((lists[i] ?? []).map(d => [rsKey(d), d])) })
    })
    const adopted = [...table.keys()].filter(k => !owned.has(k)).length
    this.table = table
    this.destinations = 0
    for (const e of table.values()) this.destinations += e.dests.size
    this.ownedChanged = this.saved === undefined || !sameSet(this.saved, new Set(table.keys()))
    this.started = true
    // Dests that vanished stop draining; those still there keep their start time.
    this.drains.retain((vs, rs) => table.get(vs)?.dests.has(rs) ?? false)
    this.log.info(first ? 'read the IPVS table' : 're-read the IPVS table', { family: this.family, owned: table.size, adopted })
  }

  private async loadOwnership (): Promise<Set<string>> {
    try {
      const keys = await this.ownership.load()
      this.saved = new Set(keys) // an unchanged set is not written again
      return keys
    } catch (e) {
      // Without the list only desired virtual servers are recognised; stale ones of ours stay, traffic is safe.
      this.log.warn('cannot load the IPVS ownership list; only desired virtual servers are adopted', { err: errorMessage(e) })
      return new Set()
    }
  }

  private async apply (ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
    if (ops.length === 0) return []
    try {
      return await this.kernel.apply(ops)
    } catch (e) {
      // Some ops may have applied: only a re-read knows which.
      this.needFull = true
      throw new FerryError('FERRY_ERR_APPLY', `applying ${ops.length} IPVS changes (${this.family}) failed: ${errorMessage(e)}; the next sync re-reads the kernel`,
        { family: this.family, ops: ops.length }, { cause: e })
    }
  }

  /** Folds the kernel's answers into the table and the drain set. */
  private absorb (results: readonly IpvsOpResult[]): Outcome {
    const out: Outcome = { failed: [], removedUDP: [] }
    const now = this.clock.now()
    for (const { op, errno } of results) {
      const deleting = op.op === 'deleteService' || op.op === 'deleteDestination'
      // A delete of what is already gone is done. EEXIST on an add means the table is stale: a resync adopts it.
      if (errno !== 0 && !(deleting && (errno === ESRCH || errno === ENOENT))) {
        out.failed.push({ what: `${describeOp(op)}: ${errnoName(errno)}`, errno })
        this.needFull = true
        continue
      }
      const vk = vsKey(op.service)
      const entry = this.table.get(vk)
      switch (op.op) {
        case 'addService':
        case 'updateService':
          if (entry === undefined) {
            this.table.set(vk, { service: op.service, dests: new Map() })
            this.ownedChanged = true
          } else entry.service = op.service
          break
        case 'deleteService':
          if (entry !== undefined && op.service.protocol === 'UDP') {
            const service = keyOf(op.service)
            for (const d of entry.dests.values()) out.removedUDP.push({ service, destination: { address: d.address, port: d.port } })
          }
          if (entry !== undefined) this.destinations -= entry.dests.size
          if (this.table.delete(vk)) this.ownedChanged = true
          this.drains.dropService(vk)
          break
        case 'addDestination':
        case 'updateDestination': {
          const rk = rsKey(op.destination)
          if (entry === undefined) break // its service was not ours (EEXIST): the coming re-read decides
          if (!entry.dests.has(rk)) this.destinations++
          entry.dests.set(rk, op.destination)
          if (op.destination.weight === 0) this.drains.start(vk, rk, now)
          else this.drains.stop(vk, rk)
          break
        }
        case 'deleteDestination': {
          const rk = rsKey(op.destination)
          if (entry?.dests.delete(rk) === true) this.destinations--
          this.drains.stop(vk, rk)
          if (op.service.protocol === 'UDP') out.removedUDP.push({ service: keyOf(op.service), destination: { address: op.destination.address, port: op.destination.port } })
          break
        }
      }
    }
    return out
  }

  private async saveOwnership (): Promise<void> {
    if (!this.ownedChanged) return
    const keys = new Set(this.table.keys())
    try {
      await this.ownership.save(keys)
      this.saved = keys
      this.ownedChanged = false
    } catch (e) {
      // Traffic does not depend on it; the next reconcile tries again.
      this.log.warn('cannot save the IPVS ownership list', { err: errorMessage(e) })
    }
  }

  // ---- Draining ----

  /** The drain check within `ms`: an armed timer due later is brought forward. */
  private armTimer (ms = this.checkMs): void {
    if (this.stopped || this.drains.size === 0) return
    const at = this.clock.now() + ms
    if (this.timer !== undefined) {
      if (this.timerAt <= at) return
      this.clock.clearTimeout(this.timer)
    }
    this.timerAt = at
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined
      this.timerAt = Infinity
      void this.lane.run(async () => { await this.checkDrains() }).catch(e => {
        this.log.warn('checking draining IPVS destinations failed; the next sync re-reads the kernel', { err: errorMessage(e) })
      }).finally(() => { this.armTimer() })
    }, ms)
  }

  /**
   * Deletes draining dests whose connections are gone or whose cap passed. It dumps only the virtual
   * servers with a draining dest that may still be waiting; all deletes go in one apply().
   */
  private async checkDrains (): Promise<void> {
    const now = this.clock.now()
    const ops: IpvsOp[] = []
    const toList: Array<{ vk: string, service: VirtualServer, dests: ReadonlyMap<string, number> }> = []
    for (const [vk, dests] of this.drains.services()) {
      const entry = this.table.get(vk)
      if (entry === undefined) { this.drains.dropService(vk); continue }
      if ([...dests.values()].every(since => now - since >= this.capMs)) {
        for (const rk of dests.keys()) {
          const d = entry.dests.get(rk)
          if (d !== undefined) ops.push(deleteOp(entry.service, d))
          else this.drains.stop(vk, rk)
        }
      } else toList.push({ vk, service: entry.service, dests })
    }
    let lists: RealServer[][]
    try {
      lists = await Promise.all(toList.map(async x => await this.kernel.listDestinations(x.service)))
    } catch (e) {
      this.needFull = true
      throw e
    }
    toList.forEach(({ vk, service, dests }, i) => {
      const listed = new Map((lists[i] ?? []).map(d => [rsKey(d), d]))
      for (const [rk, since] of dests) {
        const d = listed.get(rk)
        const verdict = drainVerdict(d, since, now, this.capMs)
        if (verdict === 'gone' || d === undefined) {
          if (this.table.get(vk)?.dests.delete(rk) === true) this.destinations--
          this.drains.stop(vk, rk)
        } else if (verdict === 'delete') ops.push(deleteOp(service, d))
      }
    })
    const out = this.absorb(await this.apply(ops))
    if (ops.length > 0) this.log.debug('drained IPVS destinations', { family: this.family, deleted: ops.length - out.failed.length, draining: this.drains.size })
    if (out.failed.length > 0) {
      this.log.warn('deleting drained IPVS destinations failed; the next sync re-reads the kernel', { family: this.family, failed: out.failed.slice(0, 10).map(f => f.what), count: out.failed.length })
    }
  }
}

function deleteOp (service: VirtualServerKey, dest: RealServerKey): IpvsOp {
  return { op: 'deleteDestination', service: keyOf(service), destination: { address: dest.address, port: dest.port } }
}

function keyOf (s: VirtualServerKey): VirtualServerKey {
  return { family: s.family, protocol: s.protocol, address: s.address, port: s.port }
}

function describeOp (op: IpvsOp): string {
  const vs = describeKey(op.service)
  return 'destination' in op ? `${op.op} ${vs} -> ${describeDest(op.destination)}` : `${op.op} ${vs}`
}

function sameSet (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false
  for (const k of a) if (!b.has(k)) return false
  return true
}
