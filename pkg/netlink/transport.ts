// The socket under a netlink pipeline: datagrams of whole netlink messages out, datagrams in. The real
// one is node-netlink's RawNetlinkSocket; tests script a fake that answers with bytes.
import { RawNetlinkSocket } from './raw.js'
import { FerryError } from '../errors/errors.js'

export interface NetlinkTransport {
  /** Sends one datagram holding one or more complete netlink messages (one sendmsg). */
  send (datagram: Buffer, done: (err?: Error) => void): void
  /** Every received datagram; it may hold several messages. */
  onDatagram (fn: (datagram: Buffer) => void): void
  /** A socket-level failure (ENOBUFS when replies overflowed the receive buffer, a truncated datagram). */
  onError (fn: (err: Error) => void): void
  /** Hold the event loop open while replies are awaited; unref when idle so an open socket never keeps a process alive. */
  ref (): void
  unref (): void
  close (): void
}

export interface TransportOptions {
  /** SO_RCVBUF: acks of a whole window must fit (the kernel caps it at net.core.rmem_max, then doubles it). */
  recvBufferSize?: number
  sendBufferSize?: number
}

/** A raw netlink socket of `protocol` (NETLINK_ROUTE, NETLINK_GENERIC ...), bound, unref'd; `what` names it in errors. */
export function openRawTransport (protocol: number, what: string, options: TransportOptions = {}): NetlinkTransport {
  let raw: RawNetlinkSocket
  try {
    raw = new RawNetlinkSocket(protocol, {
      recvBufferSize: options.recvBufferSize ?? 4 << 20,
      sendBufferSize: options.sendBufferSize ?? 1 << 20,
    })
  } catch (e) {
    throw new FerryError('FERRY_ERR_NETLINK', `cannot open a ${what} socket: ${(e as Error).message}`, {}, { cause: e })
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
