// Options of the nftables mode: the neutral proxy options plus the mark bit and the INVALID-drop switch
// (as the iptables mode), validated once, then frozen. Localhost NodePorts are not supported here, as in
// kube-proxy's nftables mode (NFTABLES.md, /tmp layout contract): they are forced off. Like that mode, it
// rejects traffic to a ClusterIP on a port no Service defines.
import { FerryError } from '../../errors/errors.js'
import { resolveProxyOptions, type ProxyOptions, type ProxyOptionsInput } from '../options.js'
import { DEFAULT_MASQUERADE_BIT } from '../iptables/options.js'

export interface NftablesOptions extends ProxyOptions {
  /** Bit of the packet mark that asks for masquerade; 14 gives 0x4000. */
  readonly masqueradeBit: number
  /** Skip the conntrack INVALID drop (`--conntrack-tcp-be-liberal`). */
  readonly conntrackTCPBeLiberal: boolean
}

export type NftablesOptionsInput = ProxyOptionsInput & Partial<Pick<NftablesOptions, 'masqueradeBit' | 'conntrackTCPBeLiberal'>>

export function resolveNftablesOptions (input: NftablesOptionsInput): NftablesOptions {
  const bit = input.masqueradeBit ?? DEFAULT_MASQUERADE_BIT
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) {
    throw new FerryError('FERRY_ERR_CONFIG', 'masqueradeBit must be an integer in 0..31', { masqueradeBit: bit })
  }
  const { masqueradeBit: _b, conntrackTCPBeLiberal, ...neutral } = input
  return Object.freeze({
    ...resolveProxyOptions({ ...neutral, localhostNodePorts: false, rejectOtherPorts: 'clusterIPs' }),
    masqueradeBit: bit,
    conntrackTCPBeLiberal: conntrackTCPBeLiberal ?? false,
  })
}
