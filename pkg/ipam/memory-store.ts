// The in-memory IpamStore: the test double that ships beside the disk store (host-local's fake_store).
import type { Attachment, AttachmentRecord, IpamStore, Owner } from './types.js'

const key = (a: Attachment): string => `${a.containerID}\n${a.ifname}`

export class MemoryIpamStore implements IpamStore {
  readonly entries = new Map<string, Owner>()
  readonly records = new Map<string, { a: Attachment, r: AttachmentRecord }>()
  readonly hints = new Map<number, string>()
  /** Counts owner lookups, so tests can see how hard the allocator probed. */
  ownerCalls = 0
  private queue: Promise<unknown> = Promise.resolve()

  async withLock<T> (fn: () => T): Promise<T> {
    const run = this.queue.then(fn)
    this.queue = run.catch(() => undefined)
    return await run
  }

  reserve (ip: string, a: Attachment): boolean {
    if (this.entries.has(ip)) return false
    this.entries.set(ip, { containerID: a.containerID, ifname: a.ifname })
    return true
  }

  owner (ip: string): Owner | null {
    this.ownerCalls++
    return this.entries.get(ip) ?? null
  }
  free (ip: string): boolean { return this.entries.delete(ip) }
  listReserved (): string[] { return [...this.entries.keys()] }
  readRecord (a: Attachment): AttachmentRecord | null { return this.records.get(key(a))?.r ?? null }
  writeRecord (a: Attachment, r: AttachmentRecord): void { this.records.set(key(a), { a, r: { ips: [...r.ips], complete: r.complete } }) }
  deleteRecord (a: Attachment): void { this.records.delete(key(a)) }
  listRecords (): Attachment[] { return [...this.records.values()].map(x => x.a) }
  lastReserved (range: number): string | null { return this.hints.get(range) ?? null }
  setLastReserved (range: number, ip: string): void { this.hints.set(range, ip) }
}
