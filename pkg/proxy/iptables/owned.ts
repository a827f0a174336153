// The per-service nat chains a sync leaves in the kernel, grouped by servicePortKey. Chain names hash
// the service's identity, so a service's chains never collide with another's; grouping lets a partial
// sync find the stale chains of the changed services without touching the other services' entries.
export class OwnedChains implements ReadonlySet<string> {
  private readonly byService: ReadonlyMap<string, readonly string[]>
  private index: Set<string> | undefined
  private count = -1

  constructor (byService: ReadonlyMap<string, readonly string[]> = new Map()) {
    this.byService = byService
  }

  /** The chains of one service, or undefined when it owns none. */
  chainsOf (key: string): readonly string[] | undefined {
    return this.byService.get(key)
  }

  services (): IterableIterator<[string, readonly string[]]> {
    return this.byService.entries()
  }

  /** A copy with some services' chains replaced (an empty list drops the service). */
  with (updates: ReadonlyMap<string, readonly string[]>): OwnedChains {
    const m = new Map(this.byService)
    for (const [k, v] of updates) {
      if (v.length === 0) m.delete(k)
      else m.set(k, v)
    }
    return new OwnedChains(m)
  }

  get size (): number {
    if (this.count < 0) {
      let n = 0
      for (const v of this.byService.values()) n += v.length
      this.count = n
    }
    return this.count
  }

  has (chain: string): boolean {
    if (this.index === undefined) this.index = new Set(this.values())
    return this.index.has(chain)
  }

  * values (): SetIterator<string> {
    for (const v of this.byService.values()) yield * v
  }

  keys (): SetIterator<string> { return this.values() }

  * entries (): SetIterator<[string, string]> {
    for (const v of this.values()) yield [v, v]
  }

  [Symbol.iterator] (): SetIterator<string> { return this.values() }

  forEach (fn: (value: string, key: string, set: ReadonlySet<string>) => void, thisArg?: unknown): void {
    for (const v of this.values()) fn.call(thisArg, v, v, this)
  }
}
