// Running helper programs (ip, iptables-restore, curl) with stdin and a clear coded error.
import { spawn } from 'node:child_process'
import { FerryError } from '../errors/errors.js'

export interface ExecResult { readonly code: number, readonly stdout: string, readonly stderr: string }
export type Exec = (argv: readonly string[], stdin?: string) => Promise<ExecResult>

/** Runs argv (no shell), feeding stdin; rejects only when the program cannot start, never for its exit code. */
export const spawnExec: Exec = async (argv, stdin) => await new Promise((resolve, reject) => {
  const [cmd, ...args] = argv
  if (cmd === undefined) { reject(new FerryError('FERRY_ERR_EXEC', 'empty command')); return }
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  child.on('error', (e) => { reject(new FerryError('FERRY_ERR_EXEC', `cannot run ${cmd}: ${e.message}`, { argv }, { cause: e })) })
  child.on('close', (code, signal) => {
    resolve({ code: code ?? (signal !== null ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
  })
  child.stdin.on('error', () => { /* the child exited early; its exit code tells why */ })
  child.stdin.end(stdin ?? '')
})

/** Runs argv and throws FERRY_ERR_EXEC with its stderr unless it exits 0. */
export async function run (argv: readonly string[], stdin?: string, exec: Exec = spawnExec): Promise<string> {
  const r = await exec(argv, stdin)
  if (r.code !== 0) {
    throw new FerryError('FERRY_ERR_EXEC', `${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`, { argv, code: r.code })
  }
  return r.stdout
}

/** An Exec that runs every command inside network namespace `ns` (for tests, benches and the demo). */
export function netnsExec (ns: string, inner: Exec = spawnExec): Exec {
  return async (argv, stdin) => await inner(['ip', 'netns', 'exec', ns, ...argv], stdin)
}
