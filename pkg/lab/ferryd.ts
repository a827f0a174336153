// Runs the compiled ferryd inside a lab's node namespace (the one-node Lab's, or a node of an
// OverlayCluster) and talks to its HTTP endpoint there.
import type { ChildProcess } from 'node:child_process'
import { statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Lab } from './lab.js'

const here = dirname(fileURLToPath(import.meta.url))
const distCmd = here.includes(`${join('dist', 'pkg')}`) ? join(here, '..', '..', 'cmd') : join(here, '..', '..', 'dist', 'cmd')
/**
 * What bin/ferryd runs, whether this module runs from dist/ or from source under tap: the one-file bundle
 * while it is newer than the ESM entry (cmd/bundle.ts), else dist/cmd/ferryd.js.
 */
export const FERRYD_JS = newer(join(distCmd, 'ferryd.cjs'), join(distCmd, 'ferryd.js'))
/** dist/cmd/ferryctl.js. */
export const FERRYCTL_JS = join(distCmd, 'ferryctl.js')

function newer (bundle: string, esm: string): string {
  try { return statSync(bundle).mtimeMs > statSync(esm).mtimeMs ? bundle : esm } catch { return esm }
}

export interface LabFerryd {
  readonly proc: ChildProcess
  /** Everything ferryd logged so far (JSON lines). */
  readonly logs: () => string
  /** GET a path on ferryd's HTTP endpoint from inside the node namespace. */
  readonly http: (path: string) => Promise<{ status: number, body: string }>
  readonly waitReady: (timeoutMs?: number) => Promise<void>
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/** Where ferryd runs: a namespace, and a way to start and run programs in it (a Lab is one). */
export type FerrydHost = Pick<Lab, 'nodeNs' | 'spawn' | 'sh'>

export function startFerryd (lab: FerrydHost, args: string[], opts: { httpPort?: number, env?: NodeJS.ProcessEnv } = {}): LabFerryd {
  const httpPort = opts.httpPort ?? 10249
  const proc = lab.spawn(['node', FERRYD_JS, '--http-listen', `127.0.0.1:${httpPort}`, ...args], lab.nodeNs, opts.env !== undefined ? { env: opts.env } : {})
  let out = ''
  proc.stdout?.on('data', (b: Buffer) => { out += b.toString() })
  proc.stderr?.on('data', (b: Buffer) => { out += b.toString() })
  const http = async (path: string): Promise<{ status: number, body: string }> => {
    const r = await lab.sh(['curl', '-sS', '--max-time', '3', '-w', '\n%{http_code}', `http://127.0.0.1:${httpPort}${path}`], lab.nodeNs).catch(() => '\n0')
    const i = r.lastIndexOf('\n')
    return { status: Number(r.slice(i + 1)), body: r.slice(0, i) }
  }
  return {
    proc,
    logs: () => out,
    http,
    waitReady: async (timeoutMs = 20_000) => {
      const end = Date.now() + timeoutMs
      while (Date.now() < end) {
        if (proc.exitCode !== null) throw new Error(`ferryd exited ${proc.exitCode}:\n${out}`)
        if ((await http('/readyz')).status === 200) return
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      throw new Error(`ferryd not ready after ${timeoutMs} ms:\n${out}`)
    },
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode !== null) return proc.exitCode
      proc.kill(signal)
      return await new Promise(resolve => { proc.once('exit', code => { resolve(code) }) })
    },
  }
}
