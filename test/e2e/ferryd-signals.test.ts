// Signals and fatal errors as an operator meets them on a real ferryd: SIGUSR1 (CoreDNS's "reload"
// reflex) must not open Node's inspector, SIGHUP stops ferryd as SIGTERM does (cleanly, exit 0), and a
// fatal start-up error is one JSON log line like every other. ferryd runs in its own namespace.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from '../../pkg/exec/exec.js'
import { startFerryd, type FerrydHost } from '../../pkg/lab/ferryd.js'
import { EMPTY_SVC, waitUntil } from '../helpers/web-lab.js'

/** A bare namespace (loopback only) named fy-opsrev-*, removed with everything started in it. */
async function bareHost (t: Test): Promise<FerrydHost> {
  const ns = `fy-opsrev-${randomBytes(3).toString('hex')}`
  const procs: ChildProcess[] = []
  await run(['ip', 'netns', 'add', ns])
  t.teardown(async () => {
    for (const p of procs) {
      if (p.exitCode !== null || p.signalCode !== null) continue
      p.kill('SIGKILL')
      await new Promise(resolve => p.once('exit', resolve))
    }
    await run(['ip', 'netns', 'del', ns])
  })
  const sh = async (argv: string[], where = ns, stdin?: string): Promise<string> => await run(['ip', 'netns', 'exec', where, ...argv], stdin)
  await sh(['ip', 'link', 'set', 'lo', 'up'])
  return {
    nodeNs: ns,
    sh,
    spawn: (argv, where = ns, opts = {}) => {
      const p = spawn('ip', ['netns', 'exec', where, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env })
      procs.push(p)
      return p
    },
  }
}

async function manifests (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fy-opsrev-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'empty.yaml'), EMPTY_SVC)
  return dir
}

// No CNI server: its file would land in the host's /run/ferry.
const ARGS = ['--node-name', 'n1', '--cluster-cidr', '10.244.0.0/16', '--cni-listen', '']

const jsonLines = (out: string): Array<Record<string, unknown>> =>
  out.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)

t.test('SIGUSR1 does not open the Node inspector; ferryd keeps serving', async t => {
  const host = await bareHost(t)
  const ferryd = startFerryd(host, ['--manifests', await manifests(t), ...ARGS])
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
  const host = await bareHost(t)
  const ferryd = startFerryd(host, ['--manifests', await manifests(t), ...ARGS])
  await ferryd.waitReady()
  t.equal(await ferryd.stop('SIGHUP'), 0, 'exit code 0, not killed by the signal')
  t.ok(jsonLines(ferryd.logs()).some(l => l.msg === 'shutting down; rules stay in place' && l.signal === 'SIGHUP'), 'the orderly shutdown ran')
})

t.test('a fatal error after start-up is one JSON log line', async t => {
  const host = await bareHost(t)
  // The operations port is taken: ferryd cannot start.
  const squatter = host.spawn(['node', '-e', "require('net').createServer().listen(10249, '127.0.0.1', () => console.log('up'))"])
  let up = ''
  squatter.stdout?.on('data', (b: Buffer) => { up += b.toString() })
  await waitUntil('the port is taken', async () => up.includes('up'), 5000)
  const ferryd = startFerryd(host, ['--manifests', await manifests(t), ...ARGS])
  const code = await new Promise<number | null>(resolve => { ferryd.proc.once('exit', resolve) })
  t.equal(code, 1)
  const lines = ferryd.logs().trim().split('\n')
  for (const l of lines) t.doesNotThrow(() => JSON.parse(l), `a JSON line: ${l.slice(0, 120)}`)
  const last = JSON.parse(lines.at(-1) ?? '{}') as Record<string, unknown>
  t.equal(last.level, 'error')
  t.match(String(last.msg), /EADDRINUSE|address already in use/i)
})

t.test('NOTIFY_SOCKET pointing nowhere: ferryd serves anyway and says READY=1 was not delivered', async t => {
  const host = await bareHost(t)
  const dir = await manifests(t)
  const ferryd = startFerryd(host, ['--manifests', dir, ...ARGS], { env: { ...process.env, NOTIFY_SOCKET: join(dir, 'no-such.sock') } })
  await ferryd.waitReady()
  await waitUntil('the failure is logged', async () => ferryd.logs().includes('READY=1'), 5000).catch(() => {})
  const warned = jsonLines(ferryd.logs()).find(l => l.level === 'warn' && String(l.msg).includes('READY=1'))
  t.ok(warned, 'a warning: under Type=notify systemd would time the start out, and this says why')
  t.match(JSON.stringify(warned?.err ?? ''), /no-such\.sock|No such file|Connection refused|not found/i, 'with the reason')
  t.equal(await ferryd.stop(), 0)
})
