// etcd caps one transaction twice: at --max-txn-ops operations (default 128) and at --max-request-bytes
// (default 1.5 MiB, counted on the encoded request). A large apply is cut into consecutive transactions
// that respect both, each with room to spare for the request's own framing.

export const DEFAULT_MAX_TXN_OPS = 128
export const DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024

/** Bytes a put of `key`=`value` adds to a transaction guarded by a compare on `key` (protobuf framing included). */
export function putCost (key: string, value: string): number {
  return 2 * Buffer.byteLength(key) + Buffer.byteLength(value) + 32
}

/** The share of --max-request-bytes we fill: etcd wraps the request in its own header and raft entry. */
export function requestBudget (maxRequestBytes: number): number {
  return Math.floor(maxRequestBytes * 0.9) - 1024
}

export interface Chunk { start: number, end: number }

/**
 * Consecutive [start, end) index ranges over `costs`, each holding at most maxOps items whose costs sum to
 * at most maxBytes. An item that alone exceeds maxBytes is the caller's to reject first; here it gets a
 * chunk of its own so the function stays total.
 */
export function chunkByLimits (costs: readonly number[], maxOps: number, maxBytes: number): Chunk[] {
  if (!Number.isInteger(maxOps) || maxOps < 1) throw new RangeError(`maxOps must be a positive integer, got ${maxOps}`)
  const out: Chunk[] = []
  let start = 0
  let bytes = 0
  for (let i = 0; i < costs.length; i++) {
    const c = costs[i] ?? 0
    if (i > start && (i - start >= maxOps || bytes + c > maxBytes)) {
      out.push({ start, end: i })
      start = i
      bytes = 0
    }
    bytes += c
  }
  if (start < costs.length) out.push({ start, end: costs.length })
  return out
}
