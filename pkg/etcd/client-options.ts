// The etcd3 client's channel settings (client.ts). The bare client (bare-client.ts over h2-grpc.ts)
// keeps the same window, keepalive and message cap in its own terms.

/**
 * gRPC keepalive, so a dead or hung etcd is noticed on the watch stream too (etcd's default keepalive
 * enforcement allows pings every 5s; we ping every 10s), and room for large Range replies. A 16 MiB
 * HTTP/2 window: with the default 64 KiB, the page asked for ahead stalled after its first 64 KiB
 * while the event loop decoded the current one, and the list waited on window updates (a 10k list
 * idled 220-330 ms; 90-130 ms with this window and 3000-key pages).
 */
export const CHANNEL_OPTIONS: Readonly<Record<string, number>> = Object.freeze({
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 0,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
})

let quiet = false
/**
 * grpc-js sends the host as TLS server name even when it is an IP (https://10.0.0.10:2379, the usual etcd
 * endpoint), and Node then prints DEP0123 on stderr: noise nobody running ferry can act on. Drops only that.
 */
export function quietIPServerNameWarning (): void {
  if (quiet) return
  quiet = true
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void
  process.emitWarning = ((...args: unknown[]) => {
    const opt = args[1]
    const code = typeof opt === 'object' && opt !== null ? (opt as { code?: unknown }).code : args[2]
    if (code !== 'DEP0123') emit(...args)
  }) as typeof process.emitWarning
}
