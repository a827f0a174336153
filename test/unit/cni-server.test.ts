// ferryd's CNI server over real loopback sockets with a fake verb runner: the token, the concurrency
// cap, the size and time bounds, the refusal log, shutdown; and the server file it publishes.
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../../pkg/log/log.js'
import { encodeRequest, type CniRequest } from '../../pkg/cni-server/protocol.js'
import { CniServer, type CniServerOptions, type RunResult } from '../../pkg/cni-server/server.js'
import { newToken, removeServerFile, writeServerFile } from '../../pkg/cni-server/server-file.js'
import { netnsViewProblem } from '../../pkg/cni-server/service.js'
import { mkdirSync, symlinkSync } from 'node:fs'

const TOKEN = newToken()

interface Harness { server: CniServer, port: number, ran: CniRequest[], logs: string[], counts: string[] }

async function start (t: Test, o: Partial<CniServerOptions> = {}, run?: (req: CniRequest) => Promise<RunResult>): Promise<Harness> {
  const ran: CniRequest[] = []
  const logs: string[] = []
  const counts: string[] = []
  const server = new CniServer({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    log: createLogger({ level: 'debug', write: l => logs.push(l) }),
    metrics: { served: (c, code) => counts.push(`served ${c} ${code}`), rejected: r => counts.push(`rejected ${r}`) },
    run: async req => { ran.push(req); return await (run ?? (async () => ({ code: 0, stdout: `{"ran":"${req.env.get('CNI_COMMAND') ?? ''}"}` })))(req) },
    ...o,
  })
  const { port } = await server.listen()
  t.teardown(async () => { await server.close(0) })
  return { server, port, ran, logs, counts }
}

/** Sends bytes, then reads until the server closes; `hold` keeps the connection open without sending more. */
async function send (port: number, bytes: Buffer | string): Promise<{ text: string, reset: boolean }> {
  return await new Promise(resolve => {
    const s = connect(port, '127.0.0.1')
    let text = ''
    let reset = false
    s.on('data', b => { text += b.toString() })
    s.on('error', () => { reset = true })
    s.on('close', () => { resolve({ text, reset }) })
    s.write(bytes)
  })
}

const add = (token = TOKEN, cid = 'c1'): Buffer => encodeRequest(token, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: cid, CNI_IFNAME: 'eth0' }, '{"cniVersion":"1.0.0"}')

t.test('a good token runs the verb with the request\'s variables and stdin; the answer is code then stdout', async t => {
  const h = await start(t)
  const r = await send(h.port, add())
  t.equal(r.text, '0\n{"ran":"ADD"}')
  t.equal(h.ran.length, 1)
  t.same(Object.fromEntries(h.ran[0]?.env ?? []), { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' })
  t.equal(h.ran[0]?.stdin, '{"cniVersion":"1.0.0"}')
  t.same(h.counts, ['served ADD 0'])
})

t.test('a wrong token: "refused", nothing runs, one warning per window', async t => {
  let now = 0
  const h = await start(t, { now: () => now, refusalLogIntervalMs: 60_000 })
  for (let i = 0; i < 5; i++) t.equal((await send(h.port, add(newToken()))).text, 'refused\n')
  t.equal(h.ran.length, 0, 'nothing ran')
  const warns = (): string[] => h.logs.filter(l => l.includes('wrong token'))
  t.equal(warns().length, 1, 'five refusals in one window: one warning')
  now = 61_000
  await send(h.port, add(newToken()))
  t.equal(warns().length, 2)
  t.match(JSON.parse(warns()[1] ?? '{}'), { level: 'warn', refused: 5 }, 'the next warning counts the ones not logged')
  t.equal(h.counts.filter(c => c === 'rejected token').length, 6)
  t.equal((await send(h.port, add(TOKEN.slice(0, 62)))).text, 'refused\n', 'a shorter token')
})

t.test('malformed, oversized and slow requests are closed with nothing run', async t => {
  const h = await start(t, { maxRequestBytes: 4096, readTimeoutMs: 200 })
  for (const bad of ['GET / HTTP/1.1\r\n\r\n', `ferry-cni/1 ${TOKEN}\nLD_PRELOAD=x\n\n0\n`]) {
    const r = await send(h.port, bad)
    t.equal(r.text, '', `no answer to ${JSON.stringify(bad.slice(0, 20))}`)
  }
  const big = await send(h.port, encodeRequest(TOKEN, { CNI_COMMAND: 'ADD' }, 'x'.repeat(10_000)))
  t.equal(big.text, '', 'oversized: no answer')
  const slow = await new Promise<{ text: string, ms: number }>(resolve => {
    const t0 = Date.now()
    const s = connect(h.port, '127.0.0.1')
    let text = ''
    s.on('data', b => { text += b.toString() })
    s.on('error', () => {})
    s.on('close', () => { resolve({ text, ms: Date.now() - t0 }) })
    s.write(`ferry-cni/1 ${TOKEN}\nCNI_COMMAND=ADD\n`) // and never the rest
  })
  t.equal(slow.text, '', 'an incomplete request is closed at the read timeout')
  t.ok(slow.ms < 5000, 'closed well before the hang detector')
  t.equal(h.ran.length, 0, 'nothing ran')
  t.same(h.counts.sort(), ['rejected malformed', 'rejected malformed', 'rejected oversized', 'rejected timeout'])
})

t.test('at most maxConcurrent verbs run at once; the rest wait in line and are all answered', async t => {
  let running = 0
  let peak = 0
  const releases: Array<() => void> = []
  const h = await start(t, { maxConcurrent: 3 }, async req => {
    running++
    peak = Math.max(peak, running)
    await new Promise<void>(resolve => releases.push(resolve))
    running--
    return { code: 0, stdout: req.env.get('CNI_CONTAINERID') ?? '' }
  })
  const answers = Array.from({ length: 10 }, async (_, i) => await send(h.port, add(TOKEN, `c${i}`)))
  while (releases.length < 3) await new Promise(resolve => setTimeout(resolve, 5))
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(h.server.stats(), { running: 3, queued: 7 }, 'three run, seven wait')
  while (releases.length > 0 || h.ran.length < 10) {
    releases.shift()?.()
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  const texts = (await Promise.all(answers)).map(r => r.text)
  t.same(texts, Array.from({ length: 10 }, (_, i) => `0\nc${i}`), 'each caller gets its own answer')
  t.equal(peak, 3)
})

t.test('a verb still queued when its front gives up (closes) is dropped, never run', async t => {
  // The front answers 11 after FERRY_CNI_TIMEOUT and the runtime runs its cleanup DEL: a late ADD would
  // then allocate an IP and chains nobody releases.
  let release: () => void = () => {}
  const h = await start(t, { maxConcurrent: 1 }, async req => {
    if (req.env.get('CNI_CONTAINERID') === 'busy') await new Promise<void>(resolve => { release = resolve })
    return { code: 0, stdout: req.env.get('CNI_CONTAINERID') ?? '' }
  })
  const busy = send(h.port, add(TOKEN, 'busy'))
  while (h.ran.length === 0) await new Promise(resolve => setTimeout(resolve, 5))
  const quitter = connect(h.port, '127.0.0.1')
  quitter.on('error', () => {})
  quitter.write(add(TOKEN, 'gave-up'))
  const patient = send(h.port, add(TOKEN, 'patient'))
  while (h.server.stats().queued < 2) await new Promise(resolve => setTimeout(resolve, 5))
  quitter.destroy()
  await new Promise(resolve => setTimeout(resolve, 50))
  release()
  t.equal((await busy).text, '0\nbusy')
  t.equal((await patient).text, '0\npatient', 'a caller still waiting is served')
  t.same(h.ran.map(r => r.env.get('CNI_CONTAINERID')), ['busy', 'patient'], 'the request whose front had gone never ran')
  t.same(h.counts, ['served ADD 0', 'served ADD 0'], 'and is not counted as served')
  t.ok(h.logs.some(l => l.includes('its front gave up') && l.includes('gave-up')), 'the drop is logged with the container')
})

t.test('close() stops accepting and lets a running verb answer', async t => {
  let release: () => void = () => {}
  const h = await start(t, {}, async () => { await new Promise<void>(resolve => { release = resolve }); return { code: 1, stdout: 'late' } })
  const pending = send(h.port, add())
  while (h.ran.length === 0) await new Promise(resolve => setTimeout(resolve, 5))
  const closing = h.server.close(5000)
  const refused = await new Promise<boolean>(resolve => {
    const s = connect(h.port, '127.0.0.1')
    s.on('error', () => { resolve(true) })
    s.on('connect', () => { s.destroy(); resolve(false) })
  })
  t.ok(refused, 'no new connections after close()')
  release()
  t.equal((await pending).text, '1\nlate', 'the running verb still answered')
  await closing
})

t.test('server file: 0600, exactly host, port and token; removed only while it is ours', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-cnisrv-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'sub', 'cni-server.env')
  const token = newToken()
  t.match(token, /^[0-9a-f]{64}$/)
  await writeServerFile(path, { host: '127.0.0.1', port: 10251, token })
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.equal(readFileSync(path, 'utf8'), `FERRY_CNI_HOST=127.0.0.1\nFERRY_CNI_PORT=10251\nFERRY_CNI_TOKEN=${token}\n`)
  writeFileSync(path, readFileSync(path, 'utf8').replace(token, newToken()))
  t.equal(await removeServerFile(path, token), false, 'another ferryd\'s file stays')
  await writeServerFile(path, { host: '127.0.0.1', port: 1, token })
  t.equal(await removeServerFile(path, token), true)
  t.throws(() => statSync(path), 'gone')
})

t.test('a request ferryd cannot run where the caller stands is left to the front: "refused", nothing runs', async t => {
  const h = await start(t, { precheck: req => req.env.get('CNI_NETNS') === '/elsewhere' ? 'not the same netns' : null })
  t.equal((await send(h.port, encodeRequest(TOKEN, { CNI_COMMAND: 'ADD', CNI_NETNS: '/elsewhere' }, '{}'))).text, 'refused\n')
  t.equal(h.ran.length, 0)
  t.same(h.counts, ['rejected view'])
  t.notOk(h.logs.some(l => l.includes('wrong token')), 'not logged as a wrong token')
})

t.test('netnsViewProblem: CNI_NETNS must be the same file through the caller\'s /proc/PID/root', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-cniview-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const ns = join(dir, 'ns')
  writeFileSync(ns, '')
  mkdirSync(join(dir, 'proc', '42'), { recursive: true })
  symlinkSync('/', join(dir, 'proc', '42', 'root')) // pid 42 sees our root
  mkdirSync(join(dir, 'proc', '43', 'root', ...dir.split('/').filter(x => x !== '')), { recursive: true })
  writeFileSync(join(dir, 'proc', '43', 'root', dir, 'ns'), '') // pid 43: another file at the same path
  const req = (env: Record<string, string>): Parameters<typeof netnsViewProblem>[0] => ({ token: '', stdin: '', env: new Map(Object.entries(env)) as never })
  const proc = join(dir, 'proc')
  t.equal(netnsViewProblem(req({ CNI_NETNS: ns, PID: '42' }), proc), null, 'same file')
  t.match(netnsViewProblem(req({ CNI_NETNS: ns, PID: '43' }), proc), /not the same file/)
  t.match(netnsViewProblem(req({ CNI_NETNS: ns, PID: '44' }), proc), /not the same file/, 'no such caller')
  t.match(netnsViewProblem(req({ CNI_NETNS: ns }), proc), /no caller pid/)
  t.equal(netnsViewProblem(req({ CNI_NETNS: '', PID: '42' }), proc), null, 'DEL without a netns')
})
