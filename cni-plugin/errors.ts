// CNI error results (SPEC §"Error"): printed on stdout as {cniVersion, code, msg, details}, exit non-zero.
// ferry's FERRY_ERR_* codes are mapped to CNI codes here, at the edge, and nowhere else.

export const CniCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  INVALID_NETNS: 8,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  // Plugin-specific codes (100+).
  NO_ADDRESSES: 100,
  INTERFACE_EXISTS: 101,
  CHECK_FAILED: 102,
  INTERNAL: 999,
} as const

export class CniError extends Error {
  readonly code: number
  readonly details: string
  constructor (code: number, msg: string, details = '') {
    super(msg)
    this.name = 'CniError'
    this.code = code
    this.details = details
  }

  toJSON (cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = { cniVersion, code: this.code, msg: this.message }
    if (this.details !== '') out.details = this.details
    return out
  }
}

/** A coded error from anywhere in ferry (FerryError, or pkg/ipam's), read structurally. */
function ferryCode (e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/** The CNI error for anything thrown by a verb. */
export function toCniError (e: unknown): CniError {
  if (e instanceof CniError) return e
  const msg = e instanceof Error ? e.message : String(e)
  switch (ferryCode(e)) {
    case 'FERRY_ERR_IPAM_EXHAUSTED': return new CniError(CniCode.NO_ADDRESSES, 'no IP addresses available', msg)
    case 'FERRY_ERR_IPAM_BUSY': return new CniError(CniCode.TRY_AGAIN_LATER, 'IPAM store busy, try again later', msg)
    case 'FERRY_ERR_CONFIG': return new CniError(CniCode.INVALID_CONFIG, msg)
    default: return new CniError(CniCode.INTERNAL, msg)
  }
}
