// One lifecycle for everything ferryd runs on top of the cluster cache (proxy, DNS, later the overlay):
// ferryd builds a list of components from the config, starts them once the source has synced, stops them
// in reverse order, and the HTTP server joins their readiness, debug state and debug routes. The list is
// the only place a component is wired.
import type { FastifyPluginAsync } from 'fastify'
import type { Logger } from '../log/log.js'

/** `reason` says why not ready; on a ready component it is an optional note (say, a degraded mode). */
export interface Readiness { readonly ready: boolean, readonly reason: string }

export interface Component {
  /** Short and stable: names the component in /readyz and its child logger. */
  readonly name: string
  /**
   * Called once, after the source's first sync (the cache holds the whole cluster). Resolves once the
   * component serves that state (the proxy: every family's first rules in the kernel); ferryd reports
   * READY to systemd only then. Rejecting is fatal.
   */
  start: () => Promise<void>
  /** Releases what start() took. Called in reverse list order, also for a component whose start() has not finished. */
  stop: () => Promise<void>
  ready: () => Readiness
  /** Routes mounted under /debug/ (loopback clients only unless --debug-remote), e.g. the proxy's /debug/trace. */
  readonly debugRoutes?: FastifyPluginAsync
  /** Fields merged into /debug/state: a component names its own keys (the DNS component: `dns`). */
  debugState?: () => Readonly<Record<string, unknown>>
}

/** Ready when every component is; the reason names each component that is not (or each note). */
export function readiness (components: readonly Component[]): Readiness {
  const waiting: string[] = []
  const notes: string[] = []
  for (const c of components) {
    const r = c.ready()
    if (!r.ready) waiting.push(`${c.name}: ${r.reason}`)
    else if (r.reason !== '') notes.push(`${c.name}: ${r.reason}`)
  }
  return waiting.length > 0 ? { ready: false, reason: waiting.join('; ') } : { ready: true, reason: notes.join('; ') }
}

/** Every component's debugState() fields, in list order. */
export function debugStates (components: readonly Component[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const c of components) Object.assign(out, c.debugState?.())
  return out
}

/** Starts every component at once (one waiting on the kernel does not hold up another); resolves when all serve. */
export async function startAll (components: readonly Component[]): Promise<void> {
  await Promise.all(components.map(async c => { await c.start() }))
}

/** Stops components in reverse order, one at a time; a failure is logged and the rest still stop. */
export async function stopAll (components: readonly Component[], log: Logger): Promise<void> {
  for (const c of [...components].reverse()) {
    try { await c.stop() } catch (e) { log.warn('stop failed', { component: c.name, err: e }) }
  }
}
