// A re-read JSON List decoded against its last good decode: items whose text is unchanged are the
// objects they were; only new item texts are parsed, checked and validated. At 10k Services a
// one-endpoint edit of a 100-object file validated 100 objects and compared 99 of them again.
import { checkJSONTree } from './tree-check.js'
import type { DecodeLimits } from './limits.js'
import { scanJSONList, type ListIndex } from './list-index.js'
import { objectKey, type KObject } from './types.js'
import { validateObject } from './validate.js'
import type { DecodeResult } from './decode.js'

/** A file's last good decode and the index of the text it came from (items[i] ↔ objects[i]). */
export interface IndexedDecode {
  readonly index: ListIndex
  readonly objects: readonly KObject[]
  readonly keys: readonly string[]
}

export interface DeltaDecode {
  readonly result: DecodeResult
  readonly index: ListIndex
  /** Items parsed and validated (the rest were reused). */
  readonly validated: number
}

/**
 * The decode of `text` with `before`'s unchanged items reused, or null when it cannot be done that way
 * (not the same kind of List, another envelope, or any problem at all): then decodeManifests decodes
 * the file in full and reports what is wrong, with the messages it always gives.
 */
export function decodeListDelta (text: string, origin: string, limits: DecodeLimits, before: IndexedDecode): DeltaDecode | null {
  if (before.index.items.length !== before.objects.length) return null
  const scan = scanJSONList(text)
  if (scan === null || scan.envelope !== before.index.envelope || scan.items.length > limits.maxObjects) return null
  const had = new Map<number, number>()
  before.index.items.forEach((h, j) => { had.set(h, j) })
  // An item sits two levels below the List: its own subtree gets what is left of the depth limit.
  const itemLimits: DecodeLimits = { ...limits, maxDepth: limits.maxDepth - 2 }
  const objects: KObject[] = []
  const keys: string[] = []
  let validated = 0
  for (let i = 0; i < scan.items.length; i++) {
    const j = had.get(scan.items[i] as number)
    if (j !== undefined) {
      objects.push(before.objects[j] as KObject)
      keys.push(before.keys[j] as string)
      continue
    }
    let obj: KObject
    try {
      const value: unknown = JSON.parse(text.slice(scan.starts[i], scan.ends[i]))
      if (checkJSONTree(value, itemLimits) !== null) return null
      obj = validateObject(value, `${origin}, document 1, items[${i}]`)
    } catch {
      return null
    }
    validated++
    objects.push(obj)
    keys.push(objectKey(obj))
  }
  if (new Set(keys).size !== keys.length) return null
  return { result: { objects, keys, errors: [] }, index: { envelope: scan.envelope, items: scan.items }, validated }
}
