// The etcd key layout: where each object lives. One JSON value per object:
//
//   <prefix>/v1/<resource>/<namespace>/<name>   Service, EndpointSlice, Pod
//   <prefix>/v1/<resource>/<name>               Node (cluster-scoped)
//
// resource is services | endpointslices | nodes | pods; prefix defaults to /ferry. Names and namespaces
// are DNS-1123 (validated), so they never contain "/" and a key parses back unambiguously. Everything the
// source reads sits under `<prefix>/v1/` (objectsPrefix); the rest of `<prefix>/` is free for other
// components (overlay subnet leases, for instance).
import type { KObject, Kind } from '../api/types.js'

export const DEFAULT_PREFIX = '/ferry'
export const LAYOUT_VERSION = 'v1'

export const RESOURCES: Readonly<Record<Kind, string>> = {
  Service: 'services', EndpointSlice: 'endpointslices', Node: 'nodes', Pod: 'pods',
}
const KIND_BY_RESOURCE = new Map<string, Kind>(Object.entries(RESOURCES).map(([k, r]) => [r, k as Kind]))

export function isNamespaced (kind: Kind): boolean { return kind !== 'Node' }

export interface ParsedKey { kind: Kind, namespace?: string, name: string }

/** "/ferry/" → "/ferry", "" → "" (keys then start at "/v1/..."); a missing leading slash is kept as given. */
export function normalizePrefix (prefix: string = DEFAULT_PREFIX): string {
  return prefix.replace(/\/+$/, '')
}

/** `<prefix>/v1/`: the range the source lists and watches. */
export function objectsPrefix (prefix?: string): string {
  return `${normalizePrefix(prefix)}/${LAYOUT_VERSION}/`
}

/** `<prefix>/v1/<resource>/`, or `<prefix>/v1/<resource>/<namespace>/` when a namespace is given. */
export function resourcePrefix (kind: Kind, prefix?: string, namespace?: string): string {
  const base = `${objectsPrefix(prefix)}${RESOURCES[kind]}/`
  return namespace !== undefined && isNamespaced(kind) ? `${base}${namespace}/` : base
}

export function keyForName (kind: Kind, namespace: string | undefined, name: string, prefix?: string): string {
  if (isNamespaced(kind)) {
    if (namespace === undefined || namespace === '') throw new TypeError(`${kind} "${name}" needs a namespace for its etcd key`)
    return `${resourcePrefix(kind, prefix)}${namespace}/${name}`
  }
  return `${resourcePrefix(kind, prefix)}${name}`
}

export function keyFor (obj: KObject, prefix?: string): string {
  return keyForName(obj.kind, obj.metadata.namespace, obj.metadata.name, prefix)
}

/** The object a key names, or null when the key is not in the layout (other prefix, unknown resource, wrong depth). */
export function parseKey (key: string, prefix?: string): ParsedKey | null {
  const base = objectsPrefix(prefix)
  if (!key.startsWith(base)) return null
  const parts = key.slice(base.length).split('/')
  const kind = KIND_BY_RESOURCE.get(parts[0] ?? '')
  if (kind === undefined || parts.some(p => p === '')) return null
  if (isNamespaced(kind)) {
    const [, namespace, name] = parts
    if (parts.length !== 3 || namespace === undefined || name === undefined) return null
    return { kind, namespace, name }
  }
  const [, name] = parts
  if (parts.length !== 2 || name === undefined) return null
  return { kind, name }
}

/** Exclusive end of the etcd range holding every key that starts with `prefix` (etcd's prefix convention). */
export function prefixRangeEnd (prefix: string | Buffer): Buffer {
  const end = Buffer.from(prefix) // a copy
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1
      return end.subarray(0, i + 1)
    }
  }
  return Buffer.from([0]) // all keys
}

/** "service/default/web" style label for messages (kubectl's lower-case kind). */
export function displayName (p: ParsedKey): string {
  const kind = p.kind.toLowerCase()
  return p.namespace !== undefined ? `${kind}/${p.namespace}/${p.name}` : `${kind}/${p.name}`
}
