// An in-memory Backend for tests of the policy code: records every sync and holds what a kernel would.
import type { Backend, DesiredServicePort, DesiredState, SyncResult } from './types.js'

export interface RecordedSync { readonly changed: string[] | null, readonly keys: string[] }

export class FakeBackend implements Backend {
  readonly name = 'fake'
  readonly syncs: RecordedSync[] = []
  /** What the "kernel" holds after the last successful sync. */
  programmed = new Map<string, DesiredServicePort>()
  /** Reject the next n syncs. */
  failNext = 0
  private flushed = false

  async sync (state: DesiredState, changed: ReadonlySet<string> | null): Promise<SyncResult> {
    this.syncs.push({ changed: changed === null ? null : [...changed].sort(), keys: [...state.services.keys()].sort() })
    if (this.failNext > 0) { this.failNext--; throw new Error('fake apply failure') }
    this.programmed = new Map(state.services)
    const n = state.services.size
    return { kind: changed === null ? 'full' : 'partial', summary: { services: changed === null ? n : changed.size } }
  }

  async cleanup (): Promise<void> { this.programmed.clear() }

  /** Simulates a firewall reload: the "kernel" forgets everything. */
  flush (): void { this.programmed.clear(); this.flushed = true }

  async rulesIntact (): Promise<boolean> {
    const intact = !this.flushed
    this.flushed = false
    return intact
  }
}
