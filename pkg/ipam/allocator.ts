// Which address comes next: pure round-robin over one range, and the probe loop that claims it from a store.
import { bigintToIp, ipToBigint, type ResolvedRange } from './range.js'
import type { IpamStore } from './types.js'

/**
 * Every allocatable address of r exactly once: from the one after `last` (or rangeStart when there is no
 * usable hint), up to rangeEnd, wrapping to rangeStart; the gateway is skipped. Freed addresses therefore
 * wait a whole lap before reuse, as with host-local.
 */
export function * candidates (r: ResolvedRange, last: bigint | null): Generator<bigint> {
  let n = last !== null && last >= r.start && last < r.end ? last + 1n : r.start
  const span = r.end - r.start + 1n
  for (let i = 0n; i < span; i++, n++) {
    if (n > r.end) n = r.start
    if (n !== r.gateway) yield n
  }
}

/** The first candidate after `last` that `taken` does not hold; null when the range is full. */
export function nextFree (r: ResolvedRange, last: bigint | null, taken: (n: bigint) => boolean): bigint | null {
  for (const n of candidates(r, last)) if (!taken(n)) return n
  return null
}

/** Probes one entry at a time before listing the store: enough for a sparse pool, cheap against a readdir. */
export const PROBES_BEFORE_LISTING = 32

/**
 * The next free address of r after `last`, under the store's lock, skipping `skip` (addresses already lost to
 * a race). Candidates are probed one lookup each; after PROBES_BEFORE_LISTING misses (a nearly full pool) the
 * store is listed once and reserved addresses are skipped in memory, so a full /16 costs one readdir, not
 * 65 000 lookups. The caller claims the result with store.reserve, whose exclusive create has the last word.
 */
export function pickNext (store: IpamStore, r: ResolvedRange, last: bigint | null, skip: ReadonlySet<bigint> = new Set()): bigint | null {
  let misses = 0
  let known = null as Set<bigint> | null
  for (const n of candidates(r, last)) {
    if (skip.has(n) || known?.has(n) === true) continue
    if (known === null) {
      if (store.owner(bigintToIp(n, r.family)) === null) return n
      if (++misses === PROBES_BEFORE_LISTING) {
        known = reservedIn(store, r)
        for (const x of skip) known.add(x)
        if (BigInt(known.size) >= r.size) return null
      }
    } else return n
  }
  return null
}

/** The reserved addresses inside r's allocatable span (the gateway excluded). */
export function reservedIn (store: IpamStore, r: ResolvedRange): Set<bigint> {
  const out = new Set<bigint>()
  const v6 = r.family === 'IPv6'
  for (const ip of store.listReserved()) {
    if (ip.includes(':') !== v6) continue
    const n = ipToBigint(ip, r.family)
    if (n >= r.start && n <= r.end && n !== r.gateway) out.add(n)
  }
  return out
}
