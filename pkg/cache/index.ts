// Secondary indexes of the cluster cache, kept up to date on every change so that a lookup by ClusterIP,
// by Service or by pod IP costs the matching objects, never a scan. Keys are the canonical IP text that
// pkg/api/validate.ts stores (parseIP(x).ip).
import { SERVICE_NAME_LABEL, type EndpointSlice, type Pod, type Service } from '../api/types.js'

/** index key → objectKey → object; an object may sit under several keys and a key may hold several objects. */
export class MultiIndex<T> {
  private readonly m = new Map<string, Map<string, T>>()

  /**
   * Moves the object `objKey` from `prevKeys` to `curKeys` (cur undefined: removed). Keys it keeps are
   * updated in place, so the order of objects under a key is the order they first got that key.
   */
  update (objKey: string, prevKeys: readonly string[], curKeys: readonly string[], cur: T | undefined): void {
    for (const k of prevKeys) {
      if (cur !== undefined && curKeys.includes(k)) continue
      const bucket = this.m.get(k)
      if (bucket === undefined) continue
      bucket.delete(objKey)
      if (bucket.size === 0) this.m.delete(k)
    }
    if (cur === undefined) return
    for (const k of curKeys) {
      let bucket = this.m.get(k)
      if (bucket === undefined) { bucket = new Map(); this.m.set(k, bucket) }
      bucket.set(objKey, cur)
    }
  }

  /** The objects under `key`, oldest first (a fresh array). */
  get (key: string): T[] {
    const bucket = this.m.get(key)
    return bucket === undefined ? [] : [...bucket.values()]
  }

  /** The object that has held `key` the longest. */
  first (key: string): T | undefined {
    const bucket = this.m.get(key)
    if (bucket === undefined) return undefined
    for (const v of bucket.values()) return v
    return undefined
  }

  /** How many distinct keys are indexed. */
  get size (): number { return this.m.size }
}

const NO_KEYS: readonly string[] = []

/** A Service's allocated ClusterIPs: every entry of clusterIPs (else clusterIP), minus "None" and "". */
export function serviceClusterIPs (svc: Service | undefined): readonly string[] {
  if (svc === undefined) return NO_KEYS
  const { clusterIPs, clusterIP } = svc.spec
  const all = clusterIPs !== undefined && clusterIPs.length > 0 ? clusterIPs : clusterIP !== undefined ? [clusterIP] : NO_KEYS
  const out: string[] = []
  for (const ip of all) if (ip !== '' && ip !== 'None' && !out.includes(ip)) out.push(ip)
  return out
}

/** "namespace/name" of the Service a slice belongs to (label kubernetes.io/service-name). */
export function serviceKey (namespace: string, name: string): string { return `${namespace}/${name}` }

/** The slice's Service key, or none when the slice has no service-name label. */
export function sliceServiceKeys (slice: EndpointSlice | undefined): readonly string[] {
  const svc = slice?.metadata.labels?.[SERVICE_NAME_LABEL]
  return slice === undefined || svc === undefined || svc === '' ? NO_KEYS : [serviceKey(slice.metadata.namespace, svc)]
}

/** A pod's IPs: status.podIPs and status.podIP, each once. */
export function podIPs (pod: Pod | undefined): readonly string[] {
  const st = pod?.status
  if (st === undefined) return NO_KEYS
  const out: string[] = []
  for (const p of st.podIPs ?? []) if (p.ip !== '' && !out.includes(p.ip)) out.push(p.ip)
  if (st.podIP !== undefined && st.podIP !== '' && !out.includes(st.podIP)) out.push(st.podIP)
  return out
}
