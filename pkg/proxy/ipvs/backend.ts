// IpvsBackend: renders the neutral plans as IPVS virtual servers (reconciler.ts, over generic netlink),
// VIPs on ferry-ipvs0 (vips.ts) and the companion sets and rules for what IPVS cannot decide. Per sync:
// companion rules first (masquerade in place before any virtual server forwards), then VIPs, then the
// virtual servers; stale VIPs go only after a successful sync.
import type { Registry } from 'prom-client'
import { Lane } from '../../async/lane.js'
import { FerryError } from '../../errors/errors.js'
import { silentLogger, type Logger } from '../../log/log.js'
import type { IPFamily } from '../../net/ip.js'
import type { Links } from '../../netlink/links.js'
import { resolveProxyOptions, type ProxyOptions, type ProxyOptionsInput } from '../options.js'
import { planPort, type PortPlan } from '../plan.js'
import type { Clock } from '../runner.js'
import type { Backend, DesiredState, SyncResult } from '../types.js'
import { boundVIPs, defaultNodePortIPs } from './companion-options.js'
import { desiredVirtualServers, type DesiredVirtualServer } from './desired.js'
import { ipvsMetrics, type IpvsMetrics } from './metrics.js'
import type { OwnershipStore } from './ownership.js'
import { IpvsReconciler } from './reconciler.js'
import type { IpvsKernel } from './types.js'
import { VipBinder } from './vips.js'

/** The sets and fixed iptables rules of IPVS mode (IpvsCompanion in companion-apply.ts). */
export interface CompanionRules {
  /**
   * Brings sets and rules to these plans (keyed by service port). `changed`: the only keys whose plans
   * may differ since the last call (null: any); a partial sync visits only those.
   */
  sync: (plans: ReadonlyMap<string, PortPlan>, addresses: { readonly boundAddresses?: readonly string[], readonly nodePortIPs?: readonly string[] },
    changed: ReadonlySet<string> | null) => Promise<unknown>
  /** Whether the rules and sets are still in the kernel (a firewall reload flushes them). */
  rulesIntact: () => Promise<boolean>
  requestFullSync: () => void
  cleanup: () => Promise<void>
}

export interface IpvsBackendOptions {
  readonly family: IPFamily
  readonly proxy: ProxyOptionsInput
  readonly scheduler: string
  readonly gracefulTerminationMs: number
  readonly kernel: IpvsKernel
  readonly links: Links
  readonly companion: CompanionRules
  readonly ownership: OwnershipStore
  readonly clock?: Clock
  readonly registry?: Registry
  readonly log?: Logger
}

export class IpvsBackend implements Backend {
  readonly name = 'ipvs'
  readonly family: IPFamily
  private readonly opts: ProxyOptions
  /** Node addresses with NodePort virtual servers (IPVS mode has no localhost NodePorts). */
  private readonly nodePortIPs: readonly string[]
  private readonly plans = new Map<string, PortPlan>()
  /**
   * Each service port's virtual servers, made when it last changed. Unchanged entries stay the same
   * objects between syncs, which lets the reconciler skip them without comparing their destinations.
   */
  private readonly entries = new Map<string, ReadonlyArray<readonly [string, DesiredVirtualServer]>>()
  /**
   * The merged table, kept up to date per changed service port. How many service ports claim each key:
   * a key left by one port while another still claims it (a VIP on a NodePort address) is rare, and then
   * the table is merged again from every port.
   */
  private merged = new Map<string, DesiredVirtualServer>()
  private readonly claims = new Map<string, number>()
  /** Each service port's VIPs to bind, and how many service ports want each VIP (boundVIPs() per plan). */
  private readonly vipsOf = new Map<string, readonly string[]>()
  private readonly vipClaims = new Map<string, number>()
  private readonly reconciler: IpvsReconciler
  private readonly vips: VipBinder
  private readonly metrics: IpvsMetrics | undefined
  private readonly log: Logger
  private readonly lane = new Lane()
  /** What the gauges were last set to. */
  private gauges: ReturnType<IpvsReconciler['status']> | undefined

  constructor (private readonly o: IpvsBackendOptions) {
    this.family = o.family
    this.opts = resolveProxyOptions({ ...o.proxy, family: o.family })
    this.nodePortIPs = defaultNodePortIPs(this.opts)
    this.log = (o.log ?? silentLogger).child('ipvs')
    this.reconciler = new IpvsReconciler({
      family: o.family, kernel: o.kernel, ownership: o.ownership, gracefulTerminationMs: o.gracefulTerminationMs, log: this.log,
      ...(o.clock !== undefined ? { clock: o.clock } : {}),
    })
    this.vips = new VipBinder({ links: o.links, family: o.family, log: this.log })
    this.metrics = o.registry !== undefined ? ipvsMetrics(o.registry) : undefined
  }

  async sync (state: DesiredState, changed: ReadonlySet<string> | null): Promise<SyncResult> {
    return await this.lane.run(async () => await this.syncNow(state, changed))
  }

  private async syncNow (state: DesiredState, changed: ReadonlySet<string> | null): Promise<SyncResult> {
    if (state.family !== this.family) throw new FerryError('FERRY_ERR_APPLY', `state is ${state.family} but this backend programs ${this.family}`)
    const nodePortIPs = this.nodePortIPs
    let remerge = false
    /** The virtual server keys that may have changed: the reconciler compares only these on a partial sync. */
    const touched = new Set<string>()
    /** VIPs whose claim count changed: bound or unbound by this sync. */
    const vipsTouched = new Set<string>()
    const claimVIPs = (key: string, ips: readonly string[] | undefined): void => {
      for (const ip of this.vipsOf.get(key) ?? []) {
        const n = (this.vipClaims.get(ip) ?? 0) - 1
        if (n > 0) this.vipClaims.set(ip, n)
        else this.vipClaims.delete(ip)
        vipsTouched.add(ip)
      }
      if (ips === undefined) { this.vipsOf.delete(key); return }
      this.vipsOf.set(key, ips)
      for (const ip of ips) { this.vipClaims.set(ip, (this.vipClaims.get(ip) ?? 0) + 1); vipsTouched.add(ip) }
    }
    const replan = (key: string): void => {
      for (const [vk, d] of this.entries.get(key) ?? []) {
        touched.add(vk)
        const left = (this.claims.get(vk) ?? 1) - 1
        if (left === 0) this.claims.delete(vk)
        else this.claims.set(vk, left)
        if (this.merged.get(vk) === d) {
          this.merged.delete(vk)
          if (left > 0) remerge = true
        }
      }
      const sp = state.services.get(key)
      if (sp === undefined) { this.plans.delete(key); this.entries.delete(key); claimVIPs(key, undefined); return }
      const plan = planPort(sp, this.opts)
      this.plans.set(key, plan)
      // What goes on ferry-ipvs0: ClusterIPs, externalIPs and LB IPs that are not node addresses already.
      claimVIPs(key, boundVIPs([plan], this.opts))
      const list = [...desiredVirtualServers([plan], { family: this.family, scheduler: this.o.scheduler, nodePortIPs })]
      this.entries.set(key, list)
      for (const [vk, d] of list) {
        touched.add(vk)
        this.claims.set(vk, (this.claims.get(vk) ?? 0) + 1)
        const have = this.merged.get(vk)
        if (have === undefined) this.merged.set(vk, d)
        // Another port's claim on the same key: only a full merge applies the precedence rule.
        else remerge = true
      }
    }
    if (changed === null) {
      this.plans.clear()
      this.entries.clear()
      this.claims.clear()
      this.merged.clear()
      this.vipsOf.clear()
      this.vipClaims.clear()
      remerge = true
      for (const key of state.services.keys()) replan(key)
      this.reconciler.resync()
      this.vips.resync()
      this.o.companion.requestFullSync()
    } else {
      for (const key of changed) replan(key)
    }
    // A partial sync binds and unbinds only the VIPs whose claims changed; a full one compares them all.
    const wanted: ReadonlySet<string> = changed === null ? new Set(this.vipClaims.keys()) : new Set([...vipsTouched].filter(ip => this.vipClaims.has(ip)))
    const t0 = performance.now()
    let t1 = t0
    let t2 = t0
    try {
      // The companion derives the bound VIPs itself, incrementally (the same rule as boundVIPs()).
      await this.o.companion.sync(this.plans, { nodePortIPs }, changed)
      t1 = performance.now()
      await this.vips.bind(wanted)
      t2 = performance.now()
    } catch (e) {
      this.metrics?.syncFailures.inc({ ip_family: this.family })
      throw e
    }
    if (remerge) this.merged = this.desired()
    const desired = this.merged
    const only = changed === null || remerge ? undefined : touched
    const r = await this.reconciler.reconcile(desired, { full: changed === null, ...(only !== undefined ? { only } : {}) }).catch((e: unknown) => {
      this.metrics?.syncFailures.inc({ ip_family: this.family })
      throw e
    })
    if (r.failed.length > 0) {
      this.metrics?.syncFailures.inc({ ip_family: this.family })
      // The reconciler reads the kernel on the next sync and repairs what did not apply.
      throw new FerryError('FERRY_ERR_APPLY', `IPVS: the kernel refused ${r.failed.length} change(s); first: ${r.failed[0]?.what ?? '?'}`, { failed: r.failed.slice(0, 20) })
    }
    const t3 = performance.now()
    if (changed === null) await this.vips.unbindStale(wanted)
    else await this.vips.unbind([...vipsTouched].filter(ip => !this.vipClaims.has(ip)))
    const status = this.reconciler.status()
    this.log.debug('ipvs synced', {
      kind: r.kind, ops: r.ops, servicePorts: changed?.size ?? this.plans.size, virtualServers: only?.size ?? desired.size, companionMs: Math.round(t1 - t0), vipsMs: Math.round(t2 - t1), reconcileMs: Math.round(t3 - t2), unbindMs: Math.round(performance.now() - t3),
    })
    // Set when they move: each set hashes its labels, and most syncs change none of them.
    const g = this.gauges
    if (g === undefined || g.virtualServers !== status.virtualServers || g.destinations !== status.destinations || g.draining !== status.draining) {
      this.metrics?.virtualServers.set({ ip_family: this.family }, status.virtualServers)
      this.metrics?.realServers.set({ ip_family: this.family }, status.destinations)
      this.metrics?.draining.set({ ip_family: this.family }, status.draining)
      this.gauges = status
    }
    return { kind: r.kind, summary: { virtualServers: status.virtualServers, realServers: status.destinations, draining: status.draining, ops: r.ops } }
  }

  /** Every service port's virtual servers; VIPs win over NodePorts on the same address and port (desired.ts). */
  private desired (): Map<string, DesiredVirtualServer> {
    const out = new Map<string, DesiredVirtualServer>()
    for (const pass of [false, true]) {
      for (const list of this.entries.values()) {
        for (const [k, d] of list) {
          if ((d.entry === 'nodePort') !== pass) continue
          if (!out.has(k)) out.set(k, d)
        }
      }
    }
    return out
  }

  /** The companion canary and the dummy device: either gone means the next sync rebuilds everything. */
  async rulesIntact (): Promise<boolean> {
    const dev = await this.o.links.linkByName(this.vips.device)
    const rules = await this.o.companion.rulesIntact()
    if (dev !== null && rules) return true
    this.log.warn('IPVS mode state vanished from the kernel; next sync is full', { device: dev !== null, companionRules: rules })
    this.reconciler.resync()
    this.vips.resync()
    return false
  }

  /** The owned virtual servers as ferry believes the kernel holds them (for /debug/state). */
  snapshot (): ReturnType<IpvsReconciler['snapshot']> { return this.reconciler.snapshot() }

  async cleanup (): Promise<void> {
    this.reconciler.stop()
    await this.o.companion.cleanup()
  }

  stop (): void { this.reconciler.stop() }
}
