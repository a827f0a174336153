// IptablesBackend against a recording fake Exec: no root, no kernel.
import t from 'tap'
import { Registry } from 'prom-client'
import { iptablesMetrics } from '../../pkg/proxy/iptables/metrics.js'
import { IptablesBackend } from '../../pkg/proxy/iptables/backend.js'
import { desired, ep, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import { chooseVariant } from '../../pkg/proxy/iptables/mode.js'
import { stdinText, type Exec, type ExecResult } from '../../pkg/exec/exec.js'
import { lineAt, restore } from '../../pkg/proxy/iptables/restore.js'
import { isFerryError } from '../../pkg/errors/errors.js'
import { servicePortKey } from '../../pkg/proxy/types.js'

interface Call { argv: readonly string[], stdin?: string }
function fakeExec (opts: { save?: Record<string, string>, failRestore?: () => ExecResult | null } = {}): { exec: Exec, calls: Call[] } {
  const calls: Call[] = []
  const exec: Exec = async (argv, stdin) => {
    calls.push({ argv, ...(stdin !== undefined ? { stdin: stdinText(stdin) } : {}) })
    const tool = argv[0] ?? ''
    if (tool.endsWith('-restore')) return opts.failRestore?.() ?? { code: 0, stdout: '', stderr: '' }
    if (tool.endsWith('-save')) return { code: 0, stdout: opts.save?.[argv[2] ?? ''] ?? '', stderr: '' }
    if (argv.includes('-C')) return { code: 1, stdout: '', stderr: 'Bad rule' }
    return { code: 0, stdout: '', stderr: '' }
  }
  return { exec, calls }
}
const restores = (calls: Call[]): Call[] => calls.filter(c => (c.argv[0] ?? '').endsWith('-restore'))
const saves = (calls: Call[]): Call[] => calls.filter(c => (c.argv[0] ?? '').endsWith('-save'))

const a = desired(svcInfo({ name: 'a', clusterIP: '172.30.0.1' }), { cluster: [ep('10.180.0.1')] })
const b = desired(svcInfo({ name: 'b', clusterIP: '172.30.0.2' }), { cluster: [ep('10.180.0.2')] })

t.test('first sync is full, scans the kernel once, adds missing jumps; then partial syncs touch nothing else', async t => {
  const { exec, calls } = fakeExec({ save: { nat: '*nat\n:PREROUTING ACCEPT [0:0]\n:FERRY-SVC-STALESTALESTALE - [0:0]\n:KUBE-SVC-X - [0:0]\nCOMMIT\n' } })
  const be = new IptablesBackend({ family: 'IPv4', exec, variant: 'legacy', clusterCIDR: '10.0.0.0/8' })
  const r1 = await be.sync(stateOf([a, b]), new Set([servicePortKey(a.info)]))
  t.equal(r1.kind, 'full', 'first sync is full whatever changed says')
  t.same(saves(calls).map(c => c.argv), [['iptables-legacy-save', '-t', 'nat'], ['iptables-legacy-save', '-t', 'filter']])
  const first = restores(calls)[0]
  t.same(first?.argv, ['iptables-legacy-restore', '-w', '5', '--noflush', '--counters'])
  t.match(first?.stdin, /-X FERRY-SVC-STALESTALESTALE\n/)
  t.notMatch(first?.stdin, /KUBE-SVC-X/)
  t.same(calls.map(c => c.argv[0]), ['iptables-legacy-save', 'iptables-legacy-save', 'iptables-legacy-restore'], 'two saves and one restore: no per-rule calls')
  t.match(first?.stdin, /\n-I PREROUTING 1 -m comment --comment "ferry service portals" -j FERRY-SERVICES\n(.*\n)*COMMIT\n$/, 'missing nat jumps ride in the restore')
  t.match(first?.stdin, /\*filter\n(.*\n)*-I FORWARD 1 -m comment --comment "ferry forwarding rules" -j FERRY-FORWARD\n(.*\n)*COMMIT\n\*nat/, 'filter jumps before the filter COMMIT')
  t.match(first?.stdin, /\*mangle\n:FERRY-PROXY-CANARY - \[0:0\]\nCOMMIT\n/, 'mangle canary')
  t.equal(be.needFullSync, false)

  calls.length = 0
  const a2 = desired(a.info, { cluster: [ep('10.180.0.9')] })
  const r2 = await be.sync(stateOf([a2, b]), new Set([servicePortKey(a.info)]))
  t.equal(r2.kind, 'partial')
  t.same(calls.map(c => c.argv[0]), ['iptables-legacy-restore'], 'one restore, no save, no per-rule calls')
  t.ok((r2.summary.natRules ?? 0) < (r2.summary.natRulesTotal ?? 0))
  t.equal(r2.summary.natRulesTotal, r1.summary.natRulesTotal)
})

t.test('the canary check runs beside syncs: it holds none back, and a flush it finds mid-sync outlives that sync', async t => {
  const base = fakeExec()
  let hold: ((argv: readonly string[]) => boolean) | undefined
  const waiting: Array<() => void> = []
  let canary = true
  const exec: Exec = async (argv, stdin) => {
    if (hold?.(argv) === true) await new Promise<void>(resolve => { waiting.push(resolve) })
    if (argv.includes('-S')) return canary ? { code: 0, stdout: '', stderr: '' } : { code: 1, stdout: '', stderr: 'No chain/target/match by that name.' }
    return await base.exec(argv, stdin)
  }
  const releaseAll = (): void => { for (const r of waiting.splice(0)) r() }
  const turn = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }
  const be = new IptablesBackend({ family: 'IPv4', exec, variant: 'legacy', clusterCIDR: '10.0.0.0/8' })
  const key = new Set([servicePortKey(a.info)])
  await be.sync(stateOf([a, b]), key)

  hold = argv => argv.includes('-S')
  const check = be.rulesIntact()
  await turn()
  t.equal(waiting.length, 1, 'the check waits on its first process')
  hold = undefined
  const a2 = desired(a.info, { cluster: [ep('10.180.0.9')] })
  const r = await Promise.race([be.sync(stateOf([a2, b]), key), new Promise<'held'>(resolve => setTimeout(() => { resolve('held') }, 2000))])
  t.not(r, 'held', 'a sync does not wait for the check in flight')
  releaseAll()
  t.equal(await check, true)

  hold = argv => (argv[0] ?? '').endsWith('-restore')
  const syncing = be.sync(stateOf([a, b]), key)
  await turn()
  t.equal(waiting.length, 1, 'the sync waits on its restore')
  hold = undefined
  canary = false
  t.equal(await be.rulesIntact(), false, 'the check finds the flush while the sync runs')
  releaseAll()
  t.equal((await syncing).kind, 'partial')
  t.equal(be.needFullSync, true, 'the flush outlives the sync that was running')
  canary = true
  t.equal((await be.sync(stateOf([a, b]), key)).kind, 'full')
  t.equal(be.needFullSync, false)
})

t.test('a failed partial restore makes the next sync full', async t => {
  let fail = false
  const { exec, calls } = fakeExec({
    failRestore: () => fail ? { code: 2, stdout: '', stderr: "iptables-restore v1.8.9 (legacy): Couldn't load target `X'\n\nError occurred at line: 3\n" } : null,
  })
  const registry = new Registry()
  const be = new IptablesBackend({ family: 'IPv4', exec, variant: 'nft', metrics: iptablesMetrics(registry) })
  await be.sync(stateOf([a]), null)
  const gauge = async (name: string): Promise<string> => (await registry.metrics()).split('\n').filter(l => l.startsWith(name + '{')).join('\n')
  t.match(await gauge('kubeproxy_sync_proxy_rules_iptables_total'), /ip_family="IPv4",table="nat"} \d+/, 'the mode owns its rule gauges')
  fail = true
  const err = await be.sync(stateOf([a, b]), new Set([servicePortKey(b.info)])).catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_APPLY'))
  t.match((err as Error).message, /iptables-nft-restore failed at line 3: :FERRY-EXTERNAL-SERVICES/)
  t.equal(be.needFullSync, true)
  t.match(await gauge('kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total'), /ip_family="IPv4"} 1/, 'and counts its partial restore failures')
  fail = false
  calls.length = 0
  const r = await be.sync(stateOf([a, b]), new Set([servicePortKey(b.info)]))
  t.equal(r.kind, 'full')
  t.equal(saves(calls).length, 2, 'rescans the kernel after a failure')
})

t.test('restore error carries the failing line', async t => {
  const exec: Exec = async () => ({ code: 1, stdout: '', stderr: 'iptables-restore: line 2 failed\n' })
  const err = await restore(exec, 'legacy', 'IPv4', '*nat\n-A BAD -j X\nCOMMIT\n').catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_APPLY'))
  t.same((err as { details: Record<string, unknown> }).details.lineText, '-A BAD -j X')
  t.equal(lineAt('a\nb\nc', 3), 'c')
  t.equal(lineAt('a\nb', 9), '')
})

t.test('jumps already in the kernel are not added again', async t => {
  const nat = '*nat\n:PREROUTING ACCEPT [0:0]\n:FERRY-SERVICES - [0:0]\n:FERRY-POSTROUTING - [0:0]\n' +
    '-A PREROUTING -m comment --comment "ferry service portals" -j FERRY-SERVICES\n' +
    '-A OUTPUT -m comment --comment "ferry service portals" -j FERRY-SERVICES\n' +
    '-A POSTROUTING -m comment --comment "ferry postrouting rules" -j FERRY-POSTROUTING\nCOMMIT\n'
  const { exec, calls } = fakeExec({ save: { nat } })
  const be = new IptablesBackend({ family: 'IPv4', exec, variant: 'legacy' })
  await be.sync(stateOf([a]), null)
  const payload = restores(calls)[0]?.stdin ?? ''
  const inserted = payload.split('\n').filter(l => l.startsWith('-I '))
  t.ok(inserted.length > 0)
  t.ok(inserted.every(l => !/^-I (PREROUTING|POSTROUTING) /.test(l) && !/FERRY-POSTROUTING/.test(l)), 'nat jumps present in the kernel are not added')
  const natSection = payload.slice(payload.indexOf('*nat\n'))
  t.notMatch(natSection.slice(0, natSection.indexOf('COMMIT')), /^-I /m, 'no jump added to nat at all')
})

t.test('state family mismatch is refused', async t => {
  const be = new IptablesBackend({ family: 'IPv6', exec: fakeExec().exec, variant: 'legacy' })
  await t.rejects(be.sync(stateOf([a]), null), { code: 'FERRY_ERR_APPLY' })
})

t.test('cleanup removes jumps and every FERRY- chain', async t => {
  const { exec, calls } = fakeExec({
    save: {
      nat: '*nat\n:FERRY-SERVICES - [0:0]\n:FERRY-SVC-AAAA - [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n',
      filter: '*filter\n:FERRY-FORWARD - [0:0]\nCOMMIT\n',
      mangle: '*mangle\n:FERRY-PROXY-CANARY - [0:0]\nCOMMIT\n',
    },
  })
  const be = new IptablesBackend({ family: 'IPv4', exec, variant: 'legacy' })
  await be.cleanup()
  t.ok(calls.some(c => c.argv.includes('-D') && c.argv.includes('POSTROUTING')))
  const payload = restores(calls)[0]?.stdin ?? ''
  t.match(payload, /\*nat\n:FERRY-SERVICES - \[0:0\]\n:FERRY-SVC-AAAA - \[0:0\]\n-X FERRY-SERVICES\n-X FERRY-SVC-AAAA\nCOMMIT/)
  t.match(payload, /\*filter\n:FERRY-FORWARD/)
  t.match(payload, /\*mangle\n:FERRY-PROXY-CANARY/)
  t.notMatch(payload, /KUBE-/)
  t.equal(be.needFullSync, true)
})

t.test('variant choice', async t => {
  const mk = (nftSave: string, legacyCode: number): Exec => async argv => {
    if (argv[0] === 'iptables-nft-save') return { code: 0, stdout: nftSave, stderr: '' }
    if (argv[0] === 'iptables-legacy') return { code: legacyCode, stdout: '', stderr: 'can\'t initialize iptables table `nat\'' }
    return { code: 127, stdout: '', stderr: '' }
  }
  t.equal((await chooseVariant('IPv4', mk('*nat\n:KUBE-SERVICES - [0:0]\n', 0))).variant, 'legacy')
  t.equal((await chooseVariant('IPv4', mk('*nat\n:FERRY-SERVICES - [0:0]\n', 0))).variant, 'nft')
  const c = await chooseVariant('IPv4', mk('', 3))
  t.equal(c.variant, 'nft')
  t.match(c.reason, /legacy iptables unusable/)
  const missing: Exec = async () => { throw new Error('ENOENT') }
  t.equal((await chooseVariant('IPv6', missing)).variant, 'nft')
})
