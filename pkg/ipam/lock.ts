// A cross-process lock from one file created with O_CREAT|O_EXCL. Node has no flock(2); spawning flock(1)
// costs a process start (~2 ms) per lock and a native addon needs a build step. Here an uncontended
// take-and-release is four syscalls, waiters retry with short jittered backoff, and a lock whose owner died
// (or that outlived staleMs) is broken, under a second exclusive file so two waiters never break in turn.
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { FerryError, errorMessage } from '../errors/errors.js'

export interface FileLockOptions {
  /** A holder alive this long is taken as hung and its lock broken (default 10 s: a critical section is ~1 ms). */
  readonly staleMs?: number
  /** Waiting longer than this fails with FERRY_ERR_IPAM_BUSY (default 30 s, above staleMs): transient, the runtime retries. */
  readonly timeoutMs?: number
  /** Whether a pid is running; injectable for tests. */
  readonly alive?: (pid: number) => boolean
}

/** A lock file with no pid yet is being written; past this age its writer died between create and write. */
const EMPTY_GRACE_MS = 1000

export function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' // exists, owned by someone else
  }
}

function storeError (path: string, e: unknown): FerryError {
  return new FerryError('FERRY_ERR_IPAM_STORE', `IPAM lock ${path}: ${errorMessage(e)}`, { path }, { cause: e })
}

function errno (e: unknown): string | undefined { return (e as NodeJS.ErrnoException).code }

/** Creates path holding body; false if it exists. */
function tryCreate (path: string, body: string): boolean {
  let fd: number
  try {
    fd = openSync(path, 'wx', 0o600)
  } catch (e) {
    if (errno(e) === 'EEXIST') return false
    throw storeError(path, e)
  }
  try { writeSync(fd, body) } finally { closeSync(fd) }
  return true
}

interface Seen { readonly body: string, readonly pid: number | null, readonly ageMs: number }

function inspect (path: string): Seen | null {
  try {
    const body = readFileSync(path, 'utf8')
    const ageMs = Date.now() - statSync(path).mtimeMs
    const pid = Number.parseInt(body, 10)
    return { body, pid: Number.isInteger(pid) && pid > 0 ? pid : null, ageMs }
  } catch (e) {
    if (errno(e) === 'ENOENT') return null
    throw storeError(path, e)
  }
}

function unlinkQuiet (path: string): void {
  try { unlinkSync(path) } catch (e) { if (errno(e) !== 'ENOENT') throw storeError(path, e) }
}

function stale (s: Seen, staleMs: number, alive: (pid: number) => boolean): boolean {
  if (s.pid === null) return s.ageMs > EMPTY_GRACE_MS
  return s.ageMs > staleMs || !alive(s.pid)
}

/**
 * Breaks the lock at path if it is still stale, holding path.break meanwhile. Without the guard, two waiters
 * that both saw a dead owner could each unlink: the second would remove the lock the first had just taken.
 */
function breakStale (path: string, staleMs: number, alive: (pid: number) => boolean): boolean {
  const guard = `${path}.break`
  if (!tryCreate(guard, `${process.pid}\n`)) {
    const g = inspect(guard)
    if (g !== null && stale(g, EMPTY_GRACE_MS * 2, alive)) unlinkQuiet(guard) // a breaker died mid-break
    return false
  }
  try {
    const now = inspect(path)
    if (now !== null && stale(now, staleMs, alive)) unlinkQuiet(path)
  } finally {
    unlinkQuiet(guard)
  }
  return true
}

/** Takes the lock at path; resolves to its release. The body names pid and a random token. */
export async function acquireFileLock (path: string, o: FileLockOptions = {}): Promise<() => void> {
  const staleMs = o.staleMs ?? 10_000
  const timeoutMs = o.timeoutMs ?? 30_000
  const alive = o.alive ?? pidAlive
  const body = `${process.pid} ${randomBytes(6).toString('hex')}\n`
  const deadline = Date.now() + timeoutMs
  for (let attempt = 0; ; attempt++) {
    if (tryCreate(path, body)) {
      return () => {
        // Unlink only our own lock: if it was broken as hung, the file may be someone else's by now.
        let now: string | null = null
        try { now = readFileSync(path, 'utf8') } catch (e) { if (errno(e) !== 'ENOENT') throw storeError(path, e) }
        if (now === body) unlinkQuiet(path)
      }
    }
    const seen = inspect(path)
    if (seen === null) continue // released between our create and read: try again at once
    if (stale(seen, staleMs, alive) && breakStale(path, staleMs, alive)) continue
    if (Date.now() > deadline) {
      throw new FerryError('FERRY_ERR_IPAM_BUSY', `timed out after ${timeoutMs} ms waiting for the IPAM lock ${path} (held by pid ${seen.pid ?? 'unknown'})`, { path, pid: seen.pid })
    }
    // 1, 2, 4, 8 ms then 8 ms, ±50 % so waiters that collided once do not collide again.
    await sleep(Math.min(8, 2 ** Math.min(attempt, 3)) * (0.5 + Math.random()))
  }
}
