// The typed form of one nftables rule, as the ferry layout writes them (/tmp/nft-layout.md): matches
// (addresses, CIDRs, concatenated lookups, fib, ct, mark, numgen) and statements (verdicts, vmaps, mark,
// nat, reject, set updates). The model stores rules in this form; the tracer evaluates it. Forms outside
// this dialect are refused with a message, so a renderer change the tracer cannot follow fails loudly.
import { parseCIDR, parseIP } from '../../net/ip.js'

export type NftAddrFamily = 'ip' | 'ip6'

/** A packet field, or a random number: one slot of a key. */
export type NftSelector =
  | { readonly kind: 'addr', readonly family: NftAddrFamily, readonly dir: 'saddr' | 'daddr' }
  | { readonly kind: 'l4proto' }
  /** `th dport` any transport; `tcp dport` also requires the protocol. */
  | { readonly kind: 'dport', readonly proto: 'th' | 'tcp' | 'udp' | 'sctp' }
  | { readonly kind: 'numgen', readonly mod: number }

export type NftVerdict =
  | { readonly kind: 'jump' | 'goto', readonly chain: string }
  | { readonly kind: 'accept' | 'drop' | 'return' | 'continue' }

export type NftMatch =
  /** `ip daddr 10.0.0.0/8`, `ip saddr != 1.2.3.4`, `meta l4proto tcp`, `th dport 80`, `numgen random mod 3 == 0`. */
  | { readonly kind: 'cmp', readonly key: NftSelector, readonly negate: boolean, readonly value: string }
  /** `meta l4proto { tcp, udp }`, `ip saddr != { ... }`. */
  | { readonly kind: 'anon-set', readonly key: NftSelector, readonly negate: boolean, readonly values: readonly string[] }
  /** `ip saddr . ip daddr @hairpin`, `ip saddr @aff-x`. */
  | { readonly kind: 'lookup', readonly key: readonly NftSelector[], readonly negate: boolean, readonly set: string }
  | { readonly kind: 'fib', readonly dir: 'saddr' | 'daddr', readonly negate: boolean, readonly type: 'local' }
  | { readonly kind: 'ct-state', readonly negate: boolean, readonly states: readonly string[] }
  | { readonly kind: 'ct-status', readonly negate: boolean, readonly statuses: readonly string[] }
  /** `meta mark & 0x4000 == 0`. */
  | { readonly kind: 'mark', readonly mask: number, readonly negate: boolean, readonly value: number }

export type NftStatement =
  | { readonly kind: 'verdict', readonly verdict: NftVerdict }
  | { readonly kind: 'vmap', readonly key: readonly NftSelector[], readonly map: string }
  /** `meta mark set meta mark | X` (or), `^ X` (xor), `meta mark set X` (set). */
  | { readonly kind: 'mark-set', readonly op: 'or' | 'xor' | 'set', readonly value: number }
  | { readonly kind: 'masquerade', readonly fullyRandom: boolean }
  | { readonly kind: 'reject' }
  | { readonly kind: 'dnat', readonly ip: string, readonly port: number | null }
  /** `dnat ip to <key> map @m`: the map's value is `address . port`. */
  | { readonly kind: 'dnat-map', readonly key: readonly NftSelector[], readonly map: string }
  | { readonly kind: 'set-update', readonly key: readonly NftSelector[], readonly set: string }
  | { readonly kind: 'counter' }

export type NftRuleItem = NftMatch | NftStatement

export interface NftRule {
  readonly items: readonly NftRuleItem[]
  readonly comment?: string
  /** The rule as written, for traces and listings. */
  readonly text: string
}

export class NftSyntaxError extends Error {}

const PROTOS: ReadonlyMap<string, string> = new Map([['tcp', 'tcp'], ['udp', 'udp'], ['sctp', 'sctp'], ['icmp', 'icmp'], ['icmpv6', 'ipv6-icmp'],
  ['6', 'tcp'], ['17', 'udp'], ['132', 'sctp']])

/** Canonical `inet_proto` text (`tcp`), or null. */
export function canonicalProto (text: string): string | null {
  return PROTOS.get(text.toLowerCase()) ?? null
}

/** Canonical integer text for ports, numgen values and marks (decimal), or null. */
export function canonicalInt (text: string, max: number): string | null {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) return null
  const n = Number(text)
  return n <= max ? String(n) : null
}

/** The declared type of the values a selector yields (what `typeof` turns into). */
export function selectorType (s: NftSelector): string {
  switch (s.kind) {
    case 'addr': return s.family === 'ip' ? 'ipv4_addr' : 'ipv6_addr'
    case 'l4proto': return 'inet_proto'
    case 'dport': return 'inet_service'
    case 'numgen': return 'integer'
  }
}

export function selectorText (s: NftSelector): string {
  switch (s.kind) {
    case 'addr': return `${s.family} ${s.dir}`
    case 'l4proto': return 'meta l4proto'
    case 'dport': return `${s.proto} dport`
    case 'numgen': return `numgen random mod ${s.mod}`
  }
}

/** Canonical text of one value of `type` (an element slot or a compared constant), or null if it is not one. */
export function canonicalValue (type: string, text: string): string | null {
  switch (type) {
    case 'ipv4_addr': case 'ipv6_addr': {
      const p = parseIP(text)
      return p !== null && p.family === (type === 'ipv4_addr' ? 'IPv4' : 'IPv6') ? p.ip : null
    }
    case 'inet_proto': return canonicalProto(text)
    case 'inet_service': return canonicalInt(text, 65535)
    case 'integer': case 'mark': return canonicalInt(text, 0xffffffff)
    default: return null
  }
}

/** A cursor over one rule's tokens. */
class Cursor {
  i = 0
  constructor (readonly t: readonly string[]) {}
  peek (k = 0): string | undefined { return this.t[this.i + k] }
  next (): string {
    const v = this.t[this.i++]
    if (v === undefined) throw new NftSyntaxError('syntax error, unexpected end of rule')
    return v
  }

  expect (word: string): void {
    const v = this.next()
    if (v !== word) throw new NftSyntaxError(`syntax error, expected "${word}", got "${v}"`)
  }

  done (): boolean { return this.i >= this.t.length }
}

function selectorAt (c: Cursor): NftSelector | null {
  const a = c.peek()
  const b = c.peek(1)
  if ((a === 'ip' || a === 'ip6') && (b === 'saddr' || b === 'daddr')) { c.i += 2; return { kind: 'addr', family: a, dir: b } }
  if (a === 'meta' && b === 'l4proto') { c.i += 2; return { kind: 'l4proto' } }
  if ((a === 'th' || a === 'tcp' || a === 'udp' || a === 'sctp') && b === 'dport') { c.i += 2; return { kind: 'dport', proto: a } }
  if (a === 'numgen' && b === 'random' && c.peek(2) === 'mod') {
    c.i += 3
    const mod = Number(c.next())
    if (!Number.isInteger(mod) || mod < 1) throw new NftSyntaxError('numgen: bad modulus')
    return { kind: 'numgen', mod }
  }
  return null
}

/** A concatenation `a . b . c`; null if the cursor is not at a selector. */
function keyAt (c: Cursor): NftSelector[] | null {
  const first = selectorAt(c)
  if (first === null) return null
  const key = [first]
  while (c.peek() === '.') {
    c.i++
    const s = selectorAt(c)
    if (s === null) throw new NftSyntaxError(`syntax error, unexpected "${c.peek() ?? 'end'}" in a concatenation`)
    key.push(s)
  }
  return key
}

function setName (c: Cursor): string {
  const v = c.next()
  if (!v.startsWith('@') || v.length < 2) throw new NftSyntaxError(`syntax error, expected @set, got "${v}"`)
  return v.slice(1)
}

/** A constant compared with `sel`, canonical; addresses may be CIDRs. */
function constant (sel: NftSelector, text: string): string {
  if (sel.kind === 'addr') {
    const c = text.includes('/') ? parseCIDR(text) : null
    if (c !== null && c.family === (sel.family === 'ip' ? 'IPv4' : 'IPv6')) return c.text
  }
  const v = canonicalValue(selectorType(sel), text)
  if (v === null) throw new NftSyntaxError(`invalid value "${text}" for ${selectorText(sel)}`)
  return v
}

/** Comma-separated words up to `}` (the `{` already taken). */
function braceList (c: Cursor): string[] {
  const out: string[] = []
  for (;;) {
    const v = c.next()
    if (v === '}') return out
    if (v !== ',') out.push(v)
  }
}

/** Word list `a,b` or `{ a, b }` (ct state / ct status). */
function wordList (c: Cursor): string[] {
  if (c.peek() === '{') { c.i++; return braceList(c) }
  const out = [c.next()]
  while (c.peek() === ',') { c.i++; out.push(c.next()) }
  return out
}

function verdictAt (c: Cursor): NftVerdict | null {
  const v = c.peek()
  if (v === 'jump' || v === 'goto') { c.i++; return { kind: v, chain: c.next() } }
  if (v === 'accept' || v === 'drop' || v === 'return' || v === 'continue') { c.i++; return { kind: v } }
  return null
}

function num (text: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new NftSyntaxError(`invalid number "${text}"`)
  return n
}

function markItem (c: Cursor): NftRuleItem {
  if (c.peek() === 'set') {
    c.i++
    const a = c.peek()
    const b = c.peek(1)
    if ((a === 'meta' && b === 'mark') || a === 'mark') {
      c.i += a === 'mark' ? 1 : 2
      const op = c.next()
      if (op !== '|' && op !== 'or' && op !== '^' && op !== 'xor') throw new NftSyntaxError(`unsupported mark operation "${op}"`)
      return { kind: 'mark-set', op: op === '|' || op === 'or' ? 'or' : 'xor', value: num(c.next()) }
    }
    return { kind: 'mark-set', op: 'set', value: num(c.next()) }
  }
  let mask = 0xffffffff
  if (c.peek() === '&' || c.peek() === 'and') { c.i++; mask = num(c.next()) }
  let negate = false
  if (c.peek() === '==') c.i++
  else if (c.peek() === '!=') { c.i++; negate = true }
  return { kind: 'mark', mask, negate, value: num(c.next()) }
}

function dnatItem (c: Cursor): NftRuleItem {
  if (c.peek() === 'ip' || c.peek() === 'ip6') {
    if (c.peek(1) === 'to') c.i++
  }
  c.expect('to')
  const key = keyAt(c)
  if (key !== null) {
    c.expect('map')
    return { kind: 'dnat-map', key, map: setName(c) }
  }
  const to = c.next()
  const m6 = /^\[(.+)\](?::(\d+))?$/.exec(to)
  let ip: string
  let port: string | undefined
  if (m6 !== null) { ip = m6[1] ?? ''; port = m6[2] } else if (to.split(':').length === 2) { [ip = '', port] = to.split(':') } else ip = to
  const p = parseIP(ip)
  const n = port === undefined ? null : Number(canonicalInt(port, 65535) ?? NaN)
  if (p === null || Number.isNaN(n)) throw new NftSyntaxError(`invalid dnat target "${to}"`)
  return { kind: 'dnat', ip: p.ip, port: n }
}

/** After a key: `vmap @m`, `@set`, `!= @set`, `{...}`, `== v`, `!= v` or `v`. */
function afterKey (c: Cursor, key: NftSelector[]): NftRuleItem {
  let v = c.next()
  if (v === 'vmap') return { kind: 'vmap', key, map: setName(c) }
  let negate = false
  if (v === '==' || v === '!=') { negate = v === '!='; v = c.next() }
  if (v.startsWith('@')) { c.i--; return { kind: 'lookup', key, negate, set: setName(c) } }
  const sel = key[0] as NftSelector
  if (key.length > 1) throw new NftSyntaxError('a concatenation must be looked up in a set or map')
  if (v === '{') return { kind: 'anon-set', key: sel, negate, values: braceList(c).map(x => constant(sel, x)) }
  return { kind: 'cmp', key: sel, negate, value: constant(sel, v) }
}

/** Parses a whole token list as one key expression (a `typeof` declaration). */
export function parseKey (tokens: readonly string[]): NftSelector[] {
  const c = new Cursor(tokens)
  const key = keyAt(c)
  if (key === null || !c.done()) throw new NftSyntaxError(`syntax error in key expression "${tokens.join(' ')}"`)
  return key
}

/** Parses a rule's tokens (everything after `add rule FAMILY TABLE CHAIN`). */
export function parseRule (tokens: readonly string[]): NftRule {
  const c = new Cursor(tokens)
  const items: NftRuleItem[] = []
  let comment: string | undefined
  while (!c.done()) {
    const key = keyAt(c)
    if (key !== null) { items.push(afterKey(c, key)); continue }
    const verdict = verdictAt(c)
    if (verdict !== null) { items.push({ kind: 'verdict', verdict }); continue }
    const w = c.next()
    switch (w) {
      case 'fib': {
        const dir = c.next()
        if (dir !== 'saddr' && dir !== 'daddr') throw new NftSyntaxError(`unsupported fib key "${dir}"`)
        c.expect('type')
        let negate = false
        if (c.peek() === '!=') { c.i++; negate = true }
        c.expect('local')
        items.push({ kind: 'fib', dir, negate, type: 'local' })
        break
      }
      case 'ct': {
        const what = c.next()
        if (what !== 'state' && what !== 'status') throw new NftSyntaxError(`unsupported ct key "${what}"`)
        let negate = false
        if (c.peek() === '!=') { c.i++; negate = true }
        const words = wordList(c)
        items.push(what === 'state' ? { kind: 'ct-state', negate, states: words } : { kind: 'ct-status', negate, statuses: words })
        break
      }
      case 'meta':
        if (c.next() !== 'mark') throw new NftSyntaxError(`unsupported meta key "${tokens[c.i - 1] ?? ''}"`)
        items.push(markItem(c))
        break
      case 'mark': items.push(markItem(c)); break
      case 'masquerade': {
        let fullyRandom = false
        while (c.peek() === 'fully-random' || c.peek() === 'random' || c.peek() === 'persistent' || c.peek() === ',') {
          if (c.next() === 'fully-random') fullyRandom = true
        }
        items.push({ kind: 'masquerade', fullyRandom })
        break
      }
      case 'reject':
        // `reject with icmp type port-unreachable` and the like: the variant does not change the path.
        if (c.peek() === 'with') c.i += c.peek(1) === 'tcp' ? 3 : 4
        items.push({ kind: 'reject' })
        break
      case 'dnat': items.push(dnatItem(c)); break
      case 'update': case 'add': {
        const set = setName(c)
        c.expect('{')
        const k = keyAt(c)
        if (k === null) throw new NftSyntaxError('set update: expected a key expression')
        c.expect('}')
        items.push({ kind: 'set-update', key: k, set })
        break
      }
      case 'counter':
        while (c.peek() === 'packets' || c.peek() === 'bytes') c.i += 2
        items.push({ kind: 'counter' })
        break
      case 'comment': comment = c.next(); break
      default: throw new NftSyntaxError(`syntax error, unexpected "${w}"`)
    }
  }
  return { items, text: tokens.map(t => (t.includes(' ') ? JSON.stringify(t) : t)).join(' '), ...(comment !== undefined ? { comment } : {}) }
}

/** Chains a rule jumps or goes to. */
export function ruleChains (r: NftRule): string[] {
  const out: string[] = []
  for (const it of r.items) if (it.kind === 'verdict' && (it.verdict.kind === 'jump' || it.verdict.kind === 'goto')) out.push(it.verdict.chain)
  return out
}

/** Named sets and maps a rule reads or writes. */
export function ruleSets (r: NftRule): string[] {
  const out: string[] = []
  for (const it of r.items) {
    if (it.kind === 'lookup' || it.kind === 'set-update') out.push(it.set)
    else if (it.kind === 'vmap' || it.kind === 'dnat-map') out.push(it.map)
  }
  return out
}
