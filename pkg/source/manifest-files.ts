// Which files the manifest source reads, and reading one safely: only regular files (a FIFO would block a
// read forever, /dev/zero would never end), never more than the size limit, checked before any read.
import { constants, watch } from 'node:fs'
import { open, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { formatBytes } from '../api/limits.js'
import { FerryError } from '../errors/errors.js'

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
  /** Throws when `path` is missing; `onError` is called once if the watch breaks later. */
  watch: (path: string, onEvent: (filename: string | null) => void, onError: () => void) => ManifestWatch
}

export const nodeManifestFs: ManifestFs = {
  list: listManifestFiles,
  probe: probeManifestFile,
  read: readManifestFile,
  watch (path, onEvent, onError) {
    const w = watch(path, { persistent: false }, (_event, filename) => { onEvent(filename ?? null) })
    w.on('error', () => { w.close(); onError() })
    return w
  },
}

/** Stats `file` (following symlinks) and decides whether it may be read; throws when it vanished. */
export async function probeManifestFile (file: string, maxBytes: number): Promise<FileProbe> {
  const st = await stat(file)
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
    let buf = Buffer.allocUnsafe(Math.min(st.size, maxBytes) + 1)
    let len = 0
    for (;;) {
      if (len === buf.length) { // grew since fstat
        if (len > maxBytes) throw tooBig(file, len, maxBytes)
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, maxBytes + 1))
        buf.copy(bigger, 0, 0, len)
        buf = bigger
      }
      const { bytesRead } = await fh.read(buf, len, buf.length - len, len)
      if (bytesRead === 0) break
      len += bytesRead
    }
    if (len > maxBytes) throw tooBig(file, len, maxBytes)
    return buf.toString('utf8', 0, len)
  } finally {
    await fh.close().catch(() => {})
  }
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
