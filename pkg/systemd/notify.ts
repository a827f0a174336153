// sd_notify without a native addon: systemd-notify waits on sd_notify_barrier (systemd >= 246), so
// the message is processed before it exits. The unit sets NotifyAccess=all for the child's message.
import { execFile } from 'node:child_process'

export async function notify (state: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (env.NOTIFY_SOCKET === undefined || env.NOTIFY_SOCKET === '') return false
  const args = Object.entries(state).map(([k, v]) => `${k}=${v}`)
  return await new Promise(resolve => {
    execFile('systemd-notify', args, { env }, (err) => { resolve(err === null) })
  })
}
