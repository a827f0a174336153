// An in-memory nftables ruleset that applies `nft -f` transactions of the ferry dialect (flat add/delete/
// flush commands, /tmp/nft-layout.md) with the kernel's answers: a whole transaction or nothing, ENOENT for
// missing objects, EBUSY for chains and sets still referenced, EEXIST for a key re-added with another value.
// The fake `nft` binary (fake-nft.ts) and the packet tracer (trace.ts) read it.
import {
  canonicalValue, NftSyntaxError, parseKey, parseRule, ruleChains, ruleSets, selectorType,
  type NftRule, type NftSelector, type NftVerdict,
} from './model-rule.js'

export type NftFamily = 'ip' | 'ip6' | 'inet'
export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting'

export interface NftBaseChain {
  readonly type: 'nat' | 'filter' | 'route'
  readonly hook: NftHook
  readonly priority: number
  readonly policy: 'accept' | 'drop'
}

export interface NftChain {
  readonly name: string
  /** Null for a regular chain (reached only by jump/goto). */
  readonly base: NftBaseChain | null
  readonly rules: readonly NftRule[]
}

/** A map element's value: a verdict (`goto x`) or data slots (`10.0.0.1 . 80`); null in plain sets. */
export type NftElementValue = { readonly verdict: NftVerdict } | { readonly data: readonly string[] } | null

export interface NftSet {
  readonly name: string
  readonly isMap: boolean
  /** One type per key slot (`ipv4_addr`, `inet_proto`, `inet_service`, `integer`). */
  readonly keyTypes: readonly string[]
  /** `verdict`, data slot types, or null for a set. */
  readonly dataTypes: 'verdict' | readonly string[] | null
  /** The declaration as written (compared when the set is added again). */
  readonly declaration: string
  readonly flags: readonly string[]
  /** Canonical key (`10.96.0.10 . tcp . 80`) to value. */
  readonly elements: ReadonlyMap<string, NftElementValue>
}

export interface NftTable {
  readonly family: NftFamily
  readonly name: string
  readonly chains: ReadonlyMap<string, NftChain>
  /** Sets and maps share one namespace, as in the kernel. */
  readonly sets: ReadonlyMap<string, NftSet>
}

/** A refused transaction: the 1-based line, its text, and nft's reason. */
export class NftError extends Error {
  constructor (readonly line: number, readonly text: string, readonly reason: string) {
    super(`line ${line}: ${reason}: ${text}`)
  }

  /** What nft prints on stderr. */
  stderr (): string {
    return `/dev/stdin:${this.line}:1-${Math.max(1, this.text.length)}: Error: ${this.reason}\n${this.text}\n${'^'.repeat(Math.max(1, this.text.length))}\n`
  }
}

/** A kernel refusal inside one command; the line is added by apply(). */
class Refusal extends Error {}
const ENOENT = 'Could not process rule: No such file or directory'
const EBUSY = 'Could not process rule: Device or resource busy'
const EEXIST = 'Could not process rule: File exists'

const FAMILIES: ReadonlySet<string> = new Set(['ip', 'ip6', 'inet'])
const HOOKS: ReadonlySet<string> = new Set(['prerouting', 'input', 'forward', 'output', 'postrouting'])
const TYPES: ReadonlySet<string> = new Set(['ipv4_addr', 'ipv6_addr', 'inet_proto', 'inet_service', 'integer', 'mark'])
const PRIORITIES: ReadonlyMap<string, number> = new Map([['raw', -300], ['mangle', -150], ['dstnat', -100], ['filter', 0], ['security', 50], ['srcnat', 100]])

/** Splits a line into words; `{ } , ; :`-free words stay whole, quoted strings are one word, `#` starts a comment. */
export function tokenize (line: string): string[] {
  const out: string[] = []
  let i = 0
  while (i < line.length) {
    const ch = line[i] as string
    if (ch === ' ' || ch === '\t' || ch === '\r') { i++; continue }
    if (ch === '#') break
    if (ch === '"') {
      const end = line.indexOf('"', i + 1)
      if (end < 0) throw new NftSyntaxError('unterminated string')
      out.push(line.slice(i + 1, end))
      i = end + 1
      continue
    }
    if (ch === '{' || ch === '}' || ch === ',' || ch === ';') { out.push(ch); i++; continue }
    let j = i
    while (j < line.length && !' \t\r{},;"#'.includes(line[j] as string)) j++
    out.push(line.slice(i, j))
    i = j
  }
  return out
}

const tableKey = (family: string, name: string): string => `${family} ${name}`

interface MTable { family: NftFamily, name: string, chains: Map<string, MChain>, sets: Map<string, MSet> }
interface MChain { name: string, base: NftBaseChain | null, rules: NftRule[] }
interface MSet extends Omit<NftSet, 'elements'> { elements: Map<string, NftElementValue> }

/** Copy-on-write view of the tables for one transaction: an object is copied the first time it is written. */
class Txn {
  readonly tables: Map<string, MTable>
  private readonly own = new WeakSet<object>()
  constructor (base: ReadonlyMap<string, MTable>) { this.tables = new Map(base) }

  table (family: string, name: string): MTable {
    const t = this.tables.get(tableKey(family, name))
    if (t === undefined) throw new Refusal(ENOENT)
    if (this.own.has(t)) return t
    const c: MTable = { ...t, chains: new Map(t.chains), sets: new Map(t.sets) }
    this.own.add(c)
    this.tables.set(tableKey(family, name), c)
    return c
  }

  chain (t: MTable, name: string): MChain {
    const ch = t.chains.get(name)
    if (ch === undefined) throw new Refusal(ENOENT)
    if (this.own.has(ch)) return ch
    const c: MChain = { ...ch, rules: [...ch.rules] }
    this.own.add(c)
    t.chains.set(name, c)
    return c
  }

  set (t: MTable, name: string): MSet {
    const s = t.sets.get(name)
    if (s === undefined) throw new Refusal(ENOENT)
    if (this.own.has(s)) return s
    const c: MSet = { ...s, elements: new Map(s.elements) }
    this.own.add(c)
    t.sets.set(name, c)
    return c
  }

  fresh<T extends object>(o: T): T { this.own.add(o); return o }
}

/** Splits `a ; b ; c` (the inside of a declaration block) into statements. */
function statements (tokens: readonly string[]): string[][] {
  const out: string[][] = [[]]
  for (const w of tokens) {
    if (w === ';') out.push([])
    else (out[out.length - 1] as string[]).push(w)
  }
  return out.filter(s => s.length > 0)
}

/** `{ ... }` at the end of a command: its inner tokens (null if absent). */
function block (rest: readonly string[]): string[] | null {
  if (rest.length === 0) return null
  if (rest[0] !== '{' || rest[rest.length - 1] !== '}') throw new NftSyntaxError(`syntax error, unexpected "${rest[0] ?? ''}"`)
  return rest.slice(1, -1)
}

function parsePriority (words: readonly string[]): number {
  const [a = '', op, b] = words
  const base = PRIORITIES.get(a) ?? Number(a)
  const delta = b === undefined ? 0 : Number(b)
  if (!Number.isInteger(base) || !Number.isInteger(delta) || (op !== undefined && op !== '+' && op !== '-')) throw new NftSyntaxError(`invalid priority "${words.join(' ')}"`)
  return op === '-' ? base - delta : base + delta
}

function parseBase (inner: readonly string[]): NftBaseChain | null {
  let base: { type?: string, hook?: string, priority?: number, policy?: string } = {}
  for (const st of statements(inner)) {
    if (st[0] === 'type') {
      const hookAt = st.indexOf('hook')
      const prioAt = st.indexOf('priority')
      if (hookAt !== 2 || prioAt !== 4) throw new NftSyntaxError('syntax error in chain type: want "type T hook H priority P"')
      base = { ...base, type: st[1], hook: st[3], priority: parsePriority(st.slice(5)) }
    } else if (st[0] === 'policy' && st.length === 2) base.policy = st[1]
    else if (st[0] === 'comment') continue
    else throw new NftSyntaxError(`syntax error, unexpected "${st[0] ?? ''}" in chain declaration`)
  }
  if (base.type === undefined) return null
  if (base.type !== 'nat' && base.type !== 'filter' && base.type !== 'route') throw new NftSyntaxError(`unknown chain type "${base.type}"`)
  if (!HOOKS.has(base.hook ?? '')) throw new NftSyntaxError(`unknown chain hook "${base.hook ?? ''}"`)
  const policy = base.policy ?? 'accept'
  if (policy !== 'accept' && policy !== 'drop') throw new NftSyntaxError(`unknown chain policy "${policy}"`)
  return { type: base.type, hook: base.hook as NftHook, priority: base.priority ?? 0, policy }
}

/** Splits `a . b . c` into slots. */
function slots (words: readonly string[]): string[][] {
  const out: string[][] = [[]]
  for (const w of words) {
    if (w === '.') out.push([])
    else (out[out.length - 1] as string[]).push(w)
  }
  return out
}

const typesOf = (key: readonly NftSelector[]): string[] => key.map(selectorType)

function parseSetDecl (name: string, isMap: boolean, inner: readonly string[]): Omit<MSet, 'elements'> & { inline: string[][] } {
  let keyTypes: string[] | undefined
  let dataTypes: 'verdict' | string[] | null = null
  let flags: string[] = []
  let inline: string[][] = []
  const decl: string[] = []
  for (const st of statements(inner)) {
    if (st[0] === 'type' || st[0] === 'typeof') {
      const colon = st.indexOf(':')
      const keyWords = st.slice(1, colon < 0 ? undefined : colon)
      const dataWords = colon < 0 ? null : st.slice(colon + 1)
      if (isMap !== (dataWords !== null)) throw new NftSyntaxError(isMap ? 'a map needs "key : data" types' : 'a set has no data type')
      if (st[0] === 'type') {
        keyTypes = slots(keyWords).map(s => s.join(' '))
        if (dataWords !== null) dataTypes = dataWords.length === 1 && dataWords[0] === 'verdict' ? 'verdict' : slots(dataWords).map(s => s.join(' '))
      } else {
        keyTypes = typesOf(parseKey(keyWords))
        if (dataWords !== null) dataTypes = dataWords.length === 1 && dataWords[0] === 'verdict' ? 'verdict' : typesOf(parseKey(dataWords))
      }
      for (const t of [...keyTypes, ...(Array.isArray(dataTypes) ? dataTypes : [])]) {
        if (!TYPES.has(t)) throw new NftSyntaxError(`unsupported type "${t}"`)
      }
      decl.push(st.join(' '))
    } else if (st[0] === 'flags') {
      flags = st.slice(1).filter(w => w !== ',')
      decl.push(st.join(' '))
    } else if ((st[0] === 'timeout' || st[0] === 'size' || st[0] === 'comment') && st.length === 2) decl.push(st.join(' '))
    else if (st[0] === 'elements' && st[1] === '=') inline = elementList(st.slice(2))
    else throw new NftSyntaxError(`syntax error, unexpected "${st[0] ?? ''}" in set declaration`)
  }
  if (keyTypes === undefined) throw new NftSyntaxError(`set ${name} needs a type`)
  return { name, isMap, keyTypes, dataTypes, flags, declaration: decl.join(' ; '), inline }
}

/** `{ e1, e2 }` into each element's words. */
function elementList (words: readonly string[]): string[][] {
  const inner = block(words) ?? []
  const out: string[][] = [[]]
  for (const w of inner) {
    if (w === ',') out.push([])
    else (out[out.length - 1] as string[]).push(w)
  }
  return out.filter(e => e.length > 0)
}

function canonicalSlots (types: readonly string[], words: readonly string[], what: string): string[] {
  const parts = slots(words)
  const vals = parts.map((p, i) => (p.length === 1 && types[i] !== undefined ? canonicalValue(types[i] as string, p[0] as string) : null))
  if (parts.length !== types.length || vals.some(v => v === null)) {
    throw new Refusal(`invalid data type, expected concatenation of (${types.join(', ')}) for ${what} "${words.join(' ')}"`)
  }
  return vals as string[]
}

function parseVerdict (words: readonly string[]): NftVerdict | null {
  const [a, b] = words
  if ((a === 'goto' || a === 'jump') && b !== undefined && words.length === 2) return { kind: a, chain: b }
  if ((a === 'accept' || a === 'drop' || a === 'return' || a === 'continue') && words.length === 1) return { kind: a }
  return null
}

function sameValue (a: NftElementValue, b: NftElementValue): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

export class NftModel {
  private state: ReadonlyMap<string, MTable> = new Map()

  /** Applies one transaction: every command or, on the first refusal, none (NftError names the line). */
  apply (text: string): void {
    this.state = this.run(text).tables
  }

  /** `nft -c`: checks a transaction without committing it. */
  check (text: string): void {
    this.run(text)
  }

  private run (text: string): Txn {
    const tx = new Txn(this.state)
    const lines = text.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string
      let words: string[]
      try {
        words = tokenize(line)
        if (words.length === 0) continue
        this.command(tx, words)
      } catch (e) {
        if (e instanceof NftSyntaxError || e instanceof Refusal) throw new NftError(i + 1, line, e.message)
        throw e
      }
    }
    return tx
  }

  private command (tx: Txn, w: readonly string[]): void {
    const [verb = '', object = ''] = w
    if (verb === 'flush' && object === 'ruleset') { tx.tables.clear(); return }
    if (verb === 'list') throw new NftSyntaxError('list commands are not part of a transaction here')
    let at = 2
    // nft takes "ip" when the family is left out.
    const family = FAMILIES.has(w[at] ?? '') ? (w[at++] as NftFamily) : 'ip'
    const table = w[at++]
    if (table === undefined) throw new NftSyntaxError('syntax error, missing table name')
    const name = w[at++]
    const rest = w.slice(at)
    const create = verb === 'create'
    const add = verb === 'add' || create
    if (object === 'table') {
      if (name !== undefined) throw new NftSyntaxError(`syntax error, unexpected "${name}"`)
      const key = tableKey(family, table)
      if (add) {
        if (tx.tables.has(key)) { if (create) throw new Refusal(EEXIST); return }
        tx.tables.set(key, tx.fresh({ family, name: table, chains: new Map(), sets: new Map() }))
      } else if (verb === 'delete') {
        if (!tx.tables.delete(key)) throw new Refusal(ENOENT)
      } else if (verb === 'flush') {
        const t = tx.table(family, table)
        for (const c of [...t.chains.keys()]) tx.chain(t, c).rules.length = 0
      } else throw new NftSyntaxError(`syntax error, unexpected "${verb}"`)
      return
    }
    if (name === undefined) throw new NftSyntaxError(`syntax error, missing ${object} name`)
    const t = tx.table(family, table)
    switch (object) {
      case 'chain': return this.chainCommand(tx, t, verb, name, rest)
      case 'rule': {
        if (verb !== 'add' && verb !== 'insert') throw new NftSyntaxError(`syntax error, unsupported "${verb} rule"`)
        const rule = parseRule(rest)
        const ch = tx.chain(t, name)
        for (const target of ruleChains(rule)) if (!t.chains.has(target)) throw new Refusal(ENOENT)
        for (const it of rule.items) {
          if (it.kind !== 'lookup' && it.kind !== 'vmap' && it.kind !== 'dnat-map' && it.kind !== 'set-update') continue
          const s = t.sets.get(it.kind === 'lookup' || it.kind === 'set-update' ? it.set : it.map)
          if (s === undefined) throw new Refusal(ENOENT)
          if (s.keyTypes.join(' . ') !== typesOf(it.key).join(' . ')) throw new Refusal(`datatype mismatch: ${s.name} has key ${s.keyTypes.join(' . ')}`)
          if (it.kind === 'vmap' && s.dataTypes !== 'verdict') throw new Refusal(`${s.name} is not a verdict map`)
          if (it.kind === 'dnat-map' && (!Array.isArray(s.dataTypes) || s.dataTypes.length !== 2)) throw new Refusal(`${s.name} does not map to address . port`)
        }
        if (verb === 'add') ch.rules.push(rule)
        else ch.rules.unshift(rule)
        return
      }
      case 'set': case 'map': return this.setCommand(tx, t, verb, object === 'map', name, rest)
      case 'element': return this.elementCommand(tx, t, verb, name, rest)
      default: throw new NftSyntaxError(`syntax error, unexpected "${object}"`)
    }
  }

  private chainCommand (tx: Txn, t: MTable, verb: string, name: string, rest: readonly string[]): void {
    if (verb === 'add' || verb === 'create') {
      const inner = block(rest)
      const base = inner === null ? null : parseBase(inner)
      const old = t.chains.get(name)
      if (old !== undefined) {
        if (verb === 'create') throw new Refusal(EEXIST)
        if (inner !== null && JSON.stringify(old.base) !== JSON.stringify(base)) throw new Refusal('Could not process rule: Operation not supported')
        return
      }
      t.chains.set(name, tx.fresh({ name, base, rules: [] }))
    } else if (verb === 'flush') {
      tx.chain(t, name).rules.length = 0
    } else if (verb === 'delete') {
      if (!t.chains.has(name)) throw new Refusal(ENOENT)
      if (chainReferenced(t, name)) throw new Refusal(EBUSY)
      t.chains.delete(name)
    } else throw new NftSyntaxError(`syntax error, unsupported "${verb} chain"`)
  }

  private setCommand (tx: Txn, t: MTable, verb: string, isMap: boolean, name: string, rest: readonly string[]): void {
    if (verb === 'add' || verb === 'create') {
      const inner = block(rest)
      if (inner === null) throw new NftSyntaxError(`syntax error, ${isMap ? 'map' : 'set'} ${name} needs a declaration`)
      const { inline, ...decl } = parseSetDecl(name, isMap, inner)
      const old = t.sets.get(name)
      if (old !== undefined) {
        if (verb === 'create' || old.isMap !== isMap || old.declaration !== decl.declaration) throw new Refusal(EEXIST)
      } else t.sets.set(name, tx.fresh({ ...decl, elements: new Map() }))
      if (inline.length > 0) this.addElements(t, tx.set(t, name), inline)
    } else if (verb === 'flush') {
      tx.set(t, name).elements.clear()
    } else if (verb === 'delete') {
      if (!t.sets.has(name)) throw new Refusal(ENOENT)
      for (const c of t.chains.values()) for (const r of c.rules) if (ruleSets(r).includes(name)) throw new Refusal(EBUSY)
      t.sets.delete(name)
    } else throw new NftSyntaxError(`syntax error, unsupported "${verb} ${isMap ? 'map' : 'set'}"`)
  }

  private elementCommand (tx: Txn, t: MTable, verb: string, name: string, rest: readonly string[]): void {
    const elems = elementList(rest)
    const s = tx.set(t, name)
    if (verb === 'add' || verb === 'create') { this.addElements(t, s, elems, verb === 'create'); return }
    if (verb !== 'delete') throw new NftSyntaxError(`syntax error, unsupported "${verb} element"`)
    for (const e of elems) {
      const colon = e.indexOf(':')
      const key = canonicalSlots(s.keyTypes, colon < 0 ? e : e.slice(0, colon), 'key').join(' . ')
      if (!s.elements.delete(key)) throw new Refusal(ENOENT)
    }
  }

  private addElements (t: MTable, s: MSet, elems: readonly string[][], create = false): void {
    for (const e of elems) {
      const colon = e.indexOf(':')
      if (s.isMap !== (colon >= 0)) throw new Refusal(s.isMap ? `map ${s.name} elements need "key : value"` : `set ${s.name} elements have no value`)
      const key = canonicalSlots(s.keyTypes, colon < 0 ? e : e.slice(0, colon), 'key').join(' . ')
      let value: NftElementValue = null
      if (colon >= 0) {
        const words = e.slice(colon + 1)
        if (s.dataTypes === 'verdict') {
          const v = parseVerdict(words)
          if (v === null) throw new Refusal(`invalid verdict "${words.join(' ')}"`)
          if ((v.kind === 'goto' || v.kind === 'jump') && !t.chains.has(v.chain)) throw new Refusal(ENOENT)
          value = { verdict: v }
        } else value = { data: canonicalSlots(s.dataTypes ?? [], words, 'value') }
      }
      const old = s.elements.get(key)
      if (old !== undefined && (create || !sameValue(old, value))) throw new Refusal(EEXIST)
      s.elements.set(key, value)
    }
  }

  // Reading.

  tables (): NftTable[] { return [...this.state.values()] }

  table (family: NftFamily, name: string): NftTable | undefined { return this.state.get(tableKey(family, name)) }

  chain (family: NftFamily, table: string, name: string): NftChain | undefined { return this.table(family, table)?.chains.get(name) }

  set (family: NftFamily, table: string, name: string): NftSet | undefined { return this.table(family, table)?.sets.get(name) }

  /** A set's or map's elements as `key` or `key : value` lines, sorted (for assertions). */
  elements (family: NftFamily, table: string, name: string): string[] {
    const s = this.set(family, table, name)
    if (s === undefined) return []
    return [...s.elements].map(([k, v]) => (v === null ? k : `${k} : ${valueText(v)}`)).sort()
  }

  /** `nft list table`-like text. */
  listTable (family: NftFamily, name: string): string {
    const t = this.table(family, name)
    if (t === undefined) throw new NftError(1, `list table ${family} ${name}`, 'No such file or directory')
    const out = [`table ${family} ${name} {`]
    for (const s of t.sets.values()) {
      out.push(`\t${s.isMap ? 'map' : 'set'} ${s.name} {`, ...s.declaration.split(' ; ').map(d => `\t\t${d}`))
      if (s.elements.size > 0) out.push(`\t\telements = { ${this.elements(family, name, s.name).join(',\n\t\t\t     ')} }`)
      out.push('\t}', '')
    }
    for (const c of t.chains.values()) {
      out.push(`\tchain ${c.name} {`)
      if (c.base !== null) out.push(`\t\ttype ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; policy ${c.base.policy};`)
      for (const r of c.rules) out.push(`\t\t${r.text}`)
      out.push('\t}', '')
    }
    if (out[out.length - 1] === '') out.pop()
    out.push('}')
    return out.join('\n') + '\n'
  }
}

export function valueText (v: NftElementValue): string {
  if (v === null) return ''
  if ('verdict' in v) return v.verdict.kind === 'goto' || v.verdict.kind === 'jump' ? `${v.verdict.kind} ${v.verdict.chain}` : v.verdict.kind
  return v.data.join(' . ')
}

/** A chain is busy while another chain's rule or a verdict-map element jumps or goes to it. */
function chainReferenced (t: MTable, name: string): boolean {
  for (const c of t.chains.values()) {
    if (c.name === name) continue
    for (const r of c.rules) if (ruleChains(r).includes(name)) return true
  }
  for (const s of t.sets.values()) {
    if (s.dataTypes !== 'verdict') continue
    for (const v of s.elements.values()) {
      if (v !== null && 'verdict' in v && (v.verdict.kind === 'goto' || v.verdict.kind === 'jump') && v.verdict.chain === name) return true
    }
  }
  return false
}
