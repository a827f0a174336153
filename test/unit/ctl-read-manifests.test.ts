// ferryctl -f reads files the way ferryd does: a FIFO or device named on the command line is refused
// at once (not waited on), and JSON goes through JSON.parse.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main } from '../../cmd/ferryctl.js'
import { readManifests, readStdinText } from '../../pkg/ctl/read-manifests.js'

t.test('apply -f of a FIFO or /dev/zero fails with the file named, before any etcd call', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferryctl-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  execFileSync('mkfifo', [join(dir, 'pipe.yaml')])
  await writeFile(join(dir, 'n.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: {} }))
  for (const [path, why] of [[join(dir, 'pipe.yaml'), /pipe\.yaml is a FIFO, not a regular file/], ['/dev/zero', /\/dev\/zero is a character device/]] as const) {
    let err = ''
    const code = await main(['apply', '-f', path, '--etcd-endpoints', 'http://127.0.0.1:1'], { env: {}, stdout: () => {}, stderr: s => { err += s } })
    t.equal(code, 1)
    t.match(err, why)
    t.match(err, /nothing was written/)
  }
})

t.test('apply -f DIR reads the files ferryd would: dot-files (an editor\'s lock link) skipped, .YAML read', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferryctl-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const node = (name: string): string => `apiVersion: v1\nkind: Node\nmetadata: {name: ${name}}\nspec: {}\n`
  await writeFile(join(dir, 'a.yaml'), node('a'))
  await writeFile(join(dir, 'B.YAML'), node('b'))
  await writeFile(join(dir, '.hidden.yaml'), node('hidden'))
  await symlink('root@host.1234:1700000000', join(dir, '.#a.yaml')) // emacs's lock file: a dangling link
  const r = await readManifests([dir])
  t.same(r.errors.map(e => e.message), [])
  t.same(r.objects.map(o => o.metadata.name), ['b', 'a'], 'name order, as ferryd merges them')
  t.same(r.sources, [join(dir, 'B.YAML'), join(dir, 'a.yaml')], 'each object\'s file, for kubectl\'s "error when deleting FILE"')
})

t.test('apply/delete -n is refused, not ignored: a namespace-less object would land in "default"', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferryctl-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'web.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n')
  for (const args of [['apply', '-n', 'demo'], ['delete', '--namespace', 'demo'], ['apply', '-A']]) {
    let err = ''
    const code = await main([...args, '-f', join(dir, 'web.yaml'), '--etcd-endpoints', 'http://127.0.0.1:1'], { env: {}, stdout: () => {}, stderr: s => { err += s } })
    t.equal(code, 1, args.join(' '))
    t.match(err, /metadata\.namespace/, 'says where the namespace goes')
    t.notMatch(err, /etcd/, 'refused before any etcd call')
  }
})

t.test('apply -f - reads standard input (kubectl apply -f -), named STDIN in errors, bounded, once', async t => {
  const node = (name: string): string => `apiVersion: v1\nkind: Node\nmetadata: {name: ${name}}\nspec: {}\n`
  const read = await readManifests(['-'], async () => `${node('a')}---\n${node('b')}`)
  t.same(read.objects.map(o => o.metadata.name), ['a', 'b'])
  t.same(read.files, ['STDIN'])
  t.same(read.sources, ['STDIN', 'STDIN'])
  const bad = await readManifests(['-'], async () => 'apiVersion: v1\nkind: Node\nmetadata: {}\n')
  t.match(bad.errors.map(e => e.message).join('\n'), /STDIN/, 'an invalid object names STDIN')
  t.match((await readManifests(['-', '-'], async () => node('a'))).errors.map(e => e.message), [/can be given once/])
  t.match((await readManifests(['-'])).errors.map(e => e.message), [/no standard input/])
  // The same limit as a manifest file, enforced while reading.
  async function * chunks (): AsyncGenerator<Buffer> { yield Buffer.alloc(600); yield Buffer.alloc(600) }
  await t.rejects(readStdinText(chunks(), 1000), { code: 'FERRY_ERR_LIMIT', message: /STDIN: over the 1000-byte limit/ })
  t.equal(await readStdinText((async function * () { yield 'a: 1\n'; yield Buffer.from('b: 2\n') })(), 1000), 'a: 1\nb: 2\n')
  // Through ferryctl: stdin's problems stop the apply before any etcd call.
  let err = ''
  const code = await main(['apply', '-f', '-', '--etcd-endpoints', 'http://127.0.0.1:1'], { env: {}, stdout: () => {}, stderr: s => { err += s }, stdin: async () => 'kind: Nope\n' })
  t.equal(code, 1)
  t.match(err, /STDIN/)
  t.match(err, /nothing was written/)
})

t.test('-R walks subdirectories depth first in name order, and never a symlinked one (no loop)', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferryctl-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const node = (name: string): string => `apiVersion: v1\nkind: Node\nmetadata: {name: ${name}}\nspec: {}\n`
  await mkdir(join(dir, 'b', 'c'), { recursive: true })
  await mkdir(join(dir, '.git'))
  await writeFile(join(dir, 'a.yaml'), node('a'))
  await writeFile(join(dir, 'b', 'c', 'c.yaml'), node('c'))
  await writeFile(join(dir, 'b', 'd.yaml'), node('d'))
  await writeFile(join(dir, 'e.yaml'), node('e'))
  await writeFile(join(dir, '.git', 'x.yaml'), node('git'))
  await symlink('..', join(dir, 'b', 'loop'))
  const r = await readManifests([dir], undefined, { recursive: true })
  t.same(r.errors.map(e => e.message), [])
  t.same(r.objects.map(o => o.metadata.name), ['a', 'c', 'd', 'e'])
  t.same((await readManifests([dir])).objects.map(o => o.metadata.name), ['a', 'e'], 'without -R: this directory only')
})
