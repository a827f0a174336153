// The network configuration on stdin (SPEC §3): decoded once, checked, frozen. Runtime-set fields
// (cniVersion, name, prevResult, GC's attachment list) come along with ferry-cni's own keys.
import { CniCode, CniError } from './errors.js'

export interface NetConf {
  readonly cniVersion: string
  readonly name: string
  readonly type: string
  /** Bridge device name (default ferry0). */
  readonly bridge: string
  readonly subnetFile: string
  /** IPAM store root (default /var/lib/cni/networks). */
  readonly dataDir: string
  /** Overrides FERRY_MTU. */
  readonly mtu?: number
  /** Overrides !FERRY_IPMASQ: true makes ferry-cni masquerade pod traffic leaving the cluster network. */
  readonly ipMasq?: boolean
  readonly hairpinMode: boolean
  readonly dns?: Readonly<Record<string, unknown>>
  /** The previous plugin's result, as sent (any supported version). */
  readonly prevResult?: Readonly<Record<string, unknown>>
  /** GC: attachments still in use. */
  readonly validAttachments?: ReadonlyArray<{ readonly containerID: string, readonly ifname: string }>
}

export const DEFAULTS = { bridge: 'ferry0', subnetFile: '/run/ferry/subnet.env', dataDir: '/var/lib/cni/networks' } as const

const IFNAME = /^[^/:\s]{1,15}$/

/**
 * SPEC's network name rule, libcni's ValidateNetworkName: the name becomes the IPAM store's folder, the lock's
 * path and an iptables comment, so '..', '/', a leading dot or white space must never get that far.
 */
export const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/

function invalid (msg: string): CniError { return new CniError(CniCode.INVALID_CONFIG, msg) }

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Decodes stdin: bad JSON → 6, wrong or missing fields → 7 naming the field. cniVersion is checked by the caller. */
export function parseNetConf (stdin: string): NetConf {
  let parsed: unknown
  try { parsed = JSON.parse(stdin) } catch (e) {
    throw new CniError(CniCode.DECODE, 'decoding network configuration failed', e instanceof Error ? e.message : String(e))
  }
  if (!isObject(parsed)) throw new CniError(CniCode.DECODE, 'decoding network configuration failed', 'not a JSON object')
  // A null field is an absent one, as Go's encoding/json (libcni, the reference plugins) reads it: a runtime
  // that writes an unset prevResult, dns or mtu as null must not have its ADD, or its DEL, refused.
  const raw = Object.fromEntries(Object.entries(parsed).filter(([, v]) => v !== null))
  // Not a version we lack (1) but content that does not decode (6), as for the Go plugins; absent is 0.1.0.
  if (raw.cniVersion !== undefined && typeof raw.cniVersion !== 'string') {
    throw new CniError(CniCode.DECODE, 'decoding network configuration failed', `field "cniVersion" must be a string, got ${JSON.stringify(raw.cniVersion)}`)
  }
  const str = (k: string, dflt?: string): string | undefined => {
    const v = raw[k]
    if (v === undefined) return dflt
    if (typeof v !== 'string' || v === '') throw invalid(`field "${k}" must be a non-empty string`)
    return v
  }
  const bool = (k: string): boolean | undefined => {
    const v = raw[k]
    if (v === undefined) return undefined
    if (typeof v !== 'boolean') throw invalid(`field "${k}" must be a boolean`)
    return v
  }
  const name = raw.name
  if (name === undefined || name === '') throw invalid('missing network name')
  if (typeof name !== 'string') throw invalid('field "name" must be a non-empty string')
  if (!NETWORK_NAME.test(name)) throw new CniError(CniCode.INVALID_CONFIG, 'invalid characters found in network name', name)
  const bridge = str('bridge', DEFAULTS.bridge) ?? DEFAULTS.bridge
  if (!IFNAME.test(bridge)) throw invalid(`field "bridge" ${JSON.stringify(bridge)} is not an interface name (1..15 characters, no / : or space)`)
  const mtu = raw.mtu
  if (mtu !== undefined && (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535)) throw invalid('field "mtu" must be an integer in 68..65535')
  const conf: { -readonly [K in keyof NetConf]: NetConf[K] } = {
    cniVersion: typeof raw.cniVersion === 'string' ? raw.cniVersion : '0.1.0',
    name,
    type: str('type', 'ferry-cni') ?? 'ferry-cni',
    bridge,
    subnetFile: str('subnetFile', DEFAULTS.subnetFile) ?? DEFAULTS.subnetFile,
    dataDir: str('dataDir', DEFAULTS.dataDir) ?? DEFAULTS.dataDir,
    hairpinMode: bool('hairpinMode') ?? false,
  }
  if (mtu !== undefined) conf.mtu = mtu as number
  const ipMasq = bool('ipMasq')
  if (ipMasq !== undefined) conf.ipMasq = ipMasq
  if (raw.dns !== undefined) {
    if (!isObject(raw.dns)) throw invalid('field "dns" must be an object')
    conf.dns = raw.dns
  }
  if (raw.prevResult !== undefined) {
    if (!isObject(raw.prevResult)) throw invalid('field "prevResult" must be an object')
    conf.prevResult = raw.prevResult
  }
  // spec-v1.1.0 named the list cni.dev/attachments; libcni sends both (cni#1101). An empty list can come as
  // null, under either key: libcni marshals a nil Go slice that way, when the runtime has no attachment left.
  const key = ['cni.dev/valid-attachments', 'cni.dev/attachments'].find(k => k in parsed)
  if (key !== undefined) conf.validAttachments = parsed[key] === null ? [] : attachments(parsed[key])
  return Object.freeze(conf)
}

function attachments (list: unknown): Array<{ containerID: string, ifname: string }> {
  if (!Array.isArray(list)) throw invalid('field "cni.dev/valid-attachments" must be a list')
  return list.map((a: unknown, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      throw invalid(`cni.dev/valid-attachments[${i}] needs string containerID and ifname`)
    }
    return { containerID: a.containerID, ifname: a.ifname }
  })
}
