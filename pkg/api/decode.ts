// Multi-document YAML/JSON (and `kind: List`) to validated objects.
import { parseAllDocuments } from 'yaml'
import { FerryError } from '../errors/errors.js'
import { objectKey, type KObject } from './types.js'
import { validateObject } from './validate.js'

export interface DecodeResult {
  readonly objects: KObject[]
  readonly errors: FerryError[]
}

/** Decodes every document in `text`; `origin` names the file for error messages. Never throws. */
export function decodeManifests (text: string, origin: string): DecodeResult {
  const objects: KObject[] = []
  const errors: FerryError[] = []
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true })
  const all = Array.isArray(docs) ? docs : [docs]
  all.forEach((doc, i) => {
    const where = `${origin}, document ${i + 1}`
    if (doc.errors.length > 0) {
      errors.push(new FerryError('FERRY_ERR_PARSE', `${where}: ${doc.errors[0]?.message ?? 'invalid YAML'}`, { origin }))
      return
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 })
    if (value === null || value === undefined) return // empty document
    const items = isList(value) ? value.items.map((it, j) => ({ it, where: `${where}, items[${j}]` })) : [{ it: value, where }]
    for (const { it, where: w } of items) {
      try { objects.push(validateObject(it, w)) } catch (e) {
        errors.push(e instanceof FerryError ? e : new FerryError('FERRY_ERR_PARSE', `${w}: ${String(e)}`, { origin }))
      }
    }
  })
  const seen = new Map<string, number>()
  objects.forEach((o, i) => {
    const key = objectKey(o)
    if (seen.has(key)) errors.push(new FerryError('FERRY_ERR_DUPLICATE', `${origin}: ${key} is defined more than once`, { origin, key }))
    seen.set(key, i)
  })
  return { objects, errors }
}

function isList (v: unknown): v is { items: unknown[] } {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'List' && Array.isArray((v as { items?: unknown }).items)
}
