// The nftables renderer: DesiredState → planPort() → ONE `nft -f -` transaction in the layout's flat
// command syntax. A full render replaces the table atomically (add + delete + re-declare); a partial
// render diffs the changed service ports against what the kernel holds (NftOwned) and emits only element
// deltas, new shared objects and the changed Services' own chains. Pure: no kernel access, no clock.
import type { IPFamily } from '../../net/ip.js'
import { planPort, type PortPlan } from '../plan.js'
import type { DesiredState } from '../types.js'
import { fixedObjects, sharedObjects, type ChainDecl, type Decls, type SetDecl } from './layout.js'
import { familyWords, type FamilyWords } from './names.js'
import { settleContests, UNCLAIMED } from './contest.js'
import { NO_OBJECTS, serviceObjects, type ServiceObjects } from './objects.js'
import type { NftablesOptions } from './options.js'
import { NftOwned, countedKey, countedParts, countsOf, wait, type NftCounts } from './owned.js'

export interface NftRender {
  readonly kind: 'full' | 'partial'
  /** The transaction; '' when a partial render found nothing to change. */
  readonly text: string
  /** What the kernel holds once `text` is applied. */
  readonly owned: NftOwned
  /** Per-service chains this render flushes; delete them in a later transaction (kernels < 6.2). */
  readonly staleChains: readonly string[]
  /** What the transaction writes (elements: added plus deleted; chains: declared or rewritten). */
  readonly written: NftCounts
  readonly totals: NftCounts
}

/**
 * Elements per `add element` / `delete element` line. Measured with nft 1.0.6 loading 10k Services × 5
 * endpoints (113k elements) in a throwaway netns: batches of 250, 1000, 4000 and one line per map all
 * loaded in 1.0–1.7 s, within the noise of a shared 2-core machine; 1000 keeps lines (and nft's error
 * quotes) short without a measurable cost.
 */
export const ELEMENT_BATCH = 1000

interface LineSink { push: (line: string) => unknown }

class Elements {
  private readonly byMap = new Map<string, string[]>()
  count = 0
  /** `element` is `key : value` for a map, `key` for a set or a delete. */
  add (map: string, element: string): void {
    let list = this.byMap.get(map)
    if (list === undefined) { list = []; this.byMap.set(map, list) }
    list.push(element)
    this.count++
  }

  lines (verb: 'add' | 'delete', obj: string, out: LineSink): void {
    for (const [map, list] of this.byMap) {
      for (let i = 0; i < list.length; i += ELEMENT_BATCH) {
        out.push(`${verb} element ${obj} ${map} { ${list.slice(i, i + ELEMENT_BATCH).join(', ')} }`)
      }
    }
  }

  /** Adds an element and prints its map's batch once it holds ELEMENT_BATCH (a full render's stream). */
  addFlushing (map: string, element: string, obj: string, out: LineSink): void {
    this.add(map, element)
    const list = this.byMap.get(map) as string[]
    if (list.length >= ELEMENT_BATCH) { out.push(`add element ${obj} ${map} { ${list.join(', ')} }`); this.byMap.delete(map) }
  }
}

/**
 * Characters per streamed piece of a full render: about a pipe's capacity, so `nft -f -` parses one
 * piece while the next is rendered.
 */
export const PIECE_CHARS = 64 * 1024

/** Lines collected into pieces of about PIECE_CHARS, each ending in a newline. */
class Lines {
  private lines: string[] = []
  private size = 0
  push (line: string): void { this.lines.push(line); this.size += line.length + 1 }
  get ready (): boolean { return this.size >= PIECE_CHARS }
  take (): string {
    const piece = this.lines.length === 0 ? '' : this.lines.join('\n') + '\n'
    this.lines = []
    this.size = 0
    return piece
  }
}

function chainLine (obj: string, c: ChainDecl): string {
  return c.hook === undefined ? `add chain ${obj} ${c.name}` : `add chain ${obj} ${c.name} ${c.hook}`
}
function setLine (obj: string, s: SetDecl): string {
  return `add ${s.kind} ${obj} ${s.name} { ${s.body} }`
}
function ruleLines (obj: string, c: ChainDecl, out: LineSink): number {
  for (const r of c.rules) out.push(`add rule ${obj} ${c.name} ${r}`)
  return c.rules.length
}

function rulesOf (d: Decls): number {
  let n = 0
  for (const c of d.chains) n += c.rules.length
  return n
}

/**
 * Where a full render can put elements instead of printing them: the maps `takes` accepts go to `add`
 * (encoded for netlink), the others are printed as before. The elements still count in the totals.
 */
export interface ElementSink {
  takes: (map: string) => boolean
  add: (map: string, element: string) => void
}

/** A full render without its text, which went out in pieces. */
export type NftStreamed = Omit<NftRender, 'text'>

/**
 * The full transaction in pieces, rendered while they are consumed: the table's replacement and the
 * fixed objects first, then service by service the shared objects and chains it is the first to use
 * (chains, sets, then rules: every reference resolves to an earlier line) and its elements, printed
 * per map in batches of ELEMENT_BATCH. The generator's return value is the render's outcome.
 */
export function * streamFull (state: DesiredState, opts: NftablesOptions, sink?: ElementSink): Generator<string, NftStreamed, undefined> {
  const w = familyWords(state.family)
  const obj = w.obj
  const claims = new Map<string, string>()
  const waiting = new Map<string, Set<string>>()
  const services = new Map<string, ServiceObjects>()
  const counted = new Map<string, number>()
  const shared = new Set<string>()
  const out = new Lines()
  const elements = new Elements()
  let chains = 0
  let rules = 0
  const put = (map: string, element: string): void => {
    if (sink?.takes(map) === true) { sink.add(map, element); elements.count++ } else elements.addFlushing(map, element, obj, out)
  }
  const declare = (decls: readonly Decls[]): void => {
    for (const d of decls) for (const c of d.chains) { out.push(chainLine(obj, c)); chains++ }
    for (const d of decls) for (const s of d.sets) out.push(setLine(obj, s))
    for (const d of decls) for (const c of d.chains) rules += ruleLines(obj, c, out)
  }

  out.push(`add table ${obj}`)
  out.push(`delete table ${obj}`)
  out.push(`add table ${obj}`)
  declare([fixedObjects(w, opts)])
  for (const [key, sp] of state.services) {
    const o = serviceObjects(key, planPort(sp, opts), w, opts, claims)
    services.set(key, o)
    wait(waiting, key, o, 1)
    const decls: Decls[] = []
    for (const id of o.shared) if (!shared.has(id)) { shared.add(id); decls.push(sharedObjects(id, w, opts)) }
    if (o.chains.length > 0 || o.sets.length > 0) decls.push(o)
    if (decls.length > 0) declare(decls)
    const e = o.elements
    for (let i = 0; i < e.length; i += 2) put(e[i] as string, e[i + 1] as string)
    const c = o.counted
    for (let i = 0; i < c.length; i += 2) {
      const mk = countedKey(c[i] as string, c[i + 1] as string)
      const n = counted.get(mk) ?? 0
      counted.set(mk, n + 1)
      if (n === 0) put(c[i] as string, c[i + 1] as string)
    }
    if (out.ready) yield out.take()
  }
  elements.lines('add', obj, out)
  yield out.take()
  const totals = { rules, elements: elements.count, chains }
  return {
    kind: 'full',
    owned: new NftOwned(state.family, services, claims, waiting, counted, shared, new Set(), totals),
    staleChains: [],
    written: totals,
    totals,
  }
}

/** The full transaction as one text (tests, error quotes): streamFull's pieces joined. */
export function renderFull (state: DesiredState, opts: NftablesOptions, sink?: ElementSink): NftRender {
  const pieces: string[] = []
  const it = streamFull(state, opts, sink)
  for (;;) {
    const next = it.next()
    if (next.done === true) return { ...next.value, text: pieces.join('') }
    pieces.push(next.value)
  }
}

/** The key of an element (`key : value` or `key`). */
function keyOf (element: string): string {
  const i = element.indexOf(' : ')
  return i < 0 ? element : element.slice(0, i)
}

/** "map\0key" → element, over a service's elements. */
function elementMap (o: ServiceObjects): Map<string, string> {
  const m = new Map<string, string>()
  const e = o.elements
  for (let i = 0; i < e.length; i += 2) m.set(`${e[i] as string}\0${keyOf(e[i + 1] as string)}`, e[i + 1] as string)
  return m
}

/**
 * The partial transaction for the `changed` service ports. `prev` is consumed: its maps are updated in
 * place and handed on in the result's `owned` (render the next partial from that, or fully after a failure).
 */
export function renderPartial (state: DesiredState, changed: ReadonlySet<string>, prev: NftOwned, opts: NftablesOptions): NftRender {
  const w = familyWords(state.family)
  const obj = w.obj
  const { services, claims, waiting, counted, shared, stale } = prev.take()
  let { rules, elements: elementTotal, chains: chainTotal } = prev.totals
  const olds = new Map<string, ServiceObjects>()
  const plans = new Map<string, PortPlan>()
  for (const key of changed) {
    olds.set(key, services.get(key) ?? NO_OBJECTS)
    const sp = state.services.get(key)
    if (sp !== undefined) plans.set(key, planPort(sp, opts))
  }

  // Release the changed services' entry keys first, so keys can move between them in one sync.
  const released: string[] = []
  for (const key of changed) {
    const old = services.get(key)
    if (old === undefined) continue
    wait(waiting, key, old, -1)
    for (const e of old.entries) if (claims.get(e) === key) { claims.delete(e); released.push(e) }
  }

  const adds = new Elements()
  const dels = new Elements()
  const newShared: string[] = []
  const addChains: string[] = []
  const flushChains: string[] = []
  const delSets: string[] = []
  const addSets: SetDecl[] = []
  const chainRules: ChainDecl[] = []
  const staleChains: string[] = []
  const countedBefore = new Map<string, number>()
  const touch = (c: readonly string[], d: number): void => {
    for (let i = 0; i < c.length; i += 2) {
      const mk = countedKey(c[i] as string, c[i + 1] as string)
      const n = counted.get(mk) ?? 0
      if (!countedBefore.has(mk)) countedBefore.set(mk, n)
      if (n + d === 0) counted.delete(mk)
      else counted.set(mk, n + d)
    }
  }

  const renderOne = (key: string, old: ServiceObjects, p: PortPlan | undefined): void => {
    const nu = p === undefined ? NO_OBJECTS : serviceObjects(key, p, w, opts, claims)
    if (p === undefined) services.delete(key)
    else services.set(key, nu)
    wait(waiting, key, nu, 1)
    const oc = countsOf(old)
    const nc = countsOf(nu)
    rules += nc.rules - oc.rules
    elementTotal += nc.elements - oc.elements
    chainTotal += nc.chains - oc.chains

    // Elements: a changed value is a delete and an add (an add of an existing key fails).
    const before = elementMap(old)
    const e = nu.elements
    for (let i = 0; i < e.length; i += 2) {
      const map = e[i] as string
      const el = e[i + 1] as string
      const k = keyOf(el)
      const mk = `${map}\0${k}`
      const was = before.get(mk)
      if (was === el) { before.delete(mk); continue }
      if (was !== undefined) { dels.add(map, k); before.delete(mk) }
      adds.add(map, el)
    }
    for (const mk of before.keys()) {
      const cut = mk.indexOf('\0')
      dels.add(mk.slice(0, cut), mk.slice(cut + 1))
    }

    // Chains: every old one is flushed; wanted ones are (re)filled, the rest are stale.
    const wanted = new Set(nu.chains.map(c => c.name))
    for (const c of old.chains) {
      flushChains.push(c.name)
      if (!wanted.has(c.name)) { staleChains.push(c.name); stale.add(c.name) }
    }
    const had = new Set(old.chains.map(c => c.name))
    for (const c of nu.chains) {
      if (!had.has(c.name)) addChains.push(c.name)
      stale.delete(c.name)
      chainRules.push(c)
    }

    // Sets: a gone or redefined set is deleted after the flush that drops its references.
    const oldSets = new Map(old.sets.map(s => [s.name, s.body]))
    const newSets = new Map(nu.sets.map(s => [s.name, s.body]))
    for (const [name, body] of oldSets) if (newSets.get(name) !== body) delSets.push(name)
    for (const s of nu.sets) if (oldSets.get(s.name) !== s.body) addSets.push(s)

    touch(old.counted, -1)
    touch(nu.counted, +1)
    for (const id of nu.shared) if (!shared.has(id)) { shared.add(id); newShared.push(id) }
  }
  // Keys wanted by more than one service port go where a full render puts them: that may re-render
  // unchanged ones (keeping their own keys), all in claim order.
  const wants = new Map<string, readonly string[]>()
  for (const [key, p] of plans) wants.set(key, serviceObjects(key, p, w, opts, UNCLAIMED).entries)
  const { heirs, order } = settleContests({ changed, wants, released, claims, waiting, services, state })
  for (const key of order) {
    if (!heirs.has(key)) { renderOne(key, olds.get(key) ?? NO_OBJECTS, plans.get(key)); continue }
    const old = services.get(key) ?? NO_OBJECTS
    const sp = state.services.get(key)
    wait(waiting, key, old, -1)
    renderOne(key, old, sp === undefined ? undefined : planPort(sp, opts))
  }
  for (const [mk, n] of countedBefore) {
    const now = counted.get(mk) ?? 0
    if (n > 0 && now === 0) { dels.add(...countedParts(mk)); elementTotal-- }
    if (n === 0 && now > 0) { adds.add(...countedParts(mk)); elementTotal++ }
  }

  const out: string[] = []
  let rulesWritten = 0
  let chainsWritten = 0
  // New shared objects first: the service chains' rules and the dispatch elements point at them.
  const sharedDecls = newShared.map(id => sharedObjects(id, w, opts))
  for (const d of sharedDecls) for (const s of d.sets) out.push(setLine(obj, s))
  for (const d of sharedDecls) for (const c of d.chains) { out.push(chainLine(obj, c)); chainsWritten++; chainTotal++ }
  for (const d of sharedDecls) { rulesWritten += rulesOf(d); rules += rulesOf(d); for (const c of d.chains) ruleLines(obj, c, out) }
  for (const name of addChains) out.push(`add chain ${obj} ${name}`)
  dels.lines('delete', obj, out)
  for (const name of flushChains) out.push(`flush chain ${obj} ${name}`)
  for (const name of delSets) out.push(`delete set ${obj} ${name}`)
  for (const s of addSets) out.push(setLine(obj, s))
  for (const c of chainRules) { rulesWritten += ruleLines(obj, c, out); chainsWritten++ }
  adds.lines('add', obj, out)
  if (out.length > 0) out.push('')
  const totals = { rules, elements: elementTotal, chains: chainTotal }
  return {
    kind: 'partial',
    text: out.join('\n'),
    owned: new NftOwned(state.family, services, claims, waiting, counted, shared, stale, totals),
    staleChains,
    written: { rules: rulesWritten, elements: adds.count + dels.count, chains: chainsWritten + staleChains.length },
    totals,
  }
}

/** The separate, later transaction that deletes flushed stale chains. */
export function renderDeleteChains (family: IPFamily, chains: Iterable<string>): string {
  const w: FamilyWords = familyWords(family)
  const out: string[] = []
  for (const c of chains) out.push(`delete chain ${w.obj} ${c}`)
  if (out.length > 0) out.push('')
  return out.join('\n')
}
