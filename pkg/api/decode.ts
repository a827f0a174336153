// Multi-document YAML/JSON (and `kind: List`) to validated objects, within DecodeLimits.
// JSON goes through JSON.parse (the YAML parser is ~50x slower on it); YAML is parsed without the
// library's duplicate-key check, which is quadratic in a mapping's size, and checked here in one pass.
import type { Document } from 'yaml'
import { FerryError, errorMessage } from '../errors/errors.js'
import { DEFAULT_DECODE_LIMITS, formatBytes, type DecodeLimits } from './limits.js'
import { checkJSONTree, checkYAMLTree } from './tree-check.js'
import { objectKey, type KObject } from './types.js'
import { validateObject } from './validate.js'
import { yaml } from './yaml.js'

export interface DecodeResult {
  readonly objects: KObject[]
  /** objectKey of each object, in the same order: computed here for the duplicate check anyway. */
  readonly keys: string[]
  readonly errors: FerryError[]
}

interface RawDoc { value: unknown, where: string }

/** Decodes every document in `text`; `origin` names the file for error messages. Never throws. */
export function decodeManifests (text: string, origin: string, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): DecodeResult {
  const errors: FerryError[] = []
  const fail = (e: FerryError): DecodeResult => ({ objects: [], keys: [], errors: [e] })
  try {
    const bytes = Buffer.byteLength(text)
    if (bytes > limits.maxBytes) {
      return fail(new FerryError('FERRY_ERR_LIMIT', `${origin}: ${formatBytes(bytes)} exceeds the manifest size limit of ${formatBytes(limits.maxBytes)}; file ignored`, { origin, limit: 'maxBytes' }))
    }
    const docs = parseJSON(text, origin, limits) ?? parseYAML(text, origin, limits, errors)
    if (docs instanceof FerryError) return fail(docs)
    const items: RawDoc[] = []
    for (const d of docs) {
      if (isList(d.value)) {
        const typed = typedItem(d.value)
        for (const [j, it] of (d.value.items ?? []).entries()) items.push({ value: typed(it), where: `${d.where}, items[${j}]` })
      }
      else items.push(d)
    }
    if (items.length > limits.maxObjects) {
      return fail(new FerryError('FERRY_ERR_LIMIT', `${origin}: ${items.length} objects exceed the limit of ${limits.maxObjects} per file; file ignored`, { origin, limit: 'maxObjects' }))
    }
    const objects: KObject[] = []
    for (const { value, where } of items) {
      try { objects.push(validateObject(value, where)) } catch (e) {
        errors.push(e instanceof FerryError ? e : new FerryError('FERRY_ERR_PARSE', `${where}: ${errorMessage(e)}`, { origin }))
      }
    }
    const keys = objects.map(objectKey)
    const seen = new Set<string>()
    for (const key of keys) {
      if (seen.has(key)) errors.push(new FerryError('FERRY_ERR_DUPLICATE', `${origin}: ${key} is defined more than once`, { origin, key }))
      seen.add(key)
    }
    return { objects, keys, errors }
  } catch (e) {
    // A parser bug or a stack overflow on hostile input rejects the file, never the process.
    return fail(new FerryError('FERRY_ERR_PARSE', `${origin}: cannot decode: ${errorMessage(e)}`, { origin }))
  }
}

/**
 * `.json` files, and YAML files whose text is one JSON object, take the JSON path; null sends the text
 * on to the YAML parser (a .yaml file that only starts like JSON).
 */
function parseJSON (text: string, origin: string, limits: DecodeLimits): RawDoc[] | FerryError | null {
  const isJSONFile = /\.json$/i.test(origin)
  const first = /\S/.exec(text)
  if (!isJSONFile && (first === null || text[first.index] !== '{')) return null
  // A byte order mark (Windows editors write one) is not JSON, but kubectl strips it.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
  let values: unknown[]
  try { values = [JSON.parse(body)] } catch (e) {
    // kubectl also reads a stream of JSON objects (`jq -c '.items[]'` writes one).
    const stream = splitJSONStream(body, limits.maxObjects)
    if (stream !== null && stream.length > limits.maxObjects) {
      return new FerryError('FERRY_ERR_LIMIT', `${origin}: ${stream.length} documents exceed the limit of ${limits.maxObjects} objects per file; file ignored`, { origin, limit: 'maxObjects' })
    }
    try { values = stream?.map(t => JSON.parse(t) as unknown) ?? [] } catch { values = [] }
    if (values.length === 0) {
      if (!isJSONFile) return null
      return new FerryError('FERRY_ERR_PARSE', `${origin}: invalid JSON: ${withLine(errorMessage(e), text)}`, { origin })
    }
  }
  const out: RawDoc[] = []
  for (const [i, value] of values.entries()) {
    const where = `${origin}, document ${i + 1}`
    const bad = checkJSONTree(value, limits)
    if (bad !== null) return new FerryError('FERRY_ERR_LIMIT', `${where}: ${bad}; file ignored`, { origin })
    if (value !== null) out.push({ value, where })
  }
  return out
}

/**
 * The texts of a stream of two or more top-level JSON objects or arrays, split on their closing
 * brackets (strings skipped); null when the text is anything else. Stops past `max` texts.
 */
function splitJSONStream (text: string, max: number): string[] | null {
  const out: string[] = []
  let depth = 0
  let start = -1
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (depth === 0) {
      if (c === 0x7b || c === 0x5b) { start = i; depth = 1 } else if (!/\s/.test(text[i] as string)) return null
      continue
    }
    if (c === 0x22) { // a string: to its closing quote
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++
    } else if (c === 0x7b || c === 0x5b) depth++
    else if ((c === 0x7d || c === 0x5d) && --depth === 0 && out.push(text.slice(start, i + 1)) > max) return out
  }
  return depth === 0 && out.length > 1 ? out : null
}

function parseYAML (text: string, origin: string, limits: DecodeLimits, errors: FerryError[]): RawDoc[] | FerryError {
  const { LineCounter, parseAllDocuments } = yaml()
  const lines = new LineCounter()
  // merge: kubectl's parser is YAML 1.1, where `<<: *anchor` merges a mapping; YAML 1.2 would keep a "<<" key.
  const parsed = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: false, merge: true, lineCounter: lines })
  const locate = (offset: number): string => { const p = lines.linePos(offset); return ` at line ${p.line} column ${p.col}` }
  const docs: Document[] = Array.isArray(parsed) ? parsed : [parsed]
  if (docs.length > limits.maxObjects) {
    return new FerryError('FERRY_ERR_LIMIT', `${origin}: ${docs.length} documents exceed the limit of ${limits.maxObjects} objects per file; file ignored`, { origin, limit: 'maxObjects' })
  }
  const out: RawDoc[] = []
  for (const [i, doc] of docs.entries()) {
    const where = `${origin}, document ${i + 1}`
    if (doc.errors.length > 0) {
      errors.push(new FerryError('FERRY_ERR_PARSE', `${where}: ${doc.errors[0]?.message ?? 'invalid YAML'}`, { origin }))
      continue
    }
    const problem = checkYAMLTree(doc.contents, limits, locate)
    if (problem !== null) return new FerryError(problem.code, `${where}: ${problem.message}; file ignored`, { origin })
    let value: unknown
    try { value = doc.toJS({ maxAliasCount: limits.maxAliases }) } catch (e) {
      return new FerryError('FERRY_ERR_LIMIT', `${where}: ${errorMessage(e)} (limit ${limits.maxAliases}); file ignored`, { origin, limit: 'maxAliases' })
    }
    if (value !== null && value !== undefined) out.push({ value, where })
  }
  return out
}

/** "... at position 812" → "... at line 31 column 4": positions are useless in a big file. */
function withLine (msg: string, text: string): string {
  const m = /position (\d+)/.exec(msg)
  if (m === null) return msg
  const pos = Number(m[1])
  const before = text.slice(0, pos)
  const line = before.split('\n').length
  const col = pos - before.lastIndexOf('\n')
  return `${msg.replace(/\s*\(line \d+ column \d+\)$/, '')} (line ${line} column ${col})`
}

interface RawList { kind: string, apiVersion?: unknown, items?: unknown[] | null }

/**
 * A `kind: List`, or a typed list (ServiceList) as the API server returns it; a List's items may be null
 * or absent (an empty list, as a template renders it; kubectl reads none).
 */
function isList (v: unknown): v is RawList {
  if (typeof v !== 'object' || v === null) return false
  const { kind, items } = v as { kind?: unknown, items?: unknown }
  if (kind === 'List') return Array.isArray(items) || items === null || items === undefined
  return typeof kind === 'string' && kind.length > 4 && kind.endsWith('List') && Array.isArray(items)
}

/** A typed list's items carry no kind or apiVersion: they are the list's, as kubectl fills them in. */
function typedItem (list: RawList): (item: unknown) => unknown {
  if (list.kind === 'List') return item => item
  const kind = list.kind.slice(0, -'List'.length)
  return item => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return item
    const o = item as Record<string, unknown>
    return { ...o, kind: o.kind ?? kind, apiVersion: o.apiVersion ?? list.apiVersion }
  }
}
