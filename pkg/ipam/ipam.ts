// The Ipam verbs over any IpamStore: one reservation per (containerID, ifname) per range, an ownership
// record written around every allocation so DEL and GC recover from a crash at any step.
import { FerryError } from '../errors/errors.js'
import { pickNext, reservedIn } from './allocator.js'
import { bigintToIp, rangeLabel, rangeOf, resolveRanges, type ResolvedRange } from './range.js'
import type { Allocation, Attachment, Ipam, IpamRange, IpamStore, Owner } from './types.js'

export function sameAttachment (a: Attachment, b: Owner | null): boolean {
  return b !== null && b !== 'unknown' && a.containerID === b.containerID && a.ifname === b.ifname
}

function checkAttachment (a: Attachment): void {
  if (typeof a.containerID !== 'string' || a.containerID === '') throw new FerryError('FERRY_ERR_INVALID_OBJECT', 'IPAM attachment: containerID is empty')
  if (typeof a.ifname !== 'string' || a.ifname === '') throw new FerryError('FERRY_ERR_INVALID_OBJECT', `IPAM attachment ${a.containerID}: ifname is empty`)
}

/**
 * createIpam's twin for tests and other stores; openDiskIpam wires the disk store. No ranges is allowed for
 * release and gc, which go by the records and the entries' owners: ferry-cni's DEL and GC always open the
 * store that way, so a missing or broken node file never keeps them from freeing addresses.
 */
export function createIpam (store: IpamStore, configured: readonly IpamRange[]): Ipam {
  const ranges = configured.length === 0 ? [] : resolveRanges(configured)
  /** Where ranges are needed: an empty list is the same error resolveRanges gives. */
  const needRanges = (): void => { if (ranges.length === 0) resolveRanges(configured) }

  const toAllocation = (r: ResolvedRange, ip: string): Allocation =>
    ({ family: r.family, ip, prefix: r.prefix, gateway: r.gatewayText })

  /** The IPs a holds now: from its record, or by owner search when a crash left the record incomplete. */
  function held (a: Attachment, rec = store.readRecord(a)): string[] {
    if (rec === null) return []
    const ips = rec.complete ? rec.ips : store.listReserved()
    return ips.filter(ip => sameAttachment(a, store.owner(ip)))
  }

  /** One allocation per range, in range order, from the addresses a holds. */
  function byRange (ips: readonly string[]): Array<Allocation | undefined> {
    const out: Array<Allocation | undefined> = ranges.map(() => undefined)
    for (const ip of ips) {
      const hit = rangeOf(ranges, ip)
      if (hit !== undefined && out[hit.range.index] === undefined) out[hit.range.index] = toAllocation(hit.range, ip)
    }
    return out
  }

  function hint (r: ResolvedRange): bigint | null {
    const text = store.lastReserved(r.index)
    if (text === null) return null
    const hit = rangeOf([r], text)
    return hit === undefined ? null : hit.n
  }

  function allocateLocked (a: Attachment): Allocation[] {
    const rec = store.readRecord(a)
    const mine = held(a, rec)
    const have = byRange(mine)
    if (rec?.complete === true && have.every(x => x !== undefined)) return have as Allocation[]
    // Choose first, record second, create third: every entry a owns is then named in its record, so DEL and
    // GC never search, and a crash before the create leaves only a record naming an address a does not own.
    const chosen = new Map<ResolvedRange, bigint>()
    const lost = new Map<ResolvedRange, Set<bigint>>(ranges.map(r => [r, new Set<bigint>()]))
    const choose = (r: ResolvedRange): void => {
      const n = pickNext(store, r, chosen.get(r) ?? hint(r), lost.get(r))
      if (n === null) {
        throw new FerryError('FERRY_ERR_IPAM_EXHAUSTED', `no IP addresses available in range ${r.index}: ${rangeLabel(r)}`,
          { range: r.index, subnet: r.subnet, rangeStart: bigintToIp(r.start, r.family), rangeEnd: bigintToIp(r.end, r.family) })
      }
      chosen.set(r, n)
    }
    for (const r of ranges) if (have[r.index] === undefined) choose(r)
    const ips = (): string[] => [...mine, ...[...chosen].map(([r, n]) => bigintToIp(n, r.family))]
    store.writeRecord(a, { ips: ips(), complete: true })
    for (const r of chosen.keys()) {
      // Lost only when a broken lock let a hung holder create meanwhile: choose again, record, retry.
      while (!store.reserve(bigintToIp(chosen.get(r) ?? 0n, r.family), a)) {
        lost.get(r)?.add(chosen.get(r) ?? 0n)
        choose(r)
        store.writeRecord(a, { ips: ips(), complete: true })
      }
    }
    for (const [r, n] of chosen) {
      const ip = bigintToIp(n, r.family)
      store.setLastReserved(r.index, ip)
      have[r.index] = toAllocation(r, ip)
    }
    return have as Allocation[]
  }

  function releaseLocked (a: Attachment): number {
    let freed = 0
    for (const ip of held(a)) if (store.free(ip)) freed++
    store.deleteRecord(a)
    return freed
  }

  function gcLocked (valid: readonly Attachment[]): number {
    const keep = new Set(valid.map(v => `${v.containerID}\n${v.ifname}`))
    const live = (o: Owner | null): boolean => o !== null && o !== 'unknown' && keep.has(`${o.containerID}\n${o.ifname}`)
    let freed = 0
    // The IP entries' own owners decide, never a list reported from elsewhere (antrea#8240).
    for (const ip of store.listReserved()) {
      const o = store.owner(ip)
      if (o !== null && !live(o) && store.free(ip)) freed++
    }
    for (const a of store.listRecords()) if (!live(a)) store.deleteRecord(a)
    return freed
  }

  return {
    async allocate (a) {
      checkAttachment(a)
      needRanges()
      return await store.withLock(() => allocateLocked(a))
    },
    async release (a) {
      checkAttachment(a)
      await store.withLock(() => releaseLocked(a))
    },
    async gc (valid) {
      return await store.withLock(() => gcLocked(valid))
    },
    async reserved (a) {
      checkAttachment(a)
      needRanges()
      return await store.withLock(() => byRange(held(a)).filter((x): x is Allocation => x !== undefined))
    },
    async available () {
      needRanges()
      // Read without the lock: STATUS is informational, and entries appear and vanish atomically.
      return ranges.map(r => Number(r.size - BigInt(reservedIn(store, r).size)))
    },
  }
}
