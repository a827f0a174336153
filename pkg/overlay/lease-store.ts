// The etcd operations behind subnet leases: list, claim in one guarded transaction, keep an etcd lease
// alive, revoke it, read and write the network config. No policy here (lease.ts decides what to claim).
import type { Etcd3, ICompare, IRequestOp } from 'etcd3'
import { FerryError, errorMessage } from '../errors/errors.js'
import { prefixRangeEnd } from '../etcd/keys.js'
import type { Cidr } from '../net/cidr.js'
import { configKey, decodeAttrs, decodePublicIP, parseLeaseKey, subnetsPrefix, type Lease } from './lease-codec.js'
import { parseNetworkConfig, type NetworkConfig } from './network-config.js'

/** A lease key whose value ferry cannot read as a peer (vxlan without a VtepMAC, another backend's). */
export interface UnreadableLease {
  readonly key: string
  readonly subnet: Cidr
  /** The value's PublicIP when that much reads: the node it names may reuse the key. */
  readonly publicIP?: string | undefined
  /** "0" for a reservation, as in Lease. */
  readonly leaseId: string
  readonly modRevision: string
}

export interface LeaseList {
  readonly revision: string
  /** key → lease, for every readable lease key. */
  readonly leases: Map<string, Lease>
  /** Keys under subnets/ that are not leases ferry can read; they still occupy their subnet when parseable. */
  readonly errors: FerryError[]
  /** The unreadable keys that name a subnet: never handed out, except to the node their PublicIP names. */
  readonly unreadable: UnreadableLease[]
}

/** Every lease at one revision (one range read: a cluster holds at most thousands of nodes). */
export async function listLeases (client: Etcd3, prefix?: string): Promise<LeaseList> {
  const start = subnetsPrefix(prefix)
  const res = await client.kv.range({ key: Buffer.from(start), range_end: prefixRangeEnd(start) })
  const leases = new Map<string, Lease>()
  const errors: FerryError[] = []
  const unreadable: UnreadableLease[] = []
  for (const kv of res.kvs) {
    const key = kv.key.toString('utf8')
    const r = toLease(key, kv.value, kv.lease, kv.mod_revision, prefix)
    if (r instanceof FerryError) {
      errors.push(r)
      const subnet = parseLeaseKey(key, prefix)
      if (subnet !== null) unreadable.push({ key, subnet, publicIP: decodePublicIP(kv.value), leaseId: leaseIdOf(kv.lease), modRevision: kv.mod_revision })
    } else leases.set(r.key, r)
  }
  return { revision: res.header.revision, leases, errors, unreadable }
}

/** A key without an etcd lease (lease 0, or empty) is a reservation: "0" throughout. */
function leaseIdOf (lease: string): string {
  return lease === '' ? '0' : lease
}

/** One stored key → a Lease, or the FerryError saying why it is not one. */
export function toLease (key: string, value: Buffer, leaseId: string, modRevision: string, prefix?: string): Lease | FerryError {
  const subnet = parseLeaseKey(key, prefix)
  if (subnet === null) return new FerryError('FERRY_ERR_PARSE', `etcd key ${key}: not a lease key (want ${subnetsPrefix(prefix)}<ip>-<prefix length>)`, { origin: key })
  try {
    return { key, subnet, attrs: decodeAttrs(key, value), leaseId: leaseIdOf(leaseId), modRevision }
  } catch (e) {
    return e instanceof FerryError ? e : new FerryError('FERRY_ERR_PARSE', `etcd key ${key}: ${errorMessage(e)}`, { origin: key })
  }
}

export interface ClaimPut {
  key: string
  value: string
  /** "0": the key must be absent (Version == 0); else the mod revision it must still have (reuse). */
  expectModRevision: string
  /** Written without an etcd lease (a reservation stays one). */
  noLease?: boolean
}

/**
 * Grants an etcd lease of `ttlSeconds` (when any put needs one) and writes every put in one transaction
 * guarded by its compare; `deletes` go in the same transaction. Lost compare → the new lease is revoked
 * and the result says so; nothing was written.
 */
export async function claim (client: Etcd3, puts: readonly ClaimPut[], deletes: readonly string[], ttlSeconds: number): Promise<{ ok: boolean, leaseId: string }> {
  const needsLease = puts.some(p => p.noLease !== true)
  const leaseId = needsLease ? (await client.leaseClient.leaseGrant({ TTL: ttlSeconds })).ID : '0'
  const compare: ICompare[] = puts.map(p => p.expectModRevision === '0'
    ? { key: Buffer.from(p.key), target: 'Version', result: 'Equal', version: 0 }
    : { key: Buffer.from(p.key), target: 'Mod', result: 'Equal', mod_revision: p.expectModRevision })
  const success: IRequestOp[] = [
    ...puts.map(p => ({ request_put: { key: Buffer.from(p.key), value: Buffer.from(p.value), lease: p.noLease === true ? 0 : leaseId } })),
    ...deletes.map(k => ({ request_delete_range: { key: Buffer.from(k) } })),
  ]
  let ok = false
  try {
    ok = (await client.kv.txn({ compare, success, failure: [] })).succeeded
  } finally {
    if (!ok && needsLease) await revoke(client, leaseId)
  }
  return { ok, leaseId }
}

/**
 * One keepalive round trip: the lease's new TTL in seconds, 0 when etcd no longer has it (expired or
 * revoked; its keys are gone). Throws when etcd cannot be reached.
 */
export async function keepAlive (client: Etcd3, leaseId: string, timeoutMs = 5000): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive()
  try {
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`lease keepalive: no answer within ${timeoutMs}ms`)) }, timeoutMs)
      stream.on('data', (res: { TTL: string }) => { clearTimeout(timer); resolve(Math.max(0, Number(res.TTL))) })
      stream.on('error', (e: Error) => { clearTimeout(timer); reject(e) })
      stream.on('end', () => { clearTimeout(timer); reject(new Error('lease keepalive stream ended')) })
      stream.write({ ID: leaseId })
    })
  } finally {
    try { stream.end() } catch {}
  }
}

/** Revokes an etcd lease (deleting its keys); a lease etcd no longer knows is not an error. */
export async function revoke (client: Etcd3, leaseId: string): Promise<void> {
  if (leaseId === '0') return
  try { await client.leaseClient.leaseRevoke({ ID: leaseId }) } catch (e) {
    if (!/not found/i.test(errorMessage(e))) throw e
  }
}

/** The network config, or undefined when `<prefix>/network/config` is absent. Throws FERRY_ERR_PARSE/CONFIG on a bad one. */
export async function readNetworkConfig (client: Etcd3, prefix?: string): Promise<NetworkConfig | undefined> {
  const res = await client.kv.range({ key: Buffer.from(configKey(prefix)) })
  const kv = res.kvs[0]
  return kv === undefined ? undefined : parseNetworkConfig(kv.value)
}

/** Stores a network config (flannel's JSON) after validating it; for ferryctl, the demo and tests. */
export async function writeNetworkConfig (client: Etcd3, raw: Record<string, unknown>, prefix?: string): Promise<NetworkConfig> {
  const text = JSON.stringify(raw)
  const cfg = parseNetworkConfig(text)
  await client.kv.put({ key: Buffer.from(configKey(prefix)), value: Buffer.from(text) })
  return cfg
}
