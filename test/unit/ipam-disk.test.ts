// The disk store with real processes: 50 concurrent CNI-like children never share an IP, stale locks from
// dead owners are broken, and a child killed mid-allocation leaks nothing after DEL or GC.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'
import { isFerryError } from '../../pkg/errors/errors.js'
import { openDiskIpam, openDiskStore } from '../../pkg/ipam/disk.js'
import { createIpam } from '../../pkg/ipam/ipam.js'
import { acquireFileLock } from '../../pkg/ipam/lock.js'
import { toCniError } from '../../cni-plugin/errors.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const work = mkdtempSync(join(tmpdir(), 'ferry-ipam-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

// Children run plain JS: the test loader type-checks each process (~4 s), a transpiled copy starts in ~60 ms.
const js = join(work, 'js')
for (const file of ['pkg/ipam/disk.ts', 'pkg/ipam/ipam.ts', 'pkg/ipam/allocator.ts', 'pkg/ipam/range.ts', 'pkg/ipam/lock.ts', 'pkg/ipam/types.ts', 'pkg/errors/errors.ts', 'pkg/net/ip.ts']) {
  const out = ts.transpileModule(readFileSync(join(ROOT, file), 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
  mkdirSync(dirname(join(js, file)), { recursive: true })
  writeFileSync(join(js, file.replace(/\.ts$/, '.js')), out.outputText)
}
writeFileSync(join(js, 'package.json'), '{"type":"module"}')

// op: allocate | release | crash (killed by SIGKILL right after the exclusive create, the lock still held)
const CHILD = `
import { openDiskIpam, openDiskStore } from ${JSON.stringify(join(js, 'pkg/ipam/disk.js'))}
import { createIpam } from ${JSON.stringify(join(js, 'pkg/ipam/ipam.js'))}
const { DIR, OP, CID } = process.env
const o = { dataDir: DIR, network: 'net', ranges: JSON.parse(process.env.RANGES) }
const a = { containerID: CID, ifname: 'eth0' }
if (OP === 'crash') {
  const store = openDiskStore(o)
  const reserve = store.reserve.bind(store)
  store.reserve = (ip, x) => { reserve(ip, x); process.kill(process.pid, 'SIGKILL') }
  await createIpam(store, o.ranges).allocate(a)
}
const ipam = openDiskIpam(o)
const t0 = performance.now()
const out = OP === 'release' ? await ipam.release(a) : await ipam.allocate(a)
console.log(JSON.stringify({ out, ms: performance.now() - t0 }))
`

interface ChildResult { code: number | null, signal: string | null, out: string, err: string }
async function child (env: Record<string, string>): Promise<ChildResult> {
  const { NODE_OPTIONS: _, ...clean } = process.env // tap's loaders would follow the child
  const p = spawn(process.execPath, ['--input-type=module', '-e', CHILD], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  p.stdout.on('data', (d: Buffer) => { out += d.toString() })
  p.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const killer = setTimeout(() => p.kill('SIGKILL'), 60_000)
  const [code, signal] = await new Promise<[number | null, string | null]>(resolve => p.on('exit', (c, s) => resolve([c, s])))
  clearTimeout(killer)
  return { code, signal, out, err }
}

const V4 = [{ subnet: '10.90.0.0/24' }]
const entries = (dir: string): string[] => readdirSync(join(dir, 'net')).filter(n => /^[\d.]+$|:.*:/.test(n) && n !== 'attachments').sort()

/** The pid of a process that has exited. */
async function deadPid (): Promise<number> {
  const p = spawn('true')
  await new Promise(resolve => p.on('exit', resolve))
  return p.pid ?? 0x7ffffff0
}

t.test('disk layout matches host-local: one O_EXCL file per IP with its owner, a hint per range', async t => {
  const dir = join(work, 'layout')
  const ipam = openDiskIpam({ dataDir: dir, network: 'net', ranges: [...V4, { subnet: 'fd00:10:244:1::/64' }] })
  const a = { containerID: 'abc', ifname: 'eth0' }
  t.same(await ipam.allocate(a), [
    { family: 'IPv4', ip: '10.90.0.2', prefix: 24, gateway: '10.90.0.1' },
    { family: 'IPv6', ip: 'fd00:10:244:1::2', prefix: 64, gateway: 'fd00:10:244:1::1' },
  ])
  t.same(await ipam.allocate(a), await ipam.reserved(a), 'idempotent, and CHECK sees it')
  t.equal(readFileSync(join(dir, 'net', '10.90.0.2'), 'utf8'), 'abc\r\neth0')
  t.equal(readFileSync(join(dir, 'net', 'fd00:10:244:1::2'), 'utf8'), 'abc\r\neth0')
  t.equal(readFileSync(join(dir, 'net', 'last_reserved_ip.0'), 'utf8').trim(), '10.90.0.2')
  t.equal(readFileSync(join(dir, 'net', 'last_reserved_ip.1'), 'utf8').trim(), 'fd00:10:244:1::2')
  t.same(JSON.parse(readFileSync(join(dir, 'net', 'attachments', 'abc:eth0'), 'utf8')), { ips: ['10.90.0.2', 'fd00:10:244:1::2'], complete: true })
  t.equal((await ipam.allocate({ containerID: 'def', ifname: 'eth0' }))[0]?.ip, '10.90.0.3')
  t.same((await ipam.available())[0], 251)
  t.equal(await ipam.gc([{ containerID: 'def', ifname: 'eth0' }]), 2)
  await ipam.release({ containerID: 'def', ifname: 'eth0' })
  t.same(entries(dir), [])
  t.same(readdirSync(join(dir, 'net', 'attachments')), [])
  t.notOk(existsSync(join(dir, 'net', 'ferry.lock')), 'the lock is released')
  t.throws(() => openDiskIpam({ dataDir: dir, network: '../x', ranges: V4 }), { code: 'FERRY_ERR_IPAM_STORE' })
  t.throws(() => openDiskIpam({ dataDir: dir, network: 'net', ranges: [{ subnet: '10.0.0.0/31' }] }), { code: 'FERRY_ERR_IPAM_RANGE' })
})

t.test('50 concurrent processes get 50 distinct IPs; 50 parallel releases empty the pool', async t => {
  const dir = join(work, 'fifty')
  const env = { DIR: dir, RANGES: JSON.stringify(V4) }
  const adds = await Promise.all(Array.from({ length: 50 }, async (_, i) => await child({ ...env, OP: 'allocate', CID: `pod${i}` })))
  const bad = adds.filter(r => r.code !== 0)
  t.same(bad.map(r => r.err), [], 'every ADD succeeded')
  const results = adds.map(r => JSON.parse(r.out) as { out: Array<{ ip: string }>, ms: number })
  const ips = results.map(r => r.out[0]?.ip)
  t.equal(new Set(ips).size, 50, 'all distinct')
  t.same(entries(dir), [...ips].sort(), 'exactly these are on disk')
  t.same(ips.slice().sort((x = '', y = '') => Number(x.split('.')[3]) - Number(y.split('.')[3])),
    Array.from({ length: 50 }, (_, i) => `10.90.0.${i + 2}`), '.2 to .51: round-robin from the shared hint')
  const ms = results.map(r => r.ms).sort((x, y) => x - y)
  t.comment(`allocate under contention: p50 ${ms[25]?.toFixed(2)} ms, max ${ms[49]?.toFixed(2)} ms`)
  const dels = await Promise.all(Array.from({ length: 50 }, async (_, i) => await child({ ...env, OP: 'release', CID: `pod${i}` })))
  t.same(dels.filter(r => r.code !== 0).map(r => r.err), [], 'every DEL succeeded')
  t.same(entries(dir), [], 'pool empty')
  t.same(readdirSync(join(dir, 'net', 'attachments')), [], 'no records left')
  t.same(await openDiskIpam({ dataDir: dir, network: 'net', ranges: V4 }).available(), [253])
})

t.test('a lock left by a dead process is broken; a live holder is waited for', async t => {
  const dir = join(work, 'stale')
  const ipam = openDiskIpam({ dataDir: dir, network: 'net', ranges: V4, lock: { timeoutMs: 300 } })
  await ipam.available()
  mkdirSync(join(dir, 'net'), { recursive: true })
  const lock = join(dir, 'net', 'ferry.lock')
  writeFileSync(lock, `${await deadPid()} x\n`)
  const t0 = Date.now()
  t.equal((await ipam.allocate({ containerID: 'a', ifname: 'eth0' }))[0]?.ip, '10.90.0.2')
  t.ok(Date.now() - t0 < 200, 'broken at once')
  t.notOk(existsSync(lock))

  writeFileSync(lock, `${process.pid} someone-else\n`) // alive and fresh
  const err = await ipam.allocate({ containerID: 'b', ifname: 'eth0' }).catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_IPAM_BUSY'), 'a lock held too long is transient (CNI code 11), not a store failure')
  t.equal(toCniError(err).code, 11)
  t.match((err as Error).message, /timed out after 300 ms waiting for the IPAM lock .* \(held by pid \d+\)/)

  const old = (Date.now() - 60_000) / 1000
  utimesSync(lock, old, old) // alive but hung for a minute
  t.equal((await ipam.allocate({ containerID: 'b', ifname: 'eth0' }))[0]?.ip, '10.90.0.3')

  writeFileSync(lock, '') // a writer that died between create and write, a while ago
  utimesSync(lock, old, old)
  t.equal((await ipam.allocate({ containerID: 'c', ifname: 'eth0' }))[0]?.ip, '10.90.0.4')
  t.notOk(existsSync(lock))
})

t.test('waiters never hold the lock together', async t => {
  const path = join(work, 'mutex.lock')
  let inside = 0
  let most = 0
  await Promise.all(Array.from({ length: 20 }, async () => {
    const release = await acquireFileLock(path)
    inside++
    most = Math.max(most, inside)
    await new Promise(resolve => setTimeout(resolve, 2))
    inside--
    release()
  }))
  t.equal(most, 1)
  const n = 500
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) (await acquireFileLock(path))()
  t.comment(`uncontended lock take+release: ${(Number(process.hrtime.bigint() - t0) / n / 1000).toFixed(1)} µs`)
  t.notOk(existsSync(path))
})

t.test('a process killed mid-allocation leaks nothing after DEL or GC', async t => {
  for (const recover of ['release', 'gc', 'retry'] as const) {
    const dir = join(work, `crash-${recover}`)
    const env = { DIR: dir, RANGES: JSON.stringify(V4) }
    t.equal((await child({ ...env, OP: 'allocate', CID: 'keep' })).code, 0)
    const crashed = await child({ ...env, OP: 'crash', CID: 'lost' })
    t.equal(crashed.signal, 'SIGKILL', 'killed with the lock held')
    t.ok(existsSync(join(dir, 'net', 'ferry.lock')), 'its lock is left behind')
    t.equal(readFileSync(join(dir, 'net', '10.90.0.3'), 'utf8'), 'lost\r\neth0', 'and its reservation')
    const ipam = openDiskIpam({ dataDir: dir, network: 'net', ranges: V4 })
    const lost = { containerID: 'lost', ifname: 'eth0' }
    if (recover === 'release') await ipam.release(lost)
    else if (recover === 'gc') t.equal(await ipam.gc([{ containerID: 'keep', ifname: 'eth0' }]), 1)
    else t.equal((await ipam.allocate(lost))[0]?.ip, '10.90.0.3', 'a retried ADD adopts the orphan')
    t.same(entries(dir), recover === 'retry' ? ['10.90.0.2', '10.90.0.3'] : ['10.90.0.2'], `${recover} recovered`)
  }
})

t.test('a crash after the reservation, before the interface, is freed by DEL or GC', async t => {
  const dir = join(work, 'after')
  const env = { DIR: dir, RANGES: JSON.stringify(V4) }
  for (const cid of ['a', 'b', 'c']) t.equal((await child({ ...env, OP: 'allocate', CID: cid })).code, 0) // then "crashed"
  writeFileSync(join(dir, 'net', '10.90.0.9'), '') // died between the exclusive create and the owner write
  const ipam = openDiskIpam({ dataDir: dir, network: 'net', ranges: V4 })
  await ipam.release({ containerID: 'a', ifname: 'eth0' }) // the runtime's DEL
  t.equal(await ipam.gc([{ containerID: 'c', ifname: 'eth0' }]), 2, 'GC frees b and the ownerless entry')
  t.same(entries(dir), ['10.90.0.4'])
  t.same((await ipam.reserved({ containerID: 'c', ifname: 'eth0' }))[0]?.ip, '10.90.0.4')
  const store = openDiskStore({ dataDir: dir, network: 'net' })
  t.same(store.listRecords(), [{ containerID: 'c', ifname: 'eth0' }])
  t.same(await createIpam(store, V4).available(), [252])
})
