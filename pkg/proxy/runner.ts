// Bounded-frequency runner (kube-proxy's runner/bounded_frequency_runner.go): run() requests coalesce into
// one run, at least minIntervalMs passes from the end of one run to the start of the next, a run happens at
// least every maxIntervalMs, and retryAfter() brings the next run forward after a failure. With `burst` > 1
// (kube-proxy's burstSyncs) the gate is a token bucket: a run takes a token, one comes back per
// minIntervalMs after a run ends, up to `burst`; so a change right after an isolated run is not held back,
// while a steady stream of changes still gets one run per minIntervalMs.

/** Time source; tests inject FakeClock (fake-clock.ts). */
export interface Clock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (h: unknown) => void
}

/** A due-now callback: setImmediate's handle, told apart from a timer's when cleared. */
interface Soon { readonly immediate: NodeJS.Immediate }
const isSoon = (h: unknown): h is Soon => typeof h === 'object' && h !== null && 'immediate' in h

export const realClock: Clock = {
  now: () => Date.now(),
  // Due now: the loop's check phase, right after the I/O callback that asked. setTimeout(0) waits at
  // least 1 ms and a turn of the timers phase, and a sync is due at once after an isolated change.
  // Node treats delays above 2^31-1 ms as 1 ms; clamp so a huge maxInterval cannot spin.
  setTimeout: (fn, ms) => ms <= 0 ? { immediate: setImmediate(fn) } : setTimeout(fn, Math.min(ms, 2 ** 31 - 1)),
  clearTimeout: h => { if (isSoon(h)) clearImmediate(h.immediate); else clearTimeout(h as ReturnType<typeof setTimeout>) },
}

export interface BoundedFrequencyRunnerOptions {
  /** For logs and errors. */
  readonly name: string
  readonly fn: () => Promise<void>
  readonly minIntervalMs: number
  readonly maxIntervalMs: number
  /** Runs that may start back to back after a quiet spell (default 1: always minIntervalMs apart). */
  readonly burst?: number
  readonly clock?: Clock
  /** Called with whatever fn rejected with; the runner carries on. */
  readonly onError?: (err: unknown) => void
}

export class BoundedFrequencyRunner {
  readonly name: string
  private readonly fn: () => Promise<void>
  private readonly minIntervalMs: number
  private readonly maxIntervalMs: number
  private readonly burst: number
  /** Tokens left when the last run started; they refill from its end. */
  private tokensLeft = 0
  private readonly clock: Clock
  private readonly onError: (err: unknown) => void

  private started = false
  private stopped = false
  /** A run() request not yet served by a run that started after it. */
  private requested = false
  /** Earliest time a retryAfter() asked for, until the next run starts. */
  private retryAt: number | undefined
  /** When start() was called: the reference for the first periodic run. */
  private startedAt = 0
  /** End of the last run: the reference for both intervals; undefined before the first run. */
  private lastEnd: number | undefined
  private inFlight: Promise<void> | undefined
  /** The timer of a requested or retried run. */
  private timer: unknown
  private timerAt: number | undefined
  /**
   * The maxInterval timer, apart from the requested one and armed lazily: it stays while runs move its
   * due time later and checks again when it fires. Re-arming it after every run put a timer pair on
   * each sync's path (most of a millisecond per edit under emulation).
   */
  private periodic: unknown
  private periodicAt: number | undefined
  private runs = 0

  constructor (opts: BoundedFrequencyRunnerOptions) {
    if (!(opts.minIntervalMs >= 0) || !(opts.maxIntervalMs > 0) || opts.minIntervalMs > opts.maxIntervalMs) {
      throw new RangeError(`runner ${opts.name}: need 0 <= minIntervalMs <= maxIntervalMs and maxIntervalMs > 0`)
    }
    if (opts.burst !== undefined && !(Number.isInteger(opts.burst) && opts.burst >= 1)) throw new RangeError(`runner ${opts.name}: burst must be an integer >= 1`)
    this.burst = opts.burst ?? 1
    this.name = opts.name
    this.fn = opts.fn
    this.minIntervalMs = opts.minIntervalMs
    this.maxIntervalMs = opts.maxIntervalMs
    this.clock = opts.clock ?? realClock
    this.onError = opts.onError ?? (() => {})
  }

  /** Completed runs (successful or not). */
  get runCount (): number {
    return this.runs
  }

  /** True while fn is executing. */
  get running (): boolean {
    return this.inFlight !== undefined
  }

  /** Starts the periodic schedule; requests made before start() are served right after. */
  start (): void {
    if (this.started || this.stopped) return
    this.started = true
    this.startedAt = this.clock.now()
    this.schedule()
  }

  /** Requests a run as soon as minInterval allows. Requests coalesce; one arriving mid-run gets one more run. */
  run (): void {
    if (this.stopped) return
    this.requested = true
    this.schedule()
  }

  /** Asks for a run within `ms` (no sooner than minInterval allows), e.g. after a failed sync. */
  retryAfter (ms: number): void {
    if (this.stopped) return
    const at = this.clock.now() + Math.max(0, ms)
    if (this.retryAt === undefined || at < this.retryAt) this.retryAt = at
    this.schedule()
  }

  /** Stops scheduling and waits for a run in flight. */
  async stop (): Promise<void> {
    this.stopped = true
    this.cancelTimer()
    await this.inFlight
  }

  private cancelTimer (): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = undefined
    if (this.periodic !== undefined) this.clock.clearTimeout(this.periodic)
    this.periodic = undefined
    this.periodicAt = undefined
  }

  /** When the next periodic run is due: maxInterval after the last run ended (or after start). */
  private periodicDue (): number {
    return (this.lastEnd ?? this.startedAt) + this.maxIntervalMs
  }

  private schedule (): void {
    if (!this.started || this.stopped || this.inFlight !== undefined) return
    // The first run need not wait minInterval: nothing has run yet.
    const earliest = this.lastEnd === undefined ? this.startedAt : this.lastEnd + Math.max(0, 1 - this.tokensLeft) * this.minIntervalMs
    const periodicDue = this.periodicDue()
    let due = Infinity
    if (this.requested) due = Math.min(due, earliest)
    if (this.retryAt !== undefined) due = Math.min(due, Math.max(this.retryAt, earliest))
    // A requested run due no sooner than the periodic one is the periodic one.
    if (due >= periodicDue) due = Infinity
    if (this.timerAt !== due) {
      if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
      this.timer = undefined
      this.timerAt = undefined
      if (due !== Infinity) {
        this.timerAt = due
        this.timer = this.clock.setTimeout(() => {
          this.timer = undefined
          this.timerAt = undefined
          this.begin()
        }, Math.max(0, due - this.clock.now()))
      }
    }
    // One due later than it stays: it looks again when it fires.
    if (this.periodicAt !== undefined && this.periodicAt <= periodicDue) return
    if (this.periodic !== undefined) this.clock.clearTimeout(this.periodic)
    this.periodicAt = periodicDue
    this.periodic = this.clock.setTimeout(() => {
      this.periodic = undefined
      this.periodicAt = undefined
      if (this.inFlight !== undefined) return // the run's end schedules again
      if (this.clock.now() >= this.periodicDue()) this.begin()
      else this.schedule()
    }, Math.max(0, periodicDue - this.clock.now()))
  }

  /** Starts a run now; a requested run's timer still armed is spent by it. */
  private begin (): void {
    if (this.stopped || this.inFlight !== undefined) return
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = undefined
    this.inFlight = this.execute()
  }

  /** Tokens at `now`: what the last run left plus one per minInterval since it ended, at most `burst`. */
  private tokensAt (now: number): number {
    if (this.lastEnd === undefined || this.minIntervalMs === 0) return this.burst
    return Math.min(this.burst, this.tokensLeft + (now - this.lastEnd) / this.minIntervalMs)
  }

  private async execute (): Promise<void> {
    this.tokensLeft = Math.max(0, this.tokensAt(this.clock.now()) - 1)
    this.requested = false
    this.retryAt = undefined
    try {
      // The async wrapper turns a synchronous throw into a rejection, so this always suspends and the
      // finally block cannot run before the caller has stored the in-flight promise.
      await (async () => { await this.fn() })()
    } catch (err) {
      try { this.onError(err) } catch {}
    } finally {
      this.runs++
      this.lastEnd = this.clock.now()
      this.inFlight = undefined
      this.schedule()
    }
  }
}
