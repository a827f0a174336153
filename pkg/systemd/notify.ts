// sd_notify without a native addon: systemd-notify waits on sd_notify_barrier (systemd >= 246), so
// the message is processed before it exits. The unit sets NotifyAccess=all for the child's message.
import { execFile } from 'node:child_process'
import { FerryError } from '../errors/errors.js'

/** Sent; or not, with the reason when systemd asked for it (NOTIFY_SOCKET set) and it did not arrive. */
export type NotifyOutcome = { readonly sent: true } | { readonly sent: false, readonly err?: FerryError }

/** The barrier waits up to 5 s for systemd; this bounds a systemd-notify that hangs anyway. */
const NOTIFY_TIMEOUT_MS = 10_000

export async function notify (state: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Promise<NotifyOutcome> {
  if (env.NOTIFY_SOCKET === undefined || env.NOTIFY_SOCKET === '') return { sent: false }
  const args = Object.entries(state).map(([k, v]) => `${k}=${v}`)
  return await new Promise(resolve => {
    execFile('systemd-notify', args, { env, timeout: NOTIFY_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (err === null) { resolve({ sent: true }); return }
      // systemd-notify's own words ("Failed to notify init system: No such file or directory") say why.
      const why = String(stderr).trim()
      resolve({ sent: false, err: new FerryError('FERRY_ERR_EXEC', `systemd-notify ${args.join(' ')} (NOTIFY_SOCKET=${env.NOTIFY_SOCKET}): ${why !== '' ? why : err.message}`) })
    })
  })
}
