// ADD, DEL, CHECK, GC and STATUS over injected dependencies (dataplane, IPAM factory, file reader):
// policy only; the kernel and the store are behind Dataplane and Ipam.
import type { Allocation, Attachment, Ipam, IpamRange } from '../pkg/ipam/types.js'
import type { NetConf } from './config.js'
import type { Dataplane } from './dataplane.js'
import { CniCode, CniError, toCniError } from './errors.js'
import { HOST_VETH, hostVethName, masqChainName, randomMac } from './names.js'
import { mergeResults, parseResult, type CniRoute, type Result } from './result.js'
import { parseSubnetFile, type SubnetFile } from '../pkg/overlay/subnet-file.js'
import { nodeFamilies, type NodeFamily } from './subnet-file.js'

export interface IpamOptions { readonly dataDir: string, readonly network: string, readonly ranges: readonly IpamRange[] }

export interface Deps {
  readonly dataplane: Dataplane
  readonly openIpam: (o: IpamOptions) => Ipam | Promise<Ipam>
  /** Rejects with code ENOENT when the file is missing. */
  readonly readFile: (path: string) => Promise<string>
  readonly mac?: () => string
}

export interface CmdArgs {
  readonly containerID: string
  readonly netns: string
  readonly ifname: string
}

export interface Funcs {
  add (a: CmdArgs, conf: NetConf): Promise<Result>
  del (a: CmdArgs, conf: NetConf): Promise<void>
  check (a: CmdArgs, conf: NetConf): Promise<void>
  gc (conf: NetConf): Promise<void>
  status (conf: NetConf): Promise<void>
}

/** The node file, or null when it does not exist (ferryd has not written it yet). */
async function loadNodeFile (deps: Deps, path: string): Promise<SubnetFile | null> {
  let text: string
  try { text = await deps.readFile(path) } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') return null
    throw new CniError(CniCode.IO, `reading node file ${path} failed`, e instanceof Error ? e.message : String(e))
  }
  try { return parseSubnetFile(text) } catch (e) {
    throw new CniError(CniCode.INVALID_CONFIG, `${path}: ${e instanceof Error ? e.message : String(e)}`)
  }
}

function ranges (families: readonly NodeFamily[]): IpamRange[] {
  return families.map(f => ({ subnet: f.subnet, gateway: f.gateway }))
}

function settings (conf: NetConf, sf: SubnetFile): { families: NodeFamily[], mtu: number, masq: boolean } {
  // FERRY_IPMASQ=true: pods' traffic leaving the cluster network is masqueraded here; the config's ipMasq overrides it.
  return { families: nodeFamilies(sf), mtu: conf.mtu ?? sf.mtu, masq: conf.ipMasq ?? sf.ipMasq }
}

export function makeFuncs (deps: Deps): Funcs {
  const dp = deps.dataplane
  const mac = deps.mac ?? randomMac
  const openIpam = async (conf: NetConf, families: readonly NodeFamily[]): Promise<Ipam> =>
    await deps.openIpam({ dataDir: conf.dataDir, network: conf.name, ranges: ranges(families) })

  return {
    async add (a, conf) {
      await dp.checkNetns(a.netns)
      const sf = await loadNodeFile(deps, conf.subnetFile)
      if (sf === null) throw new CniError(CniCode.TRY_AGAIN_LATER, `node file ${conf.subnetFile} does not exist yet (is ferryd running?)`)
      const { families, mtu, masq } = settings(conf, sf)
      const att: Attachment = { containerID: a.containerID, ifname: a.ifname }
      const hostName = hostVethName(a.containerID, a.ifname)
      // A host end left by an earlier ADD of this attachment: its pod end may be live, so never replace it.
      if (await dp.linkExists(hostName)) {
        throw new CniError(CniCode.INTERFACE_EXISTS, `container veth for ${a.ifname} already exists (host end ${hostName}); DEL it first`)
      }
      const ipam = await openIpam(conf, families)
      const hostMac = mac()
      const podMac = mac()
      // IPAM and the host side are independent: run them side by side, undo whichever succeeded on failure.
      const [alloc, host] = await Promise.allSettled([
        ipam.allocate(att),
        dp.setupHost(
          { name: conf.bridge, mtu, mac: mac(), addresses: families.map(f => `${f.gateway}/${f.prefix}`) },
          { hostName, hostMac, podName: a.ifname, podMac, netns: a.netns, mtu, hairpin: conf.hairpinMode }),
      ])
      const chain = masqChainName(conf.name, a.containerID, a.ifname)
      const undo = async (): Promise<void> => {
        if (host.status === 'fulfilled') await dp.removeVeth(hostName).catch(() => {})
        if (masq) await dp.unmasquerade(chain).catch(() => {})
        if (alloc.status === 'fulfilled') await ipam.release(att).catch(() => {})
      }
      if (alloc.status === 'rejected' || host.status === 'rejected') {
        await undo()
        throw alloc.status === 'rejected' ? alloc.reason : (host as PromiseRejectedResult).reason
      }
      const ips = alloc.value
      try {
        await dp.setupPod({ netns: a.netns, ifname: a.ifname, addresses: ips })
        await dp.enableForwarding(ips.map(i => i.family))
        if (masq) {
          await dp.masquerade({ network: conf.name, chain, sources: ips, clusterNetworks: families.map(f => f.network) })
        }
      } catch (e) {
        await undo()
        throw e
      }
      const ours: Result = {
        interfaces: [
          { name: conf.bridge, mac: host.value, mtu },
          { name: hostName, mac: hostMac, mtu },
          { name: a.ifname, mac: podMac, mtu, sandbox: a.netns },
        ],
        ips: ips.map(i => ({ address: `${i.ip}/${i.prefix}`, gateway: i.gateway, interface: 2 })),
        routes: defaultRoutes(ips),
        dns: (conf.dns as Result['dns'] | undefined) ?? {},
      }
      return mergeResults(parseResult(conf.prevResult), ours)
    },

    async del (a, conf) {
      // Best effort in every step; the first failure is reported after all ran (SPEC: DEL must converge).
      // The node file is not read: release needs no ranges, and a file that is gone, unreadable or
      // hand-broken must not fail every DEL (SPEC: a repeated DEL succeeds once the resources are gone).
      const errors: unknown[] = []
      await dp.removeVeth(hostVethName(a.containerID, a.ifname)).catch((e: unknown) => errors.push(e))
      // Always, whatever the setting says now: ipMasq or FERRY_IPMASQ may have changed since ADD, and the
      // chain is named by the attachment alone, so this finds ADD's rules (and only them) or nothing.
      await dp.unmasquerade(masqChainName(conf.name, a.containerID, a.ifname)).catch((e: unknown) => errors.push(e))
      try {
        const ipam = await openIpam(conf, [])
        await ipam.release({ containerID: a.containerID, ifname: a.ifname })
      } catch (e) { errors.push(e) }
      if (errors.length > 0) throw toCniError(errors[0])
    },

    async check (a, conf) {
      await dp.checkNetns(a.netns)
      if (conf.prevResult === undefined) throw new CniError(CniCode.INVALID_CONFIG, 'CHECK needs prevResult')
      const prev = parseResult(conf.prevResult)
      const idx = prev.interfaces.findIndex(i => i.name === a.ifname && i.sandbox === a.netns)
      if (idx < 0) throw checkFailed(`prevResult has no interface ${a.ifname} in ${a.netns}`)
      const sf = await loadNodeFile(deps, conf.subnetFile)
      if (sf === null) throw new CniError(CniCode.NOT_AVAILABLE, `node file ${conf.subnetFile} does not exist`)
      const { families } = settings(conf, sf)
      const hostName = hostVethName(a.containerID, a.ifname)
      const seen = await dp.observe(a.netns, a.ifname, hostName)
      if (seen.hostMaster === null) throw checkFailed(`host veth ${hostName} is missing`)
      if (seen.hostMaster !== conf.bridge) throw checkFailed(`host veth ${hostName} is not attached to ${conf.bridge}`)
      if (seen.pod === null) throw checkFailed(`interface ${a.ifname} is missing in ${a.netns}`)
      const want = prev.interfaces[idx]
      if (want?.mac !== undefined && want.mac.toLowerCase() !== seen.pod.mac.toLowerCase()) {
        throw checkFailed(`interface ${a.ifname} has MAC ${seen.pod.mac}, prevResult says ${want.mac}`)
      }
      // 1.1.0 results carry the MTU ADD set; observe() reads it, so a drifted MTU is caught like a MAC.
      if (want?.mtu !== undefined && want.mtu !== seen.pod.mtu) {
        throw checkFailed(`interface ${a.ifname} has MTU ${seen.pod.mtu}, prevResult says ${want.mtu}`)
      }
      if (!seen.pod.up) throw checkFailed(`interface ${a.ifname} is down`)
      const addrs = podAddresses(prev, a.ifname, a.netns)
      for (const addr of addrs) {
        if (!seen.pod.addresses.includes(addr)) throw checkFailed(`interface ${a.ifname} lacks address ${addr}`)
      }
      for (const rt of prev.routes) {
        if (!seen.pod.routes.some(r => sameDst(r.dst, rt.dst) && (rt.gw === undefined || r.gw === rt.gw))) {
          throw checkFailed(`route ${rt.dst}${rt.gw === undefined ? '' : ` via ${rt.gw}`} is missing in ${a.netns}`)
        }
      }
      const ipam = await openIpam(conf, families)
      const held = (await ipam.reserved({ containerID: a.containerID, ifname: a.ifname })).map(r => `${r.ip}/${r.prefix}`)
      for (const addr of addrs) {
        if (!held.includes(addr)) throw checkFailed(`address ${addr} is not reserved for ${a.containerID}/${a.ifname}`)
      }
    },

    async gc (conf) {
      const valid = conf.validAttachments
      if (valid === undefined) throw new CniError(CniCode.INVALID_CONFIG, 'GC needs cni.dev/valid-attachments')
      const errors: unknown[] = []
      try {
        // No ranges, so no node file (see del): GC goes by the entries' owners.
        const ipam = await openIpam(conf, [])
        await ipam.gc(valid)
      } catch (e) { errors.push(e) }
      const keepVeths = new Set(valid.map(v => hostVethName(v.containerID, v.ifname)))
      try {
        for (const port of await dp.bridgePorts(conf.bridge)) {
          if (HOST_VETH.test(port) && !keepVeths.has(port)) await dp.removeVeth(port).catch((e: unknown) => errors.push(e))
        }
      } catch (e) { errors.push(e) }
      // Chains of attachments made while masquerading was on are collected even when it is off now (see del).
      const keepChains = new Set(valid.map(v => masqChainName(conf.name, v.containerID, v.ifname)))
      try {
        for (const chain of await dp.masqChains(conf.name)) {
          if (!keepChains.has(chain)) await dp.unmasquerade(chain).catch((e: unknown) => errors.push(e))
        }
      } catch (e) { errors.push(e) }
      if (errors.length > 0) throw toCniError(errors[0])
    },

    async status (conf) {
      const sf = await loadNodeFile(deps, conf.subnetFile)
      if (sf === null) throw new CniError(CniCode.NOT_AVAILABLE, `node file ${conf.subnetFile} does not exist (is ferryd running?)`)
      const families = nodeFamilies(sf)
      const free = await (await openIpam(conf, families)).available()
      const empty = free.findIndex(n => n <= 0)
      if (empty >= 0) {
        throw new CniError(CniCode.NOT_AVAILABLE, 'no IP addresses available', `range ${families[empty]?.subnet ?? empty} is exhausted`)
      }
    },
  }
}

function checkFailed (msg: string): CniError { return new CniError(CniCode.CHECK_FAILED, msg) }

/**
 * The prevResult addresses CHECK must find on the pod interface: all but those whose `interface` names
 * another existing entry (a chained plugin's). `interface` is optional, the pod interface may be listed
 * more than once, and a dangling index proves nothing, so none of those lets an address go unchecked.
 */
function podAddresses (prev: Result, ifname: string, netns: string): string[] {
  const isPod = (i: number): boolean => {
    const itf = prev.interfaces[i]
    return itf === undefined || (itf.name === ifname && itf.sandbox === netns)
  }
  return prev.ips.filter(ip => ip.interface === undefined || isPod(ip.interface)).map(ip => ip.address)
}

function defaultRoutes (ips: readonly Allocation[]): CniRoute[] {
  return ips.map(i => ({ dst: i.family === 'IPv4' ? '0.0.0.0/0' : '::/0', gw: i.gateway }))
}

/** Dataplanes report default routes as 0.0.0.0/0 and ::/0; a host route may be written with or without /32. */
function sameDst (seen: string, want: string): boolean {
  const norm = (d: string): string => d.includes('/') ? d : `${d}/${d.includes(':') ? 128 : 32}`
  return norm(seen) === norm(want)
}
