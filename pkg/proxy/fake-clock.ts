// A manual Clock for tests, shipped beside the runner (like undici's MockAgent): time moves only in advance().
import type { Clock } from './runner.js'

interface FakeTimer { readonly id: number, readonly at: number, readonly fn: () => void }

/** Lets every queued microtask and promise continuation run (setImmediate runs after they drain). */
async function settle (): Promise<void> {
  await new Promise<void>(resolve => setImmediate(resolve))
}

export class FakeClock implements Clock {
  private time: number
  private nextId = 1
  private timers: FakeTimer[] = []

  constructor (start = 0) {
    this.time = start
  }

  now (): number {
    return this.time
  }

  setTimeout (fn: () => void, ms: number): unknown {
    const t = { id: this.nextId++, at: this.time + Math.max(0, ms), fn }
    this.timers.push(t)
    return t.id
  }

  clearTimeout (h: unknown): void {
    this.timers = this.timers.filter(t => t.id !== h)
  }

  /** Timers not yet fired. */
  pendingTimers (): number {
    return this.timers.length
  }

  /** When the next timer fires, or undefined. */
  nextTimerAt (): number | undefined {
    return this.next()?.at
  }

  private next (): FakeTimer | undefined {
    let best: FakeTimer | undefined
    // Earliest due first; equal due times fire in the order they were set.
    for (const t of this.timers) if (best === undefined || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t
    return best
  }

  /**
   * Moves time forward by `ms`, firing due timers in order (time reads as each timer's due time while it
   * runs) and letting promises settle after each, so timers set by their continuations fire too if due.
   */
  async advance (ms: number): Promise<void> {
    const target = this.time + Math.max(0, ms)
    await settle()
    for (;;) {
      const t = this.next()
      if (t === undefined || t.at > target) break
      this.timers = this.timers.filter(x => x !== t)
      this.time = Math.max(this.time, t.at)
      t.fn()
      await settle()
    }
    this.time = target
    await settle()
  }

  /** Lets pending promises settle without moving time. */
  async flush (): Promise<void> {
    await this.advance(0)
  }
}
