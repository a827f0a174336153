// Without etcd (the built-in default) the node's subnet comes from config (--pod-cidr, and its IPv6 twin
// when dual-stack): same interface as the etcd manager, nothing claimed, nothing renewed, no peers.
import { FerryError } from '../errors/errors.js'
import { containsCidr, parseCidr, type Cidr } from '../net/cidr.js'
import type { LeaseAttrs, Lease } from './lease-codec.js'
import type { NodeLeases, SubnetManager } from './lease.js'
import type { LeaseHandler } from './lease-watch.js'
import type { BackendConfig, FamilyNetwork, NetworkConfig } from './network-config.js'

export interface StaticSubnetOptions {
  /** The cluster network (--cluster-cidr), e.g. "10.244.0.0/16". */
  network: string
  /** This node's subnet (--pod-cidr), e.g. "10.244.1.0/24". */
  podCIDR: string
  networkIPv6?: string | undefined
  podCIDRIPv6?: string | undefined
  backend?: BackendConfig | undefined
}

function cidr (flag: string, text: string, family: 'IPv4' | 'IPv6'): Cidr {
  const c = parseCidr(text, { strict: true })
  if (c === null || c.family !== family) throw new FerryError('FERRY_ERR_CONFIG', `${flag}: want an ${family} network CIDR, got ${JSON.stringify(text)}`)
  return c
}

function family (netFlag: string, net: string, podFlag: string, pod: string, fam: 'IPv4' | 'IPv6'): FamilyNetwork {
  const network = cidr(netFlag, net, fam)
  const subnet = cidr(podFlag, pod, fam)
  if (!containsCidr(network, subnet) || subnet.prefix === network.prefix) throw new FerryError('FERRY_ERR_CONFIG', `${podFlag}: ${subnet.text} is not a subnet of ${netFlag} ${network.text}`)
  return Object.freeze({ family: fam, network, subnetLen: subnet.prefix, subnetMin: subnet, subnetMax: subnet })
}

export class StaticSubnetManager implements SubnetManager {
  readonly name = 'static pod CIDR'
  readonly config: NetworkConfig

  constructor (opts: StaticSubnetOptions) {
    const ipv4 = family('--cluster-cidr', opts.network, '--pod-cidr', opts.podCIDR, 'IPv4')
    if ((opts.networkIPv6 === undefined) !== (opts.podCIDRIPv6 === undefined)) throw new FerryError('FERRY_ERR_CONFIG', 'the IPv6 cluster CIDR and IPv6 pod CIDR go together')
    const ipv6 = opts.networkIPv6 !== undefined && opts.podCIDRIPv6 !== undefined
      ? family('--cluster-cidr (IPv6)', opts.networkIPv6, '--pod-cidr (IPv6)', opts.podCIDRIPv6, 'IPv6')
      : undefined
    this.config = Object.freeze({
      ipv4, ...(ipv6 !== undefined ? { ipv6 } : {}),
      backend: opts.backend ?? Object.freeze({ type: 'host-gw' as const, vni: 1, port: 8472 }),
      ignoredKeys: [],
    })
  }

  async acquire (attrs: LeaseAttrs): Promise<NodeLeases> {
    const lease = (f: FamilyNetwork | undefined): Lease | undefined => f === undefined
      ? undefined
      : { key: '', subnet: f.subnetMin, attrs, leaseId: '0', modRevision: '0' }
    const ipv4 = lease(this.config.ipv4)
    const ipv6 = lease(this.config.ipv6)
    return { config: this.config, ...(ipv4 !== undefined ? { ipv4 } : {}), ...(ipv6 !== undefined ? { ipv6 } : {}) }
  }

  async watch (handler: LeaseHandler): Promise<{ stop: () => Promise<void> }> {
    handler.synced?.(new Map())
    return { stop: async () => {} }
  }

  async close (): Promise<void> {}
}
