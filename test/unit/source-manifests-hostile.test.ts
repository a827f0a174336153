// The manifest source against hostile files on a real filesystem (issue 9, findings 1-5): each is
// rejected with an error naming it, reported once, and nothing else is affected.
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_DECODE_LIMITS } from '../../pkg/api/limits.js'
import { ClusterStore } from '../../pkg/cache/store.js'
import { ManifestSource, type ManifestSourceOptions } from '../../pkg/source/manifests.js'
import { aliasBomb, bigSelectorService } from '../helpers/hostile.js'

const svcYAML = (name: string, ip: string, port = 80): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ns1}
spec: {clusterIP: ${ip}, ports: [{port: ${port}}]}
`
const services = (s: ClusterStore): string[] => s.list('Service').map(x => `${x.metadata.name}:${x.spec.clusterIP ?? ''}:${x.spec.ports[0]?.port ?? 0}`).sort()

async function setup (t: Test, opts: Partial<ManifestSourceOptions> = {}): Promise<{ dir: string, store: ClusterStore, src: ManifestSource, errors: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-hostile-'))
  const store = new ClusterStore()
  const errors: string[] = []
  store.onError(e => errors.push(`${e.code}: ${e.message}`))
  const src = new ManifestSource({ path: dir, pollMs: 60_000, debounceMs: 20, ...opts })
  t.teardown(async () => { await src.stop(); await rm(dir, { recursive: true, force: true }) })
  return { dir, store, src, errors }
}

t.test('a FIFO named *.yaml is rejected; later edits still apply; stop does not hang', async t => {
  const { dir, store, src, errors } = await setup(t)
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  execFileSync('mkfifo', [join(dir, 'pipe.yaml')])
  await src.start(store)
  t.same(services(store), ['a:10.96.0.1:80'])
  t.match(errors, [/FERRY_ERR_LIMIT: manifests: .*pipe\.yaml is a FIFO, not a regular file; ignored/])
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1', 81))
  await src.reload()
  await src.reload()
  t.same(services(store), ['a:10.96.0.1:81'], 'edits after the FIFO appeared are applied')
  t.equal(errors.length, 1, 'the FIFO is reported once, not on every poll')
  t.match(src.status().rejectedFiles, [{ file: /pipe\.yaml$/, reason: /FIFO/ }])
  await unlink(join(dir, 'pipe.yaml'))
  await src.reload()
  t.same(src.status().rejectedFiles, [], 'deleting the FIFO clears it')
  await t.resolves(src.stop(), 'stop resolves')
})

t.test('symlinks to /dev/zero and to a directory are rejected once, never read', async t => {
  const { dir, store, src, errors } = await setup(t)
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  await symlink('/dev/zero', join(dir, 'zero.yaml'))
  await mkdir(join(dir, 'sub'))
  await symlink(join(dir, 'sub'), join(dir, 'subdir.yaml'))
  const rss0 = process.memoryUsage().rss
  await src.start(store)
  for (let i = 0; i < 3; i++) await src.reload()
  t.same(services(store), ['a:10.96.0.1:80'])
  t.equal(errors.length, 2, 'one error each, not one per poll')
  t.match(errors.join('\n'), /zero\.yaml is a character device, not a regular file/)
  t.match(errors.join('\n'), /subdir\.yaml is a directory, not a regular file/)
  t.ok(process.memoryUsage().rss - rss0 < 64 * 1024 * 1024, 'nothing was read from /dev/zero')
  // A symlink to a regular file (a ConfigMap mount's layout) is followed.
  await writeFile(join(dir, 'sub', 'real'), svcYAML('b', '10.96.0.2'))
  await symlink(join(dir, 'sub', 'real'), join(dir, 'link.yaml'))
  await src.reload()
  t.same(services(store), ['a:10.96.0.1:80', 'b:10.96.0.2:80'])
})

t.test('a file over the size limit is rejected before it is read; its last good objects stay', async t => {
  const { dir, store, src, errors } = await setup(t, { limits: { ...DEFAULT_DECODE_LIMITS, maxBytes: 64 * 1024 } })
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  await writeFile(join(dir, 'b.yaml'), svcYAML('b', '10.96.0.2'))
  await src.start(store)
  await writeFile(join(dir, 'b.yaml'), bigSelectorService(10_000, 'b'))
  await src.reload()
  await src.reload()
  t.same(services(store), ['a:10.96.0.1:80', 'b:10.96.0.2:80'], 'b keeps its last good form')
  t.match(errors, [/FERRY_ERR_LIMIT: manifests: .*b\.yaml is \d+(\.\d)? KiB, over the 64 KiB limit/])
})

t.test('an alias bomb at start-up is logged; the rest is served', async t => {
  const { dir, store, src, errors } = await setup(t)
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  await writeFile(join(dir, 'bomb.yaml'), aliasBomb())
  await t.resolves(src.start(store))
  t.same(services(store), ['a:10.96.0.1:80'])
  t.match(errors, [/FERRY_ERR_LIMIT: bomb\.yaml, document 1: .*alias/i])
})

t.test('duplicates: the same winner at run time and after a restart, visible in status', async t => {
  const { dir, store, src, errors } = await setup(t)
  await writeFile(join(dir, 'svc.yaml'), svcYAML('web', '10.96.0.10'))
  await src.start(store)
  t.same(services(store), ['web:10.96.0.10:80'])
  await writeFile(join(dir, 'aa-dup.yaml'), svcYAML('web', '10.96.0.99'))
  await src.reload()
  const running = services(store)
  t.same(running, ['web:10.96.0.99:80'], 'first in file-name order wins, also when it appears later')
  t.match(src.status().conflicts, [{ key: 'Service/ns1/web', kept: /aa-dup\.yaml$/, ignored: [/svc\.yaml$/] }])
  await src.reload()
  t.equal(errors.filter(e => e.includes('FERRY_ERR_DUPLICATE')).length, 1, 'reported once')

  const restarted = new ClusterStore()
  const again = new ManifestSource({ path: dir, pollMs: 60_000 })
  t.teardown(async () => { await again.stop() })
  await again.start(restarted)
  t.same(services(restarted), running, 'a restart keeps the same winner')
  t.same(again.status().conflicts, src.status().conflicts)
  await unlink(join(dir, 'aa-dup.yaml'))
  await src.reload()
  t.same(services(store), ['web:10.96.0.10:80'])
  t.same(src.status().conflicts, [])
})

t.test('a big YAML file decodes in the worker while the event loop keeps running', async t => {
  const { dir, store, src, errors } = await setup(t)
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  await src.start(store)
  await writeFile(join(dir, 'big.yaml'), bigSelectorService(20_000)) // ~0.5 MB: far over the inline limit
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 5)
  await src.reload()
  clearInterval(timer)
  t.same(errors, [])
  t.same(services(store), ['a:10.96.0.1:80', 'big:10.96.77.7:80'])
  t.ok(ticks >= 5, `timers fired ${ticks} times during the decode`)
})

t.test('the start-up pass over many files yields to the event loop between slices', async t => {
  const { dir, store, src, errors } = await setup(t)
  // 100 files of 50 Services and 50 slices each: ~0.3 s of reading and decoding in blocking calls.
  for (let f = 0; f < 100; f++) {
    const items: unknown[] = []
    for (let i = f * 50; i < f * 50 + 50; i++) {
      items.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'ns1' }, spec: { clusterIP: `10.97.${i >> 8}.${i & 255}`, ports: [{ port: 80 }] } })
      items.push({
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `s${i}-a`, namespace: 'ns1', labels: { 'kubernetes.io/service-name': `s${i}` } },
        addressType: 'IPv4', ports: [{ port: 8080 }], endpoints: [1, 2, 3, 4, 5].map(j => ({ addresses: [`10.180.${j}.${i & 255}`], conditions: { ready: true } })),
      })
    }
    await writeFile(join(dir, `list-${String(f).padStart(3, '0')}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 1))
  }
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 5)
  const t0 = performance.now()
  await src.start(store)
  const ms = performance.now() - t0
  clearInterval(timer)
  t.same(errors, [])
  t.equal(store.list('Service').length, 5000)
  t.equal(store.list('EndpointSlice').length, 5000)
  t.ok(ticks >= Math.min(3, Math.floor(ms / 50)), `timers fired ${ticks} times during a ${Math.round(ms)} ms pass`)
})

t.test('a file that outlives the decode deadline or the worker heap is rejected; the worker is replaced', async t => {
  const { dir, store, src, errors } = await setup(t, { decodeTimeoutMs: 1500 })
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  await writeFile(join(dir, 'slow.yaml'), bigSelectorService(200_000, 'slow'))
  await src.start(store)
  t.same(services(store), ['a:10.96.0.1:80'])
  t.match(errors, [/FERRY_ERR_LIMIT: manifests: .*slow\.yaml took longer than 2 s to decode; ignored/])
  await writeFile(join(dir, 'c.yaml'), `# ${'x'.repeat(40 * 1024)}\n${svcYAML('c', '10.96.0.3')}`)
  await src.reload()
  t.same(services(store), ['a:10.96.0.1:80', 'c:10.96.0.3:80'], 'the next big file decodes in a fresh worker')

  const small = await setup(t, { decodeMaxHeapMb: 8 })
  await writeFile(join(small.dir, 'huge.yaml'), bigSelectorService(200_000, 'huge'))
  await writeFile(join(small.dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  await small.src.start(small.store)
  t.same(services(small.store), ['a:10.96.0.1:80'])
  t.match(small.errors, [/FERRY_ERR_LIMIT: manifests: .*huge\.yaml needs more than 8 MB to decode; ignored/])
})
