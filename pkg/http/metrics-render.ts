// One Prometheus render shared by every scrape that arrives while it runs or shortly after.
// Rendering walks every metric, and prom-client's default collectors list /proc/self/fd and every
// active handle: with many scrapes in flight each render grows with the number of open sockets, so
// a burst of N scrapes costs O(N^2) on the one event loop that also answers /healthz. Sharing the
// render makes a burst cost one render (plus N buffer writes) however large it is.
import { performance } from 'node:perf_hooks'

export interface SharedRenderOptions {
  /** Renders the exposition text (registry.metrics()). */
  render: () => Promise<string>
  /**
   * A finished render is reused for scrapes arriving within this many ms of its start. Prometheus
   * scrapes every 10 s or more, so a 1 s old snapshot loses nothing; 0 only joins a render in flight.
   */
  maxAgeMs: number
  now?: () => number
}

export class SharedRender {
  private inflight: Promise<Buffer> | null = null
  private last: { body: Buffer, startedAt: number } | null = null
  private readonly now: () => number
  /** How many renders ran, for tests and the bench. */
  renders = 0

  constructor (private readonly opts: SharedRenderOptions) {
    this.now = opts.now ?? (() => performance.now())
  }

  /** The exposition body as bytes, encoded once and written as is to every scrape that shares it. */
  async get (): Promise<Buffer> {
    if (this.inflight !== null) return await this.inflight
    const last = this.last
    if (last !== null && this.now() - last.startedAt < this.opts.maxAgeMs) return last.body
    const startedAt = this.now()
    this.renders++
    const p = this.opts.render().then(text => {
      const body = Buffer.from(text)
      this.last = { body, startedAt }
      return body
    })
    // A failed render is not kept: the next scrape tries again.
    this.inflight = p.finally(() => { this.inflight = null })
    return await this.inflight
  }
}
