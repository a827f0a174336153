// This node's subnet lease in etcd (flannel's semantics, OVERLAY.md §1, minus its bugs):
//
// - acquire: list all leases; per family reuse the key carrying our PublicIP if it still fits the config,
//   whatever else its value holds (a VNI-less or hand-written one is rewritten with our attrs; a
//   reservation, etcd lease 0, stays one and wins over a lease), else a preferred subnet (the last subnet
//   file) if free, else one picked at random among the first 100 free subnets from SubnetMin. Random, as
//   flannel: nodes starting together would otherwise all race for the same first free subnet. All families
//   are written in one transaction: new keys guarded by Version == 0, reused ones by their mod revision,
//   under one new etcd lease of `ttlSeconds` (default 24 h); the old lease of a reused key is then revoked,
//   and so is the lease of a stale key of ours the transaction deleted, once no other key uses it.
//   A lost race re-lists and retries in-process (flannel exits), at most `raceRetries` times.
// - renew: an etcd keepalive every `renewMs` (default a third of the TTL), retried with backoff on
//   failure. A lease etcd no longer has (expired through an outage, revoked) is claimed again, preferring
//   the same subnets; `onChange` reports a different outcome. A key deleted while its etcd lease lives on
//   (etcdctl del) is seen by the watch, and reclaim() claims it again at once (flannel exits instead).
// - close() stops renewing without revoking, so a restart within the TTL finds and reuses its subnet.
import type { Etcd3 } from 'etcd3'
import { FerryError, isFerryError } from '../errors/errors.js'
import { connector, type ConnectOptions, type EtcdConnector } from '../etcd/client.js'
import { describe } from '../etcd/access.js'
import { containsCidr, overlaps, parseCidr, subnetsBetween, type Cidr } from '../net/cidr.js'
import { encodeAttrs, leaseKey, type Lease, type LeaseAttrs } from './lease-codec.js'
import { claim, keepAlive, listLeases, readNetworkConfig, revoke, type ClaimPut, type LeaseList } from './lease-store.js'
import { LeaseWatcher, type LeaseHandler } from './lease-watch.js'
import { families, type FamilyNetwork, type NetworkConfig } from './network-config.js'

export const DEFAULT_LEASE_TTL_SECONDS = 24 * 60 * 60
export const DEFAULT_RACE_RETRIES = 10
/** setTimeout's longest delay (~24.8 days); a longer one fires at once, so a long TTL renewed in a busy loop. */
const MAX_TIMER_MS = 2 ** 31 - 1
/** flannel samples at most this many free subnets before picking one at random. */
const SAMPLE = 100

/** This node's subnets, one per family the config routes. */
export interface NodeLeases {
  readonly config: NetworkConfig
  readonly ipv4?: Lease
  readonly ipv6?: Lease
}

export interface SubnetManager {
  readonly name: string
  /** Claims (or reuses) this node's subnets and keeps them until close(). */
  acquire: (attrs: LeaseAttrs) => Promise<NodeLeases>
  /** Reports every node's leases (this node's included) until the returned stop is called. */
  watch: (handler: LeaseHandler) => Promise<{ stop: () => Promise<void> }>
  /** This node's lease key was deleted from etcd (by hand, by a tool): write it again, now. */
  reclaim?: () => void
  close: () => Promise<void>
}

export interface ChooseOptions {
  random?: () => number
  preferred?: Cidr | undefined
}

/**
 * Pure choice of a free subnet in `net` given the subnets already taken (any family, any length):
 * `preferred` when it fits and is free, else random among the first 100 free from SubnetMin; null if none.
 */
export function chooseSubnet (net: FamilyNetwork, taken: readonly Cidr[], opts: ChooseOptions = {}): Cidr | null {
  const mine = taken.filter(t => t.family === net.family)
  const free = (c: Cidr): boolean => !mine.some(t => overlaps(t, c))
  const p = opts.preferred
  if (p !== undefined && fits(net, p) && free(p)) return p
  const sample: Cidr[] = []
  for (const c of subnetsBetween(net.family, net.subnetLen, net.subnetMin.base, net.subnetMax.base)) {
    if (free(c)) sample.push(c)
    if (sample.length >= SAMPLE) break
  }
  if (sample.length === 0) return null
  return sample[Math.floor((opts.random ?? Math.random)() * sample.length)] ?? sample[0] ?? null
}

/** The subnet has the config's length and lies within SubnetMin..SubnetMax. */
export function fits (net: FamilyNetwork, c: Cidr): boolean {
  return c.family === net.family && c.prefix === net.subnetLen && c.base >= net.subnetMin.base && c.base <= net.subnetMax.base && containsCidr(net.network, c)
}

/** A key this node already holds: a lease ferry reads, or an unreadable one naming its PublicIP. */
type Held = Pick<Lease, 'key' | 'subnet' | 'leaseId' | 'modRevision'>

export interface ClaimPlan {
  /** One per family the config routes, IPv4 first: the subnet and the guarded put that claims it. */
  readonly claims: ReadonlyArray<{ readonly subnet: Cidr, readonly put: ClaimPut }>
  /** This node's other keys of a claimed family (stale, or no longer fitting the config). */
  readonly deletes: string[]
  /** The etcd leases of reused keys that no key left after the claim still uses: revoked once the claim is in. */
  readonly oldLeases: ReadonlySet<string>
  /**
   * The etcd leases of deleted keys that no key left after the claim still hangs on: revoked once the claim
   * is in, so they do not linger until their TTL (flannel deletes such a key and leaves its lease).
   */
  readonly staleLeases: ReadonlySet<string>
}

export interface PlanOptions {
  prefix?: string | undefined
  random?: (() => number) | undefined
  preferred?: { ipv4?: Cidr | undefined, ipv6?: Cidr | undefined } | undefined
}

/**
 * Pure: what one claim writes, given every key under subnets/. Per family, a key naming our PublicIP that
 * fits the config is reused, read or not (flannel matches on PublicIP alone: a VNI-less or hand-written
 * value is still ours), and rewritten with `attrs`, so it carries the VNI and VtepMAC the backend needs; a
 * reservation stays one. Else a free subnet is chosen. Throws FERRY_ERR_SUBNETS_EXHAUSTED.
 */
export function planClaim (config: NetworkConfig, list: Pick<LeaseList, 'leases' | 'unreadable'>, attrs: LeaseAttrs, opts: PlanOptions = {}): ClaimPlan {
  const mine = (ip: string | undefined): boolean => ip === attrs.publicIP
  const readable = [...list.leases.values()]
  // Reservations first: a node that once missed its (unread) reservation claimed a lease beside it, and
  // reusing that lease would delete the reservation as a stale key of ours.
  const ours: Held[] = [...readable.filter(l => mine(l.attrs.publicIP)), ...list.unreadable.filter(u => mine(u.publicIP))]
    .sort((a, b) => Number(b.leaseId === '0') - Number(a.leaseId === '0') || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  // Every other key holds its subnet, readable or not: handing it out lost every race for it (the same
  // key) or overlapped it (another length).
  const taken = [...readable.filter(l => !mine(l.attrs.publicIP)), ...list.unreadable.filter(u => !mine(u.publicIP))].map(l => l.subnet)
  const value = encodeAttrs(attrs)
  const claims: Array<{ subnet: Cidr, put: ClaimPut }> = []
  const deletes: string[] = []
  const oldLeases = new Set<string>()
  for (const net of families(config)) {
    const reuse = ours.find(l => fits(net, l.subnet))
    for (const l of ours) if (l.subnet.family === net.family && l !== reuse) deletes.push(l.key)
    if (reuse !== undefined) {
      const reservation = reuse.leaseId === '0'
      if (!reservation) oldLeases.add(reuse.leaseId)
      claims.push({ subnet: reuse.subnet, put: { key: reuse.key, value, expectModRevision: reuse.modRevision, noLease: reservation } })
      continue
    }
    const pick = chooseSubnet(net, taken, { random: opts.random, preferred: net.family === 'IPv4' ? opts.preferred?.ipv4 : opts.preferred?.ipv6 })
    if (pick === null) {
      throw new FerryError('FERRY_ERR_SUBNETS_EXHAUSTED',
        `out of subnets: every /${net.subnetLen} of ${net.network.text} from ${net.subnetMin.text} to ${net.subnetMax.text} is leased to another node`,
        { family: net.family, network: net.network.text, subnetMin: net.subnetMin.text, subnetMax: net.subnetMax.text })
    }
    claims.push({ subnet: pick, put: { key: leaseKey(pick, opts.prefix), value, expectModRevision: '0' } })
  }
  // Revoking a lease deletes every key on it: never one that a key surviving the claim still uses.
  const all: Held[] = [...list.leases.values(), ...list.unreadable]
  const gone = new Set([...deletes, ...claims.map(c => c.put.key)]) // re-put keys move to the new lease
  const kept = new Set(all.filter(l => !gone.has(l.key)).map(l => l.leaseId))
  const old = new Set([...oldLeases].filter(id => !kept.has(id)))
  const dropped = new Set(deletes)
  const stale = new Set(all.filter(l => dropped.has(l.key) && l.leaseId !== '0' && !kept.has(l.leaseId) && !old.has(l.leaseId)).map(l => l.leaseId))
  return { claims, deletes, oldLeases: old, staleLeases: stale }
}

export type LeaseLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void

export interface EtcdSubnetManagerOptions extends ConnectOptions {
  /** Key prefix; default "/ferry". Config at `<prefix>/network/config`, leases under `<prefix>/network/subnets/`. */
  prefix?: string | undefined
  /** The network config; default: read from etcd, retried every `configRetryMs` until present. */
  config?: NetworkConfig | undefined
  configRetryMs?: number | undefined
  ttlSeconds?: number | undefined
  /** Keepalive period; default a third of the TTL. */
  renewMs?: number | undefined
  /** Retry delay after a failed renewal: initialMs doubling to maxMs; default 1s → 60s. */
  retry?: { initialMs: number, maxMs: number } | undefined
  raceRetries?: number | undefined
  /** Subnets to prefer when nothing carries our PublicIP (e.g. from the last subnet file), as CIDR text. */
  preferred?: { ipv4?: string | undefined, ipv6?: string | undefined } | undefined
  random?: (() => number) | undefined
  log?: LeaseLog | undefined
  /** Called when a re-claim after a lost lease gave this node different subnets. */
  onChange?: ((leases: NodeLeases) => void) | undefined
}

export class EtcdSubnetManager implements SubnetManager {
  readonly name: string
  private readonly conn: EtcdConnector
  private client: Etcd3 | undefined
  private readonly ttl: number
  private readonly log: LeaseLog
  private current: NodeLeases | undefined
  private attrs: LeaseAttrs | undefined
  private leaseId = '0'
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private delay: number
  private renewing: Promise<void> | undefined
  /** Set by reclaim(): the next renewal claims again even if the etcd lease is alive. */
  private mustClaim = false

  constructor (private readonly opts: EtcdSubnetManagerOptions) {
    this.conn = connector(opts)
    this.name = `subnet leases (${this.conn.name})`
    this.ttl = opts.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS
    if (!Number.isInteger(this.ttl) || this.ttl < 2) throw new FerryError('FERRY_ERR_CONFIG', `subnet lease TTL: want whole seconds ≥ 2, got ${this.ttl}`)
    this.log = opts.log ?? (() => {})
    this.delay = opts.retry?.initialMs ?? 1000
  }

  /** The etcd lease ID holding this node's keys ("0" when all are reservations or nothing is held). */
  get etcdLeaseId (): string { return this.leaseId }

  get leases (): NodeLeases | undefined { return this.current }

  async acquire (attrs: LeaseAttrs): Promise<NodeLeases> {
    if (this.closed) throw new FerryError('FERRY_ERR_LEASE', 'subnet manager is closed')
    this.attrs = attrs
    const config = this.opts.config ?? await this.waitForConfig()
    const pref = this.opts.preferred
    const preferred = { ipv4: pref?.ipv4 !== undefined ? parseCidr(pref.ipv4) ?? undefined : undefined, ipv6: pref?.ipv6 !== undefined ? parseCidr(pref.ipv6) ?? undefined : undefined }
    this.current = await this.claimLoop(config, attrs, preferred)
    this.schedule(this.renewMs())
    return this.current
  }

  async watch (handler: LeaseHandler): Promise<{ stop: () => Promise<void> }> {
    const w = new LeaseWatcher({ client: () => this.etcd(), prefix: this.opts.prefix, log: this.log }, handler)
    await w.start()
    return { stop: async () => { await w.stop() } }
  }

  /** Stops renewing (the lease stays in etcd until its TTL runs out, for a restart to reuse). */
  async close (): Promise<void> {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    await this.renewing
    const c = this.client
    this.client = undefined
    try { c?.close() } catch {}
  }

  /** Gives the subnets back now: revokes the etcd lease (deleting its keys) and closes. */
  async release (): Promise<void> {
    const id = this.leaseId
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    await this.renewing
    if (id !== '0') await revoke(this.etcd(), id)
    await this.close()
  }

  private etcd (): Etcd3 {
    this.client ??= this.conn.client()
    return this.client
  }

  private renewMs (): number {
    return this.opts.renewMs ?? Math.floor(this.ttl * 1000 / 3)
  }

  private async waitForConfig (): Promise<NetworkConfig> {
    for (let logged = false; ; logged = true) {
      if (this.closed) throw new FerryError('FERRY_ERR_LEASE', 'subnet manager closed while waiting for the network config')
      let cfg: NetworkConfig | undefined
      try { cfg = await readNetworkConfig(this.etcd(), this.opts.prefix) } catch (e) {
        if (isFerryError(e)) throw e // a config that is there but invalid: no point waiting
        if (!logged) this.log('warn', `reading the network config failed: ${describe(e)}; retrying`)
      }
      if (cfg !== undefined) return cfg
      if (!logged) this.log('warn', 'no network config in etcd yet; retrying', { prefix: this.opts.prefix })
      await new Promise(resolve => setTimeout(resolve, this.opts.configRetryMs ?? 1000))
    }
  }

  private async claimLoop (config: NetworkConfig, attrs: LeaseAttrs, preferred: { ipv4?: Cidr | undefined, ipv6?: Cidr | undefined }): Promise<NodeLeases> {
    const tries = this.opts.raceRetries ?? DEFAULT_RACE_RETRIES
    for (let attempt = 1; ; attempt++) {
      const got = await this.claimOnce(config, attrs, preferred)
      if (got !== null) return got
      if (attempt >= tries) throw new FerryError('FERRY_ERR_LEASE', `lost the race for a free subnet ${attempt} times in a row; other nodes keep taking the same subnets`, { attempts: attempt })
      this.log('debug', 'lost a subnet race; listing again', { attempt })
      await new Promise(resolve => setTimeout(resolve, Math.floor((this.opts.random ?? Math.random)() * 20 * attempt)))
    }
  }

  /** One list → decide → transaction; null when another writer got in between. */
  /** The claim is in: a lease it left behind only waits out its TTL, so a failed revoke is a warning, never a stop. */
  private async revokeLeftover (client: Etcd3, id: string, what: string, fields: Record<string, unknown> = {}): Promise<void> {
    await revoke(client, id).catch((e: unknown) => {
      this.log('warn', `revoking ${what} failed; it expires at its TTL: ${describe(e)}`, { leaseId: id, ...fields })
    })
  }

  private async claimOnce (config: NetworkConfig, attrs: LeaseAttrs, preferred: { ipv4?: Cidr | undefined, ipv6?: Cidr | undefined }): Promise<NodeLeases | null> {
    const client = this.etcd()
    const list = await wrap('listing subnet leases', async () => await listLeases(client, this.opts.prefix))
    const plan = planClaim(config, list, attrs, { prefix: this.opts.prefix, random: this.opts.random, preferred })
    const puts = plan.claims.map(c => c.put)
    const res = await wrap('claiming a subnet lease', async () => await claim(client, puts, plan.deletes, this.ttl))
    if (!res.ok) return null
    this.leaseId = res.leaseId
    for (const id of plan.oldLeases) if (id !== res.leaseId) await this.revokeLeftover(client, id, 'the previous etcd lease of a reused subnet key')
    for (const id of plan.staleLeases) if (id !== res.leaseId) await this.revokeLeftover(client, id, 'the etcd lease of a deleted stale subnet key', { keys: plan.deletes })
    const got: { ipv4?: Lease, ipv6?: Lease } = {}
    for (const c of plan.claims) {
      got[c.subnet.family === 'IPv4' ? 'ipv4' : 'ipv6'] = { key: c.put.key, subnet: c.subnet, attrs, leaseId: c.put.noLease === true ? '0' : res.leaseId, modRevision: '0' }
    }
    const reused = puts.some(p => p.expectModRevision !== '0')
    this.log('info', reused ? 'reusing this node\'s subnet lease' : 'claimed a subnet lease',
      { ipv4: got.ipv4?.subnet.text, ipv6: got.ipv6?.subnet.text, ttlSeconds: this.ttl, leaseId: res.leaseId })
    return { config, ...got }
  }

  reclaim (): void {
    if (this.closed || this.current === undefined) return
    this.mustClaim = true
    // After any renewal in flight; renew() then claims, and on failure retries with backoff.
    void (this.renewing ?? Promise.resolve()).then(() => {
      if (this.closed || !this.mustClaim) return
      if (this.timer !== undefined) clearTimeout(this.timer)
      this.renewing = this.renew().finally(() => { this.renewing = undefined })
    })
  }

  private schedule (ms: number): void {
    if (this.closed || (this.leaseId === '0' && !this.mustClaim)) return // reservations need no renewing
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = setTimeout(() => { this.renewing = this.renew().finally(() => { this.renewing = undefined }) }, Math.min(ms, MAX_TIMER_MS))
    this.timer.unref?.()
  }

  private async renew (): Promise<void> {
    if (this.closed || this.current === undefined || this.attrs === undefined) return
    try {
      const ttl = this.leaseId === '0' ? 0 : await keepAlive(this.etcd(), this.leaseId)
      if (this.closed) return
      if (ttl > 0 && !this.mustClaim) {
        this.delay = this.opts.retry?.initialMs ?? 1000
        this.log('debug', 'subnet lease renewed', { leaseId: this.leaseId, ttlSeconds: ttl })
        this.schedule(this.renewMs())
        return
      }
      this.log('warn', this.mustClaim
        ? 'this node\'s subnet lease key was deleted from etcd; claiming it again'
        : 'the subnet lease is gone from etcd (expired or revoked); claiming again', { leaseId: this.leaseId })
      const before = this.current
      const next = await this.claimLoop(before.config, this.attrs, { ipv4: before.ipv4?.subnet, ipv6: before.ipv6?.subnet })
      this.current = next
      this.mustClaim = false
      if (next.ipv4?.subnet.text !== before.ipv4?.subnet.text || next.ipv6?.subnet.text !== before.ipv6?.subnet.text) this.opts.onChange?.(next)
      this.schedule(this.renewMs())
    } catch (e) {
      if (this.closed) return
      this.log(isFerryError(e, 'FERRY_ERR_SUBNETS_EXHAUSTED') ? 'error' : 'warn', `renewing the subnet lease failed: ${describe(e)}; retrying in ${this.delay}ms`)
      this.schedule(this.delay)
      this.delay = Math.min(this.delay * 2, this.opts.retry?.maxMs ?? 60_000)
    }
  }
}

async function wrap<T> (what: string, fn: () => Promise<T>): Promise<T> {
  try { return await fn() } catch (e) {
    if (isFerryError(e)) throw e
    throw new FerryError('FERRY_ERR_LEASE', `${what} failed: ${describe(e)}`, {}, { cause: e })
  }
}
