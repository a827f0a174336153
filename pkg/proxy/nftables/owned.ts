// What the kernel holds once a rendered transaction is applied, kept in memory so a partial sync diffs
// against it and never lists the kernel (NFTABLES.md §5 cross-cutting 3): per service port its objects,
// who owns each entry key, the refcounts of shared elements (hairpin, cluster-ips), the shared objects
// that exist, and the flushed chains still waiting for their deferred `delete chain`.
//
// A partial render updates these maps in place (copying 10k-entry maps per sync cost more than the
// sync itself) and hands them on in a new NftOwned; the one it read from is then consumed and may not be
// rendered from again. A failed transaction therefore leaves no usable ownership: a full sync follows.
import type { IPFamily } from '../../net/ip.js'
import type { ServiceObjects } from './objects.js'

export interface NftCounts {
  readonly rules: number
  readonly elements: number
  readonly chains: number
}

export class NftOwned {
  private used = false
  constructor (
    readonly family: IPFamily,
    /** Keyed by servicePortKey. */
    readonly services: Map<string, ServiceObjects>,
    /** Entry key ("10.96.0.10 . tcp . 80", "tcp . 30080") → the servicePortKey that owns it. */
    readonly claims: Map<string, string>,
    /** Entry key → the other service ports that want it (their `lost`), to hand it to when it is freed. */
    readonly waiting: Map<string, Set<string>>,
    /** countedKey of a counted element (ServiceObjects.counted) → how many service ports need it (it exists while > 0). */
    readonly counted: Map<string, number>,
    /** IDs of the shared maps and chains that exist (names.ts); they stay until the next full sync. */
    readonly shared: Set<string>,
    /** Per-service chains flushed by a partial sync that still exist, waiting for a later `delete chain`. */
    readonly stale: Set<string>,
    /** Everything the table holds (stale chains excluded). */
    readonly totals: NftCounts,
  ) {}

  static empty (family: IPFamily): NftOwned {
    return new NftOwned(family, new Map(), new Map(), new Map(), new Map(), new Set(), new Set(), { rules: 0, elements: 0, chains: 0 })
  }

  /** Whether a partial render already took this ownership over. */
  get consumed (): boolean { return this.used }

  /** For the renderer: hands the state on; a second take is a bug (it would diff against a future). */
  take (): this {
    if (this.used) throw new Error('NftOwned already consumed by a partial render: render from its successor')
    this.used = true
    return this
  }

  /** Drops chains from the stale list once a `delete chain` transaction removed them. */
  forgetStale (deleted: Iterable<string>): void {
    for (const c of deleted) this.stale.delete(c)
  }
}

/** The `counted` map's key of one counted element: its map and element joined by NUL, which neither holds. */
export function countedKey (map: string, element: string): string {
  return `${map}\0${element}`
}

/** A countedKey's map and element. */
export function countedParts (key: string): [map: string, element: string] {
  const cut = key.indexOf('\0')
  return [key.slice(0, cut), key.slice(cut + 1)]
}

/** Records (d = +1) or drops (d = -1) a service port's wish for the entry keys it lost. */
export function wait (waiting: Map<string, Set<string>>, key: string, o: ServiceObjects, d: 1 | -1): void {
  for (const entry of o.lost) {
    let keys = waiting.get(entry)
    if (d > 0) {
      if (keys === undefined) waiting.set(entry, keys = new Set())
      keys.add(key)
    } else if (keys !== undefined) {
      keys.delete(key)
      if (keys.size === 0) waiting.delete(entry)
    }
  }
}

/** Rules, elements and chains one service port owns. */
export function countsOf (o: ServiceObjects): NftCounts {
  let rules = 0
  for (const c of o.chains) rules += c.rules.length
  return { rules, elements: o.elements.length / 2, chains: o.chains.length }
}
