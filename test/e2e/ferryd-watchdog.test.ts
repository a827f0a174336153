// The systemd watchdog on a real ferryd: with WATCHDOG_USEC set it pings WATCHDOG=1 only after READY=1,
// at half the interval, and stops at shutdown; a WATCHDOG_PID of another process leaves it off. A fake
// systemd-notify on PATH records its arguments. ferryd runs in its own namespace (fy-ops2-*).
import t, { type Test } from 'tap'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFerryd } from '../../pkg/lab/ferryd.js'
import { BARE_FERRYD_ARGS, bareHost } from '../helpers/bare-host.js'
import { EMPTY_SVC, waitUntil } from '../helpers/web-lab.js'

/** Manifests and a fake systemd-notify that appends its arguments to `calls`, one line per run. */
async function workdir (t: Test): Promise<{ dir: string, env: NodeJS.ProcessEnv, calls: () => Promise<string[]> }> {
  const dir = await mkdtemp(join(tmpdir(), 'fy-ops2-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'empty.yaml'), EMPTY_SVC)
  const record = join(dir, 'calls')
  await writeFile(join(dir, 'systemd-notify'), `#!/bin/sh\necho "$*" >> '${record}'\n`)
  await chmod(join(dir, 'systemd-notify'), 0o755)
  const env = { ...process.env, PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, NOTIFY_SOCKET: '/run/fy-ops2-fake.sock' }
  const calls = async (): Promise<string[]> => (await readFile(record, 'utf8').catch(() => '')).split('\n').filter(l => l !== '')
  return { dir, env, calls }
}


t.test('WATCHDOG=1 after READY=1 at half WATCHDOG_USEC, none after STOPPING=1', async t => {
  const host = await bareHost(t, 'fy-ops2-')
  const w = await workdir(t)
  const ferryd = startFerryd(host, ['--manifests', w.dir, ...BARE_FERRYD_ARGS], { env: { ...w.env, WATCHDOG_USEC: '400000' } })
  await ferryd.waitReady()
  await waitUntil('three pings', async () => (await w.calls()).filter(c => c === 'WATCHDOG=1').length >= 3, 5000)
  const calls = await w.calls()
  const ready = calls.findIndex(c => c.startsWith('READY=1'))
  t.ok(ready >= 0 && ready < calls.indexOf('WATCHDOG=1'), 'READY=1 comes first')
  t.match(ferryd.logs(), /systemd watchdog on.*"intervalMs":400.*"pingEveryMs":200/, 'logged once with the interval')
  t.equal(ferryd.logs().split('systemd watchdog on').length, 2, 'once')
  t.equal(await ferryd.stop(), 0)
  const after = await w.calls()
  t.equal(after.at(-1), 'STOPPING=1', 'no ping after STOPPING=1')
})

t.test('a WATCHDOG_PID naming another process leaves the watchdog off', async t => {
  const host = await bareHost(t, 'fy-ops2-')
  const w = await workdir(t)
  const ferryd = startFerryd(host, ['--manifests', w.dir, ...BARE_FERRYD_ARGS], { env: { ...w.env, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' } })
  await ferryd.waitReady()
  await new Promise(resolve => setTimeout(resolve, 800))
  t.same((await w.calls()).filter(c => c === 'WATCHDOG=1'), [], 'no ping')
  t.notMatch(ferryd.logs(), /watchdog/)
  t.equal(await ferryd.stop(), 0)
})
