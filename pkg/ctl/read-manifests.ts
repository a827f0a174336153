// `-f FILE|DIR|-` for ferryctl: a file, a directory's *.yaml, *.yml, *.json (sorted by name, nested
// directories only with -R; the names ferryd reads, so no dot-files), or `-` for standard input,
// decoded and validated.
// Every problem is collected so the user sees all of them at once.
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
  /** The file (or STDIN) each object came from, index for index: what kubectl's messages name. */
  sources: string[]
  errors: FerryError[]
  files: string[]
}

/**
 * The manifests `path` names: itself if a file, else its manifest files in name order and, when
 * `recursive` (-R), its subdirectories' in the same walk, depth first, as kubectl's -R reads them.
 * Dot-directories (.git) are skipped and symlinked ones not followed, so a link cannot loop the walk.
 */
export async function manifestFiles (path: string, recursive = false): Promise<string[]> {
  let st
  try { st = await stat(path) } catch (e) {
    throw new FerryError('FERRY_ERR_CONFIG', `${path}: ${errorMessage(e)}`, { origin: path })
  }
  if (!st.isDirectory()) return [path]
  const files: string[] = []
  for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) {
    const f = join(path, entry.name)
    if (entry.isDirectory()) {
      if (recursive && !entry.name.startsWith('.')) files.push(...await manifestFiles(f, true))
      continue
    }
    // The names ferryd reads: an editor's dot-file (emacs's `.#web.yaml` lock, a dangling link) fails a stat.
    if (isManifestName(entry.name) && (await stat(f)).isFile()) files.push(f)
  }
  return files
}

/** What `-f -` names in messages (kubectl's word for it). */
export const STDIN_ORIGIN = 'STDIN'

/**
 * Standard input as text, refused past `maxBytes` (FERRY_ERR_LIMIT): what `-f -` reads, as `kubectl
 * apply -f -` does for `cat x.yaml | ferryctl apply -f -` or a generator's output.
 */
export async function readStdinText (input: AsyncIterable<Buffer | string>, maxBytes: number): Promise<string> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    size += b.length
    if (size > maxBytes) throw new FerryError('FERRY_ERR_LIMIT', `${STDIN_ORIGIN}: over the ${maxBytes}-byte limit of one manifest`, { origin: STDIN_ORIGIN, limit: 'maxBytes' })
    parts.push(b)
  }
  return Buffer.concat(parts).toString('utf8')
}

/**
 * Reads every path (file, directory, or `-` for `stdin`, at most once) in order; duplicates across
 * files are errors too.
 */
export async function readManifests (paths: readonly string[], stdin?: () => Promise<string>, opts: { recursive?: boolean } = {}): Promise<ReadResult> {
  const out: ReadResult = { objects: [], sources: [], errors: [], files: [] }
  const origin = new Map<string, string>()
  for (const p of paths) {
    if (p === '-') {
      if (stdin === undefined) { out.errors.push(new FerryError('FERRY_ERR_CONFIG', '-f -: no standard input here')); continue }
      if (out.files.includes(STDIN_ORIGIN)) { out.errors.push(new FerryError('FERRY_ERR_CONFIG', '-f - (standard input) can be given once')); continue }
      out.files.push(STDIN_ORIGIN)
      let text: string
      try { text = await stdin() } catch (e) {
        out.errors.push(isFerryError(e) ? e : new FerryError('FERRY_ERR_CONFIG', `${STDIN_ORIGIN}: ${errorMessage(e)}`, { origin: STDIN_ORIGIN }))
        continue
      }
      take(out, origin, STDIN_ORIGIN, text)
      continue
    }
    let files: string[]
    try { files = await manifestFiles(p, opts.recursive === true) } catch (e) {
      out.errors.push(e instanceof FerryError ? e : new FerryError('FERRY_ERR_CONFIG', `${p}: ${errorMessage(e)}`))
      continue
    }
    if (files.length === 0) out.errors.push(new FerryError('FERRY_ERR_CONFIG', `${p}: no ${MANIFEST_EXTENSIONS.join(', ')} files in this directory${opts.recursive === true ? ' or below it' : ''}`, { origin: p }))
    for (const f of files) {
      out.files.push(f)
      let text: string
      // The daemon's reader: a FIFO or device given by name is refused, never waited on; size is bounded.
      try { text = await readManifestFile(f, DEFAULT_DECODE_LIMITS.maxBytes) } catch (e) {
        out.errors.push(isFerryError(e) ? e : new FerryError('FERRY_ERR_CONFIG', `${f}: ${errorMessage(e)}`, { origin: f }))
        continue
      }
      take(out, origin, f, text)
    }
  }
  return out
}

/** Decodes one source's text into `out`; an object another source defined is a duplicate. */
function take (out: ReadResult, origin: Map<string, string>, f: string, text: string): void {
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
    out.sources.push(f)
  }
}
