// Entry keys wanted by more than one service port (two Services on one VIP and port, a shared NodePort):
// a full render gives each to the first claimant in `state.services` order. A partial sync must end the
// same way, also when the owner goes, changes, or a new claimant comes earlier in that order. This finds
// the contested keys among a partial sync's changes, frees them, and names the unchanged service ports
// that must render again so the keys land where a full render puts them.
import type { DesiredState } from '../types.js'
import type { EntryClaims, ServiceObjects } from './objects.js'

/** A claims view that owns nothing: rendering through it lists every entry key a service port wants. */
export const UNCLAIMED: EntryClaims = { get: () => undefined, set: () => undefined }

export interface Contest {
  /** Unchanged service ports that render again (keeping their own uncontested keys). */
  readonly heirs: ReadonlySet<string>
  /** Changed and heir service ports in claim order; `changed` itself when nothing is contested. */
  readonly order: Iterable<string>
}

export interface ContestInput {
  readonly changed: ReadonlySet<string>
  /** Entry keys each changed service port still in the state wants now. */
  readonly wants: ReadonlyMap<string, readonly string[]>
  /** Keys the changed service ports held before this sync (already released from `claims`). */
  readonly released: readonly string[]
  /** Owners of every key; only unchanged service ports own keys at this point. */
  readonly claims: Map<string, string>
  /** Key → unchanged service ports that wanted it and lost it. */
  readonly waiting: ReadonlyMap<string, ReadonlySet<string>>
  readonly services: ReadonlyMap<string, ServiceObjects>
  readonly state: DesiredState
}

/** Frees the contested keys held by unchanged owners (mutating `claims`) and says who renders, in which order. */
export function settleContests (c: ContestInput): Contest {
  const contested = new Set<string>()
  const unchangedWaiter = (e: string): boolean => {
    for (const key of c.waiting.get(e) ?? []) if (!c.changed.has(key)) return true
    return false
  }
  for (const e of c.released) if (unchangedWaiter(e)) contested.add(e)
  const wanted = new Set<string>()
  for (const entries of c.wants.values()) {
    for (const e of entries) {
      if (wanted.has(e) || c.claims.has(e)) contested.add(e)
      wanted.add(e)
    }
  }
  if (contested.size === 0) return { heirs: new Set(), order: c.changed }

  const heirs = new Set<string>()
  for (const e of contested) {
    const owner = c.claims.get(e)
    if (owner !== undefined) heirs.add(owner)
    for (const key of c.waiting.get(e) ?? []) if (!c.changed.has(key)) heirs.add(key)
  }
  for (const key of heirs) {
    for (const e of c.services.get(key)?.entries ?? []) if (contested.has(e) && c.claims.get(e) === key) c.claims.delete(e)
  }
  // Removed service ports first (they claim nothing), then the state's order: one walk over every
  // service, paid only when a key is contested.
  const order: string[] = []
  for (const key of c.changed) if (!c.state.services.has(key)) order.push(key)
  for (const key of c.state.services.keys()) if (c.changed.has(key) || heirs.has(key)) order.push(key)
  return { heirs, order }
}
