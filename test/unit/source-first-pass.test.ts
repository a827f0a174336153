// The first pass decodes files of some size in the worker, several queued ahead, and hands each file's
// objects to the store as it is taken in. It must serve exactly what a one-file-at-a-time pass serves:
// name-order winners, a bad file reported by name and field, the store synced only at the end, and a file
// that kills the worker failing alone.
import t, { type Test } from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_DECODE_LIMITS } from '../../pkg/api/limits.js'
import { ClusterStore } from '../../pkg/cache/store.js'
import { DecodePool } from '../../pkg/source/decode-pool.js'
import { ManifestSource } from '../../pkg/source/manifests.js'
import { bigSelectorService } from '../helpers/hostile.js'

/** A JSON List of `n` Services named `${prefix}${i}`, over the 16 KiB at which the first pass uses the worker. */
function listFile (prefix: string, n: number, ip: (i: number) => string, port = 80): string {
  const items = []
  for (let i = 0; i < n; i++) {
    items.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: `${prefix}${i}`, namespace: 'ns1', labels: { pad: 'x'.repeat(60) } }, spec: { clusterIP: ip(i), ports: [{ port }] } })
  }
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 1)
}

async function tmp (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-first-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

t.test('first pass through the worker: name-order winners, a bad file named, synced only at the end', async t => {
  const dir = await tmp(t)
  const a = listFile('a', 100, i => `10.96.1.${i}`)
  t.ok(a.length > 16 * 1024, 'the files are big enough for the worker')
  await writeFile(join(dir, 'a.json'), a)
  // b redefines a0..a9 (ignored: a comes first) and adds b0..b99.
  await writeFile(join(dir, 'b.json'), listFile('b', 100, i => `10.96.2.${i}`).replace('"items": [', `"items": [${JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'a0', namespace: 'ns1' }, spec: { clusterIP: '10.96.9.9', ports: [{ port: 81 }] } })},`))
  await writeFile(join(dir, 'c.json'), listFile('c', 100, i => i === 42 ? '10.96.300.1' : `10.96.3.${i}`))
  await writeFile(join(dir, 'd.json'), listFile('d', 100, i => `10.96.4.${i}`))
  const store = new ClusterStore()
  const errors: string[] = []
  store.onError(e => errors.push(`${e.code}: ${e.message}`))
  let syncedDuringEvents = 0
  let events = 0
  store.on('Service', () => { events++; if (store.synced) syncedDuringEvents++ })
  const src = new ManifestSource({ path: dir, pollMs: 60_000 })
  t.teardown(async () => { await src.stop() })
  await src.start(store)
  t.ok(store.synced)
  t.equal(events, 300, 'one event per served Service, none for the ignored duplicate')
  t.equal(syncedDuringEvents, 0, 'not synced while the first state streams in')
  const svcs = store.list('Service')
  t.equal(svcs.length, 300, 'a, b and d; c is rejected whole')
  t.equal(store.get('Service', 'ns1', 'a0')?.spec.clusterIP, '10.96.1.0', 'the first file in name order wins')
  t.equal(store.get('Service', 'ns1', 'c1'), undefined)
  t.match(errors.join('\n'), /FERRY_ERR_INVALID_OBJECT: Service "ns1\/c42" \(c\.json, document 1, items\[42\]\): spec\.clusterIP: Invalid value: "10\.96\.300\.1"/)
  t.match(errors.join('\n'), /FERRY_ERR_DUPLICATE: manifests: Service\/ns1\/a0 is defined in b\.json and in a\.json; keeping a\.json/)
  t.match(src.status(), { files: 4, rejectedFiles: [{ file: /c\.json$/ }], conflicts: [{ key: 'Service/ns1/a0' }] })

  // After the first state, an edit takes the inline path and is merged against the streamed state.
  await writeFile(join(dir, 'a.json'), listFile('a', 99, i => `10.96.1.${i}`))
  await src.reload()
  t.equal(store.get('Service', 'ns1', 'a0')?.spec.clusterIP, '10.96.1.0')
  t.equal(store.get('Service', 'ns1', 'a99'), undefined, 'a99 left with its file')
  t.equal(store.count('Service'), 299)
})

t.test('files queued behind one that outlives its deadline decode in a fresh worker', async t => {
  const dir = await tmp(t)
  await writeFile(join(dir, 'a.json'), listFile('a', 100, i => `10.96.1.${i}`))
  await writeFile(join(dir, 'slow.yaml'), bigSelectorService(200_000, 'slow'))
  await writeFile(join(dir, 'z.json'), listFile('z', 100, i => `10.96.2.${i}`))
  const pool = new DecodePool({ timeoutMs: 1500, depth: 4 })
  t.teardown(async () => { await pool.close() })
  const [a, slow, z] = await Promise.all(['a.json', 'slow.yaml', 'z.json'].map(async f => await pool.decodeFile(join(dir, f), f, DEFAULT_DECODE_LIMITS)))
  t.same([a?.errors, a?.objects.length], [[], 100])
  t.match(slow?.errors.map(e => e.message), [/slow\.yaml took longer than 2 s to decode; ignored/])
  t.same([z?.errors, z?.objects.length], [[], 100], 'the file behind it is decoded, not failed')
  t.equal(z?.objects[99]?.metadata.name, 'z99')
})
