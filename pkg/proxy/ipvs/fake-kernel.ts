// An in-memory IpvsKernel with the kernel's answers (ip_vs_ctl.c: ip_vs_genl_set_cmd and the add/edit/del
// functions), plus hooks for tests: connection counts, injected errnos, call counts, seeding.
import { FerryError } from '../../errors/errors.js'
import { addressFamily, canonicalAddress } from './address.js'
import { checkOp, checkServiceKey, describeKey } from './codec.js'
import { EEXIST, EINVAL, ENOENT, ERANGE, ESRCH, IP_VS_SVC_F_HASHED } from './constants.js'
import type { IPFamily, IpvsInfo, IpvsKernel, IpvsOp, IpvsOpResult, RealServer, RealServerKey, VirtualServer, VirtualServerKey } from './types.js'

/** The schedulers a stock kernel ships (ip_vs_<name>.ko); 'none' is built in. */
export const KERNEL_SCHEDULERS: readonly string[] = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos']

export interface FakeIpvsOptions {
  /** Schedulers whose module "loads"; others answer ENOENT. Default KERNEL_SCHEDULERS. */
  schedulers?: Iterable<string>
  info?: IpvsInfo
}

export interface FakeIpvsCalls {
  listServices: number
  listDestinations: number
  apply: number
  /** Ops given to apply: each is one netlink message on the real kernel. */
  ops: number
  flush: number
  info: number
}

export interface FakeIpvsEntry { service: VirtualServer, destinations: RealServer[] }

/** What to fail: an op name, or a predicate over the op. */
export type OpMatcher = IpvsOp['op'] | ((op: IpvsOp) => boolean)

interface Entry { service: VirtualServer, dests: Map<string, RealServer>, trash: Map<string, RealServer> }

export class FakeIpvsKernel implements IpvsKernel {
  readonly calls: FakeIpvsCalls = zeroCalls()
  /** Every op apply() was given, in order (including failed ones). */
  readonly applied: IpvsOp[] = []
  closed = false
  private readonly services = new Map<string, Entry>()
  private readonly schedulers: Set<string>
  private readonly kernelInfo: IpvsInfo
  private readonly injected: Array<{ match: OpMatcher, errno: number }> = []
  private dumpFailures: number[] = []

  constructor (options: FakeIpvsOptions = {}) {
    this.schedulers = new Set(options.schedulers ?? KERNEL_SCHEDULERS)
    this.kernelInfo = options.info ?? { version: '1.2.1', connTableSize: 4096 }
  }

  async listServices (): Promise<VirtualServer[]> {
    this.calls.listServices++
    this.gate()
    return [...this.services.values()].map(e => ({ ...e.service }))
  }

  async listDestinations (service: VirtualServerKey): Promise<RealServer[]> {
    this.calls.listDestinations++
    this.gate()
    const problem = checkServiceKey(service)
    if (problem !== null) throw new FerryError('FERRY_ERR_INVALID_OBJECT', `IPVS destination dump ${describeKey(service)}: ${problem}`)
    const e = this.services.get(serviceId(service))
    return e === undefined ? [] : listOf(e)
  }

  async apply (ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
    this.calls.apply++
    this.calls.ops += ops.length
    this.assertOpen()
    return ops.map(op => {
      this.applied.push(op)
      const i = this.injected.findIndex(f => typeof f.match === 'string' ? f.match === op.op : f.match(op))
      if (i >= 0) {
        const [f] = this.injected.splice(i, 1)
        return { op, errno: f?.errno ?? EINVAL }
      }
      return { op, errno: this.exec(op) }
    })
  }

  async flush (): Promise<void> {
    this.calls.flush++
    this.assertOpen()
    this.services.clear()
  }

  async info (): Promise<IpvsInfo> {
    this.calls.info++
    this.assertOpen()
    return { ...this.kernelInfo }
  }

  close (): void { this.closed = true }

  // ---- Test hooks (none of them counts as a call) ----

  /** Sets a dest's connection counters, as traffic would. Throws when the dest does not exist. */
  setConnections (service: VirtualServerKey, dest: RealServerKey, counts: { active?: number, inactive?: number, persist?: number }): void {
    const d = this.services.get(serviceId(service))?.dests.get(destId(dest))
    if (d === undefined) throw new FerryError('FERRY_ERR_NOT_FOUND', `fake IPVS has no ${describeKey(service)} -> ${dest.address}:${dest.port}`)
    if (counts.active !== undefined) d.activeConns = counts.active
    if (counts.inactive !== undefined) d.inactiveConns = counts.inactive
    if (counts.persist !== undefined) d.persistConns = counts.persist
  }

  /** The next op that matches answers `errno` and changes nothing (one shot; several queue up). */
  failNext (match: OpMatcher, errno: number): void {
    this.injected.push({ match, errno })
  }

  /** The next list call (services or destinations) throws FERRY_ERR_NETLINK with `errno`. */
  failNextList (errno: number): void {
    this.dumpFailures.push(errno)
  }

  resetCalls (): void {
    Object.assign(this.calls, zeroCalls())
    this.applied.length = 0
  }

  /** The whole table, without counting a call. */
  snapshot (): FakeIpvsEntry[] {
    return [...this.services.values()].map(e => ({ service: { ...e.service }, destinations: listOf(e) }))
  }

  /** Puts entries in place as if someone else (an operator, a previous ferryd) had made them. */
  seed (entries: readonly FakeIpvsEntry[]): void {
    for (const { service, destinations } of entries) {
      const ops: IpvsOp[] = [{ op: 'addService', service }, ...destinations.map(destination => ({ op: 'addDestination' as const, service, destination }))]
      for (const op of ops) {
        const errno = this.exec(op)
        if (errno !== 0) throw new FerryError('FERRY_ERR_INVALID_OBJECT', `fake IPVS seed ${op.op} ${describeKey(service)}: errno ${errno}`)
      }
      for (const d of destinations) this.setConnections(service, d, { active: d.activeConns, inactive: d.inactiveConns, persist: d.persistConns })
    }
  }

  // ---- The kernel's semantics ----

  private exec (op: IpvsOp): number {
    if (checkOp(op) !== null) return EINVAL
    const id = serviceId(op.service)
    const entry = this.services.get(id)
    if (op.op === 'addService') {
      if (entry !== undefined) return EEXIST
      const bad = this.checkServiceSettings(op.service)
      if (bad !== 0) return bad
      this.services.set(id, { service: stored(op.service), dests: new Map(), trash: new Map() })
      return 0
    }
    if (entry === undefined) return ESRCH
    switch (op.op) {
      case 'updateService': {
        const bad = this.checkServiceSettings(op.service)
        if (bad !== 0) return bad
        entry.service = stored(op.service)
        return 0
      }
      case 'deleteService':
        this.services.delete(id)
        return 0
      case 'addDestination':
      case 'updateDestination': {
        const d = op.destination
        const family = addressFamily(d.address) as IPFamily
        // Only tunnelling may cross families (ip_vs_genl_set_cmd).
        if (family !== entry.service.family && d.forward !== 'tunnel') return EINVAL
        if (d.weight < 0 || d.weight > 0x7fffffff || d.lowerThreshold > d.upperThreshold) return ERANGE
        const key = destId(d)
        const existing = entry.dests.get(key)
        if (op.op === 'updateDestination') {
          if (existing === undefined) return ENOENT
          Object.assign(existing, settings(d))
          return 0
        }
        if (existing !== undefined) return EEXIST
        // A dest deleted earlier comes back from the trash with its counters.
        const revived = entry.trash.get(key)
        if (revived === undefined && !unicast(family, d.address)) return EINVAL
        entry.trash.delete(key)
        const next: RealServer = { ...(revived ?? { activeConns: 0, inactiveConns: 0, persistConns: 0 }), address: canonicalAddress(d.address) as string, port: d.port, ...settings(d) }
        entry.dests.set(key, next)
        return 0
      }
      case 'deleteDestination': {
        const key = destId(op.destination)
        const existing = entry.dests.get(key)
        if (existing === undefined) return ENOENT
        entry.dests.delete(key)
        entry.trash.set(key, existing)
        return 0
      }
    }
  }

  private checkServiceSettings (s: VirtualServer): number {
    if (s.scheduler !== 'none' && !this.schedulers.has(s.scheduler)) return ENOENT // ip_vs_scheduler_get found no module
    if (s.family === 'IPv6' && (s.netmask < 1 || s.netmask > 128)) return EINVAL
    return 0
  }

  private gate (): void {
    this.assertOpen()
    const errno = this.dumpFailures.shift()
    if (errno !== undefined) throw new FerryError('FERRY_ERR_NETLINK', `fake IPVS dump failed: errno ${errno}`, { errno })
  }

  private assertOpen (): void {
    if (this.closed) throw new FerryError('FERRY_ERR_NETLINK', 'the IPVS netlink socket is closed')
  }
}

function zeroCalls (): FakeIpvsCalls {
  return { listServices: 0, listDestinations: 0, apply: 0, ops: 0, flush: 0, info: 0 }
}

function serviceId (s: VirtualServerKey): string {
  return `${s.family}/${s.protocol}/${canonicalAddress(s.address) ?? s.address}/${s.port}`
}

function destId (d: RealServerKey): string {
  return `${canonicalAddress(d.address) ?? d.address}/${d.port}`
}

/** What the kernel keeps of a service: canonical address, HASHED never reported. */
function stored (s: VirtualServer): VirtualServer {
  return {
    family: s.family, protocol: s.protocol, address: canonicalAddress(s.address) as string, port: s.port,
    scheduler: s.scheduler, flags: (s.flags & ~IP_VS_SVC_F_HASHED) >>> 0, timeout: s.timeout, netmask: s.netmask,
  }
}

function settings (d: RealServer): Pick<RealServer, 'weight' | 'forward' | 'upperThreshold' | 'lowerThreshold'> {
  return { weight: d.weight, forward: d.forward, upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold }
}

/** The kernel lists dests newest first (list_add_rcu at the head). */
function listOf (e: Entry): RealServer[] {
  return [...e.dests.values()].reverse().map(d => ({ ...d }))
}

/** ip_vs_new_dest: a v4 dest must route as unicast or local, a v6 dest be unicast and not link-local. */
function unicast (family: IPFamily, address: string): boolean {
  const a = canonicalAddress(address) as string
  if (family === 'IPv4') {
    const first = Number(a.split('.')[0])
    return first !== 0 && (first < 224 || first > 239) && a !== '255.255.255.255' // zeronet, multicast, broadcast
  }
  return a !== '::' && !/^ff/i.test(a) && !/^fe[89ab]/i.test(a)
}
