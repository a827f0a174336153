// Running helper programs (ip, iptables-restore, curl) with stdin and a clear coded error.
import { spawn } from 'node:child_process'
import type { Writable } from 'node:stream'
import { FerryError } from '../errors/errors.js'

export interface ExecResult { readonly code: number, readonly stdout: string, readonly stderr: string }
/**
 * Standard input: text, or pieces pulled one at a time while the program already reads the earlier ones
 * (a large iptables-restore payload is piped while it is still being rendered).
 */
export type Stdin = string | Iterable<string>
export type Exec = (argv: readonly string[], stdin?: Stdin) => Promise<ExecResult>

/** Stdin as one string, for fakes and error messages. */
export function stdinText (stdin: Stdin | undefined): string {
  return stdin === undefined ? '' : typeof stdin === 'string' ? stdin : [...stdin].join('')
}

/** Bytes queued ahead of the reader before pulling the next piece waits for the pipe to drain. */
const AHEAD = 4 * 1024 * 1024

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
  if (stdin === undefined || typeof stdin === 'string') { child.stdin.end(stdin ?? ''); return }
  feed(child.stdin, stdin).catch((e: unknown) => {
    // The pieces' producer failed: the program must not commit a truncated input.
    child.kill('SIGKILL')
    reject(e)
  })
})

/**
 * Characters written between turns of the event loop: a pipe holds 64 KiB, and only a turn of the loop
 * refills it, so without these turns the reader would wait for the whole render before its second piece.
 */
const TURN = 128 * 1024

/** Writes pieces as they come, running ahead of the reader by up to AHEAD bytes. */
async function feed (w: Writable, pieces: Iterable<string>): Promise<void> {
  let sinceTurn = 0
  for (const piece of pieces) {
    if (w.destroyed) return
    w.write(piece)
    sinceTurn += piece.length
    if (sinceTurn >= TURN && w.writableLength <= AHEAD) {
      sinceTurn = 0
      await new Promise<void>(resolve => { setImmediate(resolve) })
    }
    if (w.writableLength > AHEAD) {
      await new Promise<void>(resolve => {
        const done = (): void => { w.off('drain', done); w.off('close', done); resolve() }
        w.on('drain', done)
        w.on('close', done)
      })
    }
  }
  w.end()
}

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
