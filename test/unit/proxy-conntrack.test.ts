// UDP conntrack cleanup: which entries are stale (pure), reading `conntrack -L`, the CLI driver against a
// recording fake Exec, and the cleaner against an in-memory table, alone and as a Proxier afterSync hook.
import t from 'tap'
import { Registry } from 'prom-client'
import { ClusterStore } from '../../pkg/cache/store.js'
import type { Exec, ExecResult } from '../../pkg/exec/exec.js'
import { FerryError } from '../../pkg/errors/errors.js'
import { createLogger, silentLogger } from '../../pkg/log/log.js'
import { ConntrackCleaner } from '../../pkg/proxy/conntrack/cleanup.js'
import { FakeConntrackTable } from '../../pkg/proxy/conntrack/fake.js'
import { createConntrackMetrics } from '../../pkg/proxy/conntrack/metrics.js'
import { parseConntrackLine, parseConntrackList, type ConntrackEntry } from '../../pkg/proxy/conntrack/parse.js'
import { cleanupFilter, cleanupNeeded, deleteSelectors, planCleanup, staleEntries } from '../../pkg/proxy/conntrack/plan.js'
import { ExecConntrackTable, isConntrackMissing } from '../../pkg/proxy/conntrack/table.js'
import { FakeBackend } from '../../pkg/proxy/fake-backend.js'
import { FakeClock } from '../../pkg/proxy/fake-clock.js'
import { ProxyHealth } from '../../pkg/proxy/health.js'
import { desired, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import { createProxyMetrics } from '../../pkg/proxy/metrics.js'
import { Proxier } from '../../pkg/proxy/proxier.js'
import { servicePortKey, type DesiredServicePort, type DesiredState, type EndpointInfo } from '../../pkg/proxy/types.js'
import { CLIENT_EXTERNAL, CLIENT_POD, NODE, NODE_IP, NOT_SERVING, SERVING_TERMINATING, ep, slice, sliceEp, svc } from '../helpers/fixtures.js'

// ---- Fixtures: a "DNS" service as in PROXY.md §7 scenario 18 ----
const E1 = '10.180.0.1'
const E2 = '10.180.0.2'
const E3 = '10.180.0.3'
const E4 = '10.180.0.4'
const E9 = '10.180.0.9'
const DNS_VIP = '172.30.0.10'
const EXT_IP = '192.168.99.11'
const LB_IP = '1.2.3.4'

const udp = (o: Parameters<typeof svcInfo>[0]): DesiredServicePort => desired(svcInfo({ protocol: 'UDP', portName: 'dns', port: 53, ...o }))
const dns = udp({ name: 'dns', clusterIP: DNS_VIP, nodePort: 30053, externalIPs: [EXT_IP], loadBalancerIPs: [LB_IP] })
const other = udp({ name: 'other', clusterIP: '172.30.0.20' })
const empty = udp({ name: 'empty', clusterIP: '172.30.0.30', nodePort: 30054 })
// Its port equals dns's NodePort: entries to it are judged by its own endpoints.
const high = udp({ name: 'high', clusterIP: '172.30.0.40', port: 30053 })
const dnsTCP = desired(svcInfo({ name: 'dns', portName: 'dns-tcp', protocol: 'TCP', clusterIP: DNS_VIP, port: 53 }))
const STATE = stateOf([dns, other, empty, high, dnsTCP])
const key = (s: DesiredServicePort): string => servicePortKey(s.info)

/** Every endpoint per service port, as the Proxier hands them over (before policy filtering). */
const ENDPOINTS = new Map<string, EndpointInfo[]>([
  [key(dns), [ep(E2), ep(E3, NOT_SERVING), ep(E4, SERVING_TERMINATING)]],
  [key(other), [ep(E9)]],
  [key(high), [ep(E1)]],
  [key(dnsTCP), [ep(E1)]],
])

interface EntryOptions { dst: string, dport: number, replySrc: string, src?: string, sport?: number, proto?: string, replySport?: number }
function entry (o: EntryOptions): ConntrackEntry {
  const src = o.src ?? CLIENT_POD
  const sport = o.sport ?? 40000
  return { proto: o.proto ?? 'udp', origSrc: src, origDst: o.dst, origSport: sport, origDport: o.dport, replySrc: o.replySrc, replyDst: src, replySport: o.replySport ?? 5353, replyDport: sport }
}

// ---- cleanupNeeded / planCleanup ----
t.test('cleanup is needed after a full sync or when a UDP service port changed', async t => {
  const cases: Array<[string, ReadonlySet<string> | null, boolean]> = [
    ['full sync', null, true],
    ['a UDP port changed', new Set([key(dns)]), true],
    ['TCP and UDP changed', new Set([key(dnsTCP), key(dns)]), true],
    ['only TCP changed', new Set([key(dnsTCP)]), false],
    ['a removed port (its protocol is in no state)', new Set(['ns1/gone:dns/udp']), false],
    ['nothing changed', new Set<string>(), false],
  ]
  for (const [name, changed, want] of cases) t.equal(cleanupNeeded(changed, STATE), want, name)
  t.equal(planCleanup('IPv4', stateOf([dnsTCP]), null, ENDPOINTS), null, 'no UDP port at all: nothing to list')
  t.equal(planCleanup('IPv4', STATE, new Set([key(dnsTCP)]), ENDPOINTS), null, 'TCP-only change: nothing to list')
  t.equal(planCleanup('IPv4', STATE, new Set([key(dns)]), ENDPOINTS)?.ports.length, 4, 'a UDP change checks every UDP port, not just the changed one')
})

t.test('the filter: serving endpoint IPs, every service IP with the port, and the NodePort', async t => {
  const f = cleanupFilter('IPv4', STATE, ENDPOINTS)
  t.equal(f.family, 'IPv4')
  t.same(f.ports.map(p => p.key).sort(), [key(dns), key(empty), key(high), key(other)].sort(), 'UDP ports only')
  const d = f.ports.find(p => p.key === key(dns))
  t.same(d?.serviceIPs, [DNS_VIP, EXT_IP, LB_IP])
  t.equal(d?.port, 53)
  t.equal(d?.nodePort, 30053)
  t.same([...(d?.servingIPs ?? [])].sort(), [E2, E4], 'serving counts (terminating too); not-serving does not')
  t.same([...(f.ports.find(p => p.key === key(empty))?.servingIPs ?? [])], [], 'no endpoints: empty set')
  t.same(cleanupFilter('IPv6', STATE, ENDPOINTS).ports, [], 'the other family has none of these ports')
})

// ---- staleEntries ----
t.test('staleEntries: which entries go', async t => {
  const f = cleanupFilter('IPv4', STATE, ENDPOINTS)
  const cases: Array<[string, EntryOptions, boolean]> = [
    ['ClusterIP entry DNATed to a replaced endpoint (E1 → E2)', { dst: DNS_VIP, dport: 53, replySrc: E1 }, true],
    ['ClusterIP entry to the current endpoint', { dst: DNS_VIP, dport: 53, replySrc: E2 }, false],
    ['entry to a serving, terminating endpoint (policy ignored)', { dst: DNS_VIP, dport: 53, replySrc: E4 }, false],
    ['entry to a not-serving endpoint', { dst: DNS_VIP, dport: 53, replySrc: E3 }, true],
    ['externalIP entry to a replaced endpoint', { dst: EXT_IP, dport: 53, replySrc: E1, src: CLIENT_EXTERNAL }, true],
    ['LB IP entry to a replaced endpoint', { dst: LB_IP, dport: 53, replySrc: E1, src: CLIENT_EXTERNAL }, true],
    ['LB IP entry to the current endpoint', { dst: LB_IP, dport: 53, replySrc: E2, src: CLIENT_EXTERNAL }, false],
    ['NodePort entry (node IP) to a replaced endpoint', { dst: NODE_IP, dport: 30053, replySrc: E1, src: CLIENT_EXTERNAL }, true],
    ['NodePort entry (any local IP) to a replaced endpoint', { dst: '127.0.0.1', dport: 30053, replySrc: E1, src: '127.0.0.1' }, true],
    ['NodePort entry to the current endpoint', { dst: NODE_IP, dport: 30053, replySrc: E2, src: CLIENT_EXTERNAL }, false],
    ['un-DNATed entry from before the service had endpoints (0 → N)', { dst: DNS_VIP, dport: 53, replySrc: DNS_VIP }, true],
    ['un-DNATed NodePort entry (0 → N)', { dst: NODE_IP, dport: 30053, replySrc: NODE_IP, src: CLIENT_EXTERNAL }, true],
    ['service with no endpoints: un-DNATed entry', { dst: '172.30.0.30', dport: 53, replySrc: '172.30.0.30' }, true],
    ['service with no endpoints: entry DNATed to a deleted endpoint (N → 0)', { dst: '172.30.0.30', dport: 53, replySrc: E1 }, true],
    ['service with no endpoints: NodePort entry', { dst: NODE_IP, dport: 30054, replySrc: E1 }, true],
    ["another service's entry to its own endpoint", { dst: '172.30.0.20', dport: 53, replySrc: E9 }, false],
    ["another service's entry to dns's endpoint", { dst: '172.30.0.20', dport: 53, replySrc: E2 }, true],
    ['service IP, other port: not addressed to the service', { dst: DNS_VIP, dport: 54, replySrc: E1 }, false],
    ['ClusterIP:port equal to a NodePort: judged by its own endpoints (kept)', { dst: '172.30.0.40', dport: 30053, replySrc: E1 }, false],
    ['ClusterIP:port equal to a NodePort: judged by its own endpoints (stale)', { dst: '172.30.0.40', dport: 30053, replySrc: E2 }, true],
    ['unrelated UDP traffic', { dst: '8.8.8.8', dport: 53, replySrc: '8.8.8.8' }, false],
    ['TCP to the same VIP and port, replaced endpoint: never touched', { dst: DNS_VIP, dport: 53, replySrc: E1, proto: 'tcp' }, false],
    ['SCTP: never touched', { dst: DNS_VIP, dport: 53, replySrc: E1, proto: 'sctp' }, false],
    ['IPv6 entry under an IPv4 filter: ignored', { dst: 'fd00::10', dport: 30053, replySrc: 'fd00::1', src: 'fd00::2' }, false],
  ]
  for (const [name, o, want] of cases) {
    t.equal(staleEntries([entry(o)], f).length, want ? 1 : 0, name)
  }
  const all = cases.map(([, o]) => entry(o))
  t.equal(staleEntries(all, f).length, cases.filter(([, , want]) => want).length, 'all at once: the same answers')
})

t.test('endpoint replaced (E1 → E2): E1 entries go after the change, E2 entries stay', async t => {
  const entries = [
    entry({ dst: DNS_VIP, dport: 53, replySrc: E1, sport: 40000 }),
    entry({ dst: DNS_VIP, dport: 53, replySrc: E1, sport: 40001 }),
    entry({ dst: NODE_IP, dport: 30053, replySrc: E1, src: CLIENT_EXTERNAL }),
    entry({ dst: DNS_VIP, dport: 53, replySrc: E2, sport: 40002 }),
    entry({ dst: '172.30.0.20', dport: 53, replySrc: E9 }),
  ]
  const before = cleanupFilter('IPv4', STATE, new Map([[key(dns), [ep(E1)]], [key(other), [ep(E9)]]]))
  const after = cleanupFilter('IPv4', STATE, new Map([[key(dns), [ep(E2)]], [key(other), [ep(E9)]]]))
  const both = cleanupFilter('IPv4', STATE, new Map([[key(dns), [ep(E1), ep(E2)]], [key(other), [ep(E9)]]]))
  t.same(staleEntries(entries, before).map(e => e.replySrc), [E2], 'before: only E2 (not yet an endpoint) is stale')
  t.same(staleEntries(entries, after).map(e => `${e.origDst}:${e.origDport}/${e.origSport}`),
    [`${DNS_VIP}:53/40000`, `${DNS_VIP}:53/40001`, `${NODE_IP}:30053/40000`], 'after: every E1 entry, ClusterIP and NodePort')
  t.same(staleEntries(entries, both), [], 'E2 added beside E1: nothing stale')
  t.same(deleteSelectors(staleEntries(entries, after)), [
    { origDst: DNS_VIP, origDport: 53, replySrc: E1 },
    { origDst: NODE_IP, origDport: 30053, replySrc: E1 },
  ], 'one deletion per (orig dst, orig dst port, reply src): two clients of E1 share one')
})

t.test('IPv6: addresses compared in canonical form; IPv4 entries ignored', async t => {
  const v6 = desired(svcInfo({ name: 'dns6', protocol: 'UDP', family: 'IPv6', clusterIP: 'fd00:30::10', port: 53, nodePort: 30053 }))
  const state: DesiredState = stateOf([v6], 'IPv6')
  const f = cleanupFilter('IPv6', state, new Map([[key(v6), [ep('FD00:10:244:0::0002')]]]))
  const e = (dst: string, replySrc: string): ConntrackEntry => entry({ dst, dport: 53, replySrc, src: 'fd00:10:244::3' })
  t.same(staleEntries([e('fd00:30::10', 'fd00:10:244::2')], f), [], 'the serving endpoint, written differently')
  t.equal(staleEntries([e('fd00:30::10', 'fd00:10:244::1')], f).length, 1, 'a replaced endpoint')
  t.same(staleEntries([entry({ dst: NODE_IP, dport: 30053, replySrc: E1 })], f), [], 'IPv4 NodePort entry under an IPv6 filter')
})

// ---- parse ----
// Captured from the kernel (conntrack v1.4.7, Debian 12) in throwaway namespaces.
const REAL = {
  unreplied: 'udp      17 29 src=10.99.0.1 dst=10.99.0.2 sport=40000 dport=53 [UNREPLIED] src=10.99.0.2 dst=10.99.0.1 sport=5353 dport=40000 mark=0 use=1',
  replied: 'udp      17 29 src=10.99.0.1 dst=10.99.0.2 sport=40012 dport=53 src=10.99.0.2 dst=10.99.0.1 sport=5353 dport=40012 mark=0 use=1',
  assured: 'udp      17 119 src=10.98.0.1 dst=10.98.0.2 sport=42001 dport=53 src=10.98.0.2 dst=10.98.0.1 sport=5353 dport=42001 [ASSURED] mark=0 use=1',
  zone: 'udp      17 29 src=10.98.0.1 dst=10.98.0.2 sport=42003 dport=54 [UNREPLIED] src=10.98.0.2 dst=10.98.0.1 sport=54 dport=42003 mark=0 zone=7 use=1',
  v6: 'udp      17 119 src=fd98::1 dst=fd98::2 sport=42002 dport=53 src=fd98::2 dst=fd98::1 sport=5353 dport=42002 [ASSURED] mark=0 use=1',
  tcp: 'tcp      6 119 TIME_WAIT src=10.98.0.1 dst=10.98.0.2 sport=44590 dport=53 src=10.98.0.2 dst=10.98.0.1 sport=5353 dport=44590 [ASSURED] mark=0 use=1',
  extended: 'ipv4     2 udp      17 19 src=10.99.0.1 dst=10.99.0.2 sport=40002 dport=53 [UNREPLIED] src=10.99.0.2 dst=10.99.0.1 sport=5353 dport=40002 mark=0 use=1',
}

t.test('parse: real conntrack -L lines', async t => {
  t.same(parseConntrackLine(REAL.unreplied), {
    proto: 'udp', origSrc: '10.99.0.1', origDst: '10.99.0.2', origSport: 40000, origDport: 53,
    replySrc: '10.99.0.2', replyDst: '10.99.0.1', replySport: 5353, replyDport: 40000,
  }, 'first group is orig, second is reply; [UNREPLIED] between them skipped')
  t.match(parseConntrackLine(REAL.replied), { origSport: 40012, replySport: 5353, replyDport: 40012 })
  t.match(parseConntrackLine(REAL.assured), { proto: 'udp', origDst: '10.98.0.2', replySrc: '10.98.0.2', replySport: 5353 }, '[ASSURED] after the reply group')
  t.match(parseConntrackLine(REAL.zone), { origDport: 54, replySrc: '10.98.0.2' }, 'zone= ignored')
  t.match(parseConntrackLine(REAL.v6), { origSrc: 'fd98::1', origDst: 'fd98::2', replySrc: 'fd98::2', origSport: 42002 })
  t.match(parseConntrackLine(REAL.tcp), { proto: 'tcp', origDport: 53, replySport: 5353 }, 'TCP state word skipped')
  t.match(parseConntrackLine(REAL.extended), { proto: 'udp', origSport: 40002 }, '`-o extended` prefix')
  // With net.netfilter.nf_conntrack_acct=1 each direction carries packets= and bytes=.
  t.match(parseConntrackLine('udp      17 29 src=10.0.0.2 dst=172.30.0.10 sport=40000 dport=53 packets=3 bytes=87 src=10.180.0.1 dst=10.0.0.2 sport=5353 dport=40000 packets=3 bytes=96 [ASSURED] mark=0 secctx=system_u:object_r:unlabeled_t:s0 use=2'),
    { origDst: '172.30.0.10', replySrc: '10.180.0.1', replySport: 5353 }, 'counters and secctx ignored')
  t.match(parseConntrackLine('udp 17 29 src=FD00:0:0::1 dst=fd00::0:2 sport=1 dport=2 src=fd00::2 dst=fd00::1 sport=2 dport=1 mark=0 use=1'), { origSrc: 'fd00::1', origDst: 'fd00::2' }, 'IPv6 made canonical')
})

t.test('parse: lines that are not flows with ports', async t => {
  for (const line of [
    '',
    'conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.',
    'icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 mark=0 use=1',
    'udp      17 29 src=10.99.0.1 dst=10.99.0.2 sport=40000 dport=53 [UNREPLIED]',
    'udp      17 29 src=10.99.0.1 dst=nonsense sport=40000 dport=53 src=10.99.0.2 dst=10.99.0.1 sport=5353 dport=40000',
    'udp      17 29 src=10.99.0.1 dst=10.99.0.2 sport=40000 dport=99999 src=10.99.0.2 dst=10.99.0.1 sport=5353 dport=40000',
  ]) t.equal(parseConntrackLine(line), null, JSON.stringify(line.slice(0, 40)))
  const list = parseConntrackList([REAL.unreplied, REAL.v6, 'garbage', REAL.tcp, ''].join('\n'))
  t.same(list.map(e => e.proto), ['udp', 'udp', 'tcp'])
})

// ---- ExecConntrackTable against a recording fake Exec ----
function fakeExec (answer: (argv: readonly string[]) => ExecResult | Error): { exec: Exec, calls: Array<readonly string[]> } {
  const calls: Array<readonly string[]> = []
  return {
    calls,
    exec: async (argv) => {
      calls.push(argv)
      const r = answer(argv)
      if (r instanceof Error) throw r
      return r
    },
  }
}
const ok = (stdout = '', stderr = ''): ExecResult => ({ code: 0, stdout, stderr })

t.test('ExecConntrackTable: the exact conntrack command lines', async t => {
  const { exec, calls } = fakeExec(argv => argv[1] === '-L'
    ? ok(`${REAL.unreplied}\n${REAL.replied}\n`, 'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n')
    : ok(`${REAL.unreplied}\n`, 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n'))
  const table = new ExecConntrackTable(exec)
  t.equal((await table.listUDP('IPv4')).length, 2)
  t.equal(await table.deleteUDP('IPv6', { origDst: 'fd00:30::10', origDport: 53, replySrc: 'fd00:10:244::1' }), 1)
  t.same(calls, [
    ['conntrack', '-L', '-p', 'udp', '-f', 'ipv4'],
    ['conntrack', '-D', '-p', 'udp', '-f', 'ipv6', '--orig-dst', 'fd00:30::10', '--orig-port-dst', '53', '--reply-src', 'fd00:10:244::1'],
  ])
})

t.test('ExecConntrackTable: exit codes', async t => {
  const gone = new ExecConntrackTable(fakeExec(() => ({ code: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n' })).exec)
  t.equal(await gone.deleteUDP('IPv4', { origDst: DNS_VIP, origDport: 53, replySrc: E1 }), 0, 'exit 1 with 0 deleted: already gone, fine')

  const bad = new ExecConntrackTable(fakeExec(() => ({ code: 2, stdout: '', stderr: "conntrack v1.4.7 (conntrack-tools): Invalid IP address `x'\n" })).exec)
  await t.rejects(bad.deleteUDP('IPv4', { origDst: 'x', origDport: 53, replySrc: E1 }), { code: 'FERRY_ERR_EXEC', message: /Invalid IP address/ })
  await t.rejects(bad.listUDP('IPv4'), { code: 'FERRY_ERR_EXEC' })

  const spawnMissing = new FerryError('FERRY_ERR_EXEC', 'cannot run conntrack: spawn conntrack ENOENT', {}, { cause: Object.assign(new Error('spawn conntrack ENOENT'), { code: 'ENOENT' }) })
  const viaNetns = { code: 1, stdout: '', stderr: 'exec of "conntrack" failed: No such file or directory\n' }
  for (const [name, answer] of [['spawn ENOENT', spawnMissing], ['ip netns exec', viaNetns], ['shell 127', { code: 127, stdout: '', stderr: '' }]] as const) {
    const table = new ExecConntrackTable(fakeExec(() => answer).exec)
    const e = await table.listUDP('IPv4').catch((err: unknown) => err)
    t.ok(isConntrackMissing(e), `missing binary recognised (${name})`)
    const d = await table.deleteUDP('IPv4', { origDst: DNS_VIP, origDport: 53, replySrc: E1 }).catch((err: unknown) => err)
    t.ok(isConntrackMissing(d), `missing binary recognised on delete (${name})`)
  }
  t.notOk(isConntrackMissing(await bad.listUDP('IPv4').catch((err: unknown) => err)), 'a failing conntrack is not a missing one')
})

// ---- ConntrackCleaner against the in-memory table ----
const afterE1toE2 = new Map([[key(dns), [ep(E2)]], [key(other), [ep(E9)]]])
const TABLE = (): ConntrackEntry[] => [
  entry({ dst: DNS_VIP, dport: 53, replySrc: E1, sport: 40000 }),
  entry({ dst: DNS_VIP, dport: 53, replySrc: E1, sport: 40001 }),
  entry({ dst: NODE_IP, dport: 30053, replySrc: E1, src: CLIENT_EXTERNAL }),
  entry({ dst: DNS_VIP, dport: 53, replySrc: E2, sport: 40002 }),
  entry({ dst: '172.30.0.20', dport: 53, replySrc: E9 }),
  entry({ dst: DNS_VIP, dport: 53, replySrc: E1, proto: 'tcp' }),
]

t.test('cleaner: lists once, deletes the stale entries, counts them', async t => {
  const table = new FakeConntrackTable(TABLE())
  const registry = new Registry()
  let clock = 0
  const cleaner = new ConntrackCleaner({ family: 'IPv4', table, metrics: createConntrackMetrics(registry), now: () => (clock += 250) })
  const r = await cleaner.reconcile(STATE, new Set([key(dns)]), afterE1toE2)
  t.same(r, { needed: true, listed: 5, stale: 3, deleted: 3 })
  t.same(table.lists, ['IPv4'], 'one listing')
  t.same(table.deletes.map(d => d.sel), [{ origDst: DNS_VIP, origDport: 53, replySrc: E1 }, { origDst: NODE_IP, origDport: 30053, replySrc: E1 }])
  t.same(table.entries.map(e => `${e.proto} ${e.replySrc}`), [`udp ${E2}`, `udp ${E9}`, `tcp ${E1}`], 'E2, the other service and TCP stay')
  const text = await registry.metrics()
  t.match(text, 'kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="IPv4"} 3')
  t.match(text, 'kubeproxy_conntrack_reconciler_sync_duration_seconds_count{ip_family="IPv4"} 1')
  t.match(text, 'kubeproxy_conntrack_reconciler_sync_duration_seconds_sum{ip_family="IPv4"} 0.25')
  t.match(text, '# TYPE kubeproxy_conntrack_reconciler_sync_duration_seconds histogram')
  t.match(text, '# TYPE kubeproxy_conntrack_reconciler_deleted_entries_total counter')
})

t.test('cleaner: a no-op when no UDP port changed, or for the other family', async t => {
  const table = new FakeConntrackTable(TABLE())
  const cleaner = new ConntrackCleaner({ family: 'IPv4', table })
  t.same(await cleaner.reconcile(STATE, new Set([key(dnsTCP)]), afterE1toE2), { needed: false, listed: 0, stale: 0, deleted: 0 })
  t.same(await cleaner.reconcile(STATE, new Set(), afterE1toE2), { needed: false, listed: 0, stale: 0, deleted: 0 })
  t.same(await cleaner.reconcile(stateOf([], 'IPv6'), null, afterE1toE2), { needed: false, listed: 0, stale: 0, deleted: 0 })
  t.same(table.lists, [], 'the table was never listed')
  await cleaner.afterSync(STATE, null, afterE1toE2)
  t.same(table.lists, ['IPv4'], 'a full sync always reconciles')
})

t.test('cleaner: conntrack not installed warns once and never throws', async t => {
  const lines: string[] = []
  const log = createLogger({ write: l => lines.push(l), level: 'debug' })
  const table = new FakeConntrackTable(TABLE())
  table.missing = true
  const cleaner = new ConntrackCleaner({ family: 'IPv4', table, log })
  for (let i = 0; i < 3; i++) t.same(await cleaner.reconcile(STATE, null, afterE1toE2), { needed: false, listed: 0, stale: 0, deleted: 0 })
  const warns = lines.map(l => JSON.parse(l) as { level: string, msg: string, component: string }).filter(l => l.level === 'warn')
  t.equal(warns.length, 1, 'one warning for three syncs')
  t.match(warns[0], { component: 'conntrack', msg: /not installed/ })
  t.equal(table.lists.length, 3, 'it keeps looking, so installing conntrack later takes effect')
})

t.test('cleaner: a failed deletion does not stop the others; one error at the end', async t => {
  const table = new FakeConntrackTable(TABLE())
  table.failDeletes = 1
  const cleaner = new ConntrackCleaner({ family: 'IPv4', table })
  await t.rejects(cleaner.reconcile(STATE, null, afterE1toE2), { code: 'FERRY_ERR_EXEC', message: /1 deletion\(s\) failed/ })
  t.equal(table.deletes.length, 2, 'both deletions tried')
  t.equal(table.entries.filter(e => e.proto === 'udp' && e.replySrc === E1).length, 2, 'the first (ClusterIP) failed, the NodePort one went')
  const again = await cleaner.reconcile(STATE, null, afterE1toE2)
  t.equal(again.deleted, 2, 'the next run deletes what was left')
})

// ---- As a Proxier afterSync hook ----
t.test('as a Proxier hook: the endpoints map and changed keys line up with the plan', async t => {
  const clock = new FakeClock(1_000_000)
  const store = new ClusterStore()
  const backend = new FakeBackend()
  const table = new FakeConntrackTable([
    entry({ dst: DNS_VIP, dport: 53, replySrc: E1 }),
    entry({ dst: DNS_VIP, dport: 53, replySrc: DNS_VIP, sport: 40001 }),
  ])
  const cleaner = new ConntrackCleaner({ family: 'IPv4', table, log: silentLogger })
  const proxier = new Proxier({
    family: 'IPv4', nodeName: NODE, backend, store, minSyncPeriodMs: 1000, syncPeriodMs: 30_000,
    metrics: createProxyMetrics(new Registry()), health: new ProxyHealth(60_000, () => clock.now()), log: silentLogger, clock,
    afterSync: [cleaner.afterSync],
  })
  const dnsSvc = svc({ name: 'dns', clusterIP: DNS_VIP, ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }] })
  const dnsSlice = (ip: string): ReturnType<typeof slice> => slice({ service: 'dns', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }, { name: 'dns-tcp', port: 5353, protocol: 'TCP' }], endpoints: [sliceEp(ip)] })
  store.replace([dnsSvc, dnsSlice(E1)])
  proxier.start()
  await clock.advance(1000)
  t.equal(table.lists.length, 1, 'the first (full) sync reconciles')
  t.same(table.entries.map(e => e.replySrc), [E1], 'the un-DNATed entry from before the rules went; E1 is an endpoint')
  store.upsert(dnsSlice(E2))
  await clock.advance(1000)
  t.equal(table.lists.length, 2, 'the UDP endpoint change reconciles')
  t.same(table.entries, [], "E1's entry went once E2 replaced it")
  await proxier.stop()
})
