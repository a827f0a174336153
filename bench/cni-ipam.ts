// pkg/ipam's disk store on a nearly full /16: the time of one allocation when ~65,000 of the /16's
// addresses are taken, beside host-local (Debian's /usr/lib/cni/host-local) allocating from the very
// same store (the layouts are compatible: one file per IP holding "<containerID>\r\n<ifname>", and
// last_reserved_ip.0). The store is pre-filled by writing the entry files directly.
//
// Two cases, each sample on a fresh Ipam object (as in a fresh ferry-cni process):
//  - worst: the round-robin hint sits just before the taken block, so the search crosses all of it
//    (ferry: 32 probes, then one readdir of the store; host-local: one failed O_EXCL create per address);
//    the allocation is released after each sample, so the pool stays at the same fill;
//  - steady: allocations go on from the hint into the free tail, as most allocations do.
// ferry is timed in this process (allocate() only); host-local as the whole process (ADD), its start
// included (the `true` floor of a spawn is printed for scale). No root needed.
//
//   node dist/bench/cni-ipam.js [--taken 65000] [--samples 20]
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDiskIpam } from '../pkg/ipam/disk.js'
import type { IpamRange } from '../pkg/ipam/types.js'

const NETWORK = 'fybench'
const SUBNET = '10.96.0.0/16'
const GATEWAY = '10.96.0.1'
const HOST_LOCAL = '/usr/lib/cni/host-local'

const ipOf = (n: number): string => `10.96.${(n >> 8) & 255}.${n & 255}`

function args (): { taken: number, samples: number } {
  const a = { taken: 65000, samples: 20 }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--taken') a.taken = Number(argv[++i])
    else if (argv[i] === '--samples') a.samples = Number(argv[++i])
    else throw new Error(`unknown argument ${argv[i] ?? ''}`)
  }
  return a
}

/** Entries for .0.2 upward (after the gateway), written as host-local writes them. */
function prefill (dir: string, taken: number): void {
  mkdirSync(dir, { recursive: true })
  for (let i = 0; i < taken; i++) {
    const fd = openSync(join(dir, ipOf(2 + i)), 'wx', 0o600)
    writeSync(fd, `fill${i}\r\neth0`)
    closeSync(fd)
  }
}

async function timedProcess (argv: string[], env: Record<string, string>, stdin: string): Promise<{ ms: number, code: number, out: string }> {
  return await new Promise((resolve, reject) => {
    const t0 = performance.now()
    const [cmd = '', ...rest] = argv
    const child = spawn(cmd, rest, { env, stdio: ['pipe', 'pipe', 'ignore'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.on('error', reject)
    child.on('close', code => { resolve({ ms: performance.now() - t0, code: code ?? 1, out }) })
    child.stdin.on('error', () => {}) // `true` does not read it
    child.stdin.end(stdin)
  })
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN
const f2 = (x: number): string => Number.isFinite(x) ? x.toFixed(2) : '-'

async function main (): Promise<void> {
  const a = args()
  const work = mkdtempSync(join(tmpdir(), 'fy-ipambench-'))
  try {
    const dir = join(work, NETWORK)
    const ranges: IpamRange[] = [{ subnet: SUBNET, gateway: GATEWAY }]
    let t = performance.now()
    prefill(dir, a.taken)
    console.error(`# pre-filled ${a.taken} entries in ${(performance.now() - t).toFixed(0)} ms`)
    const hintPath = join(dir, 'last_reserved_ip.0')
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_PATH: '/usr/lib/cni', CNI_NETNS: '/run/netns/fy-unused', CNI_IFNAME: 'eth0' }
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: NETWORK, type: 'bridge', ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET, gateway: GATEWAY }]], dataDir: work } })
    const ferryWorst: number[] = []
    const hlWorst: number[] = []
    const floor: number[] = []
    const listing: number[] = [] // one bare readdir of the store: the floor of ferry's worst case
    const wantIP = ipOf(2 + a.taken)
    for (let i = 0; i < a.samples; i++) {
      const ferry = async (): Promise<void> => {
        writeFileSync(hintPath, GATEWAY) // next candidate: the first taken address
        const ipam = openDiskIpam({ dataDir: work, network: NETWORK, ranges })
        const att = { containerID: `fyferry${i}`, ifname: 'eth0' }
        const t0 = performance.now()
        const got = await ipam.allocate(att)
        ferryWorst.push(performance.now() - t0)
        if (got[0]?.ip !== wantIP) throw new Error(`ferry allocated ${got[0]?.ip ?? 'nothing'}, expected ${wantIP}`)
        await ipam.release(att)
      }
      const hostLocal = async (): Promise<void> => {
        writeFileSync(hintPath, GATEWAY)
        const e = { ...env, CNI_CONTAINERID: `fyhl${i}` }
        const r = await timedProcess([HOST_LOCAL], { ...e, CNI_COMMAND: 'ADD' }, conf)
        if (r.code !== 0 || !r.out.includes(wantIP)) throw new Error(`host-local ADD: ${r.out}`)
        hlWorst.push(r.ms)
        const d = await timedProcess([HOST_LOCAL], { ...e, CNI_COMMAND: 'DEL' }, conf)
        if (d.code !== 0) throw new Error(`host-local DEL: ${d.out}`)
      }
      if (i % 2 === 0) { await ferry(); await hostLocal() } else { await hostLocal(); await ferry() }
      floor.push((await timedProcess(['true'], env, '')).ms)
      const t1 = performance.now()
      readdirSync(dir)
      listing.push(performance.now() - t1)
    }
    // Steady: from the hint on into the free tail, one fresh Ipam per allocation, kept (the pool fills up).
    writeFileSync(hintPath, ipOf(1 + a.taken))
    const steady: number[] = []
    const free = 65534 - 1 - a.taken
    const n = Math.min(200, Math.max(0, free - 1))
    t = performance.now()
    for (let i = 0; i < n; i++) {
      const ipam = openDiskIpam({ dataDir: work, network: NETWORK, ranges })
      const t0 = performance.now()
      await ipam.allocate({ containerID: `fysteady${i}`, ifname: 'eth0' })
      steady.push(performance.now() - t0)
    }
    console.log(`IPAM bench: ${SUBNET} with ${a.taken} of ${65534 - 1} allocatable addresses taken; ${a.samples} interleaved worst-case samples`)
    console.log('| case | allocator | p50 ms | p95 ms | min ms |')
    console.log('|---|---|---|---|---|')
    console.log(`| worst (crosses ${a.taken} taken) | ferry pkg/ipam, in process | ${f2(pct(ferryWorst, 0.5))} | ${f2(pct(ferryWorst, 0.95))} | ${f2(Math.min(...ferryWorst))} |`)
    console.log(`| worst (crosses ${a.taken} taken) | host-local, whole process | ${f2(pct(hlWorst, 0.5))} | ${f2(pct(hlWorst, 0.95))} | ${f2(Math.min(...hlWorst))} |`)
    console.log(`| steady (${n} allocations into the free tail) | ferry pkg/ipam, in process | ${f2(pct(steady, 0.5))} | ${f2(pct(steady, 0.95))} | ${f2(Math.min(...steady))} |`)
    console.log(`floors: spawn of true p50 ${f2(pct(floor, 0.5))} ms; a bare readdirSync of the store p50 ${f2(pct(listing, 0.5))} ms`)
    console.log(`ratio worst ferry/host-local p50: ${(pct(ferryWorst, 0.5) / pct(hlWorst, 0.5)).toFixed(2)} (host-local includes its process start)`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch(e => { console.error(e); process.exitCode = 1 })
