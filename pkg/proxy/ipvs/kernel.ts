// The real IpvsKernel: the IPVS generic-netlink family over one NETLINK_GENERIC socket. Changes are
// pipelined (pkg/netlink/pipeline.ts: a window in flight, many per sendmsg, each acked and matched by
// sequence number); dumps run one at a time, as the kernel allows one per socket.
import { FerryError, errorMessage, isFerryError } from '../../errors/errors.js'
import { NetlinkPipeline, errnoName, type PipelineOptions } from '../../netlink/pipeline.js'
import { decodeFamilyId, encodeGetFamily, type NetlinkMessage } from '../../netlink/wire.js'
import {
  decodeDestinationMessage, decodeInfoMessage, decodeServiceMessage, describeKey, encodeDestinationDump, encodeFlush,
  encodeGetInfo, encodeOp, encodeServiceDump,
} from './codec.js'
import { ENOENT, GENL_ID_CTRL, IPVS_GENL_NAME, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from './constants.js'
import { openGenericNetlink, type GenericNetlinkOptions, type NetlinkTransport } from './transport.js'
import type { IpvsInfo, IpvsKernel, IpvsOp, IpvsOpResult, RealServer, VirtualServer, VirtualServerKey } from './types.js'

export interface IpvsKernelOptions extends GenericNetlinkOptions, PipelineOptions {}

export class NetlinkIpvsKernel implements IpvsKernel {
  /** The IPVS family's id, as nlctrl resolved it (-1 until then). */
  familyId = -1
  private readonly pipe: NetlinkPipeline
  /** Dumps queue behind each other: a second dump on one socket gets EBUSY. */
  private dumpLane: Promise<unknown> = Promise.resolve()

  constructor (transport: NetlinkTransport, options: IpvsKernelOptions = {}) {
    this.pipe = new NetlinkPipeline(transport, 'IPVS', options)
  }

  /** Resolves the "IPVS" family through nlctrl; ENOENT means the module is not loaded. */
  async resolveFamily (): Promise<number> {
    const id = await this.lookupFamily(IPVS_GENL_NAME)
    if (id === null) {
      throw new FerryError('FERRY_ERR_IPVS_UNAVAILABLE',
        'IPVS is not available in this kernel: generic netlink family "IPVS" not found (module ip_vs not loaded; modprobe ip_vs)',
        { errno: ENOENT, family: IPVS_GENL_NAME })
    }
    this.familyId = id
    return id
  }

  /** A generic-netlink family's id (CTRL_CMD_GETFAMILY), or null when the kernel has none of that name. */
  async lookupFamily (name: string): Promise<number | null> {
    const { errno, parts } = await this.pipe.request(GENL_ID_CTRL, NLM_F_REQUEST, encodeGetFamily(name), 'reply')
    if (errno === ENOENT) return null
    if (errno !== 0) throw kernelError(`resolving generic netlink family "${name}"`, errno)
    const reply = parts.find(m => m.type === GENL_ID_CTRL)
    if (reply === undefined) throw new FerryError('FERRY_ERR_NETLINK', `nlctrl answered the lookup of "${name}" with no family`)
    return decodeFamilyId(reply.payload)
  }

  async listServices (): Promise<VirtualServer[]> {
    const parts = await this.dump(encodeServiceDump(), 'listing IPVS services')
    const out: VirtualServer[] = []
    for (const m of parts) {
      const s = m.type === this.familyId ? decodeServiceMessage(m.payload) : null
      if (s !== null) out.push(s)
    }
    return out
  }

  async listDestinations (service: VirtualServerKey): Promise<RealServer[]> {
    const parts = await this.dump(encodeDestinationDump(service), `listing the destinations of ${describeKey(service)}`)
    const out: RealServer[] = []
    for (const m of parts) {
      const d = m.type === this.familyId ? decodeDestinationMessage(m.payload, service.family) : null
      if (d !== null) out.push(d)
    }
    return out
  }

  async apply (ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
    this.assertResolved()
    const type = this.familyId
    const errnos = await this.pipe.feed(ops, op => ({ type, flags: NLM_F_REQUEST | NLM_F_ACK, payload: encodeOp(op) }))
    return ops.map((op, i) => ({ op, errno: errnos[i] ?? 0 }))
  }

  async flush (): Promise<void> {
    this.assertResolved()
    const { errno } = await this.pipe.request(this.familyId, NLM_F_REQUEST | NLM_F_ACK, encodeFlush(), 'ack')
    if (errno !== 0) throw kernelError('flushing IPVS', errno)
  }

  async info (): Promise<IpvsInfo> {
    this.assertResolved()
    const { errno, parts } = await this.pipe.request(this.familyId, NLM_F_REQUEST, encodeGetInfo(), 'reply')
    if (errno !== 0) throw kernelError('reading IPVS info', errno)
    const reply = parts.find(m => m.type === this.familyId)
    if (reply === undefined) throw new FerryError('FERRY_ERR_NETLINK', 'IPVS answered GET_INFO with nothing')
    return decodeInfoMessage(reply.payload)
  }

  close (): void { this.pipe.close() }

  private async dump (payload: Buffer, what: string): Promise<NetlinkMessage[]> {
    this.assertResolved()
    const run = async (): Promise<NetlinkMessage[]> => {
      const { errno, parts } = await this.pipe.request(this.familyId, NLM_F_REQUEST | NLM_F_DUMP, payload, 'dump')
      if (errno !== 0) throw kernelError(what, errno)
      return parts
    }
    const result = this.dumpLane.then(run, run)
    this.dumpLane = result.catch(() => undefined)
    return await result
  }

  /** Every IPVS request is addressed to the family id. */
  private assertResolved (): void {
    this.pipe.assertOpen()
    if (this.familyId < 0) throw new FerryError('FERRY_ERR_NETLINK', 'the IPVS generic netlink family is not resolved yet (resolveFamily)')
  }
}

/** Opens a generic netlink socket and resolves the IPVS family; FERRY_ERR_IPVS_UNAVAILABLE when the kernel lacks it. */
export async function openIpvsKernel (options: IpvsKernelOptions = {}): Promise<NetlinkIpvsKernel> {
  return await openIpvsKernelWith(openGenericNetlink(options), options)
}

/** openIpvsKernel over a given transport (tests script one); the transport is closed if resolution fails. */
export async function openIpvsKernelWith (transport: NetlinkTransport, options: IpvsKernelOptions = {}): Promise<NetlinkIpvsKernel> {
  const kernel = new NetlinkIpvsKernel(transport, options)
  try {
    await kernel.resolveFamily()
    return kernel
  } catch (e) {
    kernel.close()
    throw e
  }
}

export type IpvsSupport = { ok: true } | { ok: false, reason: string, code?: string }

/** Whether this kernel speaks IPVS (the family resolves); the socket is closed either way. */
export async function ipvsSupported (open: () => Promise<IpvsKernel> = openIpvsKernel): Promise<IpvsSupport> {
  try {
    const kernel = await open()
    kernel.close()
    return { ok: true }
  } catch (e) {
    return isFerryError(e) ? { ok: false, reason: e.message, code: e.code } : { ok: false, reason: errorMessage(e) }
  }
}

function kernelError (what: string, errno: number): FerryError {
  return new FerryError('FERRY_ERR_NETLINK', `${what}: ${errnoName(errno)}`, { errno })
}

