// The systemd watchdog (WatchdogSec=): systemd sets WATCHDOG_USEC (and WATCHDOG_PID) and restarts the
// service when WATCHDOG=1 stops arriving. The pings come from an event-loop timer on purpose: an event
// loop that stalls stops them, and systemd then restarts a ferryd that no longer serves.
import type { Logger } from '../log/log.js'
import { notify, type NotifyOutcome } from './notify.js'

/** A positive decimal integer that fits in a double exactly; anything else is not one. */
function positiveInt (s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined
  const n = Number(s)
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

/**
 * sd_watchdog_enabled's rules: the interval in microseconds when WATCHDOG_USEC is a positive integer
 * and WATCHDOG_PID, when set, is this process's pid; else undefined (disabled). A WATCHDOG_PID naming
 * another process means the watchdog belongs to it (the variables were inherited); a bad or zero value
 * in either disables it too.
 */
export function watchdogUsec (env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env.WATCHDOG_USEC
  if (usec === undefined) return undefined
  const interval = positiveInt(usec)
  if (interval === undefined) return undefined
  const owner = env.WATCHDOG_PID
  if (owner !== undefined && positiveInt(owner) !== pid) return undefined
  return interval
}

export interface WatchdogDeps {
  env: NodeJS.ProcessEnv
  pid: number
  log: Logger
  /** The notify seam (systemd-notify); tests pass a fake. */
  notify?: (state: Record<string, string>, env: NodeJS.ProcessEnv) => Promise<NotifyOutcome>
}

export interface Watchdog {
  /** Ping period in ms (half the interval), or undefined when systemd asked for no watchdog. */
  readonly periodMs: number | undefined
  stop: () => void
}

/**
 * Starts pinging at half the interval (sd_watchdog_enabled's advice) when systemd asked for it; call
 * once ready, since systemd arms the watchdog only when start-up completes. Logs once that it is on.
 */
export function startWatchdog (deps: WatchdogDeps): Watchdog {
  const usec = watchdogUsec(deps.env, deps.pid)
  if (usec === undefined) return { periodMs: undefined, stop: () => {} }
  const send = deps.notify ?? notify
  const periodMs = Math.max(1, Math.floor(usec / 2000))
  deps.log.info('systemd watchdog on', { intervalMs: usec / 1000, pingEveryMs: periodMs })
  let inFlight = false
  let warned = false
  const ping = (): void => {
    // A ping still waiting on systemd-notify is enough; piling more processes up helps nobody.
    if (inFlight) return
    inFlight = true
    send({ WATCHDOG: '1' }, deps.env).then(r => {
      // Once: at this rate a lasting failure would flood the log, and systemd will act on it anyway.
      if (!r.sent && r.err !== undefined && !warned) { warned = true; deps.log.warn('systemd watchdog ping failed', { err: r.err }) }
    }, () => {}).finally(() => { inFlight = false })
  }
  ping()
  const timer = setInterval(ping, periodMs)
  return { periodMs, stop: () => { clearInterval(timer) } }
}
