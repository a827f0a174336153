// etcd behind TLS with client certificates, and etcd with a username/password login, both real: the
// source lists and watches through them, ferryctl applies and reads through them, and every failure
// (no client certificate, an untrusted one, a wrong password) ends in a clear error that never shows
// a password. Certificates are made with openssl for this test and removed after it.
import { execFile } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { KObject } from '../../pkg/api/types.js'
import type { FerryError } from '../../pkg/errors/errors.js'
import { loadAccess } from '../../pkg/etcd/access.js'
import { EtcdSource } from '../../pkg/source/etcd.js'
import { EtcdStore } from '../../pkg/etcd/store.js'
import { connector } from '../../pkg/etcd/client.js'
import { prefixRangeEnd } from '../../pkg/etcd/keys.js'
import { rangePage } from '../../pkg/etcd/range.js'
import { startEtcd } from '../helpers/etcd.js'
import { makePKI } from '../helpers/pki.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const bin = join(root, 'dist/cmd/ferryctl.js')
if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" before this test`)

const BACKOFF = { initialMs: 50, maxMs: 400 }
const PASSWORD = 'Tr0ub4dor&3-never-shown'
const svc = (name: string, ip: string): Record<string, unknown> =>
  ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: ip, ports: [{ port: 80 }] } })

const pki = await makePKI(t)
const tlsEtcd = await startEtcd(t, { tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key, client: pki.client } })
const authEtcd = await startEtcd(t, { auth: { password: PASSWORD } })
const passwordFile = join(pki.dir, 'password')
writeFileSync(passwordFile, PASSWORD + '\n', { mode: 0o600 })
const wrongPasswordFile = join(pki.dir, 'wrong-password')
writeFileSync(wrongPasswordFile, 'not-the-password\n', { mode: 0o600 })

/** The source's handler calls, and a way to wait for them. */
function recorder (): { handler: Parameters<EtcdSource['start']>[0], names: () => string[], errors: FerryError[], until: (p: () => boolean, what: string) => Promise<void> } {
  const state = new Map<string, KObject>()
  const errors: FerryError[] = []
  return {
    handler: {
      replace: objs => { state.clear(); for (const o of objs) state.set(o.metadata.name, o) },
      upsert: o => { state.set(o.metadata.name, o) },
      remove: (_k, _ns, name) => { state.delete(name) },
      error: e => { errors.push(e) },
    },
    names: () => [...state.keys()].sort(),
    errors,
    until: async (p, what) => {
      const end = Date.now() + 15_000
      while (!p()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; errors: ${errors.map(e => e.message).join(' | ')}`)
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    },
  }
}

function tlsAccess (client?: { cert: string, key: string }): ReturnType<typeof loadAccess> {
  return loadAccess({ endpoints: [tlsEtcd.endpoint], caFile: pki.ca, certFile: client?.cert, keyFile: client?.key })
}

/** A source log that records through which client each list went. */
function listedVia (into: unknown[]): NonNullable<ConstructorParameters<typeof EtcdSource>[0]['log']> {
  return (_level, msg, fields) => { if (msg === 'etcd listed') into.push(fields?.via) }
}

interface Run { code: number, stdout: string, stderr: string }
async function ctl (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return await new Promise(resolve => {
    execFile(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

t.test('EtcdSource lists and watches through TLS with a client certificate', async t => {
  const access = tlsAccess(pki.client)
  const store = new EtcdStore({ endpoints: [tlsEtcd.endpoint], tls: access.tls, requestTimeoutMs: 3000 })
  t.teardown(() => { store.close() })
  await store.apply([svc('a', '10.96.0.1')])
  const r = recorder()
  const via: unknown[] = []
  const source = new EtcdSource({ endpoints: [tlsEtcd.endpoint], tls: access.tls, backoff: BACKOFF, requestTimeoutMs: 3000, log: listedVia(via) })
  t.teardown(async () => { await source.stop() })
  await source.start(r.handler)
  t.same(r.names(), ['a'], 'listed over TLS')
  t.same(via, ['http2'], 'by the bare client, not after a fall-back to etcd3')
  await store.apply([svc('b', '10.96.0.2')])
  await r.until(() => r.names().includes('b'), 'the watch to deliver b')
  t.same(r.names(), ['a', 'b'], 'watched over TLS')
  t.same(r.errors, [])
})

t.test('without a client certificate, or with one etcd does not trust, the source reports a clear TLS error', async t => {
  for (const [what, client] of [['no client certificate', undefined], ['an untrusted client certificate', pki.stranger]] as const) {
    const r = recorder()
    const source = new EtcdSource({ endpoints: [tlsEtcd.endpoint], tls: tlsAccess(client).tls, backoff: BACKOFF, requestTimeoutMs: 1500 })
    const started = source.start(r.handler).then(() => 'started', () => 'stopped')
    await r.until(() => r.errors.length > 0, `an error with ${what}`)
    t.match(r.errors[0], { code: 'FERRY_ERR_SOURCE', message: new RegExp(`^etcd ${tlsEtcd.endpoint.replace(/\./g, '\\.')}: list failed: .*bad certificate.*\\(TLS: etcd ${client === undefined ? 'wants a client certificate' : 'refused the client certificate'}`) }, `${what}: the error names the endpoint and points at TLS`)
    await source.stop()
    t.equal(await started, 'stopped', `${what}: never reported ready`)
  }
  const plain = recorder()
  const source = new EtcdSource({ endpoints: [tlsEtcd.endpoint.replace('https:', 'http:')], backoff: BACKOFF, requestTimeoutMs: 1500 })
  void source.start(plain.handler).catch(() => {})
  await plain.until(() => plain.errors.length > 0, 'an error over plain http')
  t.match(plain.errors[0]?.message, /list failed/, 'http:// against a TLS etcd fails too')
  await source.stop()
})

t.test('a username/password login works; a wrong password fails clearly and is never shown', async t => {
  const good = loadAccess({ endpoints: [authEtcd.endpoint], username: 'root', passwordFile })
  const store = new EtcdStore({ endpoints: [authEtcd.endpoint], auth: good.auth })
  t.teardown(() => { store.close() })
  await store.apply([svc('a', '10.96.0.1')])
  const r = recorder()
  const via: unknown[] = []
  const source = new EtcdSource({ endpoints: [authEtcd.endpoint], auth: good.auth, backoff: BACKOFF, log: listedVia(via) })
  t.teardown(async () => { await source.stop() })
  await source.start(r.handler)
  t.same(r.names(), ['a'], 'listed with a login')
  t.same(via, ['http2'], 'by the bare client, which logged in itself')
  await store.apply([svc('b', '10.96.0.2')])
  await r.until(() => r.names().includes('b'), 'the watch to deliver b')
  t.same([...r.names()].sort(), ['a', 'b'], 'watched with a login')

  const urlWithPassword = authEtcd.endpoint.replace('://', `://root:${encodeURIComponent(PASSWORD)}@`)
  const viaURL = recorder()
  const fromURL = new EtcdSource({ endpoints: [urlWithPassword], backoff: BACKOFF })
  t.teardown(async () => { await fromURL.stop() })
  await fromURL.start(viaURL.handler)
  t.same(viaURL.names(), ['a', 'b'], 'credentials in the URL are used as the login')
  t.notMatch(fromURL.name, PASSWORD, 'the source name shows no password')
  t.match(fromURL.name, /root:\*\*\*@/)

  const wrongURL = authEtcd.endpoint.replace('://', '://root:wrong-pass@')
  const bad = recorder()
  const wrong = new EtcdSource({ endpoints: [wrongURL], backoff: BACKOFF })
  void wrong.start(bad.handler).catch(() => {})
  await bad.until(() => bad.errors.length > 0, 'an authentication error')
  await wrong.stop()
  t.match(bad.errors[0]?.message, /^etcd http:\/\/root:\*\*\*@127\.0\.0\.1:\d+: list failed: .*authentication failed.*\(check --etcd-username and the password\)/)
  t.notMatch(JSON.stringify(bad.errors.map(e => e.toJSON())), /wrong-pass/, 'the wrong password is not in the error or its details')

  const anon = recorder()
  const noLogin = new EtcdSource({ endpoints: [authEtcd.endpoint], backoff: BACKOFF })
  void noLogin.start(anon.handler).catch(() => {})
  await anon.until(() => anon.errors.length > 0, 'a refusal without a login')
  await noLogin.stop()
  t.match(anon.errors[0]?.message, /list failed: .*(user name is empty|permission denied)/, 'no login: etcd refuses, and the error says so')
})

t.test('the listing\'s own Range reader goes through TLS and a login without falling back to kv.range', async t => {
  const logins = [
    ['TLS with a client certificate', connector({ endpoints: [tlsEtcd.endpoint], tls: tlsAccess(pki.client).tls })],
    ['a username/password login', connector({ endpoints: [authEtcd.endpoint], auth: loadAccess({ endpoints: [authEtcd.endpoint], username: 'root', passwordFile }).auth })],
  ] as const
  for (const [what, conn] of logins) {
    const client = conn.client()
    t.teardown(() => { client.close() })
    let fellBack = 0
    const range = client.kv.range.bind(client.kv)
    client.kv.range = async (...a) => { fellBack++; return await range(...a) }
    const page = await rangePage(client, { key: Buffer.from('/ferry/v1/'), rangeEnd: prefixRangeEnd('/ferry/v1/'), limit: 1, revision: 0 })
    t.ok(page.kvs.length === 1 && page.more && page.revision > 0, `${what}: a page of one key, more to come`)
    t.equal(fellBack, 0, `${what}: read through the pool's connection`)
  }
})

t.test('ferryctl apply and get over TLS (flags and environment) and with a login', async t => {
  const dir = t.testdir({ 'web.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n' })
  const tlsFlags = ['--etcd-endpoints', tlsEtcd.endpoint, '--etcd-cafile', pki.ca, '--etcd-certfile', pki.client.cert, '--etcd-keyfile', pki.client.key]
  const applied = await ctl(['apply', '-f', dir, ...tlsFlags])
  t.equal(applied.code, 0, applied.stderr)
  t.equal(applied.stdout, 'service/web created\n')
  const env = { FERRY_ETCD_ENDPOINTS: tlsEtcd.endpoint, FERRY_ETCD_CAFILE: pki.ca, FERRY_ETCD_CERTFILE: pki.client.cert, FERRY_ETCD_KEYFILE: pki.client.key }
  const got = await ctl(['get', 'svc', 'web'], env)
  t.equal(got.code, 0, got.stderr)
  t.match(got.stdout, /web\s+ClusterIP\s+10\.96\.0\.10/, 'get through TLS with FERRY_ETCD_* variables')

  const noCert = await ctl(['get', 'svc', '--etcd-endpoints', tlsEtcd.endpoint, '--etcd-cafile', pki.ca])
  t.equal(noCert.code, 1)
  t.match(noCert.stderr, /^error: etcd list failed: .*\(TLS: etcd wants a client certificate: --etcd-certfile and --etcd-keyfile\)/, 'without a client certificate: a clear error')
  const halfPair = await ctl(['get', 'svc', '--etcd-endpoints', tlsEtcd.endpoint, '--etcd-certfile', pki.client.cert])
  t.match(halfPair.stderr, /^error: --etcd-certfile and --etcd-keyfile go together/)
  const missing = await ctl(['get', 'svc', '--etcd-endpoints', tlsEtcd.endpoint, '--etcd-cafile', join(pki.dir, 'nope.pem')])
  t.match(missing.stderr, /^error: --etcd-cafile .*nope\.pem: ENOENT/)
  const httpWithTLS = await ctl(['get', 'svc', '--etcd-endpoints', authEtcd.endpoint, '--etcd-cafile', pki.ca])
  t.match(httpWithTLS.stderr, /^error: --etcd-cafile given but --etcd-endpoints are http:\/\//)

  const login = ['--etcd-endpoints', authEtcd.endpoint, '--etcd-username', 'root', '--etcd-password-file', passwordFile]
  const authApplied = await ctl(['apply', '-f', dir, ...login])
  t.equal(authApplied.code, 0, authApplied.stderr)
  t.equal(authApplied.stdout, 'service/web created\n')
  const envLogin = await ctl(['get', 'svc', 'web'], { FERRY_ETCD_ENDPOINTS: authEtcd.endpoint, FERRY_ETCD_USERNAME: 'root', FERRY_ETCD_PASSWORD: PASSWORD })
  t.equal(envLogin.code, 0, envLogin.stderr)
  t.match(envLogin.stdout, /^NAME/, 'FERRY_ETCD_USERNAME + FERRY_ETCD_PASSWORD')
  const wrong = await ctl(['get', 'svc', ...login.slice(0, 4), '--etcd-password-file', wrongPasswordFile])
  t.equal(wrong.code, 1)
  t.match(wrong.stderr, /^error: etcd list failed: .*authentication failed/)
  const wrongURL = await ctl(['get', 'svc', '--etcd-endpoints', authEtcd.endpoint.replace('://', '://root:hunter2@')])
  t.equal(wrongURL.code, 1)
  t.notMatch(wrongURL.stdout + wrongURL.stderr, /hunter2/, 'a URL password is never printed')
  const unreachable = await ctl(['get', 'svc', '--etcd-endpoints', 'http://root:hunter2@127.0.0.1:1'])
  t.equal(unreachable.code, 1)
  t.notMatch(unreachable.stderr, /hunter2/, 'nor when etcd is unreachable')
  const badURL = await ctl(['get', 'svc', '--etcd-endpoints', 'http://root:hunter2@127.0.0.1:1/v3'])
  t.match(badURL.stderr, /^error: etcd endpoint "http:\/\/root:\*\*\*@127\.0\.0\.1:1\/v3": must be/, 'nor in a URL it rejects')
})
