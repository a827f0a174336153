// CNI results (pkg/types/040, 100, and 1.1.0): built in the newest form, printed in the config's version.
// Down-conversion drops what older versions lack; 0.3.x/0.4.0 add ips[].version.

export interface CniInterface {
  readonly name: string
  readonly mac?: string
  readonly mtu?: number
  readonly sandbox?: string
  /** 1.1.0, only ever from a prevResult: kept so chaining passes them on. */
  readonly socketPath?: string
  readonly pciID?: string
}
export interface CniIP { readonly address: string, readonly gateway?: string, readonly interface?: number }
/** The numeric fields are 1.1.0's, only ever from a prevResult: kept so chaining passes them on. */
export interface CniRoute {
  readonly dst: string
  readonly gw?: string
  readonly mtu?: number
  readonly advmss?: number
  readonly priority?: number
  readonly table?: number
  readonly scope?: number
}

const ROUTE_NUMBERS = ['mtu', 'advmss', 'priority', 'table', 'scope'] as const
export interface CniDNS { readonly nameservers?: readonly string[], readonly domain?: string, readonly search?: readonly string[], readonly options?: readonly string[] }
export interface Result {
  readonly interfaces: readonly CniInterface[]
  readonly ips: readonly CniIP[]
  readonly routes: readonly CniRoute[]
  readonly dns: CniDNS
}

const EMPTY: Result = { interfaces: [], ips: [], routes: [], dns: {} }

/** The result as the given cniVersion prints it (only versions in SUPPORTED_VERSIONS reach here). */
export function formatResult (r: Result, cniVersion: string): Record<string, unknown> {
  const legacy = cniVersion.startsWith('0.')
  const v11 = cniVersion === '1.1.0'
  return {
    cniVersion,
    interfaces: r.interfaces.map(i => {
      const o: Record<string, unknown> = { name: i.name }
      if (i.mac !== undefined) o.mac = i.mac
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu
      if (i.sandbox !== undefined) o.sandbox = i.sandbox
      if (v11 && i.socketPath !== undefined) o.socketPath = i.socketPath
      if (v11 && i.pciID !== undefined) o.pciID = i.pciID
      return o
    }),
    ips: r.ips.map(ip => {
      const o: Record<string, unknown> = {}
      if (legacy) o.version = ip.address.includes(':') ? '6' : '4'
      o.address = ip.address
      if (ip.gateway !== undefined) o.gateway = ip.gateway
      if (ip.interface !== undefined) o.interface = ip.interface
      return o
    }),
    routes: r.routes.map(rt => {
      const o: Record<string, unknown> = { dst: rt.dst }
      if (rt.gw !== undefined) o.gw = rt.gw
      if (v11) for (const k of ROUTE_NUMBERS) if (rt[k] !== undefined) o[k] = rt[k]
      return o
    }),
    dns: r.dns,
  }
}

function arr (v: unknown): Array<Record<string, unknown>> {
  return Array.isArray(v) ? v.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null) : []
}
const s = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined

/** Reads a prevResult of any supported version (0.3.0 … 1.1.0) into the newest form; fields no version defines are dropped. */
export function parseResult (raw: Readonly<Record<string, unknown>> | undefined): Result {
  if (raw === undefined) return EMPTY
  const interfaces = arr(raw.interfaces).map(i => {
    const o: { -readonly [K in keyof CniInterface]: CniInterface[K] } = { name: s(i.name) ?? '' }
    if (s(i.mac) !== undefined) o.mac = s(i.mac)
    if (typeof i.mtu === 'number') o.mtu = i.mtu
    if (s(i.sandbox) !== undefined) o.sandbox = s(i.sandbox)
    if (s(i.socketPath) !== undefined) o.socketPath = s(i.socketPath)
    if (s(i.pciID) !== undefined) o.pciID = s(i.pciID)
    return o
  })
  const ips = arr(raw.ips).map(ip => {
    const o: { -readonly [K in keyof CniIP]: CniIP[K] } = { address: s(ip.address) ?? '' }
    if (s(ip.gateway) !== undefined) o.gateway = s(ip.gateway)
    if (typeof ip.interface === 'number') o.interface = ip.interface
    return o
  })
  const routes = arr(raw.routes).map(rt => {
    const o: { -readonly [K in keyof CniRoute]: CniRoute[K] } = { dst: s(rt.dst) ?? '' }
    if (s(rt.gw) !== undefined) o.gw = s(rt.gw)
    for (const k of ROUTE_NUMBERS) if (typeof rt[k] === 'number') o[k] = rt[k]
    return o
  })
  const dns = typeof raw.dns === 'object' && raw.dns !== null ? raw.dns as CniDNS : {}
  return { interfaces, ips, routes, dns }
}

/** Chaining: our interfaces appended after the previous ones, our ips' interface indexes shifted to match. */
export function mergeResults (prev: Result, ours: Result): Result {
  const shift = prev.interfaces.length
  const dns = Object.keys(ours.dns).length > 0 ? ours.dns : prev.dns
  return {
    interfaces: [...prev.interfaces, ...ours.interfaces],
    ips: [...prev.ips, ...ours.ips.map(ip => ip.interface === undefined ? ip : { ...ip, interface: ip.interface + shift })],
    routes: [...prev.routes, ...ours.routes],
    dns,
  }
}
