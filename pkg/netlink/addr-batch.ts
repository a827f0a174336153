// Addresses by the thousand: RTM_NEWADDR and RTM_DELADDR pipelined on one NETLINK_ROUTE socket
// (pipeline.ts). The IPVS mode binds every Service VIP to ferry-ipvs0; through the netlink package, one
// request and promise chain each, 10.5k took 12-14 s in the test VM and left their garbage to the heap.
import { FerryError } from '../errors/errors.js'
import { ipBytes } from '../net/ip.js'
import { AF_INET, AF_INET6, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST } from './constants.js'
import { NetlinkPipeline, type Outgoing, type PipelineOptions } from './pipeline.js'
import { NETLINK_ROUTE } from './raw.js'
import { openRawTransport, type NetlinkTransport, type TransportOptions } from './transport.js'
import { AttrWriter, HOST_LE } from './wire.js'

// linux/rtnetlink.h, linux/if_addr.h
const RTM_NEWADDR = 20
const RTM_DELADDR = 21
const IFA_ADDRESS = 1
const IFA_LOCAL = 2
const IFA_FLAGS = 8
const IFA_F_NODAD = 0x02

export interface AddressChange {
  readonly op: 'add' | 'delete'
  /** The link's index. */
  readonly index: number
  readonly ip: string
  readonly prefix: number
}

/**
 * The message `ip address add|del IP/PREFIX dev INDEX` sends: IPv4 carries the address as IFA_LOCAL
 * (and IFA_ADDRESS on add), IPv6 as IFA_ADDRESS with NODAD on add, so an address on a down dummy
 * device is usable at once. Adds are exclusive: EEXIST answers an address already there.
 */
export function encodeAddressChange (c: AddressChange): Outgoing {
  const bytes = ipBytes(c.ip)
  if (bytes === null) throw new FerryError('FERRY_ERR_INVALID_OBJECT', `not an IP address: ${c.ip}`, { ip: c.ip })
  const v4 = bytes.length === 4
  const header = Buffer.alloc(8)
  header[0] = v4 ? AF_INET : AF_INET6
  header[1] = c.prefix
  if (HOST_LE) header.writeUInt32LE(c.index, 4); else header.writeUInt32BE(c.index, 4)
  const w = new AttrWriter(48).raw(header)
  const address = Uint8Array.from(bytes)
  if (c.op === 'add') {
    if (v4) w.bytes(IFA_LOCAL, address).bytes(IFA_ADDRESS, address)
    else w.bytes(IFA_ADDRESS, address).u32(IFA_FLAGS, IFA_F_NODAD)
    return { type: RTM_NEWADDR, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, payload: w.finish() }
  }
  w.bytes(v4 ? IFA_LOCAL : IFA_ADDRESS, address)
  return { type: RTM_DELADDR, flags: NLM_F_REQUEST | NLM_F_ACK, payload: w.finish() }
}

export class AddressBatch {
  private readonly pipe: NetlinkPipeline

  constructor (transport: NetlinkTransport, options: PipelineOptions = {}) {
    this.pipe = new NetlinkPipeline(transport, 'rtnetlink', options)
  }

  /**
   * Each change's errno (0 = ok; EEXIST, EADDRNOTAVAIL, ENODEV ... as the kernel answers), in order. An
   * address that does not parse is EINVAL, as the kernel would answer, and is not sent.
   */
  async apply (changes: readonly AddressChange[]): Promise<number[]> {
    return await this.pipe.feed(changes, encodeAddressChange)
  }

  close (): void { this.pipe.close() }
}

export function openAddressBatch (options: TransportOptions & PipelineOptions = {}): AddressBatch {
  return new AddressBatch(openRawTransport(NETLINK_ROUTE, 'rtnetlink', options), options)
}
