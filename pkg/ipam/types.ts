// The IPAM contract ferry-cni programs against, and the small Store the allocation logic runs over
// (host-local's split: pure allocation apart from storage, with an in-memory store for tests).

export interface IpamRange {
  /** CIDR, e.g. 10.244.1.0/24 or fd00:10:244:1::/64; host bits are masked off. */
  readonly subnet: string
  /** Default: the subnet's first address (network + 1). Never handed out. */
  readonly gateway?: string
  /** Default: network + 1. */
  readonly rangeStart?: string
  /** Default: broadcast − 1 (IPv4), the last address (IPv6). */
  readonly rangeEnd?: string
}

export interface Allocation { readonly family: 'IPv4' | 'IPv6', readonly ip: string, readonly prefix: number, readonly gateway: string }

export interface Attachment { readonly containerID: string, readonly ifname: string }

export interface Ipam {
  /** Idempotent per (containerID, ifname): the same attachment gets its existing reservation back. One IP per range (family). */
  allocate (a: Attachment): Promise<Allocation[]>
  /** Releases every reservation of the attachment; none is not an error. */
  release (a: Attachment): Promise<void>
  /** Releases every reservation whose attachment is not in `valid`; returns how many IPs were freed. */
  gc (valid: readonly Attachment[]): Promise<number>
  /** The reservations of one attachment (CHECK), or [] if none. */
  reserved (a: Attachment): Promise<Allocation[]>
  /** Free addresses per range, for STATUS (0 in any range → the pool is exhausted). */
  available (): Promise<number[]>
}

/**
 * What allocate wrote for one attachment, *before* creating its IP entries: every entry an attachment owns is
 * named in its record, so an attachment without one owns nothing (DEL of an unknown attachment costs one
 * failed open). A record may name an address the attachment does not own (a crash before the create); readers
 * check each entry's owner. `complete: false` (or an unreadable record) makes readers search entries by owner.
 */
export interface AttachmentRecord { readonly ips: readonly string[], readonly complete: boolean }

/** Who holds one IP: the attachment, or 'unknown' for an entry with no readable owner (a crash between create and write). */
export type Owner = Attachment | 'unknown'

/**
 * Storage for the allocator. Every method but withLock runs inside withLock and is synchronous: a CNI process
 * has nothing else to do meanwhile, and sync fs calls cost a few µs against ~50 µs through the libuv pool.
 */
export interface IpamStore {
  /** Runs fn with every other process (and call) that uses the same store excluded. */
  withLock<T> (fn: () => T): Promise<T>
  /** Creates the entry for ip owned by a; false if it already exists (the O_EXCL create is what makes IPs unique). */
  reserve (ip: string, a: Attachment): boolean
  /** The owner of ip, or null when ip is free. */
  owner (ip: string): Owner | null
  /** Frees ip; false if it was already free. */
  free (ip: string): boolean
  /** Every reserved IP (canonical text), in no particular order. */
  listReserved (): string[]
  readRecord (a: Attachment): AttachmentRecord | null
  writeRecord (a: Attachment, r: AttachmentRecord): void
  deleteRecord (a: Attachment): void
  listRecords (): Attachment[]
  /** The round-robin hint of one range (by index in the configured ranges), or null. */
  lastReserved (range: number): string | null
  setLastReserved (range: number, ip: string): void
}
