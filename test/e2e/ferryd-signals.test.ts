// Signals and fatal errors as an operator meets them on a real ferryd: SIGUSR1 (CoreDNS's "reload"
// reflex) must not open Node's inspector, SIGHUP stops ferryd as SIGTERM does (cleanly, exit 0), and a
// fatal start-up error is one JSON log line like every other. ferryd runs in its own namespace.
import t, { type Test } from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFerryd } from '../../pkg/lab/ferryd.js'
import { BARE_FERRYD_ARGS, bareHost } from '../helpers/bare-host.js'
import { EMPTY_SVC, waitUntil } from '../helpers/web-lab.js'

async function manifests (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fy-opsrev-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'empty.yaml'), EMPTY_SVC)
  return dir
}


const jsonLines = (out: string): Array<Record<string, unknown>> =>
  out.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)

t.test('SIGUSR1 does not open the Node inspector; ferryd keeps serving', async t => {
  const host = await bareHost(t, 'fy-opsrev-')
  const ferryd = startFerryd(host, ['--manifests', await manifests(t), ...BARE_FERRYD_ARGS])
  await ferryd.waitReady()
  ferryd.proc.kill('SIGUSR1')
  await waitUntil('the signal is logged', async () => ferryd.logs().includes('SIGUSR1'), 5000).catch(() => {})
  await new Promise(resolve => setTimeout(resolve, 500))
  const listening = await host.sh(['ss', '-Hltn'])
  t.notMatch(listening, /:9229\b/, 'nothing listens on the inspector port (root code execution for any local user)')
  t.notMatch(ferryd.logs(), /Debugger listening/)
  t.equal(ferryd.proc.exitCode, null, 'still running')
  t.equal((await ferryd.http('/healthz')).status, 200)
  t.ok(jsonLines(ferryd.logs()).some(l => l.level === 'warn' && String(l.msg).includes('SIGUSR1')), 'a warning says the signal is ignored')
  t.equal(await ferryd.stop(), 0)
})

t.test('SIGHUP stops ferryd cleanly, as SIGTERM does', async t => {
  const host = await bareHost(t, 'fy-opsrev-')
  const ferryd = startFerryd(host, ['--manifests', await manifests(t), ...BARE_FERRYD_ARGS])
  await ferryd.waitReady()
  t.equal(await ferryd.stop('SIGHUP'), 0, 'exit code 0, not killed by the signal')
  t.ok(jsonLines(ferryd.logs()).some(l => l.msg === 'shutting down; rules stay in place' && l.signal === 'SIGHUP'), 'the orderly shutdown ran')
})

t.test('a fatal error after start-up is one JSON log line', async t => {
  const host = await bareHost(t, 'fy-opsrev-')
  // The operations port is taken: ferryd cannot start.
  const squatter = host.spawn(['node', '-e', "require('net').createServer().listen(10249, '127.0.0.1', () => console.log('up'))"])
  let up = ''
  squatter.stdout?.on('data', (b: Buffer) => { up += b.toString() })
  await waitUntil('the port is taken', async () => up.includes('up'), 5000)
  const ferryd = startFerryd(host, ['--manifests', await manifests(t), ...BARE_FERRYD_ARGS])
  const code = await new Promise<number | null>(resolve => { ferryd.proc.once('exit', resolve) })
  t.equal(code, 1)
  const lines = ferryd.logs().trim().split('\n')
  for (const l of lines) t.doesNotThrow(() => JSON.parse(l), `a JSON line: ${l.slice(0, 120)}`)
  const last = JSON.parse(lines.at(-1) ?? '{}') as Record<string, unknown>
  t.equal(last.level, 'error')
  t.match(String(last.msg), /EADDRINUSE|address already in use/i)
})

t.test('NOTIFY_SOCKET pointing nowhere: ferryd serves anyway and says READY=1 was not delivered', async t => {
  const host = await bareHost(t, 'fy-opsrev-')
  const dir = await manifests(t)
  const ferryd = startFerryd(host, ['--manifests', dir, ...BARE_FERRYD_ARGS], { env: { ...process.env, NOTIFY_SOCKET: join(dir, 'no-such.sock') } })
  await ferryd.waitReady()
  await waitUntil('the failure is logged', async () => ferryd.logs().includes('READY=1'), 5000).catch(() => {})
  const warned = jsonLines(ferryd.logs()).find(l => l.level === 'warn' && String(l.msg).includes('READY=1'))
  t.ok(warned, 'a warning: under Type=notify systemd would time the start out, and this says why')
  t.match(JSON.stringify(warned?.err ?? ''), /no-such\.sock|No such file|Connection refused|not found/i, 'with the reason')
  t.equal(await ferryd.stop(), 0)
})
