// Which files the manifest source reads, and reading one safely: only regular files (a FIFO would block a
// read forever, /dev/zero would never end), never more than the size limit, checked before any read.
import { closeSync, constants, fstatSync, openSync, readSync, statSync, watch, type Stats } from 'node:fs'
import { open, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { formatBytes } from '../api/limits.js'
import { FerryError, errorMessage, isFerryError } from '../errors/errors.js'

const MANIFEST_FILE = /\.(ya?ml|json)$/i

/** What stat says of a path; `sig` changes whenever the file (or what a symlink points at) does. */
export type FileProbe =
  | { readonly ok: true, readonly sig: string, readonly size: number }
  | { readonly ok: false, readonly sig: string, readonly error: FerryError }

/** Whether a directory entry named `name` is a manifest the source reads (editors' dot-files are not). */
export function isManifestName (name: string): boolean {
  return MANIFEST_FILE.test(name) && !name.startsWith('.')
}

/** The manifest files under a path: `directory` false for a single file (then `files` is `[path]`). */
export interface ManifestListing {
  readonly directory: boolean
  readonly files: string[]
  /** The path's device and inode: another one under the same path needs a new watch. */
  readonly id: string
}

/** The manifest files under `path` in name order, `[path]` for a file, null when `path` is missing. */
export async function listManifestFiles (path: string): Promise<ManifestListing | null> {
  let st
  try { st = await stat(path) } catch { return null }
  const id = `${st.dev}:${st.ino}`
  if (!st.isDirectory()) return { directory: false, files: [path], id }
  const names = await readdir(path)
  return { directory: true, files: names.filter(isManifestName).sort().map(n => join(path, n)), id }
}

/** A watch on a path; `filename` null when the kernel did not say which entry changed. */
export interface ManifestWatch { close: () => void }

/**
 * The file-system calls of the manifest source, one seam so tests can count them (a one-file edit must
 * stat and read that file only) or drop events (the poll must still find the change).
 */
export interface ManifestFs {
  list: (path: string) => Promise<ManifestListing | null>
  probe: (file: string, maxBytes: number) => Promise<FileProbe>
  read: (file: string, maxBytes: number) => Promise<string>
  /**
   * The same as probe and read, in blocking syscalls: what every pass uses (the async read is left for
   * re-reading files in idle time). Under emulation a thread-pool round trip per call (stat, open,
   * fstat, read, close) cost 9 ms against 4 ms for the same calls made directly (test VM, 100-object
   * file); natively ~0.5 ms of the main thread per file against ~0.2.
   */
  probeNow: (file: string, maxBytes: number) => FileProbe
  readNow: (file: string, maxBytes: number) => string
  /** Throws when `path` is missing; `onError` is called once if the watch breaks later. */
  watch: (path: string, onEvent: (filename: string | null) => void, onError: () => void) => ManifestWatch
}

export const nodeManifestFs: ManifestFs = {
  list: listManifestFiles,
  probe: probeManifestFile,
  read: readManifestFile,
  probeNow: probeManifestFileSync,
  readNow: readManifestFileSync,
  watch (path, onEvent, onError) {
    const w = watch(path, { persistent: false }, (_event, filename) => { onEvent(filename ?? null) })
    w.on('error', () => { w.close(); onError() })
    return w
  },
}

/** Stats `file` (following symlinks) and decides whether it may be read; throws when it vanished. */
export async function probeManifestFile (file: string, maxBytes: number): Promise<FileProbe> {
  return probeOf(file, await stat(file), maxBytes)
}

export function probeManifestFileSync (file: string, maxBytes: number): FileProbe {
  return probeOf(file, statSync(file), maxBytes)
}

function probeOf (file: string, st: Stats, maxBytes: number): FileProbe {
  const sig = `${st.dev}:${st.ino}:${st.mode}:${st.mtimeMs}:${st.size}`
  if (!st.isFile()) return { ok: false, sig, error: notRegular(file, st) }
  if (st.size > maxBytes) return { ok: false, sig, error: tooBig(file, st.size, maxBytes) }
  return { ok: true, sig, size: st.size }
}

/**
 * Reads at most `maxBytes` of a regular file. O_NONBLOCK keeps open() from hanging if a FIFO was swapped
 * in after the probe; the fd is checked again, and a file still growing past the limit is refused.
 */
export async function readManifestFile (file: string, maxBytes: number): Promise<string> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw notRegular(file, st)
    let buf: Buffer = Buffer.allocUnsafe(Math.min(st.size, maxBytes) + 1)
    let len = 0
    for (;;) {
      buf = roomFor(buf, len, file, maxBytes)
      const { bytesRead } = await fh.read(buf, len, buf.length - len, len)
      if (bytesRead === 0) break
      len += bytesRead
    }
    return textOf(buf, len, file, maxBytes)
  } finally {
    await fh.close().catch(() => {})
  }
}

export function readManifestFileSync (file: string, maxBytes: number): string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw notRegular(file, st)
    let buf: Buffer = Buffer.allocUnsafe(Math.min(st.size, maxBytes) + 1)
    let len = 0
    for (;;) {
      buf = roomFor(buf, len, file, maxBytes)
      const n = readSync(fd, buf, len, buf.length - len, len)
      if (n === 0) break
      len += n
    }
    return textOf(buf, len, file, maxBytes)
  } finally {
    try { closeSync(fd) } catch {}
  }
}

/**
 * Why reading `file` failed, as the source reports it: the reader's own error (a limit, not a regular
 * file) or FERRY_ERR_SOURCE for an unreadable one (permissions, I/O), not skipped silently on every
 * poll; null when the file vanished since its probe (ENOENT), which keeps its last objects unreported.
 */
export function readFailure (file: string, e: unknown): FerryError | null {
  if (isFerryError(e)) return e
  if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
  return new FerryError('FERRY_ERR_SOURCE', `manifests: cannot read ${file}: ${errorMessage(e)}; ignored`, { path: file })
}

/** `buf`, or a bigger copy when it is full (the file grew since fstat); refused past the limit. */
function roomFor (buf: Buffer, len: number, file: string, maxBytes: number): Buffer {
  if (len < buf.length) return buf
  if (len > maxBytes) throw tooBig(file, len, maxBytes)
  const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, maxBytes + 1))
  buf.copy(bigger, 0, 0, len)
  return bigger
}

function textOf (buf: Buffer, len: number, file: string, maxBytes: number): string {
  if (len > maxBytes) throw tooBig(file, len, maxBytes)
  return buf.toString('utf8', 0, len)
}

function tooBig (file: string, size: number, maxBytes: number): FerryError {
  return new FerryError('FERRY_ERR_LIMIT', `manifests: ${file} is ${formatBytes(size)}, over the ${formatBytes(maxBytes)} limit (--manifest-max-file-size); ignored`, { path: file, limit: 'maxBytes' })
}

type StatKind = Parameters<typeof fileType>[0]

function notRegular (file: string, st: StatKind): FerryError {
  return new FerryError('FERRY_ERR_LIMIT', `manifests: ${file} is ${fileType(st)}, not a regular file; ignored`, { path: file })
}

function fileType (st: { isDirectory: () => boolean, isFIFO: () => boolean, isSocket: () => boolean, isCharacterDevice: () => boolean, isBlockDevice: () => boolean }): string {
  if (st.isDirectory()) return 'a directory'
  if (st.isFIFO()) return 'a FIFO'
  if (st.isSocket()) return 'a socket'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  return 'not a regular file'
}
