// Service VIPs bound to the dummy device ferry-ipvs0, so IPVS (which intercepts only traffic to local
// addresses) sees them. The binder keeps its own picture of what is bound: the kernel is read at start,
// after a failure and when asked (the device vanished), never on a normal sync.
import { constants } from 'node:os'
import { FerryError } from '../../errors/errors.js'
import type { Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { Links } from '../../netlink/links.js'
import { errnoName } from '../../netlink/pipeline.js'

export const IPVS_DEVICE = 'ferry-ipvs0'
const { EEXIST, EADDRNOTAVAIL, ENODEV } = constants.errno

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
    const missing = [...wanted].filter(ip => !bound.has(ip))
    await this.change('add', missing, ip => { bound.add(ip) })
    return missing.length
  }

  /** Unbinds VIPs no longer wanted (after a successful sync, so a failed one never strands traffic). */
  async unbindStale (wanted: ReadonlySet<string>): Promise<number> {
    const bound = await this.load()
    const stale = [...bound].filter(ip => !wanted.has(ip))
    await this.change('delete', stale, ip => { bound.delete(ip) })
    return stale.length
  }

  /** Unbinds these VIPs where bound (a partial sync: those no service port wants any more). */
  async unbind (ips: Iterable<string>): Promise<number> {
    const bound = await this.load()
    const stale = [...ips].filter(ip => bound.has(ip))
    await this.change('delete', stale, ip => { bound.delete(ip) })
    return stale.length
  }

  /**
   * Sends the changes pipelined on one socket (links.changeAddresses): at start-up, 10k VIPs one round
   * trip at a time took seconds. An add that finds the address there, or a delete that finds it gone, is
   * done. Any other refusal, or a failed socket, makes the next call read the kernel again.
   */
  private async change (op: 'add' | 'delete', ips: readonly string[], done: (ip: string) => void): Promise<void> {
    if (ips.length === 0) return
    const prefix = this.o.family === 'IPv4' ? 32 : 128
    let errnos: number[]
    try {
      errnos = await this.o.links.changeAddresses(ips.map(ip => ({ op, index: this.index, ip, prefix })))
    } catch (e) {
      this.bound = null
      throw e
    }
    // A delete on a vanished device is done too: its addresses went with it.
    const fine = (errno: number): boolean => errno === 0 || (op === 'add' ? errno === EEXIST : errno === EADDRNOTAVAIL || errno === ENODEV)
    const failed: string[] = []
    ips.forEach((ip, i) => {
      const errno = errnos[i] ?? 0
      if (fine(errno)) done(ip)
      else failed.push(`${ip}: ${errnoName(errno)}`)
    })
    if (failed.length === 0) return
    this.bound = null
    throw new FerryError('FERRY_ERR_NETLINK', `${op === 'add' ? 'binding' : 'unbinding'} ${failed.length} VIP(s) on ${this.device} failed; first: ${failed[0] ?? ''}`,
      { device: this.device, failed: failed.slice(0, 20) })
  }
}
