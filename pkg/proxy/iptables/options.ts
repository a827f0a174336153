// Render options for the iptables backend: the neutral proxy options plus iptables' own (PROXY.md §6
// flags), validated once, then frozen.
import { FerryError } from '../../errors/errors.js'
import { resolveProxyOptions, type ProxyOptions, type ProxyOptionsInput } from '../options.js'

export interface RenderOptions extends ProxyOptions {
  /** Bit of the packet mark that asks for masquerade; 14 gives 0x4000. */
  readonly masqueradeBit: number
  /** Skip the conntrack INVALID drop (`--conntrack-tcp-be-liberal`). */
  readonly conntrackTCPBeLiberal: boolean
  /** Over this many endpoints in total, per-service chains carry no comments (kube-proxy's large-cluster mode). */
  readonly largeClusterEndpoints: number
}

export type RenderOptionsInput = ProxyOptionsInput & Partial<Pick<RenderOptions, 'masqueradeBit' | 'conntrackTCPBeLiberal' | 'largeClusterEndpoints'>>

export const DEFAULT_MASQUERADE_BIT = 14
export const DEFAULT_LARGE_CLUSTER_ENDPOINTS = 1000

export function resolveRenderOptions (input: RenderOptionsInput): RenderOptions {
  const bit = input.masqueradeBit ?? DEFAULT_MASQUERADE_BIT
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) {
    throw new FerryError('FERRY_ERR_CONFIG', 'masqueradeBit must be an integer in 0..31', { masqueradeBit: bit })
  }
  return Object.freeze({
    ...resolveProxyOptions(input),
    masqueradeBit: bit,
    conntrackTCPBeLiberal: input.conntrackTCPBeLiberal ?? false,
    largeClusterEndpoints: input.largeClusterEndpoints ?? DEFAULT_LARGE_CLUSTER_ENDPOINTS,
  })
}

/** "0x4000" for bit 14. */
export function masqueradeMark (bit: number): string {
  return '0x' + (2 ** bit).toString(16)
}
