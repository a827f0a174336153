// bin/ferry-cni answers VERSION in sh for the inputs runtimes send; it must print exactly what
// versionInfo() prints, and hand every input it cannot be sure of to node. The launcher is copied to a
// folder with no dist/, so an input it defers fails with "not built yet" instead of reaching node.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, linkSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { launcherTree } from '../helpers/launcher-tree.js'
import { SUPPORTED_VERSIONS, versionInfo } from '../../cni-plugin/versions.js'

const { launcher } = launcherTree(t, 'ferry-cni', 'fy-launcher-')

function run (stdin: string, env: Record<string, string> = { CNI_COMMAND: 'VERSION' }): { code: number | null, out: string, err: string } {
  const r = spawnSync('sh', [launcher], { input: stdin, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, encoding: 'utf8' })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

t.test('answered in sh, byte for byte as versionInfo()', async t => {
  const inputs = [
    '{"cniVersion":"1.0.0"}', // what libcni sends
    ...SUPPORTED_VERSIONS.map(v => `{"cniVersion":"${v}"}`),
    ' { "cniVersion" : "0.4.0" } \n',
    '{\n\t"cniVersion": "0.3.1"\n}\n',
    '{"cniVersion":"1.0.0"}', // no trailing newline
    '{"cniVersion":"9.9.9"}', // well formed, not ours
    '{"cniVersion":"1.0.0-rc1"}',
    '',
    ' \n\t',
  ]
  for (const input of inputs) {
    const r = run(input)
    t.equal(r.code, 0, `exit 0 for ${JSON.stringify(input)}: ${r.err}`)
    t.equal(r.out, versionInfo(input), `answer for ${JSON.stringify(input)}`)
  }
})

t.test('deferred to node when sh cannot be sure', async t => {
  for (const input of [
    '{"cniVersion":"1.0.0","name":"x"}', // other keys (a whole config)
    '{"cniVersion":"\\u0031.0.0"}', // an escape that decodes to a supported version
    '{"cni Version":"1.0.0"}', // white space inside the key
    '{"cniVersion":"1.0 .0"}', // white space inside the value: a different string
    '{"cniVersion":"1.0.0"}\r\n', // CR is JSON white space but not sh's
    'garbage',
    '{"cniVersion":"1.0.0"',
  ]) {
    const r = run(input)
    t.equal(r.code, 1, `not answered in sh: ${JSON.stringify(input)} (${r.out})`)
    t.match(r.err, /not built yet/)
    t.equal(r.out, '')
  }
})

t.test('other verbs always go to node', async t => {
  const r = run('{"cniVersion":"1.0.0"}', { CNI_COMMAND: 'ADD' })
  t.equal(r.code, 1)
  t.match(r.err, /not built yet/)
})

t.test('the snapshot only while the node that built it is still that file, else the bundle', async t => {
  const { root, launcher: l, dist: cni } = launcherTree(t, 'ferry-cni', 'fy-launcher-snap-', 'cni-plugin')
  // A stand-in "node" that built the blob: it reports how it was started.
  const fakeNode = join(root, 'node-bin')
  const script = '#!/bin/sh\necho "snapshot $1 ${2##*/}"\n'
  writeFileSync(fakeNode, script)
  chmodSync(fakeNode, 0o755)
  linkSync(fakeNode, join(cni, 'ferry-cni.node'))
  writeFileSync(join(cni, 'ferry-cni.snapshot'), `${fakeNode}\n`)
  writeFileSync(join(cni, 'ferry-cni.blob'), '')
  writeFileSync(join(cni, 'ferry-cni.cjs'), 'process.stdout.write("bundle")\n')
  const go = (): string => spawnSync('sh', [l], { input: '{}', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_COMMAND: 'ADD' }, encoding: 'utf8' }).stdout.trim()
  t.equal(go(), 'snapshot --snapshot-blob ferry-cni.blob', 'same binary: the snapshot')
  // An upgrade replaces the file (a new inode at the same path): the blob no longer fits it.
  rmSync(fakeNode)
  writeFileSync(fakeNode, script)
  chmodSync(fakeNode, 0o755)
  t.equal(go(), 'bundle', 'replaced binary: the bundle, with node from PATH')
  rmSync(join(cni, 'ferry-cni.snapshot'))
  t.equal(go(), 'bundle', 'no stamp: the bundle')
})
