// NftablesBackend over a fake Exec: full/partial choice, nft errors quoted, deferred stale-chain
// deletion on an injected clock, the presence check, cleanup, metrics; and the mode choice with probes.
import t from 'tap'
import { Registry } from 'prom-client'
import { NftablesBackend, STALE_CHAIN_DELAY_MS } from '../../pkg/proxy/nftables/backend.js'
import { nftablesMetrics } from '../../pkg/proxy/nftables/metrics.js'
import { PROBE_TEXT, probeNftables } from '../../pkg/proxy/nftables/probe.js'
import { chooseProxyMode, modeProxyOptions } from '../../pkg/proxy/backends.js'
import { cleanupNftablesMode, nftablesModePresent } from '../../pkg/proxy/nftables/mode.js'
import type { Exec, ExecResult } from '../../pkg/exec/exec.js'
import { stdinText } from '../../pkg/exec/exec.js'
import { isFerryError } from '../../pkg/errors/errors.js'
import { desired, ep, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import { servicePortKey } from '../../pkg/proxy/types.js'
import { endpointTag, serviceHash } from '../../pkg/proxy/nftables/names.js'
import type { RememberedClient } from '../../pkg/proxy/nftables/affinity-read.js'

interface Call { argv: string, stdin: string }
interface FakeNft { exec: Exec, calls: Call[], fail: Array<ExecResult | undefined>, tables: string }
function fakeNft (): FakeNft {
  const f: FakeNft = {
    calls: [] as Call[],
    /** Results for the next `nft -f -` runs, in order (undefined: success). */
    fail: [] as Array<ExecResult | undefined>,
    tables: 'table ip ferry\n',
    exec: async (argv, stdin) => {
      f.calls.push({ argv: argv.join(' '), stdin: stdinText(stdin) })
      if (argv.join(' ') === 'nft list tables') return { code: 0, stdout: f.tables, stderr: '' }
      if (argv[1] === 'list' && argv[2] === 'set') {
        return f.tables.includes(`table ${argv[3] ?? ''} ${argv[4] ?? ''}\n`)
          ? { code: 0, stdout: '', stderr: '' }
          : { code: 1, stdout: '', stderr: `Error: No such file or directory\nlist set ${argv.slice(3).join(' ')}\n` }
      }
      return f.fail.shift() ?? { code: 0, stdout: '', stderr: '' }
    },
  }
  return f
}

/** Kernel reads answered without a kernel: the rules are there, nothing is remembered. */
const NO_KERNEL = { countRules: async (): Promise<number> => 1, readAffinity: async () => new Map<string, RememberedClient[]>() }

const web = desired(svcInfo({ name: 'web', clusterIP: '172.30.0.10' }), { cluster: [ep('10.180.0.1'), ep('10.180.0.2')] })
const sticky = desired(svcInfo({ name: 'sticky', clusterIP: '172.30.0.13', stickyMaxAgeSeconds: 60 }), { cluster: [ep('10.180.0.3')] })
const key = servicePortKey

t.test('full first, partial after, full on demand', async t => {
  const f = fakeNft()
  const be = new NftablesBackend({ family: 'IPv4', exec: f.exec, ...NO_KERNEL })
  t.equal((await be.sync(stateOf([web]), new Set([key(web.info)]))).kind, 'full', 'first sync is full whatever changed')
  t.equal(f.calls.length, 1)
  t.equal(f.calls[0]?.argv, 'nft -f -')
  t.match(f.calls[0]?.stdin, /^add table ip ferry\ndelete table ip ferry\n/)
  const web3 = desired(web.info, { cluster: [ep('10.180.0.1'), ep('10.180.0.2'), ep('10.180.0.9')] })
  const p = await be.sync(stateOf([web3]), new Set([key(web.info)]))
  t.equal(p.kind, 'partial')
  t.notMatch(f.calls[1]?.stdin, /table/, 'no table replace in a partial sync')
  t.ok((p.summary.elements ?? 0) > 0)
  const none = await be.sync(stateOf([web3]), new Set())
  t.equal(none.kind, 'partial')
  t.equal(f.calls.length, 2, 'nothing to change: no nft run')
  t.equal((await be.sync(stateOf([web3]), null)).kind, 'full')
})

t.test('a refused streamed full sync quotes its line from a second render, and owns nothing', async t => {
  const f = fakeNft()
  const be = new NftablesBackend({ family: 'IPv4', exec: f.exec, ...NO_KERNEL })
  f.fail.push({ code: 1, stdout: '', stderr: '/dev/stdin:4:1-9: Error: Could not process rule: Cannot allocate memory\n' })
  const err = await be.sync(stateOf([web]), null).catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_APPLY'))
  if (isFerryError(err)) {
    t.match(err.message, /full sync failed at line 4 \(add chain ip ferry nat-prerouting \{ type nat hook prerouting/)
    t.equal(err.details.lineText, (f.calls.at(-1)?.stdin ?? '').split('\n')[3], 'the line nft was sent')
  }
  t.ok(be.needFullSync)
  t.equal((await be.sync(stateOf([web]), null)).kind, 'full')
  t.equal(be.lastTimings?.bytes, f.calls.at(-1)?.stdin.length, 'the streamed bytes are counted')
})

t.test('a refused transaction quotes nft, counts, and makes the next sync full', async t => {
  const f = fakeNft()
  const registry = new Registry()
  const be = new NftablesBackend({ family: 'IPv4', exec: f.exec, metrics: nftablesMetrics(registry), ...NO_KERNEL })
  await be.sync(stateOf([web]), null)
  f.fail.push({ code: 1, stdout: '', stderr: '/dev/stdin:1:39-59: Error: Could not process rule: No such file or directory\ndelete element ip ferry vip-cluster-2 { x }\n      ^^^\n' })
  const err = await be.sync(stateOf([]), new Set([key(web.info)])).catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_APPLY'))
  if (isFerryError(err)) {
    t.match(err.message, /partial sync failed at line 1 \(delete element ip ferry .*\): Error: Could not process rule: No such file or directory/)
    t.equal(err.details.line, 1)
  }
  t.ok(be.needFullSync)
  t.match(await registry.getSingleMetricAsString('kubeproxy_sync_proxy_rules_nftables_sync_failures_total'), /ip_family="IPv4"} 1/)
  t.equal((await be.sync(stateOf([]), new Set([key(web.info)]))).kind, 'full')
  t.match(await registry.getSingleMetricAsString('ferry_sync_proxy_rules_nftables_total'), /kind="rules"} \d+/)
})

t.test('stale chains are deleted in their own transaction at least 1 s later', async t => {
  const f = fakeNft()
  let now = 0
  const registry = new Registry()
  const be = new NftablesBackend({ family: 'IPv4', exec: f.exec, now: () => now, metrics: nftablesMetrics(registry), ...NO_KERNEL })
  await be.sync(stateOf([web, sticky]), null)
  now = 100
  await be.sync(stateOf([web]), new Set([key(sticky.info)]))
  t.equal(be.pendingStaleChains.length, 3, 'svc, aff and one ep chain flushed')
  t.match(f.calls[1]?.stdin, /flush chain ip ferry svc-/)
  now = 100 + STALE_CHAIN_DELAY_MS - 1
  await be.sync(stateOf([web]), new Set([key(web.info)]))
  t.equal(f.calls.length, 2, 'too early: no delete, and nothing else to do')
  now = 100 + STALE_CHAIN_DELAY_MS
  const web1 = desired(web.info, { cluster: [ep('10.180.0.1')] })
  t.equal((await be.sync(stateOf([web1]), new Set([key(web.info)]))).kind, 'partial')
  t.equal(f.calls.length, 4, 'delete transaction, then the sync')
  t.same(f.calls[2]?.stdin.split('\n').filter(l => l !== '').map(l => l.replace(/ [a-z]+-[0-9a-f]{12}.*$/, '')), ['delete chain ip ferry', 'delete chain ip ferry', 'delete chain ip ferry'])
  t.same(be.pendingStaleChains, [])
  // A failed delete is logged and counted, and that sync is full.
  await be.sync(stateOf([web1, sticky]), new Set([key(sticky.info)]))
  await be.sync(stateOf([web1]), new Set([key(sticky.info)]))
  now += 5000
  f.fail.push({ code: 1, stdout: '', stderr: '/dev/stdin:1:1-30: Error: Could not process rule: Device or resource busy\n' })
  t.equal((await be.sync(stateOf([web1]), new Set())).kind, 'full')
  t.match(await registry.getSingleMetricAsString('kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total'), /ip_family="IPv4"} 1/)
  t.same(be.pendingStaleChains, [], 'the full sync replaced the table and its stale chains')
})

t.test('rulesIntact asks how many rules the prerouting chain holds; cleanup deletes the table', async t => {
  const f = fakeNft()
  const asked: string[] = []
  let rules: number | Error = 1
  const countRules = async (family: string, chain: string): Promise<number> => {
    asked.push(`${family} ${chain}`)
    if (rules instanceof Error) throw rules
    return rules
  }
  const be = new NftablesBackend({ family: 'IPv6', exec: f.exec, countRules, readAffinity: NO_KERNEL.readAffinity })
  t.equal(await be.rulesIntact(), true, 'nothing synced yet: nothing to miss')
  t.same(asked, [], 'and nothing asked')
  await be.sync(stateOf([], 'IPv6'), null)
  t.same(asked, ['IPv6 nat-prerouting'], 'a full sync asks whether the table serves (two steps when not)')
  t.equal(await be.rulesIntact(), true)
  t.same(asked, ['IPv6 nat-prerouting', 'IPv6 nat-prerouting'])
  t.notOk(be.needFullSync)
  rules = 0 // `nft flush table ip6 ferry` (sets kept, chains empty) or the table deleted
  t.equal(await be.rulesIntact(), false)
  t.ok(be.needFullSync, 'the next sync replaces the table')
  t.equal((await be.sync(stateOf([], 'IPv6'), new Set())).kind, 'full')
  rules = new Error('netlink: EPERM')
  t.equal(await be.rulesIntact(), false, 'a check that cannot answer counts as missing rules')
  t.ok(be.needFullSync)
  await be.cleanup()
  t.equal(f.calls.at(-1)?.stdin, 'add table ip6 ferry\ndelete table ip6 ferry\n')
})

t.test('a full sync carries the remembered affinity clients of the sets it declares, capped at their timeout', async t => {
  const f = fakeNft()
  const h = serviceHash(key(sticky.info))
  const set = `aff-${h}-cluster-${endpointTag('10.180.0.3', 80)}`
  let remembered: Map<string, RememberedClient[]> | Error = new Map([
    [set, [{ ip: '10.0.0.7', expiresMs: 5000 }, { ip: '10.0.0.8', expiresMs: 90_000 }]],
    ['aff-gone-cluster-x', [{ ip: '10.0.0.9', expiresMs: 5000 }]],
  ])
  const readAffinity = async (): Promise<Map<string, RememberedClient[]>> => { if (remembered instanceof Error) throw remembered; return remembered }
  const be = new NftablesBackend({ family: 'IPv4', exec: f.exec, countRules: NO_KERNEL.countRules, readAffinity })
  await be.sync(stateOf([web, sticky]), null)
  const text = f.calls.at(-1)?.stdin ?? ''
  const lines = text.split('\n')
  // sticky's timeout is 60 s: 90 s left on an old entry is capped to it.
  t.ok(lines.includes(`add element ip ferry ${set} { 10.0.0.7 expires 5000ms, 10.0.0.8 expires 60000ms }`), 'put back, capped')
  t.ok(lines.findIndex(l => l.startsWith(`add set ip ferry ${set} `)) < lines.findIndex(l => l.startsWith(`add element ip ferry ${set} `)), 'after the set is declared')
  t.notOk(text.includes('aff-gone'), 'a set the new table does not declare gets nothing')
  // A partial sync reads nothing and carries nothing; a reader that fails leaves a full sync without them.
  const before = f.calls.length
  const moved = desired(web.info, { cluster: [ep('10.180.0.1'), ep('10.180.0.9')] })
  await be.sync(stateOf([moved, sticky]), new Set([key(web.info)]))
  t.equal(f.calls.length, before + 1, 'one partial transaction')
  t.notOk(f.calls.at(-1)?.stdin.includes('expires'), 'with no carried clients')
  remembered = new Error('EPERM')
  be.requestFullSync()
  t.equal((await be.sync(stateOf([web, sticky]), new Set())).kind, 'full')
  t.notOk(f.calls.at(-1)?.stdin.includes('expires'), 'no clients when they cannot be read')
})

t.test('probeNftables', async t => {
  const seen: string[] = []
  const ok = await probeNftables(async (argv, stdin) => { seen.push(argv.join(' ')); t.equal(stdinText(stdin), PROBE_TEXT); return { code: 0, stdout: '', stderr: '' } })
  t.same(ok, { ok: true })
  t.same(seen, ['nft --check -f -'])
  const refused = await probeNftables(async () => ({ code: 1, stdout: '', stderr: 'x\n/dev/stdin:2:1-9: Error: syntax error, unexpected typeof\n' }))
  t.match(refused, { ok: false, reason: /refused.*Error: syntax error/ })
  const missing = await probeNftables(async () => { throw new Error('spawn nft ENOENT') })
  t.match(missing, { ok: false, reason: /not installed.*ENOENT/ })
})

t.test('chooseProxyMode', async t => {
  const yes = async (): Promise<{ ok: true }> => ({ ok: true })
  const no = (reason: string) => async (): Promise<{ ok: false, reason: string }> => ({ ok: false, reason })
  const cfg = (proxyMode: 'auto' | 'iptables' | 'ipvs' | 'nftables') => ({ proxyMode, ipvsScheduler: 'rr' as const })
  t.same(await chooseProxyMode(cfg('auto'), yes, yes), { mode: 'ipvs', reason: 'auto: the kernel has IPVS and its rr scheduler' })
  t.match(await chooseProxyMode(cfg('auto'), no('no ip_vs'), yes), { mode: 'nftables', reason: /IPVS unavailable \(no ip_vs\).*nftables probe passed/ })
  t.match(await chooseProxyMode(cfg('auto'), no('no ip_vs'), no('no nft')), { mode: 'iptables', reason: /no ip_vs.*no nft/ })
  t.same(await chooseProxyMode(cfg('nftables'), no('unused'), yes), { mode: 'nftables', reason: 'configured' })
  await t.rejects(chooseProxyMode(cfg('nftables'), yes, no('nft is not installed')), { code: 'FERRY_ERR_CONFIG', message: /--proxy-mode nftables: nft is not installed/ })
  t.same(await chooseProxyMode(cfg('iptables'), no('x'), no('y')), { mode: 'iptables', reason: 'configured' })
})

t.test('the tracer plans with each mode\'s options: nftables and IPVS offer no localhost NodePorts and reject other ports of their VIPs', async t => {
  const input = { family: 'IPv4' as const, localhostNodePorts: true }
  t.match(modeProxyOptions('nftables', input), { localhostNodePorts: false, rejectOtherPorts: 'clusterIPs' })
  t.match(modeProxyOptions('iptables', input), { localhostNodePorts: true })
  t.equal(modeProxyOptions('iptables', input).rejectOtherPorts, undefined)
  t.match(modeProxyOptions('ipvs', input), { localhostNodePorts: false, rejectOtherPorts: 'boundVIPs' })
})

t.test('mode: present and cleanup cover both families; no nft means nothing to remove', async t => {
  const f = fakeNft()
  f.tables = 'table inet filter\ntable ip ferry\ntable ip6 ferry\n'
  t.equal(await nftablesModePresent(f.exec), true)
  t.same(await cleanupNftablesMode(f.exec), [])
  t.equal(f.calls.at(-1)?.stdin, 'add table ip ferry\ndelete table ip ferry\nadd table ip6 ferry\ndelete table ip6 ferry\n')
  const missing: Exec = async () => { throw new Error('spawn nft ENOENT') }
  t.equal(await nftablesModePresent(missing), false)
  t.same(await cleanupNftablesMode(missing), [])
  f.tables = 'table ip6 ferry\n'
  f.fail.push({ code: 1, stdout: '', stderr: 'Error: Operation not permitted\n' })
  t.match(await cleanupNftablesMode(f.exec), [{ what: 'nftables tables IPv6' }])
})

t.test('an idle table is built in two steps: nft declares, netlink loads the elements; the kernel ends the same', async t => {
  const { FakeNft } = await import('../../pkg/proxy/nftables/fake-nft.js')
  const { syntheticState } = await import('../../pkg/proxy/iptables/fixtures.js')
  const special = [
    sticky,
    desired(svcInfo({ name: 'lb', clusterIP: '172.30.0.20', nodePort: 30020, loadBalancerIPs: ['192.0.2.20'], loadBalancerSourceRanges: ['203.0.113.0/24'], externalPolicyLocal: true }),
      { cluster: [ep('10.180.0.5'), ep('10.180.0.6', 80, { isLocal: true })], local: [ep('10.180.0.6', 80, { isLocal: true })] }),
    desired(svcInfo({ name: 'none', clusterIP: '172.30.0.21', externalIPs: ['192.0.2.21'], nodePort: 30021 }), { cluster: [] }),
    desired(svcInfo({ name: 'dns', clusterIP: '172.30.0.22', protocol: 'UDP', port: 53 }), { cluster: [ep('10.180.0.7', 53)] }),
  ]
  const state = stateOf([...syntheticState(300, 3).services.values(), ...special])
  const text = new FakeNft()
  const beText = new NftablesBackend({ family: 'IPv4', exec: text.exec, ...NO_KERNEL, loadElements: text.loadElements })
  const two = new FakeNft()
  let idle = true
  const beTwo = new NftablesBackend({ family: 'IPv4', exec: two.exec, countRules: async () => idle ? 0 : 1, readAffinity: NO_KERNEL.readAffinity, loadElements: two.loadElements })
  const a = await beText.sync(state, null)
  const b = await beTwo.sync(state, null)
  t.equal(text.elementBatches.length, 0, 'a live table: one nft transaction, nothing over netlink')
  t.ok(two.elementBatches.length > 0, 'an idle table: the elements went over netlink')
  t.notMatch(two.calls[0]?.stdin, /add element ip ferry (service-ips|vip-cluster-3|hairpin|no-endpoint-cluster) /, 'nft got no element of an encodable map')
  t.same(b.summary, a.summary, 'the same counts either way')
  t.equal(two.model.listTable('ip', 'ferry'), text.model.listTable('ip', 'ferry'), 'the same table either way')
  idle = false

  // Partial syncs continue from the two-step table as from the atomic one.
  const changed = new Set([key((special[1] as typeof sticky).info), key((special[3] as typeof sticky).info)])
  const next = stateOf([...syntheticState(300, 3).services.values(), special[0] as typeof sticky,
    desired((special[1] as typeof sticky).info, { cluster: [ep('10.180.0.5')], local: [] }), special[2] as typeof sticky,
    desired((special[3] as typeof sticky).info, { cluster: [ep('10.180.0.8', 53), ep('10.180.0.9', 53)] })])
  t.equal((await beText.sync(next, changed)).kind, 'partial')
  t.equal((await beTwo.sync(next, changed)).kind, 'partial')
  t.equal(two.model.listTable('ip', 'ferry'), text.model.listTable('ip', 'ferry'), 'the same table after a partial sync')
})

t.test('a refused element batch fails the sync; the retry replaces the half-built table in one transaction', async t => {
  const { FakeNft } = await import('../../pkg/proxy/nftables/fake-nft.js')
  const nft = new FakeNft()
  const asked: string[] = []
  const countRules = async (_f: string, chain: string): Promise<number> => {
    asked.push(chain)
    return nft.model.tables().length === 0 ? 0 : 1
  }
  const registry = new Registry()
  const be = new NftablesBackend({ family: 'IPv4', exec: nft.exec, countRules, readAffinity: NO_KERNEL.readAffinity, loadElements: nft.loadElements, metrics: nftablesMetrics(registry) })
  nft.failElementsNext()
  await t.rejects(be.sync(stateOf([web, sticky]), null), { code: 'FERRY_ERR_APPLY', message: /refused elements of/ })
  t.ok(be.needFullSync, 'the next sync is full')
  t.match(await registry.getSingleMetricAsString('kubeproxy_sync_proxy_rules_nftables_sync_failures_total'), /ip_family="IPv4"} 1/)
  const batches = nft.elementBatches.length
  t.equal((await be.sync(stateOf([web, sticky]), new Set())).kind, 'full')
  t.equal(nft.elementBatches.length, batches, 'the table now has rules: no netlink load, one atomic replacement')
  t.match(nft.calls.at(-1)?.stdin, /add element ip ferry service-ips \{ 172\.30\.0\.10 \. tcp \. 80 : goto cip-cluster-2[ ,]/)
  t.same(asked, ['nat-prerouting', 'nat-prerouting'], 'each full sync asked whether the table serves')
})

t.test('remembered clients or an unanswerable rule count keep the full sync in one nft transaction', async t => {
  const nft = fakeNft()
  let loads = 0
  const loadElements = async (): Promise<void> => { loads++ }
  const h = serviceHash(key(sticky.info))
  const set = `aff-${h}-cluster-${endpointTag('10.180.0.3', 80)}`
  const be = new NftablesBackend({
    family: 'IPv4', exec: nft.exec, countRules: async () => 0, loadElements,
    readAffinity: async () => new Map([[set, [{ ip: '10.0.0.7', expiresMs: 5000 }]]]),
  })
  await be.sync(stateOf([sticky]), null)
  t.equal(loads, 0, 'remembered clients: the old table serves them until the atomic swap')
  t.match(nft.calls.at(-1)?.stdin, /add element ip ferry service-ips .*\n[^]*10\.0\.0\.7 expires 5000ms/)
  const be2 = new NftablesBackend({ family: 'IPv4', exec: nft.exec, countRules: async () => { throw new Error('EPERM') }, readAffinity: NO_KERNEL.readAffinity, loadElements })
  await be2.sync(stateOf([web]), null)
  t.equal(loads, 0, 'unknown: treated as serving')
  t.match(nft.calls.at(-1)?.stdin, /add element ip ferry service-ips/)
})
