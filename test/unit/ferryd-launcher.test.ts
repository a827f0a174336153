// bin/ferryd runs the one-file bundle while it is newer than the ESM entry (a tsc run alone must not
// leave a stale bundle in use), finds its tree through a symlink, and says how to build when nothing is
// built. The launcher is copied into a throwaway tree whose "dist" holds stand-ins that print their name.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { launcherTree } from '../helpers/launcher-tree.js'

const { root, launcher, dist: cmd } = launcherTree(t, 'ferryd', 'fy-ferryd-launcher-', 'cmd')

function run (path: string, args: string[] = ['--flag', 'a b']): { code: number | null, out: string, err: string } {
  const r = spawnSync('sh', [path, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, encoding: 'utf8' })
  return { code: r.status, out: r.stdout, err: r.stderr }
}
const stamp = (file: string, s: number): void => { utimesSync(file, s, s) }
const stub = (name: string): string => `process.stdout.write(${JSON.stringify(name)} + " " + JSON.stringify(process.argv.slice(2)))\n`

t.test('nothing built: says how to build', async t => {
  const r = run(launcher)
  t.equal(r.code, 1)
  t.match(r.err, /not built yet: run 'npm ci && npm run build'/)
})

t.test('the bundle while it is newer than the ESM entry, else the ESM entry; arguments pass through', async t => {
  writeFileSync(join(cmd, 'ferryd.js'), stub('esm'))
  writeFileSync(join(cmd, 'ferryd.cjs'), stub('bundle'))
  stamp(join(cmd, 'ferryd.js'), 1_000_000)
  stamp(join(cmd, 'ferryd.cjs'), 1_000_010)
  t.equal(run(launcher).out, 'bundle ["--flag","a b"]', 'built by npm run build: the bundle')
  stamp(join(cmd, 'ferryd.js'), 1_000_020)
  t.equal(run(launcher).out, 'esm ["--flag","a b"]', 'tsc ran after the bundle: the ESM entry')
  rmSync(join(cmd, 'ferryd.cjs'))
  t.equal(run(launcher).out, 'esm ["--flag","a b"]', 'no bundle: the ESM entry')
})

t.test('reached through a symlink elsewhere: the tree of the real file', async t => {
  writeFileSync(join(cmd, 'ferryd.cjs'), stub('bundle'))
  stamp(join(cmd, 'ferryd.cjs'), 1_000_030)
  const elsewhere = mkdtempSync(join(tmpdir(), 'fy-ferryd-link-'))
  t.teardown(() => { rmSync(elsewhere, { recursive: true, force: true }) })
  symlinkSync(launcher, join(elsewhere, 'ferryd'))
  t.equal(run(join(elsewhere, 'ferryd'), []).out, 'bundle []')
})
