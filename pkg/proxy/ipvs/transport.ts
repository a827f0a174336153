// The socket under kernel.ts: datagrams of whole netlink messages out, datagrams in. The real one is
// node-netlink's RawNetlinkSocket on NETLINK_GENERIC; tests script a fake that answers with bytes.
import { NETLINK_GENERIC, RawNetlinkSocket } from '../../netlink/raw.js'
import { FerryError } from '../../errors/errors.js'

export interface NetlinkTransport {
  /** Sends one datagram holding one or more complete netlink messages (one sendmsg). */
  send (datagram: Buffer, done: (err?: Error) => void): void
  /** Every received datagram; it may hold several messages. */
  onDatagram (fn: (datagram: Buffer) => void): void
  /** A socket-level failure (ENOBUFS when replies overflowed the receive buffer, a truncated datagram). */
  onError (fn: (err: Error) => void): void
  /** Hold the event loop open while replies are awaited; unref when idle so an open kernel never keeps a process alive. */
  ref (): void
  unref (): void
  close (): void
}

export interface GenericNetlinkOptions {
  /** SO_RCVBUF: acks of a whole window must fit (the kernel caps it at net.core.rmem_max, then doubles it). */
  recvBufferSize?: number
  sendBufferSize?: number
}

/** A NETLINK_GENERIC socket, bound, unref'd. Messages are framed and parsed by wire.ts, not by the library. */
export function openGenericNetlink (options: GenericNetlinkOptions = {}): NetlinkTransport {
  let raw: RawNetlinkSocket
  try {
    raw = new RawNetlinkSocket(NETLINK_GENERIC, {
      recvBufferSize: options.recvBufferSize ?? 4 << 20,
      sendBufferSize: options.sendBufferSize ?? 1 << 20,
    })
  } catch (e) {
    throw new FerryError('FERRY_ERR_NETLINK', `cannot open a generic netlink socket: ${(e as Error).message}`, {}, { cause: e })
  }
  raw.unref()
  let closed = false
  const errorHandlers: Array<(err: Error) => void> = []
  const emitError = (err: Error): void => { for (const fn of errorHandlers) fn(err) }
  raw.on('error', emitError)
  raw.on('truncatedMessage', (_msg, info) => emitError(new Error(`truncated netlink datagram of ${info.truncated ?? '?'} bytes`)))
  return {
    send (datagram, done) { raw.send(datagram, {}, err => done(err)) },
    onDatagram (fn) { raw.on('message', msg => fn(msg)) },
    onError (fn) { errorHandlers.push(fn) },
    ref () { if (!closed) raw.ref() },
    unref () { if (!closed) raw.unref() },
    close () {
      if (closed) return
      closed = true
      raw.close()
    },
  }
}
