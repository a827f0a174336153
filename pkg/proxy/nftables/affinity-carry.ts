// Puts remembered ClientIP-affinity clients back after a full sync replaced the table: for every affinity
// set the new table declares and the old one held, `add element ... { ip expires Nms }`, capped at the
// set's timeout (the Service's may have shrunk). Sets are named by Service and endpoint (names.ts), so a
// client comes back only to the endpoint it was remembered for.
import type { RememberedClient } from './affinity-read.js'
import { familyWords } from './names.js'
import type { NftOwned } from './owned.js'
import type { IPFamily } from '../../net/ip.js'

const BATCH = 500

/** The `add element` lines for the remembered clients of the sets `owned` declares ('' when none). */
export function carryLines (family: IPFamily, owned: NftOwned, remembered: ReadonlyMap<string, readonly RememberedClient[]>): string {
  if (remembered.size === 0) return ''
  const obj = familyWords(family).obj
  const out: string[] = []
  for (const o of owned.services.values()) {
    for (const s of o.sets) {
      const clients = remembered.get(s.name)
      if (clients === undefined) continue
      const timeout = /timeout (\d+)s/.exec(s.body)
      const capMs = timeout === null ? Infinity : Number(timeout[1]) * 1000
      for (let i = 0; i < clients.length; i += BATCH) {
        const items = clients.slice(i, i + BATCH).map(c => `${c.ip} expires ${Math.max(1, Math.min(c.expiresMs, capMs))}ms`)
        out.push(`add element ${obj} ${s.name} { ${items.join(', ')} }`)
      }
    }
  }
  return out.length === 0 ? '' : out.join('\n') + '\n'
}

/** A full render's pieces, then the carried clients once the render (and so the set list) is complete. */
export function * withRemembered<R extends { readonly owned: NftOwned }> (pieces: Generator<string, R, undefined>, family: IPFamily,
  remembered: ReadonlyMap<string, readonly RememberedClient[]>): Generator<string, R, undefined> {
  const r = yield * pieces
  const carried = carryLines(family, r.owned, remembered)
  if (carried !== '') yield carried
  return r
}
