// The built-in source: a file or directory of Kubernetes manifests, watched for changes.
// A broken file is reported and the objects it last held stay, so one typo never drops a Service.
import { watch, type FSWatcher } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { decodeManifests } from '../api/decode.js'
import { objectKey, type KObject } from '../api/types.js'
import { FerryError, errorMessage } from '../errors/errors.js'
import type { Source, SourceHandler } from './source.js'

const MANIFEST_FILE = /\.(ya?ml|json)$/i

export interface ManifestSourceOptions {
  path: string
  /** Fallback rescan period; fs.watch misses some editors' rename dances. */
  pollMs?: number
  /** Coalesces bursts of fs events into one reload. */
  debounceMs?: number
}

interface FileState { sig: string, objects: KObject[], broken: boolean }

export class ManifestSource implements Source {
  readonly name: string
  private readonly files = new Map<string, FileState>()
  private handler: SourceHandler | undefined
  private watcher: FSWatcher | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private debounceTimer: NodeJS.Timeout | undefined
  private reloading: Promise<void> = Promise.resolve()
  private lastMissing = false
  private everReplaced = false
  private stopped = false

  constructor (private readonly opts: ManifestSourceOptions) {
    this.name = `manifests:${opts.path}`
  }

  async start (handler: SourceHandler): Promise<void> {
    this.handler = handler
    await this.reload()
    this.startWatch()
    this.pollTimer = setInterval(() => { this.schedule(0) }, this.opts.pollMs ?? 2000)
    this.pollTimer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.watcher?.close()
    clearInterval(this.pollTimer)
    clearTimeout(this.debounceTimer)
    await this.reloading
  }

  /** Re-read changed files now; resolves when the handler has the result. */
  async reload (): Promise<void> {
    this.reloading = this.reloading.then(async () => { await this.doReload() }, async () => { await this.doReload() })
    await this.reloading
  }

  private schedule (ms: number): void {
    if (this.stopped) return
    clearTimeout(this.debounceTimer)
    this.debounceTimer = setTimeout(() => { void this.reload() }, ms)
  }

  private startWatch (): void {
    if (this.watcher !== undefined) return
    try {
      this.watcher = watch(this.opts.path, { persistent: false }, () => { this.schedule(this.opts.debounceMs ?? 100) })
      this.watcher.on('error', () => { this.watcher?.close(); this.watcher = undefined })
    } catch { /* missing path: the poll notices when it appears */ }
  }

  private async listFiles (): Promise<string[] | null> {
    const p = this.opts.path
    let st
    try { st = await stat(p) } catch { return null }
    if (!st.isDirectory()) return [p]
    const names = await readdir(p)
    return names.filter(n => MANIFEST_FILE.test(n) && !n.startsWith('.')).sort().map(n => join(p, n))
  }

  private async doReload (): Promise<void> {
    const h = this.handler
    if (h === undefined || this.stopped) return
    const paths = await this.listFiles()
    if (paths === null) {
      if (!this.lastMissing) h.error(new FerryError('FERRY_ERR_SOURCE', `manifests: ${this.opts.path} does not exist; serving no objects until it appears`, { path: this.opts.path }))
      this.lastMissing = true
      this.files.clear()
      h.replace([])
      return
    }
    if (this.lastMissing) { this.lastMissing = false; this.startWatch() }
    let changed = false
    const seen = new Set(paths)
    for (const f of [...this.files.keys()]) if (!seen.has(f)) { this.files.delete(f); changed = true }
    for (const f of paths) {
      let text: string
      let sig: string
      try {
        const st = await stat(f)
        sig = `${st.mtimeMs}:${st.size}:${st.ino}`
        if (this.files.get(f)?.sig === sig) continue
        text = await readFile(f, 'utf8')
      } catch (e) {
        // Vanished between readdir and read: the next pass drops it.
        if (this.files.has(f)) continue
        h.error(new FerryError('FERRY_ERR_SOURCE', `manifests: cannot read ${f}: ${errorMessage(e)}`, { path: f }))
        continue
      }
      const { objects, errors } = decodeManifests(text, basename(f))
      const prev = this.files.get(f)
      if (errors.length > 0) {
        for (const e of errors) h.error(e)
        // Keep the objects this file last held while it is broken.
        this.files.set(f, { sig, objects: prev?.objects ?? [], broken: true })
      } else {
        this.files.set(f, { sig, objects, broken: false })
      }
      changed = true
    }
    if (!changed && this.everReplaced) return
    h.replace(this.merge())
    this.everReplaced = true
  }

  private merge (): KObject[] {
    const byKey = new Map<string, { obj: KObject, file: string }>()
    for (const [file, st] of this.files) {
      for (const obj of st.objects) {
        const key = objectKey(obj)
        const first = byKey.get(key)
        if (first !== undefined) {
          this.handler?.error(new FerryError('FERRY_ERR_DUPLICATE', `manifests: ${key} in ${basename(file)} is already defined in ${basename(first.file)}; keeping the first`, { key, file }))
          continue
        }
        byKey.set(key, { obj, file })
      }
    }
    return [...byKey.values()].map(v => v.obj)
  }

  /** Files whose last read failed, for /debug/state and readiness. */
  brokenFiles (): string[] {
    return [...this.files].filter(([, s]) => s.broken).map(([f]) => f)
  }
}
