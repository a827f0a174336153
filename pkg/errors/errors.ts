// One catalogue of coded errors. Edges (CNI, DNS, HTTP) map codes to their own vocabularies.

export const ErrorCodes = {
  FERRY_ERR_INVALID_OBJECT: 'an object failed validation; the message names the object and the field',
  FERRY_ERR_PARSE: 'a manifest or stored value could not be parsed',
  FERRY_ERR_LIMIT: 'an input exceeds a decoding limit (size, aliases, depth, objects) or is not a regular file; it is ignored whole',
  FERRY_ERR_UNKNOWN_KIND: 'an object has a kind ferry does not handle',
  FERRY_ERR_DUPLICATE: 'two objects share a kind, namespace and name',
  FERRY_ERR_CONFIG: 'a flag or config file value is invalid',
  FERRY_ERR_SOURCE: 'a state source (files, etcd) failed; the last good state is kept',
  FERRY_ERR_APPLY: 'programming the kernel failed; a full sync is retried',
  FERRY_ERR_EXEC: 'a helper program exited with an error',
  FERRY_ERR_NOT_FOUND: 'the named object does not exist',
  FERRY_ERR_IPVS_UNAVAILABLE: 'IPVS is not available in this kernel: the generic netlink family "IPVS" is missing (module ip_vs not loaded)',
  FERRY_ERR_SUBNETS_EXHAUSTED: 'every node subnet between SubnetMin and SubnetMax is leased to another node: widen the network or free a lease',
  FERRY_ERR_LEASE: 'claiming or renewing the node subnet lease in etcd failed (lost races past the retry bound, etcd unreachable, lease lost)',
  FERRY_ERR_NETLINK: 'a netlink exchange failed as a whole (socket error, lost or malformed reply, refused dump); per-message kernel errors are returned as errnos, not thrown',
  FERRY_ERR_IPAM_EXHAUSTED: 'a pod IP range has no free address left ("no IP addresses available in range …"); the message names the range',
  FERRY_ERR_IPAM_STORE: 'the IPAM store under the CNI data dir failed: an I/O error or a corrupt entry',
  FERRY_ERR_IPAM_BUSY: 'the IPAM store\'s lock is held by a live process that did not let go in time (CNI code 11: try again later)',
  FERRY_ERR_IPAM_RANGE: 'an IPAM range is invalid: unparsable, too small to allocate from, or with a gateway or start/end outside its subnet',
} as const

export type ErrorCode = keyof typeof ErrorCodes

export class FerryError extends Error {
  readonly code: ErrorCode
  readonly details: Readonly<Record<string, unknown>>
  constructor (code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'FerryError'
    this.code = code
    this.details = details
  }

  toJSON (): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.details }
  }
}

export function isFerryError (e: unknown, code?: ErrorCode): e is FerryError {
  return e instanceof FerryError && (code === undefined || e.code === code)
}

export function errorMessage (e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
