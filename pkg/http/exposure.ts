// Who may reach the operations endpoint. /metrics and the probes are meant for other hosts (Prometheus,
// kubelet-style checkers), but /debug/state holds the whole Service and endpoint map and fragments of
// rejected input, so it answers loopback clients only unless --debug-remote says otherwise, and a
// listener reachable from other hosts is announced with a warning at start-up.
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from '../log/log.js'
import { isLoopback as isLoopbackAddress } from '../net/ip.js'

export { isLoopback as isLoopbackAddress } from '../net/ip.js'

/** The endpoints every client that reaches the listener gets, and the one kept to loopback. */
export const OPEN_PATHS = ['/metrics', '/healthz', '/livez', '/readyz'] as const
export const DEBUG_PREFIX = '/debug/'

/**
 * An onRequest hook for the /debug/ routes: a client whose socket address is not loopback gets 403.
 * The socket's address, not X-Forwarded-For: a header is the client's to choose.
 */
export function debugGuard (allowRemote: boolean) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const remote = req.socket.remoteAddress ?? 'unknown'
    if (allowRemote || isLoopbackAddress(remote)) return undefined
    return await reply.code(403).type('text/plain').send(
      `forbidden: ${DEBUG_PREFIX}* answers loopback clients only and ${remote} is not one; ` +
      'start ferryd with --debug-remote (debugRemote: true) to open it to every client\n')
  }
}

function formatAddress (a: AddressInfo | string): string {
  if (typeof a === 'string') return a
  return a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
}

/** The listener's addresses that other hosts can reach (0.0.0.0 and :: included). */
export function exposedAddresses (addresses: ReadonlyArray<AddressInfo | string>): string[] {
  return addresses.filter(a => typeof a !== 'string' && !isLoopbackAddress(a.address)).map(formatAddress)
}

/** What the start-up warning says is reachable from other hosts, or null when loopback only. */
export function exposureWarning (addresses: ReadonlyArray<AddressInfo | string>, debugRemote: boolean): Record<string, unknown> | null {
  const exposed = exposedAddresses(addresses)
  if (exposed.length === 0) return null
  return {
    addresses: exposed,
    exposes: debugRemote ? [...OPEN_PATHS, `${DEBUG_PREFIX}state`] : [...OPEN_PATHS],
    debug: debugRemote
      ? '--debug-remote: /debug/state (every Service, endpoint and source error) answers any client'
      : '/debug/state answers loopback clients only (--debug-remote opens it)',
  }
}

/** Listens, logs the address, and warns when the endpoint is reachable beyond this host. */
export async function listenHttp (app: FastifyInstance, opts: { host: string, port: number, debugRemote: boolean, log: Logger }): Promise<void> {
  await app.listen({ host: opts.host, port: opts.port })
  announceHttp(app.addresses(), opts)
}

/** Logs the listener's address, and warns when the endpoint is reachable beyond this host. */
export function announceHttp (addresses: ReadonlyArray<AddressInfo | string>, opts: { debugRemote: boolean, log: Logger }): void {
  opts.log.info('http listening', { address: addresses.map(formatAddress).join(', ') })
  const warning = exposureWarning(addresses, opts.debugRemote)
  if (warning !== null) opts.log.warn('http endpoint reachable from other hosts: firewall it or listen on 127.0.0.1', warning)
}
