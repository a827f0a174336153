// The systemd watchdog: sd_watchdog_enabled's rules on WATCHDOG_USEC/WATCHDOG_PID, and WATCHDOG=1 at half
// the interval through the real notify seam. A fake systemd-notify on PATH records its arguments.
import t from 'tap'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../../pkg/log/log.js'
import { startWatchdog, watchdogUsec } from '../../pkg/systemd/watchdog.js'

const dir = mkdtempSync(join(tmpdir(), 'fy-ops2-watchdog-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const record = join(dir, 'calls')
writeFileSync(join(dir, 'systemd-notify'), `#!/bin/sh\necho "$*" >> '${record}'\n`)
chmodSync(join(dir, 'systemd-notify'), 0o755)
const baseEnv = { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, NOTIFY_SOCKET: '/run/fake-notify' }
const calls = (): string[] => { try { return readFileSync(record, 'utf8').split('\n').filter(l => l !== '') } catch { return [] } }
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('sd_watchdog_enabled rules', async t => {
  const pid = 4242
  const cases: Array<[string, Record<string, string>, number | undefined]> = [
    ['unset', {}, undefined],
    ['interval, no pid', { WATCHDOG_USEC: '20000000' }, 20_000_000],
    ['interval, our pid', { WATCHDOG_USEC: '20000000', WATCHDOG_PID: '4242' }, 20_000_000],
    ['another pid: inherited, not ours', { WATCHDOG_USEC: '20000000', WATCHDOG_PID: '4243' }, undefined],
    ['zero pid', { WATCHDOG_USEC: '20000000', WATCHDOG_PID: '0' }, undefined],
    ['bad pid', { WATCHDOG_USEC: '20000000', WATCHDOG_PID: 'x42' }, undefined],
    ['empty pid', { WATCHDOG_USEC: '20000000', WATCHDOG_PID: '' }, undefined],
    ['zero interval', { WATCHDOG_USEC: '0' }, undefined],
    ['negative interval', { WATCHDOG_USEC: '-5' }, undefined],
    ['bad interval', { WATCHDOG_USEC: '20s' }, undefined],
  ]
  for (const [name, env, want] of cases) t.equal(watchdogUsec(env, pid), want, name)
})

t.test('WATCHDOG=1 at half the interval, logged once, stopped at shutdown', async t => {
  rmSync(record, { force: true })
  const logs: string[] = []
  const log = createLogger({ level: 'info', write: l => logs.push(l) })
  const wd = startWatchdog({ env: { ...baseEnv, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) }, pid: process.pid, log })
  t.equal(wd.periodMs, 100)
  await sleep(550)
  wd.stop()
  await sleep(100) // a ping in flight lands
  const n = calls().length
  t.ok(n >= 4 && n <= 7, `about one ping per 100 ms (${n})`)
  t.ok(calls().every(c => c === 'WATCHDOG=1'), 'each call is WATCHDOG=1')
  const on = logs.filter(l => l.includes('systemd watchdog on'))
  t.equal(on.length, 1, 'one line says it is on')
  t.match(on[0], /"intervalMs":200/)
  t.match(on[0], /"pingEveryMs":100/)
  await sleep(300)
  t.equal(calls().length, n, 'no ping after stop')
})

t.test('a WATCHDOG_PID of another process disables it', async t => {
  rmSync(record, { force: true })
  const logs: string[] = []
  const wd = startWatchdog({ env: { ...baseEnv, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid + 1) }, pid: process.pid, log: createLogger({ level: 'info', write: l => logs.push(l) }) })
  await sleep(300)
  wd.stop()
  t.equal(wd.periodMs, undefined)
  t.same(calls(), [], 'no ping')
  t.same(logs.filter(l => l.includes('watchdog')), [], 'and nothing logged about it')
})
