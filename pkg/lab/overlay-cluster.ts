// A throwaway multi-node cluster on one machine for pod networking: a real etcd, node network namespaces
// on one underlay (a host bridge and a veth per node), the real ferryd with --overlay in each node, and
// pods made by calling bin/ferry-cni as a runtime does. Every name starts with `fyo<id>`, so close()
// finds everything it made even if setUp was interrupted half way. Dual-stack ({ dualStack: true }): the
// network config adds an IPv6 network, the underlay carries IPv6 too (vxlan sends IPv6 pod traffic over a
// second device on the IPv6 underlay, host-gw routes it via the peer's IPv6 address), pods get one IP per
// family.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'
import { spawnExec, run, type Exec } from '../exec/exec.js'
import { callCni, firstIP, type CniResult, type FerryCniConf } from './cni.js'
import { startLabEtcd, type LabEtcd } from './etcd.js'
import { startFerryd, type LabFerryd } from './ferryd.js'
import { startPodServer } from './pod-server.js'
import { deleteNamespaces } from './netns.js'
import { httpGet, spread, type GetResult } from './probe.js'

/** Address conventions of the overlay cluster (the underlay differs from the overlay e2e test's, so both can run at once). */
export const OVERLAY_LAB = {
  underlayHostIP: '192.168.92.1',
  /** Node i (0-based) has 192.168.92.(10+i) on the underlay. */
  nodeIP: (i: number): string => `192.168.92.${10 + i}`,
  underlayHostIPv6: 'fd00:192:168:92::1',
  /** Dual-stack: node i also has fd00:192:168:92::(10+i) (hex) on the underlay. */
  nodeIPv6: (i: number): string => `fd00:192:168:92::${(10 + i).toString(16)}`,
  network: '10.244.0.0/16',
  subnetLen: 24,
  networkIPv6: 'fd00:10:244::/56',
  subnetLenIPv6: 64,
  etcdPrefix: '/ferry',
  vxlanDevice: 'ferry.1',
  /** The vxlan device over the IPv6 underlay (dual-stack). */
  vxlanDeviceV6: 'ferry-v6.1',
  vxlanPort: 8472,
} as const

export type OverlayBackend = 'vxlan' | 'host-gw'

export interface OverlayNode {
  /** Kubernetes node name, "node-<short>". */
  readonly name: string
  readonly ns: string
  readonly ip: string
  /** Dual-stack only: the node's IPv6 underlay address (--public-ipv6). */
  readonly ipv6?: string
  /** The node's underlay interface (--overlay-iface). */
  readonly uplink: string
  /** The node's private directory: subnet.env and ferry-cni's IPAM store. */
  readonly dir: string
  readonly subnetFile: string
  ferryd?: LabFerryd
}

export interface OverlayPod {
  readonly name: string
  readonly node: OverlayNode
  readonly ns: string
  readonly ip: string
  /** Dual-stack: the pod's IPv6 address ('' when the result has none). */
  readonly ipv6: string
  readonly containerId: string
  readonly result: CniResult
}

/** A subnet lease as ferryd stores it at <prefix>/network/subnets/<a.b.c.d-len> (IPv6: <a:b:c:d::-len>). */
export interface SubnetLease { readonly subnet: string, readonly publicIP: string, readonly publicIPv6: string, readonly backendType: string, readonly backendData: Record<string, unknown> }

export interface OverlayClusterOptions {
  /** An IPv6 network in the config, an IPv6 underlay, ferryd with --public-ipv6. */
  readonly dualStack?: boolean
  /** Dual-stack only: false leaves the underlay IPv4-only (vxlan then carries IPv6 pods over IPv4). Default true. */
  readonly ipv6Underlay?: boolean
}

export type IPFamilyName = 'IPv4' | 'IPv6'

export class OverlayCluster {
  readonly id = randomBytes(2).toString('hex')
  readonly prefix = `fyo${this.id}`
  readonly bridge = `${this.prefix}ul`
  readonly nodes: OverlayNode[] = []
  readonly pods: OverlayPod[] = []
  etcd: LabEtcd | undefined
  private readonly procs: ChildProcess[] = []
  /** Every namespace addNs made (recorded before it exists), so close() needs no listing. */
  private readonly made = new Set<string>()
  private readonly dirs: string[] = []
  private closed = false

  readonly dualStack: boolean
  readonly ipv6Underlay: boolean

  constructor (private readonly backend: OverlayBackend = 'vxlan', private readonly exec: Exec = spawnExec, opts: OverlayClusterOptions = {}) {
    this.dualStack = opts.dualStack === true
    this.ipv6Underlay = this.dualStack && opts.ipv6Underlay !== false
  }

  /** Makes, sets up and returns a cluster of nodes node-<short> (closing it again if setting up fails). */
  static async create (shorts: string[] = ['a', 'b'], backend: OverlayBackend = 'vxlan', opts: OverlayClusterOptions = {}): Promise<OverlayCluster> {
    const c = new OverlayCluster(backend, spawnExec, opts)
    try { await c.setUp(shorts) } catch (e) { await c.close().catch(() => {}); throw e } // the set-up error is the one to report
    return c
  }

  /** The etcd URL nodes use: etcd's port on the underlay bridge address. */
  get etcdEndpoint (): string {
    if (this.etcd === undefined) throw new Error('overlay cluster: not set up')
    return this.etcd.endpointOn(OVERLAY_LAB.underlayHostIP)
  }

  /** The underlay bridge, the node namespaces on it, etcd on the bridge address, and the network config in etcd. */
  async setUp (shorts: string[]): Promise<void> {
    await this.ip(['link', 'add', this.bridge, 'type', 'bridge'])
    await this.ip(['addr', 'add', `${OVERLAY_LAB.underlayHostIP}/24`, 'dev', this.bridge])
    // nodad: the lab's addresses are unique by construction, and a tentative address cannot be used for seconds.
    if (this.ipv6Underlay) await this.ip(['addr', 'add', `${OVERLAY_LAB.underlayHostIPv6}/64`, 'dev', this.bridge, 'nodad'])
    await this.ip(['link', 'set', this.bridge, 'up'])
    for (const [i, short] of shorts.entries()) {
      const ns = `${this.prefix}-${short}`
      const uplink = `${this.prefix}${short}u`
      const ip = OVERLAY_LAB.nodeIP(i)
      await this.addNs(ns)
      await this.ip(['link', 'add', `${uplink}h`, 'type', 'veth', 'peer', 'name', uplink, 'netns', ns])
      await this.ip(['link', 'set', `${uplink}h`, 'master', this.bridge, 'up'])
      await this.ip(['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', uplink])
      await this.ip(['-n', ns, 'link', 'set', uplink, 'up'])
      await this.ip(['-n', ns, 'route', 'add', 'default', 'via', OVERLAY_LAB.underlayHostIP])
      await this.sh(['sysctl', '-qw', 'net.ipv4.ip_forward=1'], ns)
      const ipv6 = this.ipv6Underlay ? OVERLAY_LAB.nodeIPv6(i) : undefined
      if (ipv6 !== undefined) {
        await this.ip(['-n', ns, 'addr', 'add', `${ipv6}/64`, 'dev', uplink, 'nodad'])
        await this.ip(['-n', ns, 'route', 'add', 'default', 'via', OVERLAY_LAB.underlayHostIPv6])
      }
      // Pods' IPv6 traffic is forwarded whatever the underlay (ferry-cni turns it on too, at the first ADD).
      if (this.dualStack) await this.sh(['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1'], ns)
      const dir = await this.tempDir(`node-${short}`)
      this.nodes.push({ name: `node-${short}`, ns, ip, ...(ipv6 !== undefined ? { ipv6 } : {}), uplink, dir, subnetFile: join(dir, 'subnet.env') })
    }
    this.etcd = await startLabEtcd([OVERLAY_LAB.underlayHostIP])
    await this.withEtcd(async c => { await c.put(`${OVERLAY_LAB.etcdPrefix}/network/config`).value(JSON.stringify(this.networkConfig())) })
  }

  /** What setUp puts at <prefix>/network/config (flannel's format; dual-stack adds EnableIPv6, IPv6Network, IPv6SubnetLen). */
  networkConfig (): Record<string, unknown> {
    const v6 = this.dualStack ? { EnableIPv6: true, IPv6Network: OVERLAY_LAB.networkIPv6, IPv6SubnetLen: OVERLAY_LAB.subnetLenIPv6 } : {}
    return { Network: OVERLAY_LAB.network, SubnetLen: OVERLAY_LAB.subnetLen, ...v6, Backend: { Type: this.backend } }
  }

  /** Starts the real ferryd with the overlay in `node` against the cluster's etcd; waits for /readyz. */
  async startFerryd (node: OverlayNode, extraArgs: string[] = []): Promise<LabFerryd> {
    const host = {
      nodeNs: node.ns,
      spawn: (argv: string[], ns = node.ns, opts?: { env?: NodeJS.ProcessEnv, stdio?: 'pipe' | 'inherit' }) => this.spawn(argv, ns, opts),
      sh: async (argv: string[], ns = node.ns, stdin?: string) => await this.sh(argv, ns, stdin),
    }
    const families = this.dualStack
      ? ['--cluster-cidr', `${OVERLAY_LAB.network},${OVERLAY_LAB.networkIPv6}`, '--ip-families', 'IPv4,IPv6', ...(node.ipv6 !== undefined ? ['--public-ipv6', node.ipv6] : [])]
      : ['--cluster-cidr', OVERLAY_LAB.network]
    node.ferryd = startFerryd(host, ['--node-name', node.name, '--etcd-endpoints', this.etcdEndpoint,
      '--overlay', '--overlay-iface', node.uplink, '--subnet-file', node.subnetFile, ...families,
      '--proxy-mode', 'iptables', ...extraArgs])
    await node.ferryd.waitReady()
    return node.ferryd
  }

  /** ferry-cni's network config for `node`. */
  cniConf (node: OverlayNode): FerryCniConf {
    return { cniVersion: '1.0.0', name: 'ferry-demo', type: 'ferry-cni', bridge: 'fybr0', subnetFile: node.subnetFile, dataDir: join(node.dir, 'ipam') }
  }

  /** A pod namespace on `node`, wired by ferry-cni ADD (eth0); its IP comes from the node's subnet. */
  async addPod (node: OverlayNode, name: string): Promise<OverlayPod> {
    const ns = `${node.ns}-${name}`
    await this.addNs(ns)
    const containerId = `${name}-${randomBytes(4).toString('hex')}`
    const result = await callCni(node.ns, 'ADD', { containerId, netns: `/run/netns/${ns}`, ifname: 'eth0' }, this.cniConf(node))
    const ip = firstIP(result)
    if (ip === '') throw new Error(`ferry-cni ADD for ${name} gave no IP: ${JSON.stringify(result)}`)
    const ipv6 = (result.ips ?? []).map(i => i.address.split('/')[0] ?? '').find(a => a.includes(':')) ?? ''
    if (this.dualStack && ipv6 === '') throw new Error(`ferry-cni ADD for ${name} gave no IPv6 address on a dual-stack node: ${JSON.stringify(result)}`)
    const pod = { name, node, ns, ip, ipv6, containerId, result }
    this.pods.push(pod)
    return pod
  }

  /** ferry-cni DEL, as a runtime calls it when the pod goes. */
  async delPod (pod: OverlayPod): Promise<void> {
    await callCni(pod.node.ns, 'DEL', { containerId: pod.containerId, netns: `/run/netns/${pod.ns}`, ifname: 'eth0' }, this.cniConf(pod.node))
  }

  /** Runs the lab's web server (answers "<pod> <client address>") in `pod` on `ports`. */
  async serve (pod: OverlayPod, ports: number[] = [8080]): Promise<void> {
    await startPodServer((argv, ns) => this.spawn(argv, ns), pod.name, pod.ns, ports)
  }

  /** The node file ferryd wrote for ferry-cni. */
  async nodeFile (node: OverlayNode): Promise<string> { return await readFile(node.subnetFile, 'utf8') }

  /** The subnet leases in etcd, sorted by subnet. */
  async leases (): Promise<SubnetLease[]> {
    const kvs = await this.withEtcd(async c => await c.getAll().prefix(`${OVERLAY_LAB.etcdPrefix}/network/subnets/`).strings())
    return Object.entries(kvs).map(([k, v]) => {
      const attrs = JSON.parse(v) as { PublicIP?: string, PublicIPv6?: string, BackendType?: string, BackendData?: Record<string, unknown> }
      return { subnet: (k.split('/').pop() ?? '').replace('-', '/'), publicIP: attrs.PublicIP ?? '', publicIPv6: attrs.PublicIPv6 ?? '', backendType: attrs.BackendType ?? '', backendData: attrs.BackendData ?? {} }
    }).sort((a, b) => a.subnet.localeCompare(b.subnet, 'en', { numeric: true }))
  }

  /**
   * Starts counting UDP packets to `port` leaving `node` on its underlay interface (an iptables rule with a
   * counter; `family` IPv6: ip6tables, i.e. outer IPv6 packets).
   */
  async countUdpOut (node: OverlayNode, port: number = OVERLAY_LAB.vxlanPort, family: IPFamilyName = 'IPv4'): Promise<void> {
    await this.sh([iptables(family), '-I', 'OUTPUT', '-o', node.uplink, '-p', 'udp', '--dport', String(port), '-m', 'comment', '--comment', `ferry-lab-udp-${port}`], node.ns)
  }

  /** Packets counted since countUdpOut(node, port, family). */
  async udpOut (node: OverlayNode, port: number = OVERLAY_LAB.vxlanPort, family: IPFamilyName = 'IPv4'): Promise<number> {
    const rules = await this.sh([iptables(family), '-L', 'OUTPUT', '-v', '-x', '-n'], node.ns)
    const line = rules.split('\n').find(l => l.includes(`ferry-lab-udp-${port}`)) ?? ''
    return Number(line.trim().split(/\s+/)[0] ?? 0)
  }

  /** Packets sent and received by a link in `node` (e.g. the vxlan device). */
  async linkPackets (node: OverlayNode, dev: string = OVERLAY_LAB.vxlanDevice): Promise<{ tx: number, rx: number }> {
    const [l] = JSON.parse(await this.sh(['ip', '-s', '-j', 'link', 'show', dev], node.ns)) as Array<{ stats64?: { tx?: { packets?: number }, rx?: { packets?: number } } }>
    return { tx: l?.stats64?.tx?.packets ?? 0, rx: l?.stats64?.rx?.packets ?? 0 }
  }

  async ip (args: string[]): Promise<string> {
    if (this.closed) throw new Error('overlay cluster: closed')
    return await run(['ip', ...args], undefined, this.exec)
  }

  /** Runs a command inside `ns`. */
  async sh (argv: string[], ns: string, stdin?: string): Promise<string> {
    return await run(['ip', 'netns', 'exec', ns, ...argv], stdin, this.exec)
  }

  /** Starts a long-lived process inside `ns`; close() stops it. */
  spawn (argv: string[], ns: string, opts: { env?: NodeJS.ProcessEnv, stdio?: 'pipe' | 'inherit' } = {}): ChildProcess {
    if (this.closed) throw new Error('overlay cluster: closed')
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: opts.stdio === 'inherit' ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env })
    this.procs.push(child)
    return child
  }

  /** One GET from `ns` with a fresh connection. */
  async get (url: string, ns: string, timeoutS = 2): Promise<GetResult> { return await httpGet(this.exec, ns, url, timeoutS) }

  /** `n` GETs from `ns`; how many answers each pod gave. */
  async spread (url: string, n: number, ns: string): Promise<Map<string, number>> { return await spread(async () => await this.get(url, ns), n) }

  /** Stops every process, deletes every `fyo<id>-` namespace and the bridge, stops etcd, removes the temp dirs. Idempotent. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all(this.procs.map(async p => { await stop(p) }))
    // Pods first: their veths' node ends go with them, then the nodes (and their underlay veths).
    let failed: unknown = null
    try { await deleteNamespaces(this.exec, [...this.made].sort((a, b) => b.length - a.length)) } catch (e) { failed = e }
    await this.exec(['ip', 'link', 'del', this.bridge])
    await this.etcd?.stop()
    for (const d of this.dirs) await rm(d, { recursive: true, force: true })
    if (failed !== null) throw failed
  }

  private async addNs (ns: string): Promise<void> {
    this.made.add(ns) // recorded before it exists: close() deletes it even if the add was in flight
    await this.ip(['netns', 'add', ns])
    await this.ip(['-n', ns, 'link', 'set', 'lo', 'up'])
  }

  private async tempDir (name: string): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), `ferry-demo-${name}-`))
    this.dirs.push(d)
    return d
  }

  private async withEtcd<T> (fn: (c: Etcd3) => Promise<T>): Promise<T> {
    if (this.etcd === undefined) throw new Error('overlay cluster: not set up')
    const c = new Etcd3({ hosts: this.etcd.endpoint })
    try { return await fn(c) } finally { c.close() }
  }
}

function iptables (family: IPFamilyName): string { return family === 'IPv6' ? 'ip6tables' : 'iptables' }

async function stop (p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(() => { p.kill('SIGKILL') }, 3000)
    p.once('exit', () => { clearTimeout(timer); resolve() })
    p.kill('SIGTERM')
  })
}
