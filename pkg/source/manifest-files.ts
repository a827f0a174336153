// Which files the manifest source reads, and reading one safely: only regular files (a FIFO would block a
// read forever, /dev/zero would never end), never more than the size limit, checked before any read.
import { constants } from 'node:fs'
import { open, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { formatBytes } from '../api/limits.js'
import { FerryError } from '../errors/errors.js'

const MANIFEST_FILE = /\.(ya?ml|json)$/i

/** What stat says of a path; `sig` changes whenever the file (or what a symlink points at) does. */
export type FileProbe =
  | { readonly ok: true, readonly sig: string, readonly size: number }
  | { readonly ok: false, readonly sig: string, readonly error: FerryError }

/** The manifest files under `path` in name order, `[path]` for a file, null when `path` is missing. */
export async function listManifestFiles (path: string): Promise<string[] | null> {
  let st
  try { st = await stat(path) } catch { return null }
  if (!st.isDirectory()) return [path]
  const names = await readdir(path)
  return names.filter(n => MANIFEST_FILE.test(n) && !n.startsWith('.')).sort().map(n => join(path, n))
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
