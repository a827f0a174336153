// Pod-to-pod throughput across two nodes over vxlan: ferry (the lab's OverlayCluster: real etcd, ferryd
// --overlay in each node netns, pods from bin/ferry-cni ADD) beside the same path built with the reference
// plugins (Debian's /usr/lib/cni/bridge + host-local, driven with CNI_* env and stdin JSON inside each node
// netns, as a runtime does) and a hand-made vxlan programmed as flannel and ferry do it (a /32 on the
// device, then per peer a permanent neighbour, an FDB entry and an onlink route). Same underlay layout
// (a host bridge, one veth per node), same pod MTU (1450), same iperf3 runs, interleaved ferry,
// reference, reference, ferry... (the first side alternates per round). Both topologies exist for the whole bench, so a round is only the runs.
//
// This measures the data path (kernel vxlan + bridge + veth, plus whatever netfilter each node has), so
// the ratio should be about 1.0: ferry only programs the kernel, it forwards no packets itself. Root only.
//
//   node dist/bench/overlay-throughput.js [--rounds 3] [--time 10] [--no-reverse] [--udp] [--ref-conntrack]
//     --udp: also an unlimited UDP run (-u -b 0), receiver rate and loss
//     --ref-conntrack: flannel's ip-masq rule (masquerade pod traffic leaving 10.244.0.0/16) in each reference
//                      node: it never matches here, but turns conntrack on there as ferryd's proxy rules do in
//                      ferry's nodes
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnExec } from '../pkg/exec/exec.js'
import { OverlayCluster } from '../pkg/lab/overlay-cluster.js'
import { Teardown } from '../pkg/lab/teardown.js'

const REF_BIN = '/usr/lib/cni'
const POD_MTU = 1450
const IPERF_PORT = 5201

interface Args { rounds: number, time: number, reverse: boolean, udp: boolean, refConntrack: boolean }

function parseArgs (argv: string[]): Args {
  const a: Args = { rounds: 3, time: 10, reverse: true, udp: false, refConntrack: false }
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]
    if (v === '--rounds') a.rounds = Number(argv[++i])
    else if (v === '--time') a.time = Number(argv[++i])
    else if (v === '--no-reverse') a.reverse = false
    else if (v === '--udp') a.udp = true
    else if (v === '--ref-conntrack') a.refConntrack = true
    else throw new Error(`unknown argument ${v ?? ''}`)
  }
  if (!(a.rounds >= 1 && a.time >= 1)) throw new Error('--rounds and --time must be ≥ 1')
  return a
}

async function sh (argv: string[], stdin?: string): Promise<string> {
  const r = await spawnExec(argv, stdin)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim()} ${r.stdout.trim()}`)
  return r.stdout
}
const inNs = async (ns: string, argv: string[], stdin?: string): Promise<string> => await sh(['ip', 'netns', 'exec', ns, ...argv], stdin)
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** One side of the bench: a client pod and a server pod on different nodes, and a way to start a server. */
interface Side {
  readonly name: 'ferry' | 'reference'
  readonly clientNs: string
  readonly serverNs: string
  readonly serverIP: string
  readonly nodeNs: readonly string[]
  /** Starts a long-lived process in `ns`; the side's teardown stops it. */
  readonly spawn: (argv: string[], ns: string) => ChildProcess
}

// ---- reference side: bridge + host-local + a hand-made vxlan ----

/** Two node netns on a host bridge, pods from the reference plugins, vxlan programmed by hand. Names start with `fyr<id>`. */
class ReferenceCluster {
  readonly prefix = `fyr${randomBytes(2).toString('hex')}`
  readonly bridge = `${this.prefix}ul`
  readonly procs: ChildProcess[] = []
  readonly nodes: Array<{ ns: string, ip: string, uplink: string, subnet: string, vtep: string, mac: string }> = []
  readonly pods: Array<{ ns: string, ip: string }> = []
  private dir = ''

  /** Underlay 192.168.93.0/24 (the overlay cluster has .92), pod subnets 10.244.1.0/24 and 10.244.2.0/24. */
  async setUp (conntrack: boolean): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'fy-tput-ref-'))
    await sh(['ip', 'link', 'add', this.bridge, 'type', 'bridge'])
    await sh(['ip', 'addr', 'add', '192.168.93.1/24', 'dev', this.bridge])
    await sh(['ip', 'link', 'set', this.bridge, 'up'])
    for (const [i, short] of ['a', 'b'].entries()) {
      const ns = `${this.prefix}-${short}`
      const uplink = `${this.prefix}${short}u`
      const ip = `192.168.93.${10 + i}`
      const subnet = `10.244.${i + 1}`
      await sh(['ip', 'netns', 'add', ns])
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
      await sh(['ip', 'link', 'add', `${uplink}h`, 'type', 'veth', 'peer', 'name', uplink, 'netns', ns])
      await sh(['ip', 'link', 'set', `${uplink}h`, 'master', this.bridge, 'up'])
      await inNs(ns, ['ip', '-batch', '-'], [`addr add ${ip}/24 dev ${uplink}`, `link set ${uplink} up`,
        'route add default via 192.168.93.1',
        // What the vxlan backend makes: VNI, port 8472, learning off, MTU = uplink − 50, <subnet>.0/32.
        `link add vx0 type vxlan id 42 dstport 8472 local ${ip} dev ${uplink} nolearning`,
        `addr add ${subnet}.0/32 dev vx0`, 'link set vx0 up', ''].join('\n'))
      await inNs(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
      // flannel's --ip-masq in one rule: never matches pod-to-pod, but a NAT target turns conntrack on in the netns.
      if (conntrack) await inNs(ns, ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', '10.244.0.0/16', '!', '-d', '10.244.0.0/16', '-j', 'MASQUERADE'])
      const [link] = JSON.parse(await inNs(ns, ['ip', '-j', 'link', 'show', 'vx0'])) as Array<{ address: string, mtu: number }>
      if (link?.mtu !== POD_MTU) throw new Error(`reference vx0 MTU ${link?.mtu ?? '?'}, want ${POD_MTU}`)
      this.nodes.push({ ns, ip, uplink, subnet, vtep: `${subnet}.0`, mac: link.address })
    }
    // Per peer, in flannel's order: neighbour, FDB, onlink route last (so the kernel never ARPs).
    for (const n of this.nodes) {
      for (const p of this.nodes.filter(x => x !== n)) {
        await inNs(n.ns, ['ip', 'neigh', 'replace', p.vtep, 'lladdr', p.mac, 'dev', 'vx0', 'nud', 'permanent'])
        await inNs(n.ns, ['bridge', 'fdb', 'append', p.mac, 'dev', 'vx0', 'dst', p.ip])
        await inNs(n.ns, ['ip', 'route', 'replace', `${p.subnet}.0/24`, 'via', p.vtep, 'dev', 'vx0', 'onlink'])
      }
    }
    for (const n of this.nodes) this.pods.push(await this.addPod(n.ns, n.subnet, `p${this.pods.length}`))
  }

  /** A pod netns wired by the reference bridge plugin ADD (host-local IPAM), run inside the node netns. */
  private async addPod (nodeNs: string, subnet: string, name: string): Promise<{ ns: string, ip: string }> {
    const ns = `${nodeNs}-${name}`
    await sh(['ip', 'netns', 'add', ns])
    await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    const conf = {
      cniVersion: '1.0.0', name: 'fy-tput-ref', type: 'bridge', bridge: 'cni0', isGateway: true, isDefaultGateway: true,
      ipMasq: false, mtu: POD_MTU,
      ipam: { type: 'host-local', ranges: [[{ subnet: `${subnet}.0/24` }]], dataDir: join(this.dir, nodeNs) },
    }
    const env = { ...process.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `${name}-${randomBytes(4).toString('hex')}`, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: REF_BIN }
    const r = await new Promise<{ code: number, out: string, err: string }>((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', nodeNs, join(REF_BIN, 'bridge')], { env, stdio: ['pipe', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stdout.on('data', (b: Buffer) => { out += b.toString() })
      child.stderr.on('data', (b: Buffer) => { err += b.toString() })
      child.on('error', reject)
      child.on('close', code => { resolve({ code: code ?? 1, out, err }) })
      child.stdin.end(JSON.stringify(conf))
    })
    if (r.code !== 0) throw new Error(`reference bridge ADD in ${nodeNs}: exit ${r.code}: ${r.out} ${r.err}`)
    const ip = ((JSON.parse(r.out) as { ips?: Array<{ address: string }> }).ips?.[0]?.address ?? '').split('/')[0] ?? ''
    if (ip === '') throw new Error(`reference bridge ADD gave no IP: ${r.out}`)
    return { ns, ip }
  }

  spawn (argv: string[], ns: string): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.procs.push(child)
    return child
  }

  /** Stops its processes, deletes every `fyr<id>-` netns (pods first), the bridge and the IPAM dir. */
  async close (): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    const listed = (await spawnExec(['ip', 'netns', 'list'])).stdout
    const mine = listed.split('\n').map(l => l.split(' ')[0] ?? '').filter(n => n.startsWith(`${this.prefix}-`))
    for (const ns of mine.sort((a, b) => b.length - a.length)) await spawnExec(['ip', 'netns', 'delete', ns])
    // Deleting a netns frees its links asynchronously; delete the host ends now so none outlive the bench.
    for (const n of ['a', 'b']) await spawnExec(['ip', 'link', 'del', `${this.prefix}${n}uh`])
    await spawnExec(['ip', 'link', 'del', this.bridge])
    if (this.dir !== '') await rm(this.dir, { recursive: true, force: true })
  }
}

// ---- iperf3 ----

type Mode = 'tcp' | 'tcp -R' | 'udp'
interface Sample { side: Side['name'], mode: Mode, round: number, gbps: number, retransmits: number | undefined, lossPct: number | undefined }

interface IperfEnd {
  sum_sent?: { bits_per_second: number, retransmits?: number }
  sum_received?: { bits_per_second: number, lost_percent?: number }
}

/** One iperf3 test: a one-off server (-s -1) in the server pod, the client in the client pod. */
async function iperf (side: Side, mode: Mode, seconds: number, round: number): Promise<Sample> {
  const server = side.spawn(['iperf3', '-s', '-1', '-p', String(IPERF_PORT)], side.serverNs)
  const serverDone = new Promise<void>(resolve => { server.once('exit', () => { resolve() }) })
  try {
    for (let i = 0; ; i++) { // until the server listens
      const ss = await inNs(side.serverNs, ['ss', '-Hltn', `sport = :${IPERF_PORT}`])
      if (ss.trim() !== '') break
      if (i > 50 || server.exitCode !== null) throw new Error(`${side.name}: iperf3 server did not start`)
      await sleep(100)
    }
    const flags = mode === 'tcp -R' ? ['-R'] : mode === 'udp' ? ['-u', '-b', '0'] : []
    const out = await inNs(side.clientNs, ['iperf3', '-c', side.serverIP, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', ...flags])
    const end = (JSON.parse(out) as { end?: IperfEnd }).end
    const received = end?.sum_received
    if (received === undefined) throw new Error(`${side.name} ${mode}: no iperf3 result: ${out.slice(0, 400)}`)
    return {
      side: side.name,
      mode,
      round,
      gbps: received.bits_per_second / 1e9,
      retransmits: mode === 'udp' ? undefined : end?.sum_sent?.retransmits,
      lossPct: mode === 'udp' ? received.lost_percent : undefined,
    }
  } finally {
    const timer = setTimeout(() => { server.kill('SIGKILL') }, 3000)
    await serverDone
    clearTimeout(timer)
  }
}

// ---- report ----

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m] ?? NaN : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2
}
const f2 = (x: number | undefined): string => x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(2)

function report (samples: Sample[], modes: Mode[]): void {
  process.stdout.write('\n| mode | ferry Gbit/s (runs) | reference Gbit/s (runs) | ferry median | reference median | ratio ferry/reference | per-round ratios | retransmits or loss % ferry / reference (medians) |\n')
  process.stdout.write('|---|---|---|---|---|---|---|---|\n')
  for (const mode of modes) {
    const of = (side: Side['name']): Sample[] => samples.filter(s => s.mode === mode && s.side === side)
    const [fe, re] = [of('ferry'), of('reference')]
    const perRound = fe.map(f => f.gbps / (re.find(r => r.round === f.round)?.gbps ?? NaN))
    const extra = (xs: Sample[]): string => mode === 'udp' ? f2(median(xs.map(s => s.lossPct ?? NaN))) + '%' : String(median(xs.map(s => s.retransmits ?? NaN)))
    const [fm, rm] = [median(fe.map(s => s.gbps)), median(re.map(s => s.gbps))]
    process.stdout.write(`| ${mode} | ${fe.map(s => f2(s.gbps)).join(', ')} | ${re.map(s => f2(s.gbps)).join(', ')} | ${f2(fm)} | ${f2(rm)} | **${f2(fm / rm)}** | ${perRound.map(f2).join(', ')} | ${extra(fe)} / ${extra(re)} |\n`)
  }
}

async function describe (side: Side): Promise<string> {
  const [link] = JSON.parse(await inNs(side.clientNs, ['ip', '-j', 'link', 'show', 'eth0'])) as Array<{ mtu: number }>
  if (link?.mtu !== POD_MTU) throw new Error(`${side.name}: client pod MTU ${link?.mtu ?? '?'}, want ${POD_MTU}`)
  // Netfilter is the one part of the path that can differ: ferryd's service proxy keeps rules (legacy or nft)
  // in its nodes, and conntrack tracks flows in a netns only once some rule needs it (the ping made one).
  const count = async (ns: string, save: string): Promise<number> => (await inNs(ns, [save])).split('\n').filter(l => l.startsWith('-A')).length
  const rules = await Promise.all(side.nodeNs.map(async ns => await count(ns, 'iptables-legacy-save') + await count(ns, 'iptables-nft-save')))
  const tracked = await Promise.all(side.nodeNs.map(async ns => (await inNs(ns, ['conntrack', '-C'])).trim()))
  return `${side.name}: pod MTU ${link.mtu}, server ${side.serverIP}; per node: iptables rules ${rules.join('/')}, conntrack entries ${tracked.join('/')}`
}

async function main (): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the throughput bench needs root (network namespaces)')
  const a = parseArgs(process.argv.slice(2))
  process.stdout.on('error', () => { /* a closed pipe (| head) must not skip the teardown */ })
  const teardown = new Teardown()
  teardown.onSignals()
  try {
    const ref = new ReferenceCluster()
    teardown.add(async () => { await ref.close() })
    await ref.setUp(a.refConntrack)
    const c = await OverlayCluster.create(['a', 'b'], 'vxlan')
    teardown.add(async () => { await c.close() })
    for (const n of c.nodes) await c.startFerryd(n)
    const [na, nb] = c.nodes
    if (na === undefined || nb === undefined) throw new Error('overlay cluster: two nodes expected')
    const pa = await c.addPod(na, 'ta')
    const pb = await c.addPod(nb, 'tb')
    const [ra, rb] = ref.pods
    if (ra === undefined || rb === undefined) throw new Error('reference: two pods expected')
    const sides: Side[] = [
      { name: 'ferry', clientNs: pa.ns, serverNs: pb.ns, serverIP: pb.ip, nodeNs: c.nodes.map(n => n.ns), spawn: (argv, ns) => c.spawn(argv, ns) },
      { name: 'reference', clientNs: ra.ns, serverNs: rb.ns, serverIP: rb.ip, nodeNs: ref.nodes.map(n => n.ns), spawn: (argv, ns) => ref.spawn(argv, ns) },
    ]
    for (const s of sides) { // both paths work before the clock matters (ferryd programs its peer on the lease watch)
      for (let i = 0; ; i++) {
        if ((await spawnExec(['ip', 'netns', 'exec', s.clientNs, 'ping', '-c1', '-W1', s.serverIP])).code === 0) break
        if (i > 30) throw new Error(`${s.name}: pod on node a cannot ping ${s.serverIP}`)
        await sleep(300)
      }
      process.stdout.write(await describe(s) + '\n')
    }
    const modes: Mode[] = ['tcp', ...(a.reverse ? ['tcp -R' as const] : []), ...(a.udp ? ['udp' as const] : [])]
    process.stdout.write(`rounds ${a.rounds} × ${modes.join(', ')}, ${a.time} s each; load average before ${loadavg().map(f2).join(' ')}\n`)
    const samples: Sample[] = []
    for (let round = 1; round <= a.rounds; round++) {
      for (const mode of modes) {
        // Alternate which side goes first, so neither always runs on the warmer or quieter half of a round.
        for (const side of round % 2 === 1 ? sides : [...sides].reverse()) {
          const s = await iperf(side, mode, a.time, round)
          samples.push(s)
          const extra = s.lossPct !== undefined ? `loss ${f2(s.lossPct)}%` : `retransmits ${s.retransmits ?? '-'}`
          process.stdout.write(`round ${round} ${mode.padEnd(6)} ${side.name.padEnd(9)} ${f2(s.gbps)} Gbit/s  ${extra}\n`)
        }
      }
    }
    process.stdout.write(`load average after ${loadavg().map(f2).join(' ')}\n`)
    report(samples, modes)
  } finally {
    await teardown.run()
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`overlay-throughput: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
  process.exitCode = 1
})
