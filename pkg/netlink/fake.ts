// Links in memory, with the kernel's answers (EEXIST and missing addresses tolerated by the same calls),
// for unit tests of code that binds addresses.
import { FerryError } from '../errors/errors.js'
import { parseIP } from '../net/ip.js'
import type { AddressInfo, LinkInfo, Links } from './links.js'

export class FakeLinks implements Links {
  private readonly links = new Map<string, LinkInfo>()
  private readonly addrs: AddressInfo[] = []
  private nextIndex = 2
  /** Calls by method name. */
  readonly calls = new Map<string, number>()
  /** Whether dummy devices can be created (the host module may be missing). */
  dummyAvailable = true

  private count (name: string): void { this.calls.set(name, (this.calls.get(name) ?? 0) + 1) }

  async linkByName (name: string): Promise<LinkInfo | null> { this.count('linkByName'); return this.links.get(name) ?? null }

  async createDummy (name: string): Promise<LinkInfo> {
    this.count('createDummy')
    if (!this.dummyAvailable) throw new FerryError('FERRY_ERR_NETLINK', `creating dummy device ${name} (is the dummy module available?): ENOTSUP`)
    const known = this.links.get(name)
    if (known !== undefined) return known
    const l = { index: this.nextIndex++, name, up: false }
    this.links.set(name, l)
    return l
  }

  async deleteLink (name: string): Promise<void> {
    this.count('deleteLink')
    const l = this.links.get(name)
    if (l === undefined) return
    this.links.delete(name)
    for (let i = this.addrs.length - 1; i >= 0; i--) if (this.addrs[i]?.index === l.index) this.addrs.splice(i, 1)
  }

  async addresses (index?: number): Promise<AddressInfo[]> {
    this.count('addresses')
    return this.addrs.filter(a => index === undefined || a.index === index).map(a => ({ ...a }))
  }

  async addAddress (index: number, ip: string, prefix: number): Promise<void> {
    this.count('addAddress')
    const p = parseIP(ip)
    if (p === null) throw new FerryError('FERRY_ERR_NETLINK', `not an IP address: ${ip}`)
    if (![...this.links.values()].some(l => l.index === index)) throw new FerryError('FERRY_ERR_NETLINK', `adding ${ip}/${prefix}: ENODEV`)
    if (this.addrs.some(a => a.index === index && a.ip === p.ip)) return
    this.addrs.push({ index, family: p.family, ip: p.ip, prefix })
  }

  async deleteAddress (index: number, ip: string, _prefix: number): Promise<void> {
    this.count('deleteAddress')
    const canonical = parseIP(ip)?.ip ?? ip
    const i = this.addrs.findIndex(a => a.index === index && a.ip === canonical)
    if (i >= 0) this.addrs.splice(i, 1)
  }

  close (): void {}
}
