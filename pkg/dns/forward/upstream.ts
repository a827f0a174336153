// One upstream's state: its sockets and its health (DNS.md §4.3). A check starts only after an error and
// repeats until the upstream answers `. IN NS`; any reply at all is healthy. More than maxFails failed
// checks in a row mark it down.
import { formatHostPort, type HostPort } from '../../config/dns-addresses.js'
import { TYPE } from '../message.js'
import { encodeQuery } from '../wire/writer.js'
import type { ForwardMetrics } from './metrics.js'
import { UdpPool } from './transport.js'

export interface UpstreamOptions {
  readonly maxFails: number
  readonly healthCheckIntervalMs: number
  readonly healthCheckTimeoutMs: number
  readonly udpSockets: number
  readonly socketExpireMs: number
  readonly now: () => number
  readonly metrics: ForwardMetrics
}

/** The health probe: `. IN NS`, RD=1, no OPT (DNS.md §4.3). */
export const PROBE: Uint8Array = encodeQuery(0, '', TYPE.NS)

export class Upstream {
  readonly to: string
  readonly udp: UdpPool
  /** Consecutive failed health checks. */
  fails = 0
  private checking = false
  private closed = false
  private timer: NodeJS.Timeout | undefined

  constructor (readonly addr: HostPort, private readonly opts: UpstreamOptions) {
    this.to = formatHostPort(addr) // CoreDNS's `to` label: ip:port, IPv6 in brackets
    this.udp = new UdpPool(addr, { size: opts.udpSockets, expireMs: opts.socketExpireMs, now: opts.now, metrics: opts.metrics, to: this.to })
  }

  down (): boolean {
    return this.opts.maxFails > 0 && this.fails > this.opts.maxFails
  }

  /** Called after an exchange error: starts the check loop unless one runs (or checks are off). */
  healthcheck (): void {
    if (this.opts.maxFails === 0 || this.checking || this.closed) return
    this.checking = true
    void this.check()
  }

  private async check (): Promise<void> {
    if (this.closed) return
    let ok: boolean
    try {
      await this.udp.exchange(PROBE, this.opts.healthCheckTimeoutMs)
      ok = true
    } catch {
      ok = false
    }
    if (this.closed) return
    if (ok) {
      this.fails = 0
      this.checking = false
      return
    }
    this.fails++
    this.opts.metrics.healthcheckFailure(this.to)
    this.timer = setTimeout(() => { this.timer = undefined; void this.check() }, this.opts.healthCheckIntervalMs)
  }

  close (): void {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.udp.close()
  }
}
