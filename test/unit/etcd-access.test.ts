import t from 'tap'
import { combineAccess, loadAccess } from '../../pkg/etcd/access.js'

const PEM = (what: string): Buffer => Buffer.from(`-----BEGIN ${what}-----\nMIIB\n-----END ${what}-----\n`)
const files: Record<string, Buffer> = {
  '/ca.pem': PEM('CERTIFICATE'), '/c.pem': PEM('CERTIFICATE'), '/c.key': PEM('PRIVATE KEY'),
  '/pw': Buffer.from('s3cret\n'), '/pw-crlf': Buffer.from('s3cret\r\n'), '/empty': Buffer.from('\n'), '/notpem': Buffer.from('hello'),
}
const read = (p: string): Buffer => {
  const f = files[p]
  if (f === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${p}'`), { code: 'ENOENT' })
  return f
}

t.test('loadAccess reads TLS files and the password file once', async t => {
  const a = loadAccess({ endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'], caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/c.key', username: 'ferry', passwordFile: '/pw' }, read)
  t.same(a.hosts, ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'])
  t.same(a.tls, { ca: files['/ca.pem'], cert: files['/c.pem'], key: files['/c.key'] })
  t.same(a.auth, { username: 'ferry', password: 's3cret' }, 'trailing newline dropped')
  t.same(a.warnings, [])
  t.same(loadAccess({ endpoints: ['http://h:1'], username: 'u', passwordFile: '/pw-crlf' }, read).auth, { username: 'u', password: 's3cret' })
  t.same(loadAccess({ endpoints: ['http://h:1'], username: 'u', password: 'from-env' }, read).auth, { username: 'u', password: 'from-env' })
  t.same(loadAccess({ endpoints: ['https://h:1'] }, read).tls, undefined, 'https with the system roots')
  t.same(loadAccess({ endpoints: ['https://h:1'], caFile: '/ca.pem' }, read).tls, { ca: files['/ca.pem'] })
})

t.test('credentials in the URL are used and warned about, never shown', async t => {
  const a = loadAccess({ endpoints: ['http://ferry:hunter2@10.0.0.1:2379', 'http://ferry:hunter2@10.0.0.2:2379'] }, read)
  t.same(a.hosts, ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'], 'the client dials no userinfo')
  t.same(a.shown, ['http://ferry:***@10.0.0.1:2379', 'http://ferry:***@10.0.0.2:2379'])
  t.same(a.auth, { username: 'ferry', password: 'hunter2' })
  t.match(a.warnings, [/visible|ps/])
  t.notMatch(JSON.stringify({ shown: a.shown, warnings: a.warnings }), /hunter2/)
  t.same(combineAccess(['http://u:x@h:1'], undefined, { username: 'v', password: 'y' }).auth, { username: 'v', password: 'y' }, 'an explicit login wins')
})

t.test('errors name the flag and the file', async t => {
  const bad: Array<[Parameters<typeof loadAccess>[0], RegExp]> = [
    [{ endpoints: [] }, /no endpoints/],
    [{ endpoints: ['https://h:1'], caFile: '/missing' }, /--etcd-cafile \/missing: ENOENT/],
    [{ endpoints: ['https://h:1'], certFile: '/c.pem', keyFile: '/missing' }, /--etcd-keyfile \/missing: ENOENT/],
    [{ endpoints: ['https://h:1'], certFile: '/notpem', keyFile: '/c.key' }, /--etcd-certfile \/notpem: not a PEM file/],
    [{ endpoints: ['http://h:1'], username: 'u', passwordFile: '/missing' }, /--etcd-password-file \/missing: ENOENT/],
    [{ endpoints: ['http://h:1'], username: 'u', passwordFile: '/empty' }, /--etcd-password-file \/empty: empty/],
    [{ endpoints: ['http://h:1'], caFile: '/ca.pem' }, /https/],
    [{ endpoints: ['https://h:1'], certFile: '/c.pem' }, /go together/],
  ]
  for (const [s, re] of bad) t.throws(() => loadAccess(s, read), { code: 'FERRY_ERR_CONFIG', message: re }, re.source)
})

t.test('hint points at the likely cause; describe keeps one line and no password', async t => {
  const { hint, describe } = await import('../../pkg/etcd/access.js')
  const https = { hosts: ['https://10.0.0.1:2379'] }
  const cases: Array<[string, { hosts: string[], tls?: { cert?: Buffer } }, RegExp | '']> = [
    ['etcdserver: authentication failed, invalid user ID or password', { hosts: ['http://h:1'] }, /check --etcd-username and the password/],
    ['etcdserver: user name is empty', { hosts: ['http://h:1'] }, /etcd wants a login/],
    ['14 UNAVAILABLE: No connection established. Last error: SSL alert number 42 sslv3 alert bad certificate', https, /wants a client certificate/],
    ['14 UNAVAILABLE: sslv3 alert bad certificate', { ...https, tls: { cert: Buffer.from('x') } }, /refused the client certificate/],
    ['14 UNAVAILABLE: self-signed certificate in certificate chain', https, /server certificate is not trusted: check --etcd-cafile/],
    ['14 UNAVAILABLE: connect ECONNREFUSED 10.0.0.1:2379', https, /check --etcd-cafile, --etcd-certfile and --etcd-keyfile/],
    ['14 UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:1', { hosts: ['http://h:1'] }, ''],
  ]
  for (const [msg, access, want] of cases) {
    const got = hint(new Error(msg), access)
    if (want === '') t.equal(got, '', msg)
    else t.match(got, want, msg)
  }
  t.equal(describe(new Error('line one\n  (at http://u:hunter2@h:1)\nline three')), 'line one (at http://u:***@h:1) line three')
  t.equal(describe(new Error('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ')),
    '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1', 'grpc-js\'s empty resolution note dropped')
  t.equal(describe(new Error('x. Resolution note: DNS failed')), 'x. Resolution note: DNS failed', 'a note that says something stays')
})
