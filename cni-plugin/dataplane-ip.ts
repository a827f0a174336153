// The real dataplane: the host side in ONE `ip -batch -`, the pod side in ONE `nsenter --net=NETNS ip
// -batch -` or `ip -n NAME -batch -` (OVERLAY.md §5.3(a)), masquerade with iptables-restore. Reads go to
// /sys and /proc where they can, since every spawned process costs milliseconds of an ADD. Commands are
// argument lists (ip-batch.ts): a name the batch reader cannot carry ("#") runs as one ip per command.
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs'
import { spawnExec, type Exec } from '../pkg/exec/exec.js'
import type { BridgeSpec, Dataplane, MasqSpec, Observed, PodSpec, VethSpec } from './dataplane.js'
import { CniCode, CniError } from './errors.js'
import { HOST_IP, renderBatch, type IpCommand, type IpTarget } from './ip-batch.js'

const sysNet = (name: string): string => `/sys/class/net/${name}`

/** Link names of this process's netns: /proc/self/net follows the caller, /sys the netns that mounted it. */
function ownLinkNames (): string[] {
  return readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2).map(l => l.split(':')[0]?.trim() ?? '').filter(n => n !== '')
}

let sysIsOurs: boolean | undefined
/**
 * Whether /sys/class/net shows our netns (a runtime that entered the node's netns without remounting /sys
 * would otherwise make us miss the bridge we created). Decided once per process, cheaply.
 */
function sysShowsOwnNetns (): boolean {
  if (sysIsOurs === undefined) {
    let sys: string[] = []
    try { sys = readdirSync('/sys/class/net') } catch {}
    const own = ownLinkNames()
    sysIsOurs = own.length === sys.length && own.every(n => sys.includes(n))
  }
  return sysIsOurs
}

interface IpLink { ifname: string, address?: string, master?: string }

export class IpDataplane implements Dataplane {
  private readonly exec: Exec
  constructor (exec: Exec = spawnExec) { this.exec = exec }

  async checkNetns (netns: string): Promise<void> {
    let st
    try { st = statSync(netns) } catch {
      throw new CniError(CniCode.INVALID_NETNS, `network namespace ${netns} does not exist`)
    }
    const own = statSync('/proc/self/ns/net')
    if (st.ino === own.ino && st.dev === own.dev) {
      throw new CniError(CniCode.INVALID_NETNS, `CNI_NETNS ${netns} is the plugin's own network namespace`)
    }
  }

  async linkExists (name: string): Promise<boolean> { return sysShowsOwnNetns() ? existsSync(sysNet(name)) : ownLinkNames().includes(name) }

  /** One link's MAC and master, from /sys when it shows our netns, else from `ip -j link`. */
  private async linkInfo (name: string): Promise<{ mac: string, master: string } | null> {
    if (sysShowsOwnNetns()) {
      if (!existsSync(sysNet(name))) return null
      let master = ''
      try { master = readlinkSync(`${sysNet(name)}/master`).split('/').pop() ?? '' } catch {}
      return { mac: readFileSync(`${sysNet(name)}/address`, 'utf8').trim(), master }
    }
    if (!ownLinkNames().includes(name)) return null
    const r = await this.exec(['ip', '-j', 'link', 'show', 'dev', name])
    const l = r.code === 0 ? (JSON.parse(r.stdout) as IpLink[])[0] : undefined
    return l === undefined ? null : { mac: l.address ?? '', master: l.master ?? '' }
  }

  async setupHost (bridge: BridgeSpec, veth: VethSpec): Promise<string> {
    try {
      return await this.hostBatch(bridge, veth)
    } catch (e) {
      // Another ADD created the bridge between our look and our batch: once more, now finding it.
      if (e instanceof BatchError && e.line === 1 && /File exists/.test(e.message)) return await this.hostBatch(bridge, veth)
      throw e
    }
  }

  private async hostBatch (bridge: BridgeSpec, veth: VethSpec): Promise<string> {
    const br = bridge.name
    const lines: IpCommand[] = []
    const exists = await this.linkExists(br)
    if (!exists) lines.push(['link', 'add', 'name', br, 'address', bridge.mac, 'mtu', String(bridge.mtu), 'type', 'bridge'])
    else for (const stale of await this.staleBridgeAddresses(bridge)) lines.push(['addr', 'del', stale, 'dev', br])
    for (const a of bridge.addresses) lines.push(['addr', 'replace', a, 'dev', br, ...(a.includes(':') ? ['nodad'] : [])])
    lines.push(['link', 'set', 'dev', br, 'mtu', String(bridge.mtu), 'up'])
    const vethLine = lines.length + 1
    const mtu = String(veth.mtu)
    lines.push(['link', 'add', 'name', veth.hostName, 'mtu', mtu, 'address', veth.hostMac, 'type', 'veth',
      'peer', 'name', veth.podName, 'mtu', mtu, 'address', veth.podMac, 'netns', veth.netns])
    lines.push(['link', 'set', 'dev', veth.hostName, 'master', br, 'up'])
    if (veth.hairpin) lines.push(['link', 'set', 'dev', veth.hostName, 'type', 'bridge_slave', 'hairpin', 'on'])
    try {
      await this.batch(HOST_IP, lines)
    } catch (e) {
      if (e instanceof BatchError && e.line === vethLine && /File exists/.test(e.message)) {
        throw new CniError(CniCode.INTERFACE_EXISTS, `container veth name "${veth.podName}" already exists in ${veth.netns}`)
      }
      throw e
    }
    return exists ? (await this.linkInfo(bridge.name))?.mac ?? bridge.mac : bridge.mac
  }

  /**
   * Global addresses on an existing bridge other than the wanted ones (a node subnet that changed).
   * /proc/net/route tells cheaply whether an IPv4 subnet other than ours is on the bridge; only then
   * is the address list read with a process.
   */
  private async staleBridgeAddresses (bridge: BridgeSpec): Promise<string[]> {
    const wantV4 = bridge.addresses.filter(a => !a.includes(':')).map(v4Network)
    const routes = readFileSync('/proc/net/route', 'utf8').split('\n').slice(1)
    const foreign = routes.some(l => {
      const f = l.trim().split(/\s+/)
      if (f[0] !== bridge.name || f[2] !== '00000000') return false
      return !wantV4.includes(`${hexToV4(f[1] ?? '')}/${maskBits(f[7] ?? '')}`)
    })
    const v6 = readFileSync('/proc/net/if_inet6', 'utf8').split('\n').filter(l => l.trim().endsWith(` ${bridge.name}`))
    const want6 = bridge.addresses.filter(a => a.includes(':'))
    const foreign6 = v6.filter(l => {
      const f = l.trim().split(/\s+/)
      if (f[3] !== '00') return false // global scope only
      return !want6.includes(`${hexToV6(f[0] ?? '')}/${Number.parseInt(f[2] ?? '0', 16)}`)
    }).map(l => {
      const f = l.trim().split(/\s+/)
      return `${hexToV6(f[0] ?? '')}/${Number.parseInt(f[2] ?? '0', 16)}`
    })
    if (!foreign) return foreign6
    const out = [...foreign6]
    // Rare path (the subnet moved): list IPv4 addresses with ip.
    const r = await this.exec(['ip', '-j', '-4', 'addr', 'show', 'dev', bridge.name])
    const parsed = JSON.parse(r.code === 0 ? r.stdout : '[]') as Array<{ addr_info?: Array<{ local: string, prefixlen: number, scope: string }> }>
    for (const a of parsed[0]?.addr_info ?? []) {
      const text = `${a.local}/${a.prefixlen}`
      if (a.scope === 'global' && !bridge.addresses.includes(text)) out.push(text)
    }
    return out
  }

  async setupPod (pod: PodSpec): Promise<void> {
    const lines: IpCommand[] = []
    for (const a of pod.addresses) lines.push(['addr', 'add', `${a.ip}/${a.prefix}`, 'dev', pod.ifname, ...(a.family === 'IPv6' ? ['nodad'] : [])])
    lines.push(['link', 'set', 'dev', pod.ifname, 'up'])
    // append, not add: the netns may already have a default route (another attachment, eth1 beside eth0),
    // and add would fail on it with "File exists" where the bridge plugin appends (RouteAddEcmp).
    for (const a of pod.addresses) lines.push(['route', 'append', 'default', 'via', a.gateway, 'dev', pod.ifname])
    await this.batch(podTarget(pod), lines)
  }

  async enableForwarding (families: ReadonlyArray<'IPv4' | 'IPv6'>): Promise<void> {
    const files = new Set(families.map(f => f === 'IPv4' ? '/proc/sys/net/ipv4/ip_forward' : '/proc/sys/net/ipv6/conf/all/forwarding'))
    for (const f of files) if (readFileSync(f, 'utf8').trim() !== '1') writeFileSync(f, '1')
    // A ClusterIP whose endpoint shares the bridge: the bridged reply must meet conntrack to be un-DNATed,
    // which br_netfilter does only with these on (where the kernel has it).
    for (const f of families.map(f => f === 'IPv4' ? '/proc/sys/net/bridge/bridge-nf-call-iptables' : '/proc/sys/net/bridge/bridge-nf-call-ip6tables')) {
      if (existsSync(f) && readFileSync(f, 'utf8').trim() !== '1') writeFileSync(f, '1')
    }
  }

  async removeVeth (hostName: string): Promise<void> {
    if (!await this.linkExists(hostName)) return
    const r = await this.exec(['ip', 'link', 'del', hostName])
    if (r.code !== 0 && await this.linkExists(hostName)) throw new Error(`ip link del ${hostName}: ${r.stderr.trim()}`)
  }

  async masquerade (m: MasqSpec): Promise<void> {
    for (const fam of ['IPv4', 'IPv6'] as const) {
      const sources = m.sources.filter(s => s.family === fam)
      if (sources.length === 0) continue
      const v6 = fam === 'IPv6'
      const rules = ['*nat', `:${m.chain} - [0:0]`]
      for (const n of m.clusterNetworks.filter(n => n.includes(':') === v6)) rules.push(`-A ${m.chain} -d ${n} -j ACCEPT`)
      rules.push(`-A ${m.chain} ! -d ${v6 ? 'ff00::/8' : '224.0.0.0/4'} -j MASQUERADE`)
      for (const s of sources) rules.push(`-A POSTROUTING -s ${s.ip} -m comment --comment ${comment(m.network)} -j ${m.chain}`)
      rules.push('COMMIT')
      await this.run([v6 ? 'ip6tables-restore' : 'iptables-restore', '-w', '--noflush'], rules.join('\n') + '\n')
    }
  }

  async unmasquerade (chain: string): Promise<void> {
    for (const v6 of [false, true]) {
      const saved = await this.exec([v6 ? 'ip6tables-save' : 'iptables-save', '-t', 'nat'])
      if (saved.code !== 0) { if (v6) continue; throw new Error(`iptables-save: ${saved.stderr.trim()}`) }
      const lines = saved.stdout.split('\n')
      if (!lines.some(l => l.startsWith(`:${chain} `))) continue
      const rules = ['*nat']
      for (const l of lines) if (l.startsWith('-A POSTROUTING ') && l.endsWith(` -j ${chain}`)) rules.push(l.replace(/^-A /, '-D '))
      rules.push(`-F ${chain}`, `-X ${chain}`, 'COMMIT')
      await this.run([v6 ? 'ip6tables-restore' : 'iptables-restore', '-w', '--noflush'], rules.join('\n') + '\n')
    }
  }

  async masqChains (network: string): Promise<string[]> {
    const out = new Set<string>()
    for (const v6 of [false, true]) {
      const saved = await this.exec([v6 ? 'ip6tables-save' : 'iptables-save', '-t', 'nat'])
      if (saved.code !== 0) continue
      for (const l of saved.stdout.split('\n')) {
        if (!l.startsWith('-A POSTROUTING ')) continue
        const t = l.split(/\s+/)
        const c = t.indexOf('--comment')
        const j = t.indexOf('-j')
        if (c < 0 || j < 0) continue
        if ((t[c + 1] ?? '').replace(/^"|"$/g, '') === comment(network) && /^FY-[0-9a-f]{24}$/.test(t[j + 1] ?? '')) out.add(t[j + 1] ?? '')
      }
    }
    return [...out]
  }

  async observe (netns: string, ifname: string, hostName: string): Promise<Observed> {
    const hostMaster = (await this.linkInfo(hostName))?.master ?? null
    // Every route, not `route show dev`: an IPv6 default route appended beside another interface's becomes
    // one multipath route, which `show dev` leaves out; its nexthops name the devices.
    const r = await this.exec(['nsenter', `--net=${netns}`, 'sh', '-c',
      'ip -j addr show dev "$1" && ip -j -4 route show && ip -j -6 route show', 'sh', ifname])
    if (r.code !== 0) return { hostMaster, pod: null }
    const [links, r4, r6] = r.stdout.trim().split('\n').map(l => JSON.parse(l) as Array<Record<string, unknown>>)
    const link = links?.[0]
    if (link === undefined) return { hostMaster, pod: null }
    const info = (link.addr_info ?? []) as Array<{ local: string, prefixlen: number, scope: string }>
    const routes = [...(r4 ?? []).map(x => ({ x, v6: false })), ...(r6 ?? []).map(x => ({ x, v6: true }))].flatMap(({ x, v6 }) => {
      const dst = x.dst === 'default' ? (v6 ? '::/0' : '0.0.0.0/0') : String(x.dst)
      const hops = Array.isArray(x.nexthops) ? x.nexthops as Array<Record<string, unknown>> : [x]
      return hops.filter(h => h.dev === ifname).map(h => typeof h.gateway === 'string' ? { dst, gw: h.gateway } : { dst })
    })
    return {
      hostMaster,
      pod: {
        mac: String(link.address ?? ''),
        mtu: Number(link.mtu ?? 0),
        up: ((link.flags ?? []) as string[]).includes('UP'),
        addresses: info.filter(a => a.scope === 'global').map(a => `${a.local}/${a.prefixlen}`),
        routes,
      },
    }
  }

  async bridgePorts (bridge: string): Promise<string[]> {
    if (sysShowsOwnNetns()) { try { return readdirSync(`${sysNet(bridge)}/brif`) } catch { return [] } }
    const r = await this.exec(['ip', '-j', 'link', 'show', 'master', bridge])
    return r.code === 0 ? (JSON.parse(r.stdout) as IpLink[]).map(l => l.ifname) : []
  }

  private async run (argv: string[], stdin: string): Promise<void> {
    const r = await this.exec(argv, stdin)
    if (r.code !== 0) throw new Error(`${argv[0] ?? ''}: exit ${r.code}: ${r.stderr.trim()}`)
  }

  /**
   * The commands in order, stopping at the first that fails (BatchError with its 1-based line): as one
   * `ip -batch -`, or as one ip each when a word cannot be written in a batch (ip-batch.ts).
   */
  private async batch (target: IpTarget, commands: readonly IpCommand[]): Promise<void> {
    const text = renderBatch(commands)
    if (text === null) {
      for (const [i, cmd] of commands.entries()) {
        const argv = target.single(cmd)
        const r = await this.exec(argv)
        if (r.code !== 0) throw new BatchError(`${argv.join(' ')}: ${r.stderr.trim()}`, i + 1)
      }
      return
    }
    const r = await this.exec(target.batch, text)
    if (r.code === 0) return
    // ip -batch stops at the first failing line and reports "Command failed -:N".
    const m = /Command failed -:(\d+)/.exec(r.stderr)
    const line = m?.[1] === undefined ? 0 : Number(m[1])
    const at = line > 0 ? ` (at "${text.split('\n')[line - 1] ?? ''}")` : ''
    throw new BatchError(`${target.batch.join(' ')}: ${r.stderr.trim()}${at}`, line)
  }
}

/** A netns the runtime named under /run/netns, by the name `ip -n` takes (it opens /run/netns/NAME itself). */
const RUN_NETNS = /^\/run\/netns\/([^/]+)$/

/**
 * The process that runs the pod side's batch inside the pod's netns. IPv6: duplicate address detection
 * off first (accept_dad=0), in the same process that runs ip. IPv4 with a /run/netns/NAME path: `ip -n NAME`
 * enters it itself, one exec instead of nsenter's two (~0.6 ms of an ADD here).
 */
export function podArgv (pod: PodSpec): string[] {
  return podIp(pod, ['-batch', '-'])
}

/** argv running `ip ARGS` inside the pod's netns, as podArgv says. */
function podIp (pod: PodSpec, args: readonly string[]): string[] {
  if (pod.addresses.some(a => a.family === 'IPv6')) {
    return ['nsenter', `--net=${pod.netns}`, 'sh', '-c', 'echo 0 > "/proc/sys/net/ipv6/conf/$1/accept_dad" && shift && exec ip "$@"', 'sh', pod.ifname, ...args]
  }
  const name = RUN_NETNS.exec(pod.netns)?.[1]
  if (name !== undefined && name !== '.' && name !== '..') return ['ip', '-n', name, ...args]
  return ['nsenter', `--net=${pod.netns}`, 'ip', ...args]
}

/** The pod side's batch, or its commands one by one, inside the pod's netns. */
export function podTarget (pod: PodSpec): IpTarget {
  return { batch: podArgv(pod), single: cmd => podIp(pod, cmd) }
}

class BatchError extends Error {
  readonly line: number
  constructor (msg: string, line: number) { super(msg); this.line = line }
}

const comment = (network: string): string => `ferry-cni/${network}`

function hexToV4 (hex: string): string {
  // /proc/net/route prints addresses little-endian.
  const n = Number.parseInt(hex, 16)
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.')
}

function maskBits (hex: string): number {
  let n = Number.parseInt(hex, 16) >>> 0
  let bits = 0
  while (n !== 0) { bits += n & 1; n >>>= 1 }
  return bits
}

function v4Network (cidr: string): string {
  const [ip = '', p = '32'] = cidr.split('/')
  const prefix = Number(p)
  const n = ip.split('.').reduce((acc, o) => (acc * 256) + Number(o), 0)
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
  const net = (n & mask) >>> 0
  return `${[net >>> 24, (net >>> 16) & 0xff, (net >>> 8) & 0xff, net & 0xff].join('.')}/${prefix}`
}

function hexToV6 (hex: string): string {
  const groups = hex.match(/.{4}/g) ?? []
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
}
