// bin/ferry-cni's bash front against ferryd's real CNI server with a fake verb runner: what the runtime
// set and piped in arrives byte for byte, ferryd's code and stdout come back, and every case the front
// must not hand over falls back to node. The launcher is copied to a folder with no dist/, so falling
// back shows as "not built yet".
import t from 'tap'
import { spawn } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { silentLogger } from '../../pkg/log/log.js'
import type { CniRequest } from '../../pkg/cni-server/protocol.js'
import { CniServer } from '../../pkg/cni-server/server.js'
import { newToken, writeServerFile } from '../../pkg/cni-server/server-file.js'

const dir = mkdtempSync(join(tmpdir(), 'fy-front-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
mkdirSync(join(dir, 'bin'))
const front = join(dir, 'bin', 'ferry-cni')
copyFileSync(resolve(import.meta.dirname, '../../bin/ferry-cni'), front)

const token = newToken()
const seen: CniRequest[] = []
const server = new CniServer({
  host: '127.0.0.1', port: 0, token, log: silentLogger,
  run: async req => { seen.push(req); return { code: Number(req.env.get('CNI_ARGS') ?? '0'), stdout: `out:${req.stdin}` } },
})
const serverFile = join(dir, 'cni-server.env')
t.before(async () => {
  const { port } = await server.listen()
  await writeServerFile(serverFile, { host: '127.0.0.1', port, token })
})
t.teardown(async () => { await server.close(0) })

/** Runs the front; one still running after killAfterMs is killed and reported so (a wait without bound). */
async function run (env: Record<string, string>, stdin: string | Buffer, shell = 'bash', killAfterMs = 20_000): Promise<{ code: number | null, out: string, err: string, killed: boolean }> {
  return await new Promise((done, fail) => {
    const child = spawn(shell, [front], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FERRY_CNI_SERVER_FILE: serverFile, ...env }, cwd: dir })
    let out = ''
    let err = ''
    let killed = false
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL') }, killAfterMs)
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { err += b.toString() })
    child.on('error', fail)
    child.on('close', code => { clearTimeout(timer); done({ code, out, err, killed }) })
    child.stdin.on('error', () => { /* the node path exits before reading it all */ })
    child.stdin.end(stdin)
  })
}

const CONF = '{"cniVersion":"1.0.0","name":"fy","x":"é€\\u0000 \\n"}\n\n'

t.test('the variables, cwd and stdin arrive byte for byte; code and stdout come back', async t => {
  seen.length = 0
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: '0' }
  const r = await run(env, CONF)
  t.same([r.code, r.out], [0, `out:${CONF}`])
  const { PID: pid, ...rest } = Object.fromEntries(seen[0]?.env ?? [])
  t.same(rest, { ...env, PWD: dir })
  t.match(pid, /^[1-9][0-9]*$/, 'and the front\'s pid')
  t.equal(seen[0]?.stdin, CONF, 'multi-byte characters, escapes and trailing newlines kept')
  const failed = await run({ CNI_COMMAND: 'DEL', CNI_ARGS: '7' }, '')
  t.same([failed.code, failed.out], [7, 'out:'], 'the exit code and an empty stdin')
  t.same(Object.keys(Object.fromEntries(seen[1]?.env ?? [])).sort(), ['CNI_ARGS', 'CNI_COMMAND', 'PID', 'PWD'], 'unset variables stay unset')
})

t.test('falls back to node whenever it must not (or cannot) hand over', async t => {
  seen.length = 0
  const wrong = join(dir, 'wrong.env')
  writeFileSync(wrong, readFileSync(serverFile, 'utf8').replace(token, newToken()))
  const closed = await new Promise<number>(resolve => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => { resolve(typeof a === 'object' && a !== null ? a.port : 1) }) }) })
  const gone = join(dir, 'gone.env')
  writeFileSync(gone, `FERRY_CNI_HOST=127.0.0.1\nFERRY_CNI_PORT=${closed}\nFERRY_CNI_TOKEN=${token}\n`)
  const cases: Array<[string, Record<string, string>, string | Buffer, string?]> = [
    ['no server file', { CNI_COMMAND: 'ADD', FERRY_CNI_SERVER_FILE: join(dir, 'none') }, CONF],
    ['a refused token', { CNI_COMMAND: 'ADD', FERRY_CNI_SERVER_FILE: wrong }, CONF],
    ['nothing listening', { CNI_COMMAND: 'ADD', FERRY_CNI_SERVER_FILE: gone }, CONF],
    ['a relative CNI_NETNS', { CNI_COMMAND: 'ADD', CNI_NETNS: 'p' }, CONF],
    ['a newline in a variable', { CNI_COMMAND: 'ADD', CNI_ARGS: 'a\nb' }, CONF],
    ['over 1 MB of stdin', { CNI_COMMAND: 'ADD' }, 'x'.repeat(1_000_001)],
    ['run by sh', { CNI_COMMAND: 'ADD' }, CONF, 'sh'],
  ]
  for (const [name, env, stdin, shell] of cases) {
    const r = await run(env, stdin, shell)
    t.equal(r.code, 1, name)
    t.match(r.err, /not built yet/, `${name}: node path`)
    t.equal(r.out, '', name)
  }
  t.equal(seen.length, 0, 'ferryd ran nothing')
})

t.test('a NUL byte on stdin is dropped: read -N skips it, and a bash string cannot hold one', async t => {
  // No JSON text holds a raw NUL; reading stdin in large reads (not byte by byte) cannot see one.
  seen.length = 0
  const r = await run({ CNI_COMMAND: 'ADD' }, Buffer.from('{"a":1}\0{"b":2}\0'))
  t.same([r.code, r.out], [0, 'out:{"a":1}{"b":2}'])
  t.equal(seen[0]?.stdin, '{"a":1}{"b":2}')
})

t.test('accepted but closed without an answer: error 11, not a second run', async t => {
  const mute = createServer(s => { s.on('data', () => { s.destroy() }) })
  await new Promise<void>(resolve => { mute.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { mute.close() })
  const a = mute.address()
  const f = join(dir, 'mute.env')
  writeFileSync(f, `FERRY_CNI_HOST=127.0.0.1\nFERRY_CNI_PORT=${typeof a === 'object' && a !== null ? a.port : 0}\nFERRY_CNI_TOKEN=${token}\n`)
  const r = await run({ CNI_COMMAND: 'ADD', FERRY_CNI_SERVER_FILE: f }, '{ "cniVersion" : "0.4.0", "name": "fy" }')
  t.equal(r.code, 1)
  t.notMatch(r.err, /not built yet/, 'node was not started')
  t.match(JSON.parse(r.out), { cniVersion: '0.4.0', code: 11, msg: /try again later: ferryd .* closed the connection without an answer/ })
  const status = await run({ CNI_COMMAND: 'STATUS', FERRY_CNI_SERVER_FILE: f }, '{"cniVersion":"1.1.0","name":"fy"}')
  t.match(JSON.parse(status.out), { cniVersion: '1.1.0', code: 50, msg: /plugin not available: ferryd .* closed the connection/ }, 'STATUS: not available (ADDs cannot be served)')
})

t.test('a hung ferryd that still accepts: a bounded wait, then 11 (50 for STATUS), not a second run', async t => {
  // The listener reads the request and never answers, as a ferryd whose event loop is stuck does (the
  // kernel completes the connection without it). The front waited forever: STATUS included.
  const sockets = new Set<Socket>()
  const hung = createServer(s => { sockets.add(s); s.resume() })
  await new Promise<void>(resolve => { hung.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { for (const s of sockets) s.destroy(); hung.close() })
  const a = hung.address()
  const port = typeof a === 'object' && a !== null ? a.port : 0
  const f = join(dir, 'hung.env')
  writeFileSync(f, `FERRY_CNI_HOST=127.0.0.1\nFERRY_CNI_PORT=${port}\nFERRY_CNI_TOKEN=${token}\n`)
  const conf = '{"cniVersion":"1.1.0","name":"fy"}'
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['STATUS', { FERRY_CNI_TIMEOUT: '1' }, 50, 'plugin not available'],
    ['ADD', { FERRY_CNI_TIMEOUT: '0.5' }, 11, 'try again later'],
    ['DEL', { FERRY_CNI_TIMEOUT: '1' }, 11, 'try again later'],
    ['GC', { FERRY_CNI_TIMEOUT: '1' }, 11, 'try again later'],
    ['CHECK', { FERRY_CNI_TIMEOUT: '1' }, 11, 'try again later'],
    ['STATUS', {}, 50, 'plugin not available'], // STATUS's default: 10 s (60 for the others)
    ['STATUS', { FERRY_CNI_TIMEOUT: 'soon' }, 50, 'plugin not available'], // malformed: the default
    ['STATUS', { FERRY_CNI_TIMEOUT: '0' }, 50, 'plugin not available'], // zero would poll: the default
    ['STATUS', { FERRY_CNI_TIMEOUT: '99999999999999999999' }, 50, 'plugin not available'], // read -t may refuse it: the default
  ]
  const runs = await Promise.all(cases.map(async ([cmd, env]) => await run({ CNI_COMMAND: cmd, FERRY_CNI_SERVER_FILE: f, ...env }, conf, 'bash', 15_000)))
  for (const [i, [cmd, env, code, msg]] of cases.entries()) {
    const r = runs[i]
    const name = `${cmd} ${JSON.stringify(env)}`
    t.same([r?.killed, r?.code], [false, 1], `${name}: gave up by itself`)
    t.notMatch(r?.err, /not built yet/, `${name}: node was not started`)
    const wait = /^(0\.5|1)$/.test(env.FERRY_CNI_TIMEOUT ?? '') ? env.FERRY_CNI_TIMEOUT ?? '' : '10'
    let answer: unknown = r?.out
    try { answer = JSON.parse(r?.out ?? '') } catch {}
    t.same(answer, { cniVersion: '1.1.0', code, msg: `${msg}: ferryd (127.0.0.1 port ${port}, from its server file) did not answer within ${wait} s` }, name)
  }
  t.equal(sockets.size, cases.length, 'each sent its request to the hung ferryd')
})
