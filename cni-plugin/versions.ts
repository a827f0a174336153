// CNI spec versions ferry-cni speaks and the reconcile rule of libcni (pkg/version/reconcile.go):
// an exact string match against the supported list, never a range.

export const CURRENT_VERSION = '1.1.0'
export const SUPPORTED_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']

/** Numeric comparison of dotted versions ("0.4.0" < "1.0.0"); missing parts count as 0. */
export function compareVersions (a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d < 0 ? -1 : 1
  }
  return 0
}

/** The least config version each verb needs (SPEC: CHECK since 0.4.0, GC and STATUS since 1.1.0). */
export const MIN_VERSION: Readonly<Record<string, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' }

/** The VERSION answer: the input's version when we speak it (SPEC echoes it), else our own. */
export function versionInfo (stdin: string): string {
  let v: unknown
  try { v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion } catch { v = undefined }
  const cniVersion = typeof v === 'string' && SUPPORTED_VERSIONS.includes(v) ? v : CURRENT_VERSION
  return JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS })
}
