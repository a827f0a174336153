// IpvsCompanion against in-memory ipset and iptables: which programs run per sync (one ipset restore,
// at most one iptables-restore, never one call per member), what a change costs, recovery after a
// failure, and cleanup. The fake kernel state after each sync is traced like a fresh render of the same
// plans, so incremental writes are checked by behaviour, not by text.
import t, { type Test } from 'tap'
import { stdinText, type Exec, type ExecResult } from '../../pkg/exec/exec.js'
import { planPort, type PortPlan } from '../../pkg/proxy/plan.js'
import { svcInfo, localEp as local, remoteEp as remote, categorized as svc } from '../../pkg/proxy/iptables/fixtures.js'
import { loadRestore } from '../../pkg/proxy/iptables/trace.js'
import { IpvsCompanion } from '../../pkg/proxy/ipvs/companion-apply.js'
import { boundVIPs, defaultNodePortIPs, renderCompanion, resolveCompanionOptions, type CompanionOptionsInput } from '../../pkg/proxy/ipvs/companion.js'
import { desiredVirtualServers } from '../../pkg/proxy/ipvs/desired.js'
import { FakeIpset } from '../../pkg/proxy/ipvs/fake-ipset.js'
import { loadCompanion, traceIpvs } from '../../pkg/proxy/ipvs/trace.js'
import { isFerryError } from '../../pkg/errors/errors.js'
import type { DesiredServicePort } from '../../pkg/proxy/types.js'

const BUILTIN: Record<string, string[]> = {
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
}

/**
 * iptables-legacy as the companion uses it: restore (--noflush, one transaction per table, failing on a
 * missing set, a missing rule to delete or a chain still referenced), save, -S. nft is absent.
 */
class FakeIptables {
  tables = new Map<string, Map<string, string[]>>(Object.entries(BUILTIN).map(([t, cs]) => [t, new Map(cs.map(c => [c, []]))]))
  failRestore = false
  constructor (private readonly ipset: FakeIpset) {
    ipset.referenced = name => [...this.tables.values()].some(tb => [...tb.values()].some(rs => rs.some(r => r.includes(`--match-set ${name} `))))
  }

  readonly exec: Exec = async (argv, stdin): Promise<ExecResult> => {
    const tool = argv[0] ?? ''
    if (tool.startsWith('iptables-nft')) return { code: 1, stdout: '', stderr: 'iptables-nft: not available here' }
    if (tool === 'iptables-legacy-restore') return this.restore(stdinText(stdin))
    if (tool === 'iptables-legacy-save') return { code: 0, stdout: this.save(argv[argv.indexOf('-t') + 1] ?? ''), stderr: '' }
    if (tool === 'iptables-legacy') {
      const table = this.tables.get(argv[argv.indexOf('-t') + 1] ?? '')
      const si = argv.indexOf('-S')
      const chain = argv[si + 1]
      return chain === undefined || table?.has(chain) === true ? { code: 0, stdout: '', stderr: '' } : { code: 1, stdout: '', stderr: 'No chain/target/match by that name.' }
    }
    return await this.ipset.exec(argv, stdin)
  }

  save (table: string): string {
    const tb = this.tables.get(table) ?? new Map<string, string[]>()
    const out = [`*${table}`]
    for (const c of tb.keys()) out.push(`:${c} ${BUILTIN[table]?.includes(c) === true ? 'ACCEPT' : '-'} [0:0]`)
    for (const [c, rules] of tb) for (const r of rules) out.push(`-A ${c} ${r}`)
    out.push('COMMIT', '')
    return out.join('\n')
  }

  private restore (payload: string): ExecResult {
    if (this.failRestore) return { code: 1, stdout: '', stderr: 'iptables-restore: line 2 failed\n' }
    let work: Map<string, string[]> | undefined
    let name = ''
    const lines = payload.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] ?? ''
      const fail = (why: string): ExecResult => ({ code: 1, stdout: '', stderr: `iptables-restore: ${why}\nError occurred at line: ${i + 1}\n` })
      if (line === '' || line.startsWith('#')) continue
      if (line.startsWith('*')) { name = line.slice(1); work = new Map([...(this.tables.get(name) ?? new Map<string, string[]>())].map(([c, r]) => [c, [...r]])); continue }
      if (work === undefined) return fail('no table')
      if (line === 'COMMIT') { this.tables.set(name, work); work = undefined; continue }
      if (line.startsWith(':')) { work.set(line.slice(1, line.indexOf(' ')), []); continue }
      const m = /^(-[AIDX]) (\S+)(?: 1)?(?: (.*))?$/.exec(line)
      if (m === null) return fail(`bad line ${line}`)
      const [, op, chain = '', spec = ''] = m
      for (const s of spec.matchAll(/--match-set (\S+) /g)) if (!this.ipset.sets.has(s[1] ?? '')) return fail(`Set ${s[1] ?? ''} doesn't exist.`)
      const rules = work.get(chain)
      if (rules === undefined) return fail(`chain ${chain} does not exist`)
      if (op === '-A') rules.push(spec)
      else if (op === '-I') rules.unshift(spec)
      else if (op === '-D') {
        const at = rules.indexOf(spec)
        if (at < 0) return fail('Bad rule (does a matching rule exist in that chain?)')
        rules.splice(at, 1)
      } else {
        if ([...work.values()].some(rs => rs.some(r => r.endsWith(`-j ${chain}`)))) return fail(`chain ${chain} is still referenced`)
        work.delete(chain)
      }
    }
    return { code: 0, stdout: '', stderr: '' }
  }
}

function kernel (): { ipset: FakeIpset, ipt: FakeIptables, calls: string[][], stdins: string[], exec: Exec } {
  const ipset = new FakeIpset()
  const ipt = new FakeIptables(ipset)
  const calls: string[][] = []
  const stdins: string[] = []
  const exec: Exec = async (argv, stdin) => { calls.push([...argv]); stdins.push(stdinText(stdin)); return await ipt.exec(argv, stdin) }
  return { ipset, ipt, calls, stdins, exec }
}

const OPTS: CompanionOptionsInput = { family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2', '192.168.1.2'] }
const o = resolveCompanionOptions(OPTS)
const plan = (sp: DesiredServicePort): PortPlan => planPort(sp, o)

const web = plan(svc(svcInfo({ name: 'web', clusterIP: '172.30.0.10', nodePort: 30080, loadBalancerIPs: ['1.2.3.4'], loadBalancerSourceRanges: ['203.0.113.0/25'] }),
  [local('10.180.0.1'), remote('10.180.1.1')]))
const loc = plan(svc(svcInfo({ name: 'loc', clusterIP: '172.30.0.11', nodePort: 30081, loadBalancerIPs: ['5.6.7.8'], externalPolicyLocal: true, healthCheckNodePort: 30011 }),
  [local('10.180.0.2'), remote('10.180.1.2')]))
const itl = plan(svc(svcInfo({ name: 'itl', clusterIP: '172.30.0.13', internalPolicyLocal: true }), [remote('10.180.1.4')]))
const empty = plan(svc(svcInfo({ name: 'empty', clusterIP: '172.30.0.14', nodePort: 30084 }), []))

const tools = (calls: string[][]): string[] => calls.map(c => c[0] === 'ipset' ? `ipset ${c[1] ?? ''}` : c[0] ?? '')

/** The fake kernel answers every packet as a fresh render of `plans` does. */
function sameBehaviour (t: Test, k: ReturnType<typeof kernel>, plans: PortPlan[], what: string): void {
  const render = renderCompanion(plans, o)
  const vs = desiredVirtualServers(plans, { family: 'IPv4', scheduler: 'rr', nodePortIPs: defaultNodePortIPs(o) })
  const want = loadCompanion('IPv4', render, vs)
  const have = { family: 'IPv4' as const, tables: loadRestore([k.ipt.save('mangle'), k.ipt.save('filter'), k.ipt.save('nat')]), sets: k.ipset, virtualServers: vs }
  const env = { localAddresses: ['192.168.0.2', '192.168.1.2', '127.0.0.1', ...boundVIPs(plans, o)] }
  let n = 0
  let bad = 0
  for (const p of plans) {
    const i = p.sp.info
    const dsts: Array<[string, number]> = [[i.clusterIP, i.port], [i.clusterIP, 9], ...i.loadBalancerIPs.map((ip): [string, number] => [ip, i.port])]
    if (i.nodePort !== 0) dsts.push(['192.168.0.2', i.nodePort], ['127.0.0.1', i.nodePort])
    for (const [dst, port] of dsts) {
      for (const src of ['10.0.0.2', '203.0.113.2', '203.0.113.200', '192.168.0.2', '127.0.0.1', ...p.allEndpoints.map(e => e.ip)]) {
        if (dst === '127.0.0.1' && src !== '127.0.0.1') continue
        const pkt = { src, dst, port, protocol: i.protocol }
        const a = traceIpvs(want, env, pkt)
        const b = traceIpvs(have, env, pkt)
        n++
        if (a.verdict !== b.verdict || JSON.stringify(a.endpoints) !== JSON.stringify(b.endpoints)) { bad++; t.fail(`${what}: ${src} -> ${dst}:${port}: want ${a.verdict}, kernel ${b.verdict}`, { paths: b.paths }) }
      }
    }
  }
  t.equal(bad, 0, `${what}: the kernel answers ${n} packets as a fresh render`)
}

t.test('first sync: sets, then the rules with their jumps; later syncs write only what changed', async t => {
  const k = kernel()
  const c = new IpvsCompanion({ ...OPTS, exec: k.exec, variant: 'legacy' })
  const r1 = await c.sync([web, loc, itl, empty])
  t.equal(r1.kind, 'full')
  t.same(tools(k.calls), ['ipset restore', 'iptables-legacy-save', 'iptables-legacy-save', 'iptables-legacy-save', 'iptables-legacy-restore'],
    'one ipset restore before the rules, three saves to find missing jumps, one iptables-restore: no per-member calls')
  t.same(k.calls[0], ['ipset', 'restore', '-exist'])
  t.same(k.calls.at(-1), ['iptables-legacy-restore', '-w', '5', '--noflush', '--counters'])
  t.match(k.ipt.save('nat'), /-A POSTROUTING -m comment --comment "ferry ipvs postrouting rules" -j FERRY-IPVS-POSTROUTING\n/, 'masquerade hooked before any virtual server exists')
  t.same([...k.ipset.sets.keys()].filter(n => n.endsWith('-T')), [], 'no temporary set left')
  sameBehaviour(t, k, [web, loc, itl, empty], 'first sync')

  k.calls.length = 0
  const r0 = await c.sync([web, loc, itl, empty])
  t.same(k.calls, [], 'nothing changed: no program runs')
  t.same([r0.setsWritten, r0.rulesWritten, r0.kind], [0, false, 'partial'])

  // A remote endpoint moves: no set holds it, so no program runs at all.
  const web1 = plan(svc(web.sp.info, [local('10.180.0.1'), remote('10.180.1.9')]))
  k.calls.length = 0
  const rRemote = await c.sync([web1, loc, itl, empty])
  t.same(k.calls, [], 'a remote endpoint change runs nothing')
  t.same(rRemote.setsWritten, 0)
  // A local endpoint moves: one ipset restore of add/del lines (the hairpin set), no iptables.
  const web2 = plan(svc(web.sp.info, [local('10.180.0.9'), remote('10.180.1.9')]))
  k.calls.length = 0
  k.stdins.length = 0
  const r2 = await c.sync([web2, loc, itl, empty])
  t.same(tools(k.calls), ['ipset restore'])
  t.same(r2.setsWritten, 1)
  t.equal(k.stdins[0], 'del FERRY-LOOP-BACK 10.180.0.1,tcp:80,10.180.0.1\nadd FERRY-LOOP-BACK 10.180.0.9,tcp:80,10.180.0.9\n', 'exactly the two changed members')
  sameBehaviour(t, k, [web2, loc, itl, empty], 'an endpoint change')

  // A new eTP=Local service brings members and one DNAT: the rules are rewritten, jumps are not re-added.
  const loc2 = plan(svc(svcInfo({ name: 'loc2', clusterIP: '172.30.0.15', nodePort: 30085, externalPolicyLocal: true }), [local('10.180.0.7')]))
  k.calls.length = 0
  const r3 = await c.sync([web2, loc, loc2, itl, empty])
  t.same(tools(k.calls), ['ipset restore', 'iptables-legacy-restore'], 'no save on a partial sync')
  t.ok(r3.rulesWritten)
  t.equal(k.ipt.save('nat').split('\n').filter(l => l.endsWith('-j FERRY-IPVS-SERVICES')).length, 2, 'PREROUTING and OUTPUT jump once each')
  sameBehaviour(t, k, [web2, loc, loc2, itl, empty], 'a new eTP=Local service')

  // Most of a set replaced: refilled through a temporary set and a swap.
  const big = Array.from({ length: 80 }, (_, i) => plan(svc(svcInfo({ name: `b${i}`, clusterIP: `172.30.9.${i + 1}` }), [local(`10.181.0.${i + 1}`)])))
  await c.sync([web2, ...big])
  k.calls.length = 0
  k.stdins.length = 0
  const bigger = big.map((p, i) => plan(svc(p.sp.info, [local(`10.182.0.${i + 1}`)])))
  await c.sync([web2, ...bigger])
  t.same(tools(k.calls), ['ipset restore'])
  t.match(k.stdins[0], /\nswap FERRY-LOOP-BACK-T FERRY-LOOP-BACK\ndestroy FERRY-LOOP-BACK-T\n/, 'the hairpin set is refilled and swapped in')
  t.notMatch(k.stdins[0], /swap FERRY-CLUSTER-IP-T/, 'unchanged sets are not touched')
  sameBehaviour(t, k, [web2, ...bigger], 'most members replaced')
})

t.test('a failed ipset restore or iptables-restore makes the next sync full and repairs the state', async t => {
  const k = kernel()
  const c = new IpvsCompanion({ ...OPTS, exec: k.exec, variant: 'legacy' })
  await c.sync([web, itl])
  k.ipset.failOn = 'add FERRY-LOOP-BACK'
  const err = await c.sync([web, loc, itl]).catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_APPLY'), 'coded error')
  t.match((err as Error).message, /ipset restore failed at line \d+: add FERRY-LOOP-BACK/, 'names the failing line')
  t.equal(c.needFullSync, true)
  k.ipset.failOn = undefined
  k.calls.length = 0
  const r = await c.sync([web, loc, itl])
  t.equal(r.kind, 'full')
  t.ok(tools(k.calls).includes('iptables-legacy-save'), 'the jumps are checked again')
  sameBehaviour(t, k, [web, loc, itl], 'after an ipset failure')

  // A new eTP=Local service needs a new DNAT rule, and the restore fails.
  const loc3 = plan(svc(svcInfo({ name: 'loc3', clusterIP: '172.30.0.16', loadBalancerIPs: ['5.6.7.10'], externalPolicyLocal: true }), [local('10.180.0.8')]))
  k.ipt.failRestore = true
  const err2 = await c.sync([web, loc, loc3, itl, empty]).catch((e: unknown) => e)
  t.ok(isFerryError(err2, 'FERRY_ERR_APPLY'))
  t.equal(c.needFullSync, true)
  k.ipt.failRestore = false
  t.equal((await c.sync([web, loc, loc3, itl, empty])).kind, 'full')
  sameBehaviour(t, k, [web, loc, loc3, itl, empty], 'after an iptables failure')
})

t.test('changed addresses refill the sets; lost rules are noticed', async t => {
  const k = kernel()
  const c = new IpvsCompanion({ ...OPTS, exec: k.exec, variant: 'legacy' })
  await c.sync([web, loc])
  t.ok(k.ipset.members('FERRY-EXTERNAL-MASQ').includes('192.168.1.2,tcp:30080'))
  await c.sync([web, loc], { nodePortIPs: ['192.168.0.2'] })
  t.notOk(k.ipset.members('FERRY-EXTERNAL-MASQ').includes('192.168.1.2,tcp:30080'), 'a NodePort address that went is gone from the sets')
  t.equal(await c.rulesIntact(), true)
  k.ipt.tables.get('nat')?.delete('FERRY-IPVS-SERVICES')
  t.equal(await c.rulesIntact(), false, 'a flushed chain is noticed')
  t.equal(c.needFullSync, true)
  await c.sync([web, loc], { nodePortIPs: ['192.168.0.2'] })
  t.equal(await c.rulesIntact(), true)
  k.ipset.sets.delete('FERRY-DROP')
  t.equal(await c.rulesIntact(), false, 'a missing set is noticed')
})

t.test('the rule check runs beside syncs: it holds none back, and a loss it finds mid-sync outlives that sync', async t => {
  const k = kernel()
  let hold: ((argv: readonly string[]) => boolean) | undefined
  const waiting: Array<() => void> = []
  const exec: Exec = async (argv, stdin) => {
    if (hold?.(argv) === true) await new Promise<void>(resolve => { waiting.push(resolve) })
    return await k.exec(argv, stdin)
  }
  const releaseAll = (): void => { for (const r of waiting.splice(0)) r() }
  const turn = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }
  const c = new IpvsCompanion({ ...OPTS, exec, variant: 'legacy' })
  await c.sync([web, loc])

  hold = argv => argv[0] === 'iptables-legacy'
  const check = c.rulesIntact()
  await turn()
  t.equal(waiting.length, 1, 'the check waits on its first process')
  hold = undefined
  const web2 = plan(svc(web.sp.info, [local('10.180.0.9'), remote('10.180.1.1')]))
  const first = await Promise.race([c.sync([web2, loc]), new Promise<'held'>(resolve => setTimeout(() => { resolve('held') }, 2000))])
  t.not(first, 'held', 'a sync does not wait for the check in flight')
  releaseAll()
  t.equal(await check, true)
  sameBehaviour(t, k, [web2, loc], 'after a sync beside a check')

  hold = argv => argv[0] === 'ipset' && argv[1] === 'restore'
  const syncing = c.sync([web, loc])
  await turn()
  t.equal(waiting.length, 1, 'the sync waits on its ipset restore')
  hold = undefined
  k.ipset.sets.delete('FERRY-DROP')
  t.equal(await c.rulesIntact(), false, 'the check finds the loss while the sync runs')
  releaseAll()
  t.equal((await syncing).kind, 'partial')
  t.equal(c.needFullSync, true, 'the loss outlives the sync that was running')
  t.equal((await c.sync([web, loc])).kind, 'full')
  sameBehaviour(t, k, [web, loc], 'rebuilt after the loss')
  t.equal(await c.rulesIntact(), true)
})

t.test('the variant is chosen like the iptables mode, and cleanup removes everything of this family', async t => {
  const k = kernel()
  const c = new IpvsCompanion({ ...OPTS, exec: k.exec })
  await c.sync([web, loc, itl, empty])
  t.equal(c.variant, 'legacy', 'nft unusable here, legacy works')
  k.ipset.restore('create KEEP-ME hash:ip family inet\ncreate FERRY6-DROP hash:ip,port family inet6\n', false)
  k.calls.length = 0
  await c.cleanup()
  for (const table of ['mangle', 'filter', 'nat']) t.notMatch(k.ipt.save(table), /FERRY-IPVS-/, `${table}: no chain or jump left`)
  t.same([...k.ipset.sets.keys()].sort(), ['FERRY6-DROP', 'KEEP-ME'], "only this family's sets are destroyed")
  t.same(tools(k.calls).filter(x => x === 'ipset restore').length, 1, 'one ipset restore destroys them all')
  t.equal(c.needFullSync, true)
  k.calls.length = 0
  await c.cleanup()
  t.same([...k.ipset.sets.keys()].sort(), ['FERRY6-DROP', 'KEEP-ME'], 'cleaning up twice is harmless: the same sets stay')
  t.equal(tools(k.calls).filter(x => x === 'ipset restore').length, 0, 'and the second finds no set to destroy')
  await c.sync([web])
  sameBehaviour(t, k, [web], 'a sync after cleanup')
})
