import t from 'tap'
import { loadConfig, parseDuration, usage, OPTIONS, type Config } from '../../pkg/config/config.js'
import { formatHostPort, isDNSName, parseHostPort, parseResolvConf } from '../../pkg/config/dns-addresses.js'

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

t.test('every proxy mode is accepted', async t => {
  for (const mode of ['auto', 'iptables', 'ipvs', 'nftables']) t.equal(load(['--proxy-mode', mode]).proxyMode, mode)
})

t.test('dual-stack cluster CIDRs', async t => {
  t.same(load(['--cluster-cidr', '10.244.0.0/16,fd00:10:244::/48', '--ip-families', 'IPv4,IPv6']).clusterCIDRs, ['10.244.0.0/16', 'fd00:10:244::/48'])
  t.same(load(['--config', '/c.yaml'], { '/c.yaml': 'clusterCIDR: [10.244.0.0/16, "fd00:10:244::/48"]\n' }).clusterCIDRs, ['10.244.0.0/16', 'fd00:10:244::/48'])
  t.same(load(['--cluster-cidr', '10.244.0.0/16', '--cluster-cidr', 'fd00:10:244::/48']).clusterCIDRs, ['10.244.0.0/16', 'fd00:10:244::/48'], 'list flags repeat')
})

t.test('bad values name the flag or key', async t => {
  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [['--proxy-mode', 'ipvsx'], {}, /proxyMode: must be one of auto, iptables, ipvs, nftables/],
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

// DNS flags (issue 11).

const RESOLV = 'search corp.example. lab.example\nnameserver 192.0.2.53\n# comment\nnameserver 2001:db8::53 ; trailing\noptions ndots:2\n'

const loadDNS = (argv: string[], files: Record<string, string> = { '/etc/resolv.conf': RESOLV }, resolvConf?: string): Config => {
  const c = loadConfig(argv, p => { const f = files[p]; if (f === undefined) throw new Error(`ENOENT ${p}`); return f }, resolvConf !== undefined ? { resolvConf } : {})
  if (c === 'help') throw new Error('help')
  return c
}

t.test('DNS defaults: off, cluster.local, insecure pods, TTL 5, resolv.conf not read', async t => {
  const c = loadDNS([], {}) // no resolv.conf at all: the proxy alone still starts
  t.same(c.dnsListen, [])
  t.same(c.dnsUpstreams, [])
  t.same(c.dnsSearch, [])
  t.equal(c.clusterDomain, 'cluster.local')
  t.equal(c.dnsPodRecords, 'insecure')
  t.equal(c.dnsTTL, 5)
  t.equal(c.dnsAutopath, false)
  t.equal(c.dnsQueryLog, false)
  t.equal(c.dnsCacheMaxTTL, 3600)
})

t.test('--dns-listen repeats and takes IPv6 in brackets; upstreams default to resolv.conf', async t => {
  const c = loadDNS(['--dns-listen', '127.0.0.1:53', '--dns-listen', '[::1]:5353'])
  t.same(c.dnsListen, [{ host: '127.0.0.1', port: 53 }, { host: '::1', port: 5353 }])
  t.same(c.dnsUpstreams, [{ host: '192.0.2.53', port: 53 }, { host: '2001:db8::53', port: 53 }])
  t.same(c.dnsSearch, [], 'search domains only matter to autopath')
  t.same(loadDNS(['--dns-listen', '10.0.0.1:53,10.0.0.2:53']).dnsListen.map(formatHostPort), ['10.0.0.1:53', '10.0.0.2:53'], 'comma-separated too')
})

t.test('the resolv.conf path is injectable, and a missing or empty one is a clear error', async t => {
  t.same(loadDNS(['--dns-listen', '127.0.0.1:53'], { '/r': 'nameserver 10.1.1.1\n' }, '/r').dnsUpstreams, [{ host: '10.1.1.1', port: 53 }])
  t.throws(() => loadDNS(['--dns-listen', '127.0.0.1:53'], {}, '/r'), { code: 'FERRY_ERR_CONFIG', message: /^\/r: ENOENT \/r; give --dns-upstream/ })
  t.throws(() => loadDNS(['--dns-listen', '127.0.0.1:53'], { '/r': 'search x\n' }, '/r'), { message: /\/r: lists no nameserver/ })
  t.same(loadDNS(['--dns-listen', '127.0.0.1:53', '--dns-upstream', '10.2.2.2'], {}, '/r').dnsUpstreams, [{ host: '10.2.2.2', port: 53 }], 'given upstreams: resolv.conf not read')
})

t.test('--dns-upstream: port 53 unless given, repeatable, IPv6 bare or in brackets', async t => {
  const c = loadDNS(['--dns-listen', '127.0.0.1:53', '--dns-upstream', '10.0.0.10', '--dns-upstream', '10.0.0.11:5353',
    '--dns-upstream', '[2001:DB8::1]:54', '--dns-upstream', '2001:db8::2', '--dns-upstream', '[2001:db8::3]'], {})
  t.same(c.dnsUpstreams.map(formatHostPort), ['10.0.0.10:53', '10.0.0.11:5353', '[2001:db8::1]:54', '[2001:db8::2]:53', '[2001:db8::3]:53'])
})

t.test('the YAML file has the same keys', async t => {
  const files = {
    '/c.yaml': 'dnsListen: ["127.0.0.1:53", "[::1]:53"]\nclusterDomain: Corp.Example.\ndnsUpstream: [9.9.9.9, "1.1.1.1:53"]\n' +
      'dnsPodRecords: verified\ndnsTtl: 30\ndnsAutopath: true\ndnsQueryLog: true\ndnsCacheMaxTtl: 600\n',
    '/etc/resolv.conf': RESOLV,
  }
  const c = loadDNS(['--config', '/c.yaml'], files)
  t.same(c.dnsListen.map(formatHostPort), ['127.0.0.1:53', '[::1]:53'])
  t.equal(c.clusterDomain, 'corp.example', 'lower-cased, no trailing dot')
  t.same(c.dnsUpstreams.map(formatHostPort), ['9.9.9.9:53', '1.1.1.1:53'])
  t.equal(c.dnsPodRecords, 'verified')
  t.equal(c.dnsTTL, 30)
  t.equal(c.dnsAutopath, true)
  t.same(c.dnsSearch, ['corp.example', 'lab.example'], 'autopath reads resolv.conf\'s search domains even with upstreams given')
  t.equal(c.dnsQueryLog, true)
  t.equal(c.dnsCacheMaxTTL, 600)
  t.equal(loadDNS(['--config', '/c.yaml', '--dns-ttl', '0'], files).dnsTTL, 0, 'flags win')
})

t.test('bad DNS values name the flag or key', async t => {
  const on = ['--dns-listen', '127.0.0.1:53']
  const bad: Array<[string[], RegExp]> = [
    [['--dns-listen', '127.0.0.1'], /dnsListen: must be IP:PORT/],
    [['--dns-listen', 'localhost:53'], /dnsListen: must be IP:PORT/],
    [['--dns-listen', '::1:53'], /dnsListen: must be IP:PORT \(IPv6 as \[::1\]:53\)/],
    [['--dns-listen', '127.0.0.1:65536'], /dnsListen/],
    [[...on, '--dns-upstream', 'dns.google'], /dnsUpstream: must be IP or IP:PORT/],
    [[...on, '--dns-upstream', '10.0.0.1:abc'], /dnsUpstream/],
    [['--cluster-domain', 'cluster_local'], /clusterDomain: must be a DNS name/],
    [['--cluster-domain=-bad.local'], /clusterDomain/],
    [['--cluster-domain', ''], /clusterDomain/],
    [['--dns-pod-records', 'sometimes'], /dnsPodRecords: must be one of disabled, insecure, verified/],
    [['--dns-ttl', '3601'], /dnsTTL: must be 0-3600/],
    [['--dns-ttl=-1'], /dnsTTL: must be 0-3600/],
    [['--dns-ttl', '5s'], /--dns-ttl: must be an integer/],
    [['--dns-cache-max-ttl', '86401'], /dnsCacheMaxTTL: must be 0-86400/],
    [['--dns-autopath'], /dnsAutopath: needs --dns-pod-records verified, got insecure/],
    [['--dns-autopath', '--dns-pod-records', 'disabled'], /dnsAutopath: needs --dns-pod-records verified/],
    [[...on, ...Array.from({ length: 16 }, (_, i) => ['--dns-upstream', `10.0.0.${i + 1}`]).flat()], /at most 15 upstreams/],
    [[...on, '--dns-upstream', '127.0.0.1'], /127\.0\.0\.1:53 is this server .* would loop/],
    [['--dns-listen', '0.0.0.0:53', '--dns-upstream', '127.0.0.1:53'], /would loop/],
    [['--dns-listen', '[::]:53', '--dns-upstream', '[::1]:53'], /would loop/],
    [['--dns-listen', '0.0.0.0:53', '--dns-upstream', '127.0.0.53'], /would loop/], // the wildcard holds 127.0.0.53 too
  ]
  for (const [argv, re] of bad) t.throws(() => loadDNS(argv), { code: 'FERRY_ERR_CONFIG', message: re }, argv.join(' '))
  t.equal(loadDNS(['--dns-autopath', '--dns-pod-records', 'verified']).dnsAutopath, true)
  t.same(loadDNS(['--dns-listen', '10.96.0.10:53', '--dns-upstream', '127.0.0.53']).dnsUpstreams.map(formatHostPort), ['127.0.0.53:53'], 'systemd-resolved is not us')
  t.same(loadDNS(['--dns-listen', '0.0.0.0:53', '--dns-upstream', '127.0.0.1:5353']).dnsUpstreams.map(formatHostPort), ['127.0.0.1:5353'], 'another port is not us')
})

t.test('address and resolv.conf helpers', async t => {
  const cases: Array<[string, number | undefined, string | null]> = [
    ['10.0.0.1:53', undefined, '10.0.0.1:53'],
    ['[fd00::1]:53', undefined, '[fd00::1]:53'],
    ['[FD00:0::1]', 53, '[fd00::1]:53'],
    ['fe80::1%eth0', 53, '[fe80::1%eth0]:53'],
    ['10.0.0.1%eth0', 53, null],
    ['fd00::1', undefined, null],
    ['10.0.0.1:', 53, null],
    [':53', undefined, null],
    ['[fd00::1]:99999', undefined, null],
  ]
  for (const [text, def, want] of cases) {
    const hp = parseHostPort(text, def)
    t.equal(hp === null ? null : formatHostPort(hp), want, `${text} (default port ${String(def)})`)
  }
  t.same(parseResolvConf(RESOLV), { nameservers: ['192.0.2.53', '2001:db8::53'], search: ['corp.example', 'lab.example'] })
  t.same(parseResolvConf('domain a.example\nsearch b.example\n').search, ['b.example'], 'the last search/domain line wins')
  for (const [name, ok] of [['cluster.local', true], ['a', true], ['x'.repeat(63) + '.local', true], ['x'.repeat(64), false], ['a..b', false], ['a-.b', false], ['*.local', false]] as const) {
    t.equal(isDNSName(name), ok, name)
  }
})

t.test('usage names the DNS flags and their defaults', async t => {
  const text = usage()
  for (const f of ['--dns-listen IP:PORT', '--cluster-domain VALUE', '--dns-upstream IP[:PORT]', '--dns-pod-records', '--dns-ttl', '--dns-autopath', '--dns-query-log', '--dns-cache-max-ttl']) t.match(text, f)
  t.match(text, '(default cluster.local)')
  t.match(text, '(default insecure)')
})

t.test('overlay flags: defaults, static pod CIDRs inside the cluster CIDR, values checked', async t => {
  const d = load([])
  t.same([d.overlay, d.overlayBackend, d.podCIDRs, d.subnetFile, d.ipMasq, d.subnetLeaseTTLMs, d.vxlanVNI, d.vxlanPort],
    [false, 'vxlan', [], '/run/ferry/subnet.env', false, 86_400_000, 1, 8472])
  const c = load(['--overlay', '--pod-cidr', '10.244.3.0/24', '--cluster-cidr', '10.244.0.0/16', '--overlay-backend', 'host-gw', '--overlay-iface', 'eth1', '--public-ip', '192.168.1.5', '--ip-masq'])
  t.same([c.overlay, c.overlayBackend, c.podCIDRs, c.overlayIface, c.publicIP, c.ipMasq], [true, 'host-gw', ['10.244.3.0/24'], 'eth1', '192.168.1.5', true])
  t.same(load(['--overlay', '--etcd-endpoints', 'http://127.0.0.1:2379']).podCIDRs, [], 'with etcd the lease decides the subnet')
  const ds = load(['--overlay', '--etcd-endpoints', 'http://127.0.0.1:2379', '--public-ip', '192.168.1.5', '--public-ipv6', 'FD00:192::0005'])
  t.same([ds.publicIP, ds.publicIPv6], ['192.168.1.5', 'fd00:192::5'], 'dual-stack: --public-ipv6, canonical')
  t.equal(d.publicIPv6, undefined, 'no --public-ipv6: the uplink\'s address')
  const bad: Array<[string[], RegExp]> = [
    [['--overlay'], /podCIDR: --overlay without etcd needs --pod-cidr/],
    [['--overlay', '--pod-cidr', '10.245.0.0/24', '--cluster-cidr', '10.244.0.0/16'], /podCIDR: 10\.245\.0\.0\/24 must lie inside the --cluster-cidr of its family \(10\.244\.0\.0\/16\)/],
    [['--overlay', '--pod-cidr', '10.244.3.0/24'], /must lie inside the --cluster-cidr of its family \(none given\)/],
    [['--overlay-backend', 'udp'], /overlayBackend: must be vxlan or host-gw/],
    [['--pod-cidr', '10.244.3.0/24,10.244.4.0/24'], /podCIDR: at most one IPv4 CIDR/],
    [['--public-ip', 'nope'], /publicIP: must be an IPv4 address/],
    [['--public-ip', 'fd00::5'], /publicIP: must be an IPv4 address \(IPv6: --public-ipv6\)/],
    [['--public-ipv6', '192.168.1.5'], /publicIPv6: must be an IPv6 address/],
    [['--vxlan-vni', '0'], /vxlanVNI: must be 1-16777215/],
    [['--vxlan-port', '70000'], /vxlanPort: must be 1-65535/],
  ]
  for (const [argv, re] of bad) t.throws(() => load(argv), re, argv.join(' '))
})

t.test('the CNI server: on at 127.0.0.1:10251 by default, loopback only, empty turns it off', async t => {
  const d = load([])
  t.same(d.cniListen, { host: '127.0.0.1', port: 10251 })
  t.equal(d.cniServerFile, '/run/ferry/cni-server.env')
  t.same(load(['--cni-listen', '[::1]:0']).cniListen, { host: '::1', port: 0 })
  t.same(load(['--cni-listen', '127.0.0.2:9']).cniListen, { host: '127.0.0.2', port: 9 })
  t.equal(load(['--cni-listen', '']).cniListen, undefined, 'off')
  t.equal(load(['--config', '/c.yaml'], { '/c.yaml': 'cniListen: ""\ncniServerFile: /x/s.env\n' }).cniServerFile, '/x/s.env', 'file keys')
  for (const [arg, re] of [['0.0.0.0:10251', /loopback/], ['10.0.0.1:10251', /loopback/], ['[::]:1', /loopback/], ['127.0.0.1', /IP:PORT/], ['localhost:1', /IP:PORT/]] as const) {
    t.throws(() => load(['--cni-listen', arg]), { code: 'FERRY_ERR_CONFIG', message: re }, arg)
  }
})
