// Partial renders of the nftables mode: exact deltas, and a strict in-memory model of the kernel that
// refuses what nft would refuse (deleting what is absent, adding an existing key with another value,
// deleting a referenced chain or set), so a sequence of partial syncs is checked to end where a fresh
// full render starts.
import t, { type Test } from 'tap'
import { renderFull, renderPartial, type NftRender } from '../../pkg/proxy/nftables/render.js'
import { resolveNftablesOptions } from '../../pkg/proxy/nftables/options.js'
import { endpointTag, serviceHash } from '../../pkg/proxy/nftables/names.js'
import { desired, ep, stateOf, svcInfo, syntheticState } from '../../pkg/proxy/iptables/fixtures.js'
import { servicePortKey, type DesiredServicePort, type DesiredState, type EndpointInfo } from '../../pkg/proxy/types.js'

const OPTS = resolveNftablesOptions({ family: 'IPv4', clusterCIDR: '10.0.0.0/8' })
const key = (s: DesiredServicePort): string => servicePortKey(s.info)
const lines = (text: string): string[] => text.split('\n').filter(l => l !== '')

/** What `nft -f` would leave in a ferry table, refusing transactions that nft refuses. */
class Kernel {
  chains = new Map<string, string[]>()
  sets = new Set<string>()
  elements = new Map<string, Map<string, string>>()

  apply (text: string): void {
    for (const line of lines(text)) this.line(line)
  }

  private line (l: string): void {
    const m = /^(add|delete|flush) (table|chain|rule|map|set|element) ip ferry ?(\S*) ?(.*)$/.exec(l)
    if (m === null) throw new Error(`unparsed: ${l}`)
    const [, verb, what, name = '', rest = ''] = m
    const fail = (why: string): never => { throw new Error(`${why}: ${l}`) }
    if (what === 'table') { this.chains.clear(); this.sets.clear(); this.elements.clear(); return }
    if (what === 'chain') {
      if (verb === 'add') { if (!this.chains.has(name)) this.chains.set(name, []); return }
      const rules = this.chains.get(name) ?? fail('no such chain')
      if (verb === 'flush') { rules.length = 0; return }
      if (rules.length > 0) fail('chain not empty')
      if (this.referenced(`goto ${name}`)) fail('chain in use')
      this.chains.delete(name)
      return
    }
    if (what === 'rule') {
      const rules = this.chains.get(name) ?? fail('no such chain')
      for (const ref of rest.matchAll(/(?:goto|jump) (\S+)/g)) if (!this.chains.has(ref[1] ?? '')) fail(`rule references missing chain ${ref[1]}`)
      for (const ref of rest.matchAll(/@(\S+)/g)) if (!this.sets.has(ref[1] ?? '')) fail(`rule references missing set ${ref[1]}`)
      rules.push(rest)
      return
    }
    if (what === 'map' || what === 'set') {
      if (verb === 'add') { this.sets.add(name); if (!this.elements.has(name)) this.elements.set(name, new Map()); return }
      if (!this.sets.has(name)) fail('no such set')
      for (const rules of this.chains.values()) if (rules.some(r => r.includes(`@${name} `) || r.endsWith(`@${name}`))) fail('set in use')
      this.sets.delete(name)
      this.elements.delete(name)
      return
    }
    const set = this.elements.get(name) ?? fail('no such set')
    for (const e of rest.replace(/^\{ | \}$/g, '').split(', ')) {
      const i = e.indexOf(' : ')
      const k = i < 0 ? e : e.slice(0, i)
      if (verb === 'delete') { if (!set.delete(k)) fail(`delete of absent element ${k}`); continue }
      const was = set.get(k)
      if (was !== undefined && was !== e) fail(`element exists with another value ${k}`)
      const target = /goto (\S+)$/.exec(e)?.[1]
      if (target !== undefined && !this.chains.has(target)) fail(`element references missing chain ${target}`)
      set.set(k, e)
    }
  }

  private referenced (needle: string): boolean {
    for (const rules of this.chains.values()) if (rules.some(r => r.includes(needle) && new RegExp(`${needle}$`).test(r))) return true
    for (const set of this.elements.values()) for (const e of set.values()) if (e.endsWith(needle)) return true
    return false
  }

  /** Map/set name → sorted elements; chains → rules (stale, empty chains left out). */
  snapshot (): { elements: Record<string, string[]>, chains: Record<string, string[]> } {
    const elements: Record<string, string[]> = {}
    for (const [n, s] of this.elements) if (s.size > 0) elements[n] = [...s.values()].sort()
    const chains: Record<string, string[]> = {}
    for (const [n, r] of this.chains) if (r.length > 0) chains[n] = r
    return { elements, chains }
  }
}

function fresh (state: DesiredState): { kernel: Kernel, r: NftRender } {
  const kernel = new Kernel()
  const r = renderFull(state, OPTS)
  kernel.apply(r.text)
  return { kernel, r }
}

/**
 * The kernel after partial syncs holds what a fresh full render of `state` holds: the same elements and
 * chains, plus only shared objects that are no longer used (they stay until the next full sync).
 */
function sameAsFresh (t: Test, kernel: Kernel, state: DesiredState, msg: string): void {
  const got = kernel.snapshot()
  const want = fresh(state).kernel.snapshot()
  t.same(got.elements, want.elements, `${msg}: elements`)
  const extra = Object.keys(got.chains).filter(c => want.chains[c] === undefined)
  t.same(extra.filter(c => !/^(pick-(vip|np)|cip|ext-(vip|np)|xl)-/.test(c)), [], `${msg}: no leftover per-service chain`)
  for (const [name, rules] of Object.entries(want.chains)) t.same(got.chains[name], rules, `${msg}: chain ${name}`)
}

const eps = (n: number, base = 1): EndpointInfo[] => Array.from({ length: n }, (_, i) => ep(`10.180.0.${base + i}`, 8080))
const web = desired(svcInfo({ name: 'web', clusterIP: '172.30.0.10', nodePort: 30080 }), { cluster: eps(5) })
const api = desired(svcInfo({ name: 'api', clusterIP: '172.30.0.11' }), { cluster: eps(5, 1) })
const sticky = desired(svcInfo({ name: 'sticky', clusterIP: '172.30.0.13', stickyMaxAgeSeconds: 60 }), { cluster: eps(2, 20) })
const BASE = stateOf([web, api, sticky])

t.test('one endpoint change touches only that Service\'s elements', async t => {
  const { kernel, r } = fresh(BASE)
  const web2 = desired(web.info, { cluster: [...eps(4), ep('10.180.0.5', 9090)] })
  const p = renderPartial(stateOf([web2, api, sticky]), new Set([key(web)]), r.owned, OPTS)
  t.equal(p.kind, 'partial')
  t.same(lines(p.text), [
    'delete element ip ferry vip-cluster-5 { 172.30.0.10 . tcp . 80 . 4 }',
    'delete element ip ferry np-cluster-5 { tcp . 30080 . 4 }',
    'add element ip ferry vip-cluster-5 { 172.30.0.10 . tcp . 80 . 4 : 10.180.0.5 . 9090 }',
    'add element ip ferry np-cluster-5 { tcp . 30080 . 4 : 10.180.0.5 . 9090 }',
  ], 'a value change is a delete and an add of that key only; hairpin refcounts unchanged')
  t.same(p.written, { rules: 0, elements: 4, chains: 0 })
  kernel.apply(p.text)
  sameAsFresh(t, kernel, stateOf([web2, api, sticky]), 'after')
  t.equal(renderPartial(stateOf([web2, api, sticky]), new Set(), p.owned, OPTS).text, '', 'nothing changed: empty transaction')
})

t.test('a Service moving from 5 to 6 endpoints moves maps and declares the new shared objects once', async t => {
  const { kernel, r } = fresh(BASE)
  const web6 = desired(web.info, { cluster: eps(6) })
  const p = renderPartial(stateOf([web6, api, sticky]), new Set([key(web)]), r.owned, OPTS)
  const l = lines(p.text)
  t.ok(l.includes('add map ip ferry vip-cluster-6 { typeof ip daddr . meta l4proto . th dport . numgen random mod 6 : ip daddr . th dport ; }'))
  t.ok(l.includes('add chain ip ferry cip-cluster-6') && l.includes('add chain ip ferry ext-np-6') && l.includes('add chain ip ferry pick-np-cluster-6'))
  t.ok(l.includes('delete element ip ferry vip-cluster-5 { 172.30.0.10 . tcp . 80 . 0, 172.30.0.10 . tcp . 80 . 1, 172.30.0.10 . tcp . 80 . 2, 172.30.0.10 . tcp . 80 . 3, 172.30.0.10 . tcp . 80 . 4 }'))
  t.ok(l.includes('delete element ip ferry service-ips { 172.30.0.10 . tcp . 80 }'))
  t.ok(l.includes('add element ip ferry service-ips { 172.30.0.10 . tcp . 80 : goto cip-cluster-6 }'))
  t.ok(l.includes('add element ip ferry hairpin { 10.180.0.6 . 10.180.0.6 }'))
  t.notOk(l.some(e => e.includes('172.30.0.11')), 'api untouched')
  kernel.apply(p.text)
  sameAsFresh(t, kernel, stateOf([web6, api, sticky]), 'after')
  // api follows to 6: the shared objects now exist, so only elements move.
  const api6 = desired(api.info, { cluster: eps(6) })
  const q = renderPartial(stateOf([web6, api6, sticky]), new Set([key(api)]), p.owned, OPTS)
  t.notOk(lines(q.text).some(e => e.startsWith('add map') || e.startsWith('add chain') || e.startsWith('add rule')), 'element-only')
  kernel.apply(q.text)
  sameAsFresh(t, kernel, stateOf([web6, api6, sticky]), 'after')
})

t.test('deleting Services: elements go, refcounted hairpin elements stay while used', async t => {
  const { kernel, r } = fresh(BASE)
  const p = renderPartial(stateOf([api, sticky]), new Set([key(web)]), r.owned, OPTS)
  t.notOk(lines(p.text).some(e => e.startsWith('delete element ip ferry hairpin')), 'api still uses 10.180.0.1-5')
  t.ok(lines(p.text).every(e => e.startsWith('delete element')))
  kernel.apply(p.text)
  sameAsFresh(t, kernel, stateOf([api, sticky]), 'after')
  const q = renderPartial(stateOf([sticky]), new Set([key(api)]), p.owned, OPTS)
  t.ok(lines(q.text).includes('delete element ip ferry hairpin { 10.180.0.1 . 10.180.0.1, 10.180.0.2 . 10.180.0.2, 10.180.0.3 . 10.180.0.3, 10.180.0.4 . 10.180.0.4, 10.180.0.5 . 10.180.0.5 }'))
  kernel.apply(q.text)
  sameAsFresh(t, kernel, stateOf([sticky]), 'after')
  t.equal(q.totals.elements, fresh(stateOf([sticky])).r.totals.elements, 'running element total matches a fresh render')
})

t.test('cluster-ips: a ClusterIP stays while one of its ports is left, goes with the last', async t => {
  const dns = desired(svcInfo({ name: 'dns', clusterIP: '172.30.0.53', portName: 'tcp', port: 53 }), { cluster: eps(1, 30) })
  const dnsUDP = desired(svcInfo({ name: 'dns', clusterIP: '172.30.0.53', portName: 'udp', port: 53, protocol: 'UDP' }), { cluster: eps(1, 30) })
  const { kernel, r } = fresh(stateOf([web, dns, dnsUDP]))
  t.same(kernel.snapshot().elements['cluster-ips'], ['172.30.0.10', '172.30.0.53'])
  const p = renderPartial(stateOf([web, dnsUDP]), new Set([key(dns)]), r.owned, OPTS)
  t.notOk(lines(p.text).some(e => e.includes('cluster-ips')), 'the UDP port still holds 172.30.0.53')
  kernel.apply(p.text)
  sameAsFresh(t, kernel, stateOf([web, dnsUDP]), 'one port gone')
  const q = renderPartial(stateOf([web]), new Set([key(dnsUDP)]), p.owned, OPTS)
  t.ok(lines(q.text).includes('delete element ip ferry cluster-ips { 172.30.0.53 }'))
  kernel.apply(q.text)
  sameAsFresh(t, kernel, stateOf([web]), 'the last port gone')
  const moved = desired(svcInfo({ name: 'web', clusterIP: '172.30.0.20', nodePort: 30080 }), { cluster: eps(5) })
  const m = renderPartial(stateOf([moved]), new Set([key(web)]), q.owned, OPTS)
  kernel.apply(m.text)
  sameAsFresh(t, kernel, stateOf([moved]), 'a new ClusterIP')
  t.same(kernel.snapshot().elements['cluster-ips'], ['172.30.0.20'])
})

t.test('an affinity Service removed: chains flushed and listed stale, sets deleted at once', async t => {
  const { kernel, r } = fresh(BASE)
  const h = serviceHash(key(sticky))
  const [e0, e1] = [endpointTag('10.180.0.20', 8080), endpointTag('10.180.0.21', 8080)]
  const p = renderPartial(stateOf([web, api]), new Set([key(sticky)]), r.owned, OPTS)
  const l = lines(p.text)
  const chains = [`ep-${h}-cluster-${e0}`, `ep-${h}-cluster-${e1}`, `aff-${h}-cluster`, `svc-${h}`]
  t.same([...p.staleChains].sort(), [...chains].sort())
  for (const c of chains) t.ok(l.includes(`flush chain ip ferry ${c}`), `flush ${c}`)
  t.ok(l.includes(`delete set ip ferry aff-${h}-cluster-${e0}`) && l.includes(`delete set ip ferry aff-${h}-cluster-${e1}`))
  t.ok(l.indexOf('delete element ip ferry service-ips { 172.30.0.13 . tcp . 80 }') < l.indexOf(`flush chain ip ferry svc-${h}`), 'dispatch removed before the flush')
  t.ok(l.indexOf(`flush chain ip ferry ep-${h}-cluster-${e0}`) < l.indexOf(`delete set ip ferry aff-${h}-cluster-${e0}`), 'set deleted after the chain that used it is flushed')
  t.notOk(l.some(e => e.startsWith('delete chain')), 'chains are deleted by a later transaction')
  kernel.apply(p.text)
  t.same([...p.owned.stale].sort(), [...chains].sort())
  // Coming back before the deferred delete: the stale chains are owned again, not deleted later.
  const q = renderPartial(BASE, new Set([key(sticky)]), p.owned, OPTS)
  kernel.apply(q.text)
  t.same(q.owned.stale.size, 0)
  sameAsFresh(t, kernel, BASE, 'after')
  t.throws(() => renderPartial(BASE, new Set(), p.owned, OPTS), /consumed/, 'an ownership is rendered from once')
})

t.test('an endpoint joining or leaving an affinity Service keeps the others\' remembered clients', async t => {
  const { kernel, r } = fresh(BASE)
  const h = serviceHash(key(sticky))
  const keep = `aff-${h}-cluster-${endpointTag('10.180.0.21', 8080)}`
  // A client the kernel remembered for 10.180.0.21 (the second endpoint in address order).
  kernel.apply(`add element ip ferry ${keep} { 10.0.0.99 }\n`)
  // 10.180.0.19 joins and sorts first; 10.180.0.20 leaves: 10.180.0.21 is now the second of 2 again, but a
  // different pair. Its set and chain are the same objects, untouched.
  const moved = desired(sticky.info, { cluster: [ep('10.180.0.19', 8080), ep('10.180.0.21', 8080)] })
  const p = renderPartial(stateOf([web, api, moved]), new Set([key(sticky)]), r.owned, OPTS)
  const l = lines(p.text)
  t.notOk(l.some(x => x.includes(`set ip ferry ${keep}`)), 'the set of the endpoint that stays is neither deleted nor redeclared')
  t.ok(l.includes(`delete set ip ferry aff-${h}-cluster-${endpointTag('10.180.0.20', 8080)}`), 'the set of the endpoint that left is deleted')
  kernel.apply(p.text)
  t.same(kernel.snapshot().elements[keep], ['10.0.0.99'], 'the remembered client is still there')
  t.same(kernel.snapshot().chains[`ep-${h}-cluster-${endpointTag('10.180.0.21', 8080)}`],
    [`update @${keep} { ip saddr }`, 'meta l4proto tcp dnat ip to 10.180.0.21:8080'], 'and its chain still leads to 10.180.0.21')
})

t.test('two Services claiming one VIP and NodePort: the first owns them, the other takes over when it goes', async t => {
  const first = desired(svcInfo({ name: 'first', clusterIP: '172.30.0.50', nodePort: 30050 }), { cluster: eps(2, 1) })
  const second = desired(svcInfo({ name: 'second', clusterIP: '172.30.0.50', nodePort: 30050 }), { cluster: eps(3, 10) })
  const both = stateOf([web, first, second])
  const { kernel, r } = fresh(both)
  const vip = (k: Kernel): string[] => (k.snapshot().elements['service-ips'] ?? []).filter(e => e.startsWith('172.30.0.50 '))
  t.same(vip(kernel), ['172.30.0.50 . tcp . 80 : goto cip-cluster-2'], 'the first Service in order owns the VIP')
  t.same(r.owned.waiting.get('172.30.0.50 . tcp . 80'), new Set([key(second)]), 'the other one waits for it')

  // The owner goes: one partial sync hands both keys to the waiting Service, as a full render would.
  const after = stateOf([web, second])
  const p = renderPartial(after, new Set([key(first)]), r.owned, OPTS)
  kernel.apply(p.text)
  t.same(vip(kernel), ['172.30.0.50 . tcp . 80 : goto cip-cluster-3'], 'the waiting Service owns the VIP now')
  t.match(p.text, /add element ip ferry service-nodeports \{ tcp \. 30050 : goto ext-np-3 \}/, 'and the NodePort')
  t.equal(p.owned.waiting.size, 0, 'nobody waits any more')
  sameAsFresh(t, kernel, after, 'after the hand-over')

  // An unrelated change walks no heir: the unchanged Service is not re-rendered.
  const p2 = renderPartial(stateOf([web, second]), new Set([key(web)]), p.owned, OPTS)
  t.equal(p2.text, '', 'nothing changed, nothing written')
})

t.test('60 random partial syncs never fail and end equal to a fresh full render', async t => {
  let seed = 13
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  const services = new Map<string, DesiredServicePort>()
  for (const s of syntheticState(40, 3).services.values()) services.set(key(s), s)
  let state: DesiredState = { family: 'IPv4', services: new Map(services) }
  const { kernel, r } = fresh(state)
  let owned = r.owned
  const names = [...services.keys()]
  for (let i = 0; i < 60; i++) {
    const changed = new Set<string>()
    for (let j = 0; j <= rnd(3); j++) {
      const k = names[rnd(names.length)] as string
      const sp = services.get(k)
      changed.add(k)
      const n = rnd(7)
      const kind = rnd(6)
      const base = sp ?? [...syntheticState(40, 3).services.values()][names.indexOf(k)] as DesiredServicePort
      if (kind === 0) { services.delete(k); continue }
      // kind 5: a contested VIP and port, so keys pass between Services as owners change or go.
      const contested = kind === 5 ? { clusterIP: `172.30.99.${rnd(2)}`, port: 80, protocol: 'TCP' as const } : {}
      const info = { ...base.info, ...contested, stickyMaxAgeSeconds: kind === 1 ? 30 + rnd(3) : 0, loadBalancerIPs: kind === 2 ? [`1.2.3.${rnd(4)}`] : [], loadBalancerSourceRanges: kind === 2 ? ['203.0.113.0/25'] : [], externalPolicyLocal: kind === 3 }
      const list = Array.from({ length: n }, (_, x) => ep(`10.200.${rnd(3)}.${x}`, 8080))
      services.set(k, desired(info, { cluster: list, local: kind === 3 ? list.slice(0, rnd(n + 1)) : null, hasAny: n > 0 || rnd(2) === 0 }))
    }
    state = { family: 'IPv4', services: new Map(services) }
    const p = renderPartial(state, changed, owned, OPTS)
    t.doesNotThrow(() => kernel.apply(p.text), `partial ${i}`)
    owned = p.owned
  }
  sameAsFresh(t, kernel, state, 'after 60 partial syncs')
  t.equal(owned.totals.elements, fresh(state).r.totals.elements, 'element total tracked')
})
