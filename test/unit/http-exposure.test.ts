// Who may reach what: loopback detection, the /debug/ guard (through fastify's inject with a chosen
// socket address), and the start-up warning of a listener reachable from other hosts (real listens).
// test/e2e/http-exposure.test.ts sends the same requests from another network namespace.
import t from 'tap'
import { Registry } from 'prom-client'
import { exposureWarning, isLoopbackAddress, listenHttp } from '../../pkg/http/exposure.js'
import { buildHttpServer } from '../../pkg/http/server.js'
import { createLogger } from '../../pkg/log/log.js'
import { ProxyHealth } from '../../pkg/proxy/health.js'
import { createProxyMetrics } from '../../pkg/proxy/metrics.js'

function app (debugRemote?: boolean): ReturnType<typeof buildHttpServer> {
  const registry = new Registry()
  const health = new ProxyHealth(60_000)
  health.addFamily('IPv4')
  return buildHttpServer({
    registry, health, metrics: createProxyMetrics(registry),
    nodeEligible: () => true, ready: () => ({ ready: true, reason: '' }),
    debugState: () => ({ services: ['demo/web'] }),
    ...(debugRemote !== undefined ? { debugRemote } : {}),
  })
}

t.test('loopback addresses', async t => {
  const cases: Array<[string, boolean]> = [
    ['127.0.0.1', true], ['127.3.2.1', true], ['::1', true], ['0:0:0:0:0:0:0:1', true], ['::ffff:127.0.0.1', true],
    ['localhost', true],
    ['0.0.0.0', false], ['::', false], ['192.0.2.7', false], ['::ffff:192.0.2.7', false], ['fd00:77::2', false],
    ['128.0.0.1', false], ['::2', false], ['', false], ['node-1.example', false],
  ]
  for (const [addr, want] of cases) t.equal(isLoopbackAddress(addr), want, JSON.stringify(addr))
})

t.test('/debug/ answers loopback clients only; the rest answers everyone', async t => {
  const a = app()
  t.teardown(async () => { await a.close() })
  for (const remoteAddress of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
    const r = await a.inject({ url: '/debug/state', remoteAddress })
    t.equal(r.statusCode, 200, `from ${remoteAddress}`)
    t.same(r.json(), { services: ['demo/web'] })
  }
  for (const remoteAddress of ['192.0.2.7', 'fd00:77::2', '::ffff:192.0.2.7']) {
    const r = await a.inject({ url: '/debug/state', remoteAddress })
    t.equal(r.statusCode, 403, `/debug/state from ${remoteAddress}`)
    t.match(r.body, `forbidden: /debug/* answers loopback clients only and ${remoteAddress} is not one`)
    t.match(r.body, /--debug-remote/, 'says how to open it')
    t.notMatch(r.body, /demo\/web/, 'and nothing of the state')
    for (const url of ['/metrics', '/healthz', '/livez', '/readyz']) t.equal((await a.inject({ url, remoteAddress })).statusCode, 200, `${url} from ${remoteAddress}`)
  }
  const spoofed = await a.inject({ url: '/debug/state', remoteAddress: '192.0.2.7', headers: { 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1' } })
  t.equal(spoofed.statusCode, 403, 'forwarding headers do not make a client local')
  t.equal((await a.inject({ url: '/debug/nope', remoteAddress: '127.0.0.1' })).statusCode, 404)
})

t.test('--debug-remote opens /debug/ to every client', async t => {
  const a = app(true)
  t.teardown(async () => { await a.close() })
  const r = await a.inject({ url: '/debug/state', remoteAddress: '192.0.2.7' })
  t.equal(r.statusCode, 200)
  t.same(r.json(), { services: ['demo/web'] })
})

t.test('the warning names the reachable addresses and what they serve', async t => {
  t.equal(exposureWarning([{ address: '127.0.0.1', family: 'IPv4', port: 10249 }, { address: '::1', family: 'IPv6', port: 10249 }], false), null)
  t.same(exposureWarning([{ address: '0.0.0.0', family: 'IPv4', port: 10249 }], false), {
    addresses: ['0.0.0.0:10249'],
    exposes: ['/metrics', '/healthz', '/livez', '/readyz'],
    debug: '/debug/state answers loopback clients only (--debug-remote opens it)',
  })
  t.match(exposureWarning([{ address: '::', family: 'IPv6', port: 9 }, { address: '127.0.0.1', family: 'IPv4', port: 9 }], true), {
    addresses: ['[::]:9'],
    exposes: ['/metrics', '/healthz', '/livez', '/readyz', '/debug/state'],
    debug: /--debug-remote: \/debug\/state .* answers any client/,
  })
})

t.test('listenHttp warns for a listener beyond loopback, and only then', async t => {
  const listen = async (host: string, debugRemote: boolean): Promise<Array<Record<string, unknown>>> => {
    const lines: Array<Record<string, unknown>> = []
    const a = app(debugRemote)
    await listenHttp(a, { host, port: 0, debugRemote, log: createLogger({ write: l => { lines.push(JSON.parse(l) as Record<string, unknown>) } }) })
    await a.close()
    return lines
  }
  const local = await listen('127.0.0.1', false)
  t.match(local, [{ level: 'info', msg: 'http listening', address: /^127\.0\.0\.1:\d+$/ }])
  t.equal(local.length, 1, 'no warning on loopback')

  const open = await listen('0.0.0.0', false)
  t.equal(open.length, 2)
  t.match(open[1], {
    level: 'warn', msg: /reachable from other hosts/, addresses: [/^0\.0\.0\.0:\d+$/],
    exposes: ['/metrics', '/healthz', '/livez', '/readyz'], debug: /loopback clients only/,
  })
  const all = await listen('0.0.0.0', true)
  t.match(all[1], { level: 'warn', exposes: ['/metrics', '/healthz', '/livez', '/readyz', '/debug/state'], debug: /--debug-remote/ })
})
