import t from 'tap'
import { loadConfig, parseDuration, usage, OPTIONS, type Config } from '../../pkg/config/config.js'

const load = (argv: string[], files: Record<string, string> = {}): Config => {
  const c = loadConfig(argv, p => { const f = files[p]; if (f === undefined) throw new Error(`ENOENT ${p}`); return f })
  if (c === 'help') throw new Error('help')
  return c
}

t.test('defaults', async t => {
  const c = load(['--node-name', 'n1'])
  t.equal(c.nodeName, 'n1')
  t.equal(c.proxyMode, 'auto')
  t.same(c.httpListen, { host: '127.0.0.1', port: 10249 })
  t.equal(c.minSyncPeriodMs, 1000)
  t.equal(c.syncPeriodMs, 30000)
  t.equal(c.masqueradeBit, 14)
  t.equal(c.localhostNodePorts, false)
  t.same(c.ipFamilies, ['IPv4'])
  t.ok(Object.isFrozen(c))
})

t.test('flags override the file, the file overrides defaults', async t => {
  const files = { '/f.yaml': 'nodeName: from-file\nclusterCIDR: 10.244.7.0/16\nminSyncPeriod: 250ms\nsyncPeriod: 10\nmasqueradeAll: true\n' }
  const c = load(['--config', '/f.yaml', '--node-name', 'from-flag', '--http-listen', '[::1]:9000'], files)
  t.equal(c.nodeName, 'from-flag')
  t.same(c.clusterCIDRs, ['10.244.0.0/16'], 'CIDR normalized')
  t.equal(c.minSyncPeriodMs, 250)
  t.equal(c.syncPeriodMs, 10000, 'a bare number in the file is seconds')
  t.equal(c.masqueradeAll, true)
  t.same(c.httpListen, { host: '::1', port: 9000 })
})

t.test('dual-stack cluster CIDRs', async t => {
  t.same(load(['--cluster-cidr', '10.244.0.0/16,fd00:10:244::/48', '--ip-families', 'IPv4,IPv6']).clusterCIDRs, ['10.244.0.0/16', 'fd00:10:244::/48'])
  t.same(load(['--config', '/c.yaml'], { '/c.yaml': 'clusterCIDR: [10.244.0.0/16, "fd00:10:244::/48"]\n' }).clusterCIDRs, ['10.244.0.0/16', 'fd00:10:244::/48'])
})

t.test('bad values name the flag or key', async t => {
  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [['--proxy-mode', 'ipvsx'], {}, /proxyMode: must be one of auto, iptables/],
    [['--cluster-cidr', '10.0.0.0'], {}, /clusterCIDR: must be a CIDR/],
    [['--cluster-cidr', '10.0.0.0/8,10.1.0.0/16'], {}, /clusterCIDR: at most one IPv4 CIDR/],
    [['--min-sync-period', 'soon'], {}, /--min-sync-period: must be a duration/],
    [['--http-listen', 'localhost'], {}, /httpListen: must be HOST:PORT/],
    [['--bogus'], {}, /flags: Unknown option '--bogus'/],
    [['--manifests', '/m', '--etcd-endpoints', 'http://127.0.0.1:2379'], {}, /exclusive/],
    [['--etcd-endpoints', '127.0.0.1:2379'], {}, /etcdEndpoints: must be URLs/],
    [['--config', '/c.yaml'], { '/c.yaml': 'nodeNmae: typo\n' }, /config file \/c\.yaml: unknown key "nodeNmae"/],
    [['--config', '/c.yaml'], { '/c.yaml': '- a list\n' }, /must be a mapping/],
    [['--config', '/missing.yaml'], {}, /config file \/missing\.yaml: ENOENT/],
    [['--masquerade-bit', '40'], {}, /masqueradeBit: must be 0-31/],
    [['--min-sync-period', '1m', '--sync-period', '30s'], {}, /must not exceed syncPeriod/],
  ]
  for (const [argv, files, re] of bad) t.throws(() => load(argv, files), { code: 'FERRY_ERR_CONFIG', message: re }, argv.join(' '))
})

t.test('help documents every flag', async t => {
  t.equal(loadConfig(['--help']), 'help')
  const text = usage()
  for (const o of OPTIONS) t.match(text, `--${o.flag}`)
})

t.test('durations', async t => {
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('1.5s'), 1500)
  t.equal(parseDuration('2m'), 120000)
  t.equal(parseDuration('1h'), 3600000)
  t.equal(parseDuration('5'), null)
})

t.test('debugRemote: off by default, a flag and a file key', async t => {
  t.equal(load([]).debugRemote, false)
  t.equal(load(['--debug-remote']).debugRemote, true)
  t.equal(load(['--config', '/c.yaml'], { '/c.yaml': 'debugRemote: true\n' }).debugRemote, true)
  t.throws(() => load(['--config', '/c.yaml'], { '/c.yaml': 'debugRemote: yes please\n' }), { code: 'FERRY_ERR_CONFIG', message: /debugRemote: must be true or false/ })
})

t.test('etcd TLS and login settings: flags and YAML keys, checked once, never echoing a password', async t => {
  const c = load(['--etcd-endpoints', 'https://10.0.0.10:2379', '--etcd-cafile', '/pki/ca.pem', '--etcd-certfile', '/pki/c.pem', '--etcd-keyfile', '/pki/c.key',
    '--etcd-username', 'ferry', '--etcd-password-file', '/pki/pw'])
  t.same([c.etcdCAFile, c.etcdCertFile, c.etcdKeyFile, c.etcdUsername, c.etcdPasswordFile], ['/pki/ca.pem', '/pki/c.pem', '/pki/c.key', 'ferry', '/pki/pw'])
  const f = load(['--config', '/c.yaml'], { '/c.yaml': 'etcdEndpoints: [https://10.0.0.10:2379]\netcdCafile: /ca\netcdCertfile: /c\netcdKeyfile: /k\netcdUsername: u\netcdPasswordFile: /p\n' })
  t.same([f.etcdCAFile, f.etcdCertFile, f.etcdKeyFile, f.etcdUsername, f.etcdPasswordFile], ['/ca', '/c', '/k', 'u', '/p'], 'YAML keys are the flags in camelCase')
  t.equal(load(['--etcd-endpoints', 'http://u:pw@10.0.0.10:2379']).etcdEndpoints[0], 'http://u:pw@10.0.0.10:2379', 'URL credentials are kept for the client')
  t.equal(load([]).etcdCAFile, undefined)

  const bad: Array<[string[], RegExp]> = [
    [['--etcd-cafile', '/ca'], /need --etcd-endpoints/],
    [['--etcd-endpoints', 'http://10.0.0.10:2379', '--etcd-cafile', '/ca'], /--etcd-cafile given but --etcd-endpoints are http:\/\//],
    [['--etcd-endpoints', 'https://a:2379,http://b:2379'], /mixes http:\/\/ and https:\/\//],
    [['--etcd-endpoints', 'https://a:2379', '--etcd-certfile', '/c'], /--etcd-certfile and --etcd-keyfile go together/],
    [['--etcd-endpoints', 'https://a:2379', '--etcd-keyfile', '/k'], /--etcd-certfile and --etcd-keyfile go together/],
    [['--etcd-endpoints', 'https://a:2379', '--etcd-username', 'u'], /--etcd-username needs --etcd-password-file/],
    [['--etcd-endpoints', 'https://a:2379', '--etcd-password-file', '/p'], /--etcd-password-file needs --etcd-username/],
    [['--etcd-endpoints', 'https://u:topsecret@a:2379', '--etcd-username', 'u', '--etcd-password-file', '/p'], /use one of them/],
    [['--etcd-endpoints', 'https://u:topsecret@a:2379,https://v:topsecret@b:2379'], /different credentials/],
    [['--etcd-endpoints', 'https://u@a:2379'], /needs both a username and a password/],
    [['--etcd-endpoints', 'http://u:topsecret@a:2379/path'], /etcdEndpoints: must be URLs .*got "http:\/\/u:\*\*\*@a:2379\/path"/],
  ]
  for (const [argv, re] of bad) {
    const err = (() => { try { load(argv); return undefined } catch (e) { return e as Error & { code?: string } } })()
    t.match(err, { code: 'FERRY_ERR_CONFIG', message: re }, argv.join(' ').replace(/topsecret/g, '***'))
    t.notMatch(err?.message ?? '', /topsecret/, 'the password is not in the message')
  }
})
