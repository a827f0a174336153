// Stored values ⇄ objects. Shared by the source (read side) and the store (ferryctl's write side) so both
// agree on the layout and on what a valid value is.
import { validateObject } from '../api/validate.js'
import type { KObject } from '../api/types.js'
import { FerryError, errorMessage } from '../errors/errors.js'
import { keyFor } from './keys.js'

/** Parses and validates the value stored at `key`; throws a FerryError naming the key (and field). */
export function decodeValue (key: string, value: Buffer | string, prefix?: string): KObject {
  let raw: unknown
  try {
    raw = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'))
  } catch (e) {
    throw new FerryError('FERRY_ERR_PARSE', `etcd key ${key}: value is not valid JSON: ${errorMessage(e)}`, { origin: key })
  }
  const obj = validateObject(raw, `etcd key ${key}`)
  const want = keyFor(obj, prefix)
  if (want !== key) {
    throw new FerryError('FERRY_ERR_INVALID_OBJECT',
      `etcd key ${key}: holds ${obj.kind} "${obj.metadata.namespace !== undefined ? obj.metadata.namespace + '/' : ''}${obj.metadata.name}", whose key is ${want}`,
      { origin: key, kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name })
  }
  return obj
}

export function encodeValue (obj: KObject): string {
  return JSON.stringify(obj)
}
