// The real ferryd against etcd with TLS client certificates and a password login, in a lab namespace:
// it follows what ferryctl writes, and an etcd password, whether in the endpoint URL or a file, never
// shows up in its log, /debug/state or /readyz, also when etcd is unreachable or refuses the password.
import t, { type Test } from 'tap'
import { writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFerryd, type LabFerryd } from '../../pkg/lab/ferryd.js'
import { Lab } from '../../pkg/lab/lab.js'
import { makePKI } from '../helpers/pki.js'
import { waitUntil } from '../helpers/web-lab.js'

const FERRYCTL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ferryctl')
const PASSWORD = 'c0rrect-h0rse-b4ttery'
const ETCD = 'https://127.0.0.1:2379'

const lab = await Lab.create()
t.teardown(async () => { await lab.close() })
const pki = await makePKI(t)
const passwordFile = join(pki.dir, 'etcd-password')
await writeFile(passwordFile, PASSWORD + '\n', { mode: 0o600 })
const tls = ['--etcd-cafile', pki.ca, '--etcd-certfile', pki.client.cert, '--etcd-keyfile', pki.client.key]
const etcdctl = async (...args: string[]): Promise<string> =>
  await lab.sh(['etcdctl', '--endpoints', ETCD, '--cacert', pki.ca, '--cert', pki.client.cert, '--key', pki.client.key, ...args])

// etcd in the node namespace, https with client-certificate auth, then user root with a password and auth on.
lab.spawn(['etcd', '--name', 'lab', '--data-dir', join(pki.dir, 'etcd'), '--listen-client-urls', ETCD, '--advertise-client-urls', ETCD,
  '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
  '--initial-cluster', 'lab=http://127.0.0.1:2380', '--log-level', 'error',
  '--cert-file', pki.server.cert, '--key-file', pki.server.key, '--trusted-ca-file', pki.ca, '--client-cert-auth'])
await waitUntil('etcd healthy', async () => await etcdctl('endpoint', 'health').then(() => true, () => false))
await etcdctl('user', 'add', `root:${PASSWORD}`, '--interactive=false')
await etcdctl('user', 'grant-role', 'root', 'root')
await etcdctl('auth', 'enable')

const svcFile = join(pki.dir, 'web.yaml')
await writeFile(svcFile, 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: demo}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n')
await lab.sh([FERRYCTL, 'apply', '-f', svcFile, '--etcd-endpoints', ETCD, ...tls, '--etcd-username', 'root', '--etcd-password-file', passwordFile])

let port = 10300
async function ferryd (t: Test, args: string[]): Promise<LabFerryd> {
  const f = startFerryd(lab, ['--node-name', 'lab-node', '--log-level', 'debug', '--min-sync-period', '100ms', ...args], { httpPort: ++port })
  t.teardown(async () => { await f.stop() })
  return f
}

async function exited (f: LabFerryd): Promise<number | null> {
  if (f.proc.exitCode !== null) return f.proc.exitCode
  return await new Promise(resolve => { f.proc.once('exit', c => { resolve(c) }) })
}

/** Everything a user can see of ferryd: its whole log, /debug/state and /readyz. */
async function visible (f: LabFerryd): Promise<string> {
  const state = await f.http('/debug/state')
  const ready = await f.http('/readyz')
  return `${f.logs()}\n${state.status} ${state.body}\n${ready.status} ${ready.body}`
}

t.test('password in the URL: used as the login, shown as ***', async t => {
  const f = await ferryd(t, ['--etcd-endpoints', ETCD.replace('://', `://root:${PASSWORD}@`), ...tls])
  await f.waitReady()
  const state = JSON.parse((await f.http('/debug/state')).body) as { source: { name: string }, objects: { services: number } }
  t.equal(state.objects.services, 1, 'listed through TLS with the login from the URL')
  t.equal(state.source.name, `etcd https://root:***@127.0.0.1:2379`, '/debug/state names the source without the password')
  t.match(f.logs(), /the etcd password is part of --etcd-endpoints, which any local user can read with ps/, 'a warning to prefer a password file')
  t.notMatch(await visible(f), PASSWORD, 'the password appears nowhere')
})

t.test('--etcd-username and --etcd-password-file, following changes', async t => {
  const f = await ferryd(t, ['--etcd-endpoints', ETCD, ...tls, '--etcd-username', 'root', '--etcd-password-file', passwordFile])
  await f.waitReady()
  const file = join(pki.dir, 'api.yaml')
  await writeFile(file, 'apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: demo}\nspec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}\n')
  await lab.sh([FERRYCTL, 'apply', '-f', file, '--etcd-endpoints', ETCD, ...tls])
    .then(() => t.fail('ferryctl without a login must fail'), (e: Error) => { t.match(e.message, /user name is empty|permission denied/, 'ferryctl without a login is refused') })
  await lab.sh([FERRYCTL, 'apply', '-f', file, '--etcd-endpoints', ETCD.replace('://', `://root:${PASSWORD}@`), ...tls])
  await t.resolves(waitUntil('api seen', async () => (JSON.parse((await f.http('/debug/state')).body) as { objects: { services: number } }).objects.services === 2), 'the watch delivers a change')
  t.notMatch(await visible(f), PASSWORD)
})

t.test('a wrong password in the URL: a clear error, never the password', async t => {
  const f = await ferryd(t, ['--etcd-endpoints', ETCD.replace('://', '://root:wr0ng-pa55@'), ...tls])
  await t.resolves(waitUntil('auth error logged', async () => /list failed: .*authentication failed/.test(f.logs())))
  t.match(f.logs(), /etcd https:\/\/root:\*\*\*@127\.0\.0\.1:2379: list failed: .*authentication failed.*check --etcd-username and the password/)
  const ready = await f.http('/readyz')
  t.equal(ready.status, 503, 'not ready')
  t.notMatch(await visible(f), 'wr0ng-pa55', 'the wrong password appears nowhere either')
})

t.test('an unreachable etcd with a password in the URL: the error, the log fields and /debug/state stay clean', async t => {
  const f = await ferryd(t, ['--etcd-endpoints', 'http://admin:s3cr3t-v4lue@127.0.0.1:1,http://admin:s3cr3t-v4lue@127.0.0.1:2'])
  await t.resolves(waitUntil('source error in /debug/state', async () => /list failed/.test((await f.http('/debug/state')).body)))
  const state = JSON.parse((await f.http('/debug/state')).body) as { source: { name: string }, sourceErrors: unknown[] }
  t.equal(state.source.name, 'etcd http://admin:***@127.0.0.1:1,http://admin:***@127.0.0.1:2')
  t.match(JSON.stringify(state.sourceErrors), /etcd http:\/\/admin:\*\*\*@127\.0\.0\.1:1,http:\/\/admin:\*\*\*@127\.0\.0\.1:2: list failed/)
  t.match(f.logs(), /"endpoints":\["http:\/\/admin:\*\*\*@127\.0\.0\.1:1"/, 'log fields carry redacted endpoints')
  t.notMatch(await visible(f), 's3cr3t-v4lue', 'the password appears nowhere')
})

t.test('TLS flags that cannot work stop ferryd at start-up with the flag and file named', async t => {
  const bad = await ferryd(t, ['--etcd-endpoints', 'https://admin:s3cr3t-v4lue@127.0.0.1:2379', '--etcd-cafile', join(pki.dir, 'missing-ca.pem')])
  const code = await exited(bad)
  t.not(code, 0)
  // The fatal error is a JSON log line: the message, then the error's code.
  t.match(bad.logs(), /"msg":"--etcd-cafile [^"]*missing-ca\.pem: ENOENT[^\n]*"code":"FERRY_ERR_CONFIG"/)
  t.notMatch(bad.logs(), 's3cr3t-v4lue')
  const half = await ferryd(t, ['--etcd-endpoints', ETCD, '--etcd-certfile', pki.client.cert])
  const c2 = await exited(half)
  t.equal(c2, 2, 'a config error')
  t.match(half.logs(), /--etcd-certfile and --etcd-keyfile go together/)
})
