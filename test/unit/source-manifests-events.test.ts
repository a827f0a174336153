// The manifest source's passes after fs events: a pass stats and reads only the files the events named
// (no directory listing), and the full rescan stays the safety net for events that name nothing, name
// another entry, or never come. File-system calls are counted through the source's fs seam.
import t, { type Test } from 'tap'
import { mkdir, mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { ClusterStore } from '../../pkg/cache/store.js'
import { nodeManifestFs, type ManifestFs } from '../../pkg/source/manifest-files.js'
import { ManifestSource, type ManifestSourceOptions } from '../../pkg/source/manifests.js'

const svcYAML = (name: string, ip: string, port = 80): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ns1}
spec: {clusterIP: ${ip}, ports: [{port: ${port}}]}
`
const services = (s: ClusterStore): string[] => s.list('Service').map(x => `${x.metadata.name}:${x.spec.clusterIP ?? ''}:${x.spec.ports[0]?.port ?? 0}`).sort()
const FILES = 40
const fileName = (i: number): string => `f${String(i).padStart(2, '0')}.yaml`

/** node:fs behind counters; `events: 'real'` passes fs.watch's events on, 'drop' swallows them. */
interface Counting {
  fs: ManifestFs
  lists: number
  probed: string[]
  read: string[]
  /** Calls made in blocking syscalls (probeNow, readNow). */
  now: number
  /** Calls the source's watch callback as the kernel would. */
  emit: (filename: string | null) => void
  reset: () => void
}

function counting (events: 'real' | 'drop'): Counting {
  let onEvent: (f: string | null) => void = () => {}
  const c: Counting = {
    lists: 0,
    probed: [],
    read: [],
    now: 0,
    emit: f => { onEvent(f) },
    reset: () => { c.lists = 0; c.probed = []; c.read = []; c.now = 0 },
    fs: {
      list: async p => { c.lists++; return await nodeManifestFs.list(p) },
      probe: async (f, max) => { c.probed.push(basename(f)); return await nodeManifestFs.probe(f, max) },
      read: async (f, max) => { c.read.push(basename(f)); return await nodeManifestFs.read(f, max) },
      probeNow: (f, max) => { c.probed.push(basename(f)); c.now++; return nodeManifestFs.probeNow(f, max) },
      readNow: (f, max) => { c.read.push(basename(f)); c.now++; return nodeManifestFs.readNow(f, max) },
      watch: (p, fn, onError) => {
        onEvent = fn
        return nodeManifestFs.watch(p, f => { if (events === 'real') fn(f) }, onError)
      },
    },
  }
  return c
}

async function setup (t: Test, events: 'real' | 'drop', opts: Partial<ManifestSourceOptions> = {}): Promise<{ dir: string, store: ClusterStore, src: ManifestSource, c: Counting, errors: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-events-'))
  for (let i = 0; i < FILES; i++) await writeFile(join(dir, fileName(i)), svcYAML(`s${i}`, `10.96.0.${i + 1}`))
  const store = new ClusterStore()
  const errors: string[] = []
  store.onError(e => errors.push(`${e.code}: ${e.message}`))
  const c = counting(events)
  const src = new ManifestSource({ path: dir, pollMs: 60_000, debounceMs: 20, fs: c.fs, ...opts })
  t.teardown(async () => { await src.stop(); await rm(dir, { recursive: true, force: true }) })
  await src.start(store)
  await src.settled()
  c.reset()
  return { dir, store, src, c, errors }
}

/** Waits until `cond` holds (5 s: hang detection only), then long enough for a trailing pass to end. */
async function until (cond: () => boolean): Promise<boolean> {
  const end = Date.now() + 5000
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  await new Promise(resolve => setTimeout(resolve, 100))
  return true
}

const port = (s: ClusterStore, name: string): number => s.get('Service', 'ns1', name)?.spec.ports[0]?.port ?? 0

t.test('a one-file edit stats and reads only that file, and lists nothing', async t => {
  const { dir, store, c } = await setup(t, 'real')
  t.equal(store.list('Service').length, FILES)
  await writeFile(join(dir, fileName(7)), svcYAML('s7', '10.96.0.8', 81))
  t.ok(await until(() => port(store, 's7') === 81), 'the edit is applied from its event')
  t.equal(c.lists, 0, 'no directory listing')
  t.same([...new Set(c.probed)], [fileName(7)], 'only the edited file is stat-ed')
  t.same([...new Set(c.read)], [fileName(7)], 'only the edited file is read')
  t.equal(c.now, c.probed.length + c.read.length, 'in blocking calls: the event named a file just written')
  t.equal(store.list('Service').length, FILES, 'the other files\' Services stay')
})

t.test('a one-object edit of a many-object file hands on that object alone', async t => {
  const { dir, store } = await setup(t, 'real')
  const list = (port: number): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [1, 2, 3, 4, 5].map(i => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: `m${i}`, namespace: 'ns1' }, spec: { clusterIP: `10.96.3.${i}`, ports: [{ port: i === 3 ? port : 80 }] } })) })
  await writeFile(join(dir, 'many.json'), list(80))
  t.ok(await until(() => store.get('Service', 'ns1', 'm5') !== undefined))
  const before = [1, 2, 3, 4, 5].map(i => store.get('Service', 'ns1', `m${i}`))
  const seen: string[] = []
  store.on('Service', (_prev, cur) => { seen.push(cur?.metadata.name ?? 'gone') })
  await writeFile(join(dir, 'many.json'), list(83))
  t.ok(await until(() => port(store, 'm3') === 83), 'the edit is applied')
  t.same(seen, ['m3'], 'one change goes out')
  const after = [1, 2, 3, 4, 5].map(i => store.get('Service', 'ns1', `m${i}`))
  t.same(after.map((o, i) => o === before[i]), [true, true, false, true, true], 'the unchanged objects are the very same objects')
})

t.test('a new file, a deletion and a rename between manifest names come from events alone', async t => {
  const { dir, store, c } = await setup(t, 'real')
  await writeFile(join(dir, 'new.yaml'), svcYAML('n', '10.96.1.1'))
  t.ok(await until(() => store.get('Service', 'ns1', 'n') !== undefined), 'a new file joins')
  await unlink(join(dir, fileName(3)))
  t.ok(await until(() => store.get('Service', 'ns1', 's3') === undefined), 'a deleted file leaves')
  await rename(join(dir, fileName(4)), join(dir, 'renamed.yml'))
  t.ok(await until(() => c.probed.includes('renamed.yml')), 'a renamed file is seen under its new name')
  t.equal(c.lists, 0, 'no directory listing')
  t.same([...new Set(c.probed)].sort(), ['f03.yaml', 'f04.yaml', 'new.yaml', 'renamed.yml'], 'only the named files are stat-ed')
  t.same([...new Set(c.read)].sort(), ['new.yaml', 'renamed.yml'])
  t.equal(port(store, 's4'), 80, 's4 is still served, now from renamed.yml')
  t.equal(store.list('Service').length, FILES, '+ n - s3')
  t.equal(c.probed.some(f => f.startsWith('f0') && f !== 'f03.yaml' && f !== 'f04.yaml'), false)
})

t.test('a duplicate added by an event resolves as a restart would', async t => {
  const { dir, store, src, errors } = await setup(t, 'real')
  await writeFile(join(dir, 'aa-dup.yaml'), svcYAML('s10', '10.96.2.10', 90))
  t.ok(await until(() => port(store, 's10') === 90), 'the first file in name order wins at run time')
  t.match(src.status().conflicts, [{ key: 'Service/ns1/s10', kept: /aa-dup\.yaml$/, ignored: [/f10\.yaml$/] }])
  t.match(errors.join('\n'), /FERRY_ERR_DUPLICATE: .*s10 is defined in f10\.yaml and in aa-dup\.yaml; keeping aa-dup\.yaml/)
  const again = new ManifestSource({ path: dir, pollMs: 60_000 })
  const store2 = new ClusterStore()
  await again.start(store2)
  await again.stop()
  t.same(services(store2), services(store), 'a fresh start serves the same winners')
})

t.test('an event without a name, or naming another entry, rescans everything', async t => {
  const { dir, store, c } = await setup(t, 'drop')
  // kubelet updates a ConfigMap volume by swapping its ..data link: only dot-entries are named.
  await writeFile(join(dir, fileName(5)), svcYAML('s5', '10.96.0.6', 85))
  c.emit('..data')
  t.ok(await until(() => port(store, 's5') === 85))
  t.equal(c.lists, 1, 'one listing')
  t.equal(new Set(c.probed).size, FILES, 'every file is stat-ed')
  t.same(c.read, [fileName(5)], 'only the changed file is read')
  t.equal(c.now, c.probed.length + c.read.length, 'a full pass stats and reads in blocking calls')
  c.reset()
  await writeFile(join(dir, fileName(6)), svcYAML('s6', '10.96.0.7', 86))
  c.emit(null)
  t.ok(await until(() => port(store, 's6') === 86))
  t.equal(c.lists, 1)
  t.equal(new Set(c.probed).size, FILES)
})

t.test('a change whose event never comes is found by the periodic rescan', async t => {
  const { dir, store, c } = await setup(t, 'drop', { pollMs: 100 })
  await writeFile(join(dir, fileName(9)), svcYAML('s9', '10.96.0.10', 89))
  t.ok(await until(() => port(store, 's9') === 89), 'the rescan applies it')
  t.ok(c.lists >= 1, 'by listing the directory')
})

t.test('a rescan that finds nothing changed stats each file once and reads nothing', async t => {
  const { dir, store, src, c } = await setup(t, 'drop')
  const before = services(store)
  await src.reload()
  t.equal(c.lists, 1)
  t.same([...c.probed].sort(), Array.from({ length: FILES }, (_, i) => fileName(i)), 'one stat per file')
  t.equal(c.now, FILES, 'in blocking calls')
  t.same(c.read, [], 'nothing read')
  t.same(services(store), before)
  // As many files as before, but one left and another came: not "nothing changed".
  c.reset()
  await rm(join(dir, fileName(3)))
  await writeFile(join(dir, 'zz-new.yaml'), svcYAML('s99', '10.96.9.9', 99))
  await src.reload()
  t.equal(store.get('Service', 'ns1', 's3'), undefined, 'the removed file\'s Service is gone')
  t.equal(port(store, 's99'), 99, 'the new file\'s Service is served')
  t.same(c.read, ['zz-new.yaml'], 'only the new file is read')
})

t.test('a file named by an event that is not a regular file is rejected once', async t => {
  const { dir, store, c, errors } = await setup(t, 'drop')
  await rm(join(dir, fileName(2)))
  await mkdir(join(dir, fileName(2)))
  c.emit(fileName(2))
  t.ok(await until(() => errors.length > 0))
  c.emit(fileName(2))
  await until(() => true)
  t.equal(errors.length, 1, 'reported once')
  t.match(errors[0], /f02\.yaml is a directory, not a regular file/)
  t.equal(port(store, 's2'), 80, 'its last good objects stay')
  t.equal(c.lists, 0)
  t.same(c.read, [], 'nothing read')
})

t.test('a rewrite caught mid-write takes nothing away: losses wait for tornWriteMs, changes apply at once', async t => {
  const { dir, store, c, errors } = await setup(t, 'drop', { tornWriteMs: 400 })
  const f = join(dir, fileName(5))
  const seen: string[] = []
  const watch = setInterval(() => { seen.push(store.get('Service', 'ns1', 's5') === undefined ? 'gone' : `port ${port(store, 's5')}`) }, 2)
  t.teardown(() => { clearInterval(watch) })

  // The truncation's event comes first: the empty file is read, held, and read again after the write's event.
  await writeFile(f, '')
  c.emit(fileName(5))
  t.ok(await until(() => c.read.includes(fileName(5))), 'the truncated file was read')
  t.equal(port(store, 's5'), 80, 'its Service is still served')
  await writeFile(f, svcYAML('s5', '10.96.0.6', 85))
  c.emit(fileName(5))
  t.ok(await until(() => port(store, 's5') === 85), 'the completed write applies')
  t.notOk(seen.includes('gone'), 's5 was never removed on the way')

  // A torn YAML document is neither applied nor reported while the file may still be written.
  c.reset()
  await writeFile(f, 'apiVersion: v1\nkind: Service\nmetadata: {name: s5, namespace: ns1}\nspec: {clusterIP: 10.96.0.6, ports: [{po')
  c.emit(fileName(5))
  t.ok(await until(() => c.read.includes(fileName(5))))
  t.same(errors, [], 'no error yet')
  t.ok(await until(() => errors.length > 0), 'still broken after the window: reported')
  t.match(errors.join('\n'), /f05\.yaml/)
  t.equal(port(store, 's5'), 85, 'and the last good objects are kept')

  // A real removal applies once the window has passed; an edit that only changes applies without it.
  await writeFile(f, svcYAML('s5b', '10.96.0.66'))
  c.emit(fileName(5))
  t.ok(await until(() => store.get('Service', 'ns1', 's5') === undefined && store.get('Service', 'ns1', 's5b') !== undefined), 'the file now holds s5b only')
  await writeFile(join(dir, fileName(6)), svcYAML('s6', '10.96.0.7', 86))
  c.emit(fileName(6))
  t.ok(await until(() => port(store, 's6') === 86), 'a change with no loss')
})

t.test('a JSON List read at start-up is indexed in idle time: an edit then validates the changed item alone', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-events-'))
  const list = (port: number): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [1, 2, 3, 4, 5].map(i => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: `m${i}`, namespace: 'ns1' }, spec: { clusterIP: `10.96.3.${i}`, ports: [{ port: i === 3 ? port : 80 }] } })) }, null, 1)
  await writeFile(join(dir, 'many.json'), list(80))
  const passes: Array<Record<string, unknown>> = []
  const store = new ClusterStore()
  const src = new ManifestSource({ path: dir, pollMs: 60_000, debounceMs: 20, log: (_m, f) => { passes.push(f) } })
  t.teardown(async () => { await src.stop(); await rm(dir, { recursive: true, force: true }) })
  await src.start(store)
  await src.settled()
  const before = store.get('Service', 'ns1', 'm1')
  await writeFile(join(dir, 'many.json'), list(83))
  t.ok(await until(() => port(store, 'm3') === 83), 'the edit is applied')
  t.match(passes.at(-1), { pass: 'named', changedFiles: 1, validated: 1 }, 'one object validated, four reused')
  t.equal(store.get('Service', 'ns1', 'm1'), before, 'an unchanged item is the same object')
  // A change around the items (here the List's metadata) is decoded in full.
  await writeFile(join(dir, 'many.json'), list(84).replace('"kind": "List"', '"kind": "List",\n "metadata": {}'))
  t.ok(await until(() => port(store, 'm3') === 84))
  t.match(passes.at(-1), { validated: 5 })
})
