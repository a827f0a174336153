// What both backends share: a keyed table of kernel entries (desired against what is believed to be in
// the kernel), the diff between the two, and one error for a sync whose steps partly failed. Entries that
// failed stay out of `programmed`, so the next setPeers or reconcile retries exactly those.
import { FerryError, errorMessage } from '../errors/errors.js'

export class EntryTable<V> {
  desired = new Map<string, V>()
  readonly programmed = new Map<string, V>()
  constructor (private readonly same: (a: V, b: V) => boolean) {}

  /** Programmed entries no longer desired. */
  stale (): Array<[string, V]> {
    return [...this.programmed].filter(([k]) => !this.desired.has(k))
  }

  /** Desired entries absent from the kernel or different there, with what is there now. */
  missing (): Array<[string, V, V | undefined]> {
    const out: Array<[string, V, V | undefined]> = []
    for (const [k, v] of this.desired) {
      const have = this.programmed.get(k)
      if (have === undefined || !this.same(have, v)) out.push([k, v, have])
    }
    return out
  }

  /** Whether `key` is programmed as desired. */
  done (key: string): boolean {
    const want = this.desired.get(key)
    const have = this.programmed.get(key)
    return want !== undefined && have !== undefined && this.same(have, want)
  }

  /** Replaces `programmed` for the keys that matter (desired or programmed) by what the kernel holds. */
  refresh (kernel: (key: string, believed: V | undefined) => V | undefined): void {
    for (const k of new Set([...this.desired.keys(), ...this.programmed.keys()])) {
      const v = kernel(k, this.programmed.get(k) ?? this.desired.get(k))
      if (v === undefined) this.programmed.delete(k)
      else this.programmed.set(k, v)
    }
  }

  values (): V[] { return [...this.programmed.values()] }
}

/** Collects step failures: the sync goes on with the other entries, then throws one error (the caller logs it). */
export class Failures {
  private readonly list: Array<{ what: string, error: unknown }> = []

  async step (what: string, fn: () => Promise<void>): Promise<boolean> {
    try {
      await fn()
      return true
    } catch (error) {
      this.list.push({ what, error })
      return false
    }
  }

  throwIfAny (backend: string): void {
    if (this.list.length === 0) return
    const first = this.list[0]
    const steps = this.list.map(f => `${f.what}: ${errorMessage(f.error)}`)
    throw new FerryError('FERRY_ERR_APPLY', `${backend}: ${this.list.length} step(s) failed, first: ${steps[0] ?? ''}`, { steps }, { cause: first?.error })
  }
}
