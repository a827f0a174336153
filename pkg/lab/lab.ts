// A throwaway cluster in network namespaces on one machine: a node, pods wired to it point-to-point,
// and an external client. The demo and the end-to-end tests drive ferryd inside it with real packets.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { spawnExec, run, type Exec } from '../exec/exec.js'
import { deleteNamespaces } from './netns.js'
import { startPodServer } from './pod-server.js'
import { httpGet, spread, type GetResult } from './probe.js'

/** Address conventions shared by the demo, tests and benches. */
export const LAB = {
  podCIDR: '10.244.0.0/16',
  podGateway: '10.244.0.1',
  nodeExternalIP: '192.168.77.1',
  clientIP: '192.168.77.2',
  externalCIDR: '192.168.77.0/24',
  podCIDR6: 'fd00:10:244::/64',
  podGateway6: 'fd00:10:244::1',
  nodeExternalIP6: 'fd00:77::1',
  clientIP6: 'fd00:77::2',
} as const

export interface Pod { readonly name: string, readonly ns: string, readonly ip: string, readonly ip6: string, readonly hostVeth: string }

/** A pod's IPv6 address mirrors its IPv4 one: 10.244.A.B is fd00:10:244::(A*256+B in hex). */
export function podIP6 (ip: string): string {
  const [, , a = 0, b = 0] = ip.split('.').map(Number)
  return `fd00:10:244::${(a * 256 + b).toString(16)}`
}

// One datagram from a fixed source port (so conntrack sees the same 5-tuple each time); prints the
// answer, 'timeout', or 'refused' (the socket is connected, so a REJECT's ICMP surfaces as ECONNREFUSED).
const UDP_CLIENT = `
const [addr, port, sport] = process.argv.slice(1);
const s = require('dgram').createSocket(addr.includes(':') ? 'udp6' : 'udp4');
const done = (m) => { clearTimeout(timer); process.stdout.write(m + '\\n'); s.close(); };
const timer = setTimeout(() => done('timeout'), 1000);
s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error ' + e.code));
s.on('message', (m) => done(String(m).trim()));
s.bind(Number(sport), () => s.connect(Number(port), addr, () => s.send('q')));
`

export class Lab {
  readonly id: string
  readonly nodeNs: string
  readonly clientNs: string
  readonly pods: Pod[] = []
  private readonly procs: ChildProcess[] = []
  private readonly namespaces: string[] = []
  private closed = false

  private constructor (id: string, private readonly exec: Exec) {
    this.id = id
    this.nodeNs = `fy${id}-node`
    this.clientNs = `fy${id}-client`
  }

  /** Creates the node and client namespaces, linked by a veth pair on LAB.externalCIDR. */
  static async create (exec: Exec = spawnExec): Promise<Lab> {
    const lab = new Lab(randomBytes(3).toString('hex'), exec)
    try {
      await lab.addNs(lab.nodeNs)
      await lab.addNs(lab.clientNs)
      await lab.sh(['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'], lab.nodeNs)
      const [hv, cv] = [`fy${lab.id}c0`, `fy${lab.id}c1`]
      await lab.ip(['link', 'add', hv, 'netns', lab.nodeNs, 'type', 'veth', 'peer', 'name', cv, 'netns', lab.clientNs])
      await lab.ip(['-n', lab.nodeNs, 'addr', 'add', `${LAB.nodeExternalIP}/24`, 'dev', hv])
      await lab.ip(['-n', lab.nodeNs, 'addr', 'add', `${LAB.nodeExternalIP6}/64`, 'dev', hv, 'nodad'])
      await lab.up(lab.nodeNs, hv)
      await lab.ip(['-n', lab.clientNs, 'addr', 'add', `${LAB.clientIP}/24`, 'dev', cv])
      await lab.ip(['-n', lab.clientNs, 'addr', 'add', `${LAB.clientIP6}/64`, 'dev', cv, 'nodad'])
      await lab.up(lab.clientNs, cv)
      await lab.ip(['-n', lab.clientNs, 'route', 'add', 'default', 'via', LAB.nodeExternalIP])
      await lab.ip(['-n', lab.clientNs, '-6', 'route', 'add', 'default', 'via', LAB.nodeExternalIP6])
      // Like a real node, the node forwards unknown destinations upstream: here into a black hole (a
      // veth pair: the kernel may lack the dummy driver), so a VIP without rules times out instead of
      // failing with "no route", and a fast refusal proves ferry's REJECT.
      const [s0, s1] = [`fy${lab.id}s0`, `fy${lab.id}s1`]
      await lab.ip(['-n', lab.nodeNs, 'link', 'add', s0, 'type', 'veth', 'peer', 'name', s1])
      await lab.up(lab.nodeNs, s1)
      await lab.up(lab.nodeNs, s0)
      await lab.ip(['-n', lab.nodeNs, 'route', 'add', 'default', 'dev', s0])
      await lab.ip(['-n', lab.nodeNs, '-6', 'route', 'add', 'default', 'dev', s0])
    } catch (e) { await lab.close().catch(() => {}); throw e } // the set-up error is the one to report
    return lab
  }

  private async addNs (ns: string): Promise<void> {
    if (this.closed) throw new Error('lab: closed')
    // Recorded before it exists, so a close() that overlaps the add still deletes it.
    this.namespaces.push(ns)
    await this.ip(['netns', 'add', ns])
    await this.ip(['-n', ns, 'link', 'set', 'lo', 'up'])
  }

  async ip (args: string[]): Promise<string> { return await run(['ip', ...args], undefined, this.exec) }

  /** Brings a link up without IPv6 duplicate address detection, so its addresses work at once. */
  private async up (ns: string, dev: string): Promise<void> {
    await this.sh(['sysctl', '-qw', `net.ipv6.conf.${dev}.accept_dad=0`], ns)
    await this.ip(['-n', ns, 'link', 'set', dev, 'up'])
  }

  /** Runs a command inside `ns` (the node's namespace by default). */
  async sh (argv: string[], ns = this.nodeNs, stdin?: string): Promise<string> {
    return await run(['ip', 'netns', 'exec', ns, ...argv], stdin, this.exec)
  }

  /** Adds pod `name` with IP `ip` (in LAB.podCIDR), routed point-to-point from the node, serving `ports`. */
  async addPod (name: string, ip: string, ports: number[] = [8080]): Promise<Pod> {
    const ns = `fy${this.id}-pod-${name}`
    const hostVeth = `fy${this.id}p${this.pods.length}`
    await this.addNs(ns)
    await this.ip(['link', 'add', hostVeth, 'netns', this.nodeNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    const ip6 = podIP6(ip)
    await this.ip(['-n', this.nodeNs, 'addr', 'add', `${LAB.podGateway}/32`, 'dev', hostVeth])
    await this.ip(['-n', this.nodeNs, 'addr', 'add', `${LAB.podGateway6}/128`, 'dev', hostVeth, 'nodad'])
    await this.up(this.nodeNs, hostVeth)
    await this.ip(['-n', this.nodeNs, 'route', 'add', `${ip}/32`, 'dev', hostVeth, 'src', LAB.podGateway])
    await this.ip(['-n', this.nodeNs, 'route', 'add', `${ip6}/128`, 'dev', hostVeth, 'src', LAB.podGateway6])
    await this.ip(['-n', ns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0'])
    await this.ip(['-n', ns, 'addr', 'add', `${ip6}/128`, 'dev', 'eth0', 'nodad'])
    await this.up(ns, 'eth0')
    await this.ip(['-n', ns, 'route', 'add', LAB.podGateway, 'dev', 'eth0'])
    await this.ip(['-n', ns, 'route', 'add', 'default', 'via', LAB.podGateway, 'dev', 'eth0'])
    await this.ip(['-n', ns, '-6', 'route', 'add', LAB.podGateway6, 'dev', 'eth0'])
    await this.ip(['-n', ns, '-6', 'route', 'add', 'default', 'via', LAB.podGateway6, 'dev', 'eth0'])
    const pod = { name, ns, ip, ip6, hostVeth }
    this.pods.push(pod)
    if (ports.length > 0) await this.serve(pod, ports)
    return pod
  }

  private async serve (pod: Pod, ports: number[]): Promise<void> {
    await startPodServer((argv, ns) => this.spawn(argv, ns), pod.name, pod.ns, ports)
  }

  /** Starts a long-lived process inside `ns`; the lab kills it on close. */
  spawn (argv: string[], ns = this.nodeNs, opts: { env?: NodeJS.ProcessEnv, stdio?: 'pipe' | 'inherit' } = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: opts.stdio === 'inherit' ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env })
    this.procs.push(child)
    return child
  }

  /**
   * One HTTP GET from `ns` with a fresh connection. Returns the body, or the curl error
   * ('refused', 'timeout', or curl's exit code) so tests can tell REJECT from DROP.
   */
  async get (url: string, ns = this.clientNs, timeoutS = 2): Promise<GetResult> {
    return await httpGet(this.exec, ns, url, timeoutS)
  }

  /** One UDP datagram from `ns`, source port `sport`, to addr:port: the answer ("<pod> <client>"), 'timeout' or 'refused'. */
  async udp (addr: string, port: number, sport: number, ns = this.clientNs): Promise<string> {
    return (await this.sh(['node', '-e', UDP_CLIENT, addr, String(port), String(sport)], ns)).trim()
  }

  /** `n` GETs; returns how many answers each pod gave (keyed by the first word of the body). */
  async spread (url: string, n: number, ns = this.clientNs): Promise<Map<string, number>> {
    return await spread(async () => await this.get(url, ns), n)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const p of this.procs) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGTERM')
        await new Promise<void>(resolve => {
          const timer = setTimeout(() => { p.kill('SIGKILL'); resolve() }, 3000)
          p.once('exit', () => { clearTimeout(timer); resolve() })
        })
      }
    }
    // Deleting a namespace deletes its veths; the other ends go with them.
    await deleteNamespaces(this.exec, [...this.namespaces].reverse())
  }
}
