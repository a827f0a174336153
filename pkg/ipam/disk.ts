// The on-disk IpamStore under <dataDir>/<network>/, laid out like host-local's so an operator reads it the
// same way: one file per reserved IP, created O_EXCL and holding "<containerID>\r\n<ifname>", and
// last_reserved_ip.<range>. ferry adds attachments/<cid>:<ifname> (the ownership record, see types.ts) and
// ferry.lock (see lock.ts). No fsync: after a power loss the runtime's GC is the recovery path, as for host-local.
import { closeSync, constants, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { FerryError, errorMessage } from '../errors/errors.js'
import { parseIP } from '../net/ip.js'
import { createIpam } from './ipam.js'
import { acquireFileLock, type FileLockOptions } from './lock.js'
import type { Attachment, AttachmentRecord, Ipam, IpamRange, IpamStore, Owner } from './types.js'

export interface DiskStoreOptions {
  /** e.g. /var/lib/cni/networks */
  readonly dataDir: string
  /** The CNI network name: the store is <dataDir>/<network>/. */
  readonly network: string
  readonly lock?: FileLockOptions
}

function errno (e: unknown): string | undefined { return (e as NodeJS.ErrnoException).code }

function io<T> (what: string, path: string, fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    if (e instanceof FerryError) throw e
    throw new FerryError('FERRY_ERR_IPAM_STORE', `IPAM store: cannot ${what} ${path}: ${errorMessage(e)}`, { path }, { cause: e })
  }
}

/** Reads a file, or null when it does not exist. */
function readOrNull (path: string): string | null {
  return io('read', path, () => {
    try { return readFileSync(path, 'utf8') } catch (e) { if (errno(e) === 'ENOENT') return null; throw e }
  })
}

/** An IP entry's name is its canonical address; lock, hints and the records folder never parse as one. */
function isIpName (name: string): boolean {
  const c = name.charCodeAt(0)
  const hex = (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || c === 58
  return hex && parseIP(name)?.ip === name
}

export class DiskIpamStore implements IpamStore {
  readonly dir: string
  private readonly records: string
  private readonly lockPath: string
  private readonly lockOptions: FileLockOptions
  private ready = false
  private queue: Promise<unknown> = Promise.resolve()

  constructor (o: DiskStoreOptions) {
    if (o.network === '' || o.network === '.' || o.network === '..' || o.network.includes('/') || o.network.includes('\0')) {
      throw new FerryError('FERRY_ERR_IPAM_STORE', `IPAM store: network name ${JSON.stringify(o.network)} cannot name a folder`)
    }
    this.dir = join(o.dataDir, o.network)
    this.records = join(this.dir, 'attachments')
    this.lockPath = join(this.dir, 'ferry.lock')
    this.lockOptions = o.lock ?? {}
  }

  /** Serialises this process's calls in memory, then excludes other processes with the lock file. */
  async withLock<T> (fn: () => T): Promise<T> {
    const run = this.queue.then(async () => {
      if (!this.ready) {
        io('create', this.records, () => mkdirSync(this.records, { recursive: true, mode: 0o755 }))
        this.ready = true
      }
      const release = await acquireFileLock(this.lockPath, this.lockOptions)
      try { return fn() } finally { release() }
    })
    this.queue = run.catch(() => undefined)
    return await run
  }

  reserve (ip: string, a: Attachment): boolean {
    const path = join(this.dir, ip)
    return io('reserve', path, () => {
      let fd: number
      try { fd = openSync(path, 'wx', 0o600) } catch (e) { if (errno(e) === 'EEXIST') return false; throw e }
      try { writeSync(fd, `${a.containerID}\r\n${a.ifname}`) } finally { closeSync(fd) }
      return true
    })
  }

  owner (ip: string): Owner | null {
    const text = readOrNull(join(this.dir, ip))
    if (text === null) return null
    const cut = text.indexOf('\r\n')
    if (cut <= 0) return 'unknown' // empty: the writer died between create and write; or a bare legacy id
    return { containerID: text.slice(0, cut), ifname: text.slice(cut + 2).trim() }
  }

  free (ip: string): boolean {
    const path = join(this.dir, ip)
    return io('free', path, () => {
      try { unlinkSync(path); return true } catch (e) { if (errno(e) === 'ENOENT') return false; throw e }
    })
  }

  listReserved (): string[] {
    const names = io('list', this.dir, () => {
      try { return readdirSync(this.dir) } catch (e) { if (errno(e) === 'ENOENT') return []; throw e }
    })
    return names.filter(isIpName)
  }

  private recordPath (a: Attachment): string {
    const name = `${encodeURIComponent(a.containerID)}:${encodeURIComponent(a.ifname)}`
    if (name.length > 250) throw new FerryError('FERRY_ERR_IPAM_STORE', `IPAM store: attachment ${a.containerID}/${a.ifname} is too long to name a file`)
    return join(this.records, name)
  }

  readRecord (a: Attachment): AttachmentRecord | null {
    const text = readOrNull(this.recordPath(a))
    if (text === null) return null
    try {
      const v = JSON.parse(text) as { ips?: unknown, complete?: unknown }
      if (Array.isArray(v.ips) && v.ips.every(x => typeof x === 'string') && typeof v.complete === 'boolean') {
        return { ips: v.ips as string[], complete: v.complete }
      }
    } catch {}
    return { ips: [], complete: false } // unreadable: make readers search the entries by owner
  }

  writeRecord (a: Attachment, r: AttachmentRecord): void {
    // Written in place, not aside-and-renamed: ext4 flushes a rename over (or a truncate of) a file with data
    // (auto_da_alloc), ~3 ms here against ~0.4 ms for a create. A torn record reads as incomplete, and
    // readers of an incomplete record search the entries by owner, so nothing is lost.
    const path = this.recordPath(a)
    io('write', path, () => writeFileSync(path, JSON.stringify({ ips: r.ips, complete: r.complete }), { mode: 0o600 }))
  }

  deleteRecord (a: Attachment): void {
    const path = this.recordPath(a)
    io('delete', path, () => { try { unlinkSync(path) } catch (e) { if (errno(e) !== 'ENOENT') throw e } })
  }

  listRecords (): Attachment[] {
    const names = io('list', this.records, () => {
      try { return readdirSync(this.records) } catch (e) { if (errno(e) === 'ENOENT') return []; throw e }
    })
    const out: Attachment[] = []
    for (const name of names) {
      const cut = name.indexOf(':')
      if (cut < 0) continue
      try {
        out.push({ containerID: decodeURIComponent(name.slice(0, cut)), ifname: decodeURIComponent(name.slice(cut + 1)) })
      } catch {} // not a name ferry wrote
    }
    return out
  }

  lastReserved (range: number): string | null {
    const text = readOrNull(join(this.dir, `last_reserved_ip.${range}`))
    const ip = text === null ? null : parseIP(text.trim())
    return ip?.ip ?? null
  }

  setLastReserved (range: number, ip: string): void {
    // Overwritten in place, padded to a fixed width: no truncate, so no ext4 flush (see writeRecord).
    const path = join(this.dir, `last_reserved_ip.${range}`)
    io('write', path, () => {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o600)
      try { writeSync(fd, ip.padEnd(40, ' '), 0) } finally { closeSync(fd) }
    })
  }
}

export function openDiskStore (o: DiskStoreOptions): DiskIpamStore {
  return new DiskIpamStore(o)
}

/** The pod IP allocator ferry-cni uses: the store is <dataDir>/<network>/. Throws FERRY_ERR_IPAM_RANGE on a bad range. */
export function openDiskIpam (o: { dataDir: string, network: string, ranges: readonly IpamRange[], lock?: FileLockOptions }): Ipam {
  return createIpam(new DiskIpamStore(o), o.ranges)
}
