// Service VIPs bound to the dummy device ferry-ipvs0, so IPVS (which intercepts only traffic to local
// addresses) sees them. The binder keeps its own picture of what is bound: the kernel is read at start,
// after a failure and when asked (the device vanished), never on a normal sync.
import type { Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { Links } from '../../netlink/links.js'

export const IPVS_DEVICE = 'ferry-ipvs0'
/** Address changes in flight at once; their acks must fit the socket's receive buffer. */
const WINDOW = 64

export class VipBinder {
  private index = -1
  private bound: Set<string> | null = null

  constructor (private readonly o: { links: Links, family: IPFamily, log: Logger, device?: string }) {}

  get device (): string { return this.o.device ?? IPVS_DEVICE }

  /** The next call reads the kernel again (after a failure, or when the device may have gone). */
  resync (): void { this.bound = null }

  /** VIPs bound now (as last read or set). */
  current (): ReadonlySet<string> { return this.bound ?? new Set() }

  private async load (): Promise<Set<string>> {
    if (this.bound !== null) return this.bound
    const link = await this.o.links.linkByName(this.device) ?? await this.o.links.createDummy(this.device)
    this.index = link.index
    const bound = new Set<string>()
    // Only host routes are VIPs: anything else someone put on the device is left alone.
    const full = this.o.family === 'IPv4' ? 32 : 128
    for (const a of await this.o.links.addresses(link.index)) if (a.family === this.o.family && a.prefix === full) bound.add(a.ip)
    this.bound = bound
    return bound
  }

  /** Binds every wanted VIP not bound yet (before the virtual servers need them); returns how many. */
  async bind (wanted: ReadonlySet<string>): Promise<number> {
    const bound = await this.load()
    const prefix = this.o.family === 'IPv4' ? 32 : 128
    const missing = [...wanted].filter(ip => !bound.has(ip))
    await this.each(missing, async ip => { await this.o.links.addAddress(this.index, ip, prefix); bound.add(ip) })
    return missing.length
  }

  /** Unbinds VIPs no longer wanted (after a successful sync, so a failed one never strands traffic). */
  async unbindStale (wanted: ReadonlySet<string>): Promise<number> {
    const bound = await this.load()
    const prefix = this.o.family === 'IPv4' ? 32 : 128
    const stale = [...bound].filter(ip => !wanted.has(ip))
    await this.each(stale, async ip => { await this.o.links.deleteAddress(this.index, ip, prefix); bound.delete(ip) })
    return stale.length
  }

  /** Unbinds these VIPs where bound (a partial sync: those no service port wants any more). */
  async unbind (ips: Iterable<string>): Promise<number> {
    const bound = await this.load()
    const prefix = this.o.family === 'IPv4' ? 32 : 128
    const stale = [...ips].filter(ip => bound.has(ip))
    await this.each(stale, async ip => { await this.o.links.deleteAddress(this.index, ip, prefix); bound.delete(ip) })
    return stale.length
  }

  /**
   * Runs the changes with up to WINDOW requests in flight on the one socket (requests are matched to
   * replies by sequence number): at start-up, 10k VIPs one round trip at a time took seconds. Any
   * failure makes the next call read the kernel again.
   */
  private async each (ips: readonly string[], fn: (ip: string) => Promise<void>): Promise<void> {
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < ips.length) await fn(ips[next++] as string)
    }
    try {
      await Promise.all(Array.from({ length: Math.min(WINDOW, ips.length) }, worker))
    } catch (e) {
      this.bound = null
      throw e
    }
  }
}
