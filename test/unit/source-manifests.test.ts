// The manifest source against a real directory: reloads, broken files keep their last good objects.
import t, { type Test } from 'tap'
import { mkdtemp, rm, writeFile, rename, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClusterStore } from '../../pkg/cache/store.js'
import { nodeManifestFs, type ManifestFs } from '../../pkg/source/manifest-files.js'
import { ManifestSource } from '../../pkg/source/manifests.js'

const svcYAML = (name: string, ip: string, port = 80): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ns1}
spec: {clusterIP: ${ip}, ports: [{port: ${port}}]}
`
const names = (s: ClusterStore): string[] => s.list('Service').map(x => `${x.metadata.name}:${x.spec.ports[0]?.port ?? 0}`).sort()

async function setup (t: Test): Promise<{ dir: string, store: ClusterStore, src: ManifestSource, errors: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-manifests-'))
  const store = new ClusterStore()
  const errors: string[] = []
  store.onError(e => errors.push(`${e.code}: ${e.message}`))
  const src = new ManifestSource({ path: dir, pollMs: 60_000, debounceMs: 20 })
  t.teardown(async () => { await src.stop(); await rm(dir, { recursive: true, force: true }) })
  return { dir, store, src, errors }
}

t.test('loads a directory, then follows edits, new files and deletions', async t => {
  const { dir, store, src } = await setup(t)
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  await writeFile(join(dir, 'ignored.txt'), 'not a manifest')
  await src.start(store)
  t.same(names(store), ['a:80'])
  await writeFile(join(dir, 'b.yml'), svcYAML('b', '10.96.0.2'))
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1', 81))
  await src.reload()
  t.same(names(store), ['a:81', 'b:80'])
  await unlink(join(dir, 'b.yml'))
  await src.reload()
  t.same(names(store), ['a:81'])
})

t.test('fs events trigger a reload without being asked', async t => {
  const { dir, store, src } = await setup(t)
  await src.start(store)
  const changed = new Promise<void>(resolve => { store.on('Service', () => { resolve() }) })
  // Editors write a temp file and rename it into place.
  await writeFile(join(dir, '.tmp'), svcYAML('w', '10.96.0.3'))
  await rename(join(dir, '.tmp'), join(dir, 'w.yaml'))
  await changed
  t.same(names(store), ['w:80'])
})

t.test('a broken file is reported and its last good objects stay', async t => {
  const { dir, store, src, errors } = await setup(t)
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1') + '---\n' + svcYAML('a2', '10.96.0.4'))
  await writeFile(join(dir, 'b.yaml'), svcYAML('b', '10.96.0.2'))
  await src.start(store)
  t.same(names(store), ['a2:80', 'a:80', 'b:80'])
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1', 99999))
  await writeFile(join(dir, 'b.yaml'), 'kind: Service\n  bad: [yaml\n')
  await src.reload()
  t.same(names(store), ['a2:80', 'a:80', 'b:80'], 'nothing lost')
  t.match(errors.join('\n'), /FERRY_ERR_INVALID_OBJECT: Service "ns1\/a" \(a\.yaml, document 1\): spec\.ports\[0\]\.port/)
  t.match(errors.join('\n'), /FERRY_ERR_PARSE: b\.yaml, document 1/)
  t.same(src.brokenFiles().map(f => f.slice(dir.length + 1)), ['a.yaml', 'b.yaml'])
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1', 82))
  await src.reload()
  t.same(names(store), ['a:82', 'b:80'], 'the fixed file replaces its old objects (a2 is gone)')
})

t.test('duplicates across files: the first file wins, the second is reported', async t => {
  const { dir, store, src, errors } = await setup(t)
  await writeFile(join(dir, '1.yaml'), svcYAML('a', '10.96.0.1', 80))
  await writeFile(join(dir, '2.yaml'), svcYAML('a', '10.96.0.1', 90))
  await src.start(store)
  t.same(names(store), ['a:80'])
  t.match(errors.join('\n'), /FERRY_ERR_DUPLICATE: manifests: Service\/ns1\/a is defined in 2\.yaml and in 1\.yaml; keeping 1\.yaml/)
})

t.test('a single file path and a missing path', async t => {
  const { dir, store, errors } = await setup(t)
  const file = join(dir, 'one.yaml')
  await writeFile(file, svcYAML('one', '10.96.0.5'))
  const src = new ManifestSource({ path: file, pollMs: 60_000 })
  t.teardown(async () => { await src.stop() })
  await src.start(store)
  t.same(names(store), ['one:80'])
  const store2 = new ClusterStore()
  const errs2: string[] = []
  store2.onError(e => errs2.push(e.message))
  const missing = new ManifestSource({ path: join(dir, 'nope'), pollMs: 60_000 })
  t.teardown(async () => { await missing.stop() })
  await missing.start(store2)
  t.ok(store2.synced, 'a missing path still counts as synced (empty)')
  t.match(errs2[0], /does not exist/)
  t.same(errors, [])
})

t.test('an unreadable file (EACCES) is reported and listed as rejected, keeping its last objects', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-manifests-'))
  const store = new ClusterStore()
  const errors: string[] = []
  store.onError(e => errors.push(`${e.code}: ${e.message}`))
  let denied = false
  const fs: ManifestFs = {
    ...nodeManifestFs,
    readNow: (f, max) => {
      if (denied && f.endsWith('b.yaml')) throw Object.assign(new Error(`EACCES: permission denied, open '${f}'`), { code: 'EACCES' })
      return nodeManifestFs.readNow(f, max)
    },
  }
  const src = new ManifestSource({ path: dir, pollMs: 60_000, debounceMs: 20, fs })
  t.teardown(async () => { await src.stop(); await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'a.yaml'), svcYAML('a', '10.96.0.1'))
  await writeFile(join(dir, 'b.yaml'), svcYAML('b', '10.96.0.2'))
  await src.start(store)
  t.same(names(store), ['a:80', 'b:80'])
  denied = true
  await writeFile(join(dir, 'b.yaml'), svcYAML('b', '10.96.0.2', 81))
  await src.reload()
  t.same(names(store), ['a:80', 'b:80'], 'b keeps its last good object')
  t.match(errors.join('\n'), /FERRY_ERR_SOURCE: manifests: cannot read .*b\.yaml: EACCES/)
  t.same(src.status().rejectedFiles.map(r => r.file), [join(dir, 'b.yaml')])
  await src.reload()
  t.equal(errors.filter(e => e.includes('EACCES')).length, 1, 'reported once per version of the file')
})
