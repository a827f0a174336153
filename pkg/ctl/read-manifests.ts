// `-f FILE|DIR` for ferryctl: a file, or a directory's *.yaml, *.yml, *.json (not recursive, sorted by
// name; the names ferryd reads, so no dot-files), decoded and validated. Every problem is collected so the user sees all of them at once.
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeManifests } from '../api/decode.js'
import { DEFAULT_DECODE_LIMITS } from '../api/limits.js'
import { objectKey, type KObject } from '../api/types.js'
import { FerryError, errorMessage, isFerryError } from '../errors/errors.js'
import { isManifestName, readManifestFile } from '../source/manifest-files.js'

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json']

export interface ReadResult {
  objects: KObject[]
  errors: FerryError[]
  files: string[]
}

export async function manifestFiles (path: string): Promise<string[]> {
  let st
  try { st = await stat(path) } catch (e) {
    throw new FerryError('FERRY_ERR_CONFIG', `${path}: ${errorMessage(e)}`, { origin: path })
  }
  if (!st.isDirectory()) return [path]
  // The names ferryd reads: an editor's dot-file (emacs's `.#web.yaml` lock, a dangling link) fails a stat.
  const names = (await readdir(path)).filter(isManifestName).sort()
  const files: string[] = []
  for (const n of names) {
    const f = join(path, n)
    if ((await stat(f)).isFile()) files.push(f)
  }
  return files
}

/** Reads every path (file or directory) in order; duplicates across files are errors too. */
export async function readManifests (paths: readonly string[]): Promise<ReadResult> {
  const out: ReadResult = { objects: [], errors: [], files: [] }
  const origin = new Map<string, string>()
  for (const p of paths) {
    let files: string[]
    try { files = await manifestFiles(p) } catch (e) {
      out.errors.push(e instanceof FerryError ? e : new FerryError('FERRY_ERR_CONFIG', `${p}: ${errorMessage(e)}`))
      continue
    }
    if (files.length === 0) out.errors.push(new FerryError('FERRY_ERR_CONFIG', `${p}: no ${MANIFEST_EXTENSIONS.join(', ')} files in this directory`, { origin: p }))
    for (const f of files) {
      out.files.push(f)
      let text: string
      // The daemon's reader: a FIFO or device given by name is refused, never waited on; size is bounded.
      try { text = await readManifestFile(f, DEFAULT_DECODE_LIMITS.maxBytes) } catch (e) {
        out.errors.push(isFerryError(e) ? e : new FerryError('FERRY_ERR_CONFIG', `${f}: ${errorMessage(e)}`, { origin: f }))
        continue
      }
      const res = decodeManifests(text, f)
      out.errors.push(...res.errors)
      for (const o of res.objects) {
        const k = objectKey(o)
        const first = origin.get(k)
        if (first !== undefined && first !== f) {
          out.errors.push(new FerryError('FERRY_ERR_DUPLICATE', `${f}: ${k} is also defined in ${first}`, { origin: f, key: k }))
          continue
        }
        if (first === undefined) origin.set(k, f)
        out.objects.push(o)
      }
    }
  }
  return out
}
