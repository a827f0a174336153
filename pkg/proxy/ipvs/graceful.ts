// Graceful termination of real servers (kube-proxy's graceful_termination.go, without its per-minute
// polling of each dest): a removed TCP/SCTP dest is set to weight 0, so it takes no new connections, and
// is deleted once its connections are gone or a cap passes. This file keeps the set of draining dests
// and decides each one's fate; the reconciler owns the kernel calls and the single check timer.
import type { IPVSProtocol, RealServer } from './types.js'

/** --ipvs-graceful-termination default: a dest drains for 15 minutes at most. */
export const DEFAULT_GRACEFUL_TERMINATION_MS = 15 * 60_000
/** How often draining dests are checked while any drain (one dest dump per draining virtual server). */
export const DEFAULT_DRAIN_CHECK_MS = 2_000
/**
 * A sync that starts drains has them checked this soon after it: a dest with no connection goes at once,
 * as kube-proxy deletes it, yet the dump stays out of the sync itself and away from the next one.
 */
export const DEFAULT_DRAIN_FIRST_CHECK_MS = 50

/**
 * UDP has no connection end to wait for: its dests go at once and the caller clears their conntrack
 * entries, as kube-proxy does. SCTP drains like TCP here (kube-proxy deletes SCTP dests at once too);
 * SCTP associations end with a shutdown, so waiting for them is the gentler choice.
 */
export function drainsGracefully (protocol: IPVSProtocol): boolean {
  return protocol !== 'UDP'
}

export type DrainVerdict = 'gone' | 'delete' | 'wait'

/**
 * One draining dest's fate at `now`: 'gone' when the kernel no longer lists it, 'delete' when it has no
 * connection left (active + inactive; persistence templates do not hold it, expire_quiescent_template
 * drops them) or has drained for `capMs`, else 'wait'.
 */
export function drainVerdict (listed: Pick<RealServer, 'activeConns' | 'inactiveConns'> | undefined, since: number, now: number, capMs: number): DrainVerdict {
  if (listed === undefined) return 'gone'
  if (listed.activeConns + listed.inactiveConns === 0) return 'delete'
  return now - since >= capMs ? 'delete' : 'wait'
}

/** The dests being drained: virtual server key -> real server key -> when draining began. */
export class DrainSet {
  private readonly byService = new Map<string, Map<string, number>>()
  private count = 0
  /** Drains started so far: a caller compares it before and after a step to see whether any began. */
  private begun = 0

  get started (): number { return this.begun }

  get size (): number { return this.count }

  has (vs: string, rs: string): boolean {
    return this.byService.get(vs)?.has(rs) ?? false
  }

  /** Whether any dest of `vs` drains. */
  hasService (vs: string): boolean {
    return this.byService.has(vs)
  }

  /** When `rs` began draining, or undefined. */
  since (vs: string, rs: string): number | undefined {
    return this.byService.get(vs)?.get(rs)
  }

  /** Starts a drain; an ongoing one keeps its start (the cap counts from the first weight 0). */
  start (vs: string, rs: string, now: number): void {
    let m = this.byService.get(vs)
    if (m === undefined) this.byService.set(vs, m = new Map())
    if (m.has(rs)) return
    m.set(rs, now)
    this.count++
    this.begun++
  }

  stop (vs: string, rs: string): void {
    const m = this.byService.get(vs)
    if (m === undefined || !m.delete(rs)) return
    this.count--
    if (m.size === 0) this.byService.delete(vs)
  }

  /** A deleted virtual server takes its dests with it. */
  dropService (vs: string): void {
    const m = this.byService.get(vs)
    if (m === undefined) return
    this.count -= m.size
    this.byService.delete(vs)
  }

  /** Whether `rs` has drained for `capMs` by `now`. */
  expired (vs: string, rs: string, now: number, capMs: number): boolean {
    const since = this.since(vs, rs)
    return since !== undefined && now - since >= capMs
  }

  /** Keeps only the drains `keep` accepts (after a kernel re-read: dests that vanished stop draining). */
  retain (keep: (vs: string, rs: string) => boolean): void {
    for (const [vs, m] of [...this.byService]) {
      for (const rs of [...m.keys()]) if (!keep(vs, rs)) this.stop(vs, rs)
    }
  }

  /** Virtual servers with draining dests, each with its dests and their start times. */
  services (): Array<[string, ReadonlyMap<string, number>]> {
    return [...this.byService]
  }
}
