// Proxy health as kube-proxy's /healthz sees it: a family is unhealthy once a queued change has
// waited longer than healthTimeout (2 x syncPeriod) without a successful sync.
import type { Node } from '../api/types.js'
import type { IPFamily } from '../net/ip.js'

export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler'

interface FamilyHealth {
  oldestQueued: number | undefined
  lastUpdated: number | undefined
  /** A sync has taken its changes and not yet ended. */
  syncing: boolean
  /** The first change queued since that sync took its changes: the sync does not carry it. */
  queuedDuringSync: number | undefined
}

export interface HealthReport {
  readonly healthy: boolean
  /** The current time when healthy, else lastSynced. */
  readonly lastUpdated: string
  /**
   * When the rules were last synced: of the stuck families when unhealthy, else of them all. What a 503
   * for any reason (the Node too) reports as lastUpdated, as kube-proxy does.
   */
  readonly lastSynced: string
  readonly currentTime: string
  readonly status: Record<string, { lastUpdated: string, healthy: boolean }>
}

export class ProxyHealth {
  private readonly families = new Map<IPFamily, FamilyHealth>()

  constructor (private readonly healthTimeoutMs: number, private readonly now: () => number = Date.now) {}

  addFamily (f: IPFamily): void { this.families.set(f, { oldestQueued: undefined, lastUpdated: undefined, syncing: false, queuedDuringSync: undefined }) }

  /** A change is waiting to be applied. */
  queued (f: IPFamily): void {
    const h = this.families.get(f)
    if (h === undefined) return
    const now = this.now()
    if (h.oldestQueued === undefined) h.oldestQueued = now
    if (h.syncing && h.queuedDuringSync === undefined) h.queuedDuringSync = now
  }

  /**
   * A sync has taken every change queued so far. Marked by call order, not by time: a change in the
   * same millisecond but after this is not in the sync, and one just before it is.
   */
  syncStarting (f: IPFamily): void {
    const h = this.families.get(f)
    if (h === undefined) return
    h.syncing = true
    h.queuedDuringSync = undefined
  }

  /**
   * A sync succeeded: what it took is in the kernel. Changes queued while it ran stay queued from
   * when they came (kube-proxy clears them too, so a later sync failing for good was never reported).
   */
  updated (f: IPFamily): void {
    const h = this.families.get(f)
    if (h === undefined) return
    h.lastUpdated = this.now()
    h.oldestQueued = h.syncing ? h.queuedDuringSync : undefined
    h.syncing = false
    h.queuedDuringSync = undefined
  }

  /** A sync failed: everything queued stays queued from the oldest change on. */
  syncFailed (f: IPFamily): void {
    const h = this.families.get(f)
    if (h === undefined) return
    h.syncing = false
    h.queuedDuringSync = undefined
  }

  hasSynced (f: IPFamily): boolean { return this.families.get(f)?.lastUpdated !== undefined }

  report (): HealthReport {
    const now = this.now()
    const status: Record<string, { lastUpdated: string, healthy: boolean }> = {}
    let healthy = true
    let lastAll = 0
    let lastStuck = 0
    for (const [f, h] of this.families) {
      const ok = h.oldestQueued === undefined || now - h.oldestQueued < this.healthTimeoutMs
      healthy &&= ok
      lastAll = Math.max(lastAll, h.lastUpdated ?? 0)
      if (!ok) lastStuck = Math.max(lastStuck, h.lastUpdated ?? 0)
      status[f] = { lastUpdated: new Date(ok ? now : (h.lastUpdated ?? 0)).toISOString(), healthy: ok }
    }
    const lastSynced = new Date(healthy ? lastAll : lastStuck).toISOString()
    return { healthy, lastUpdated: healthy ? new Date(now).toISOString() : lastSynced, lastSynced, currentTime: new Date(now).toISOString(), status }
  }
}

/**
 * KEP-3836: a node being deleted, or drained by the autoscaler, should get no new LB traffic.
 * `knowsNodes` is false when the source carries no Node objects at all (a standalone manifest
 * directory): then there is nothing to judge and the node is eligible.
 */
export function nodeEligible (node: Node | undefined, knowsNodes: boolean): boolean {
  if (node === undefined) return !knowsNodes
  if (node.metadata.deletionTimestamp !== undefined) return false
  return !(node.spec.taints ?? []).some(t => t.key === TO_BE_DELETED_TAINT)
}
