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
