// The compiled ferryctl (dist/cmd/ferryctl.js) as a child process, for e2e tests that check what a user
// sees: stdout, stderr and the exit code. Refuses a missing or stale build, so a test never passes (or
// fails) against yesterday's code.
//
//   const ctl = ferryctl({ FERRY_ETCD_ENDPOINTS: etcd.endpoint })
//   const r = await ctl(['get', 'svc'])      // { code, stdout, stderr }
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const FERRYCTL_BIN = join(root, 'dist/cmd/ferryctl.js')

export interface CtlRun { code: number, stdout: string, stderr: string }

/** Every source ferryctl may import (cmd/ and pkg/, walked whole): newer than the build means the build is stale. */
function sources (): string[] {
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : [])
  return [...walk(join(root, 'cmd')), ...walk(join(root, 'pkg'))]
}

function checkBuild (): void {
  if (!existsSync(FERRYCTL_BIN)) throw new Error(`${FERRYCTL_BIN} is missing: run "npm run build" before this test`)
  const built = statSync(FERRYCTL_BIN).mtimeMs
  const stale = sources().filter(s => statSync(s).mtimeMs > built)
  if (stale.length > 0) throw new Error(`${FERRYCTL_BIN} is older than ${stale.join(', ')}: run "npm run build" before this test`)
}

/** A runner with `env` (plus PATH) as ferryctl's whole environment; big runs raise the time and output limits. */
export function ferryctl (env: Record<string, string>, limits: { timeoutMs?: number, maxBuffer?: number } = {}): (args: string[]) => Promise<CtlRun> {
  checkBuild()
  const opts = { env: { PATH: process.env.PATH ?? '', ...env }, timeout: limits.timeoutMs ?? 30_000, ...(limits.maxBuffer !== undefined ? { maxBuffer: limits.maxBuffer } : {}) }
  return async args => await new Promise(resolve => {
    execFile(process.execPath, [FERRYCTL_BIN, ...args], opts, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}
