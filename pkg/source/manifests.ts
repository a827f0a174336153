// The built-in source: a file or directory of Kubernetes manifests, watched for changes.
// A broken or rejected file is reported once and the objects it last held stay, so one typo (or one
// hostile file) never drops a Service. Files are merged in name order, so duplicates resolve the same
// way at run time and after a restart.
import { watch, type FSWatcher } from 'node:fs'
import { basename } from 'node:path'
import { decodeManifests, type DecodeResult } from '../api/decode.js'
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from '../api/limits.js'
import type { KObject } from '../api/types.js'
import { FerryError, errorMessage, isFerryError } from '../errors/errors.js'
import { DecodePool } from './decode-pool.js'
import { listManifestFiles, probeManifestFile, readManifestFile, type FileProbe } from './manifest-files.js'
import { ManifestMerge, cachedKey, type Conflict } from './manifest-merge.js'
import type { Source, SourceHandler, SourceStatus } from './source.js'

export interface ManifestSourceOptions {
  path: string
  /** Fallback rescan period; fs.watch misses some editors' rename dances. */
  pollMs?: number
  /**
   * Quiet time after the last fs event before a pass (default DEBOUNCE_MS). It only coalesces one save's
   * burst of events; a file read mid-write is re-read on its next event, its last good objects kept.
   */
  debounceMs?: number
  limits?: DecodeLimits
  /** Per-file decode deadline in the worker; default 60 s. */
  decodeTimeoutMs?: number
  /** Worker heap cap in MB; default 1024. */
  decodeMaxHeapMb?: number
}

/**
 * One save is a burst of fs events a few ms long: measured here (Node fs.watch on ext4), vim's save in
 * its four backup modes spans 0.1-4.5 ms (the longest with an fsync), `sed -i` 0.04 ms, `cp` 0.1 ms.
 * 50 ms is ten times the longest, and half of the edit-to-kernel budget the 100 ms it replaces took.
 */
export const DEBOUNCE_MS = 50
/** Files up to this size are decoded on the event loop (JSON: ~10 ms a MiB); bigger ones in the worker. */
const INLINE_JSON_BYTES = 1024 * 1024
const INLINE_YAML_BYTES = 32 * 1024
/** Files read ahead of the one being decoded: at start-up the pass is bound by fs round trips, not CPU. */
const READ_AHEAD = 16

function inlineSize (file: string, size: number): boolean {
  return size <= (/\.json$/i.test(file) ? INLINE_JSON_BYTES : INLINE_YAML_BYTES)
}

interface FileState { sig: string, objects: KObject[], problem: string | undefined }
/** One file's probe and (when it will be decoded inline) its text, read ahead of its turn. */
type Prepared =
  | { readonly kind: 'gone' }
  | { readonly kind: 'probe', readonly probe: FileProbe }
  | { readonly kind: 'text', readonly probe: FileProbe, readonly text: string }
  | { readonly kind: 'failed', readonly probe: FileProbe, readonly error: FerryError }
  | { readonly kind: 'vanished', readonly probe: FileProbe }
/** A big file being decoded in the worker; the pass that finds `result` set applies it. */
interface InFlight { sig: string, done: Promise<void>, result?: DecodeResult | null }
export type { Conflict }

export class ManifestSource implements Source {
  readonly name: string
  private readonly limits: DecodeLimits
  private readonly pool: DecodePool
  private files = new Map<string, FileState>()
  private handler: SourceHandler | undefined
  private watcher: FSWatcher | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private debounceTimer: NodeJS.Timeout | undefined
  private reloading: Promise<void> = Promise.resolve()
  private lastMissing = false
  private everReplaced = false
  /** What the handler holds, by objectKey: the last published state. */
  private published = new Map<string, KObject>()
  private stopped = false
  private conflicts: Conflict[] = []
  private readonly merged = new ManifestMerge()
  private reportedConflicts = new Set<string>()
  private readonly inflight = new Map<string, InFlight>()

  constructor (private readonly opts: ManifestSourceOptions) {
    this.name = `manifests:${opts.path}`
    this.limits = opts.limits ?? DEFAULT_DECODE_LIMITS
    this.pool = new DecodePool({ timeoutMs: opts.decodeTimeoutMs, maxHeapMb: opts.decodeMaxHeapMb })
  }

  async start (handler: SourceHandler): Promise<void> {
    this.handler = handler
    // The first state includes big files: a restart must not drop their Services' rules meanwhile.
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
    await this.pool.close()
    await this.reloading
  }

  /** Re-read changed files now; resolves when the handler has the result, big files included. */
  async reload (): Promise<void> {
    await this.pass()
    while (this.inflight.size > 0 && !this.stopped) {
      await Promise.all([...this.inflight.values()].map(async f => { await f.done }))
      await this.pass()
    }
  }

  /** One pass over the files; big files still decoding are applied by a later pass. */
  private async pass (): Promise<void> {
    const run = async (): Promise<void> => {
      try { await this.doReload() } catch (e) {
        this.handler?.error(new FerryError('FERRY_ERR_SOURCE', `manifests: reload of ${this.opts.path} failed: ${errorMessage(e)}; keeping the last good state`, { path: this.opts.path }))
      }
    }
    this.reloading = this.reloading.then(run, run)
    await this.reloading
  }

  status (): SourceStatus {
    return {
      name: this.name,
      files: this.files.size,
      rejectedFiles: [...this.files].filter(([, s]) => s.problem !== undefined).map(([file, s]) => ({ file, reason: s.problem ?? '' })),
      conflicts: this.conflicts.map(c => ({ ...c, ignored: [...c.ignored] })),
    }
  }

  /** Files whose last read failed, for /debug/state and readiness. */
  brokenFiles (): string[] {
    return this.status().rejectedFiles.map(r => r.file)
  }

  private schedule (ms: number): void {
    if (this.stopped) return
    clearTimeout(this.debounceTimer)
    this.debounceTimer = setTimeout(() => { void this.pass() }, ms)
  }

  private startWatch (): void {
    if (this.watcher !== undefined) return
    try {
      this.watcher = watch(this.opts.path, { persistent: false }, () => { this.schedule(this.opts.debounceMs ?? DEBOUNCE_MS) })
      this.watcher.on('error', () => { this.watcher?.close(); this.watcher = undefined })
    } catch { /* missing path: the poll notices when it appears */ }
  }

  private async doReload (): Promise<void> {
    const h = this.handler
    if (h === undefined || this.stopped) return
    const paths = await listManifestFiles(this.opts.path)
    if (paths === null) {
      if (!this.lastMissing) h.error(new FerryError('FERRY_ERR_SOURCE', `manifests: ${this.opts.path} does not exist; serving no objects until it appears`, { path: this.opts.path }))
      this.lastMissing = true
      const before = this.files
      this.files = new Map()
      this.publish(h, before)
      return
    }
    if (this.lastMissing) { this.lastMissing = false; this.startWatch() }
    let changed = !this.everReplaced
    const next = new Map<string, FileState>()
    // Reads run up to READ_AHEAD files ahead of the decoding; results are used in name order, so errors
    // are reported and duplicates resolved exactly as a one-file-at-a-time pass would.
    const reads: Array<Promise<Prepared> | undefined> = []
    const startRead = (i: number): void => {
      const f = paths[i]
      if (f !== undefined) reads[i] = this.prepare(f, this.files.get(f)?.sig)
    }
    for (let i = 0; i < READ_AHEAD; i++) startRead(i)
    for (let i = 0; i < paths.length; i++) {
      const f = paths[i] as string
      const read = await (reads[i] as Promise<Prepared>)
      reads[i] = undefined
      startRead(i + READ_AHEAD)
      if (this.stopped) return
      if (read.kind === 'gone') continue // vanished between readdir and stat: gone from this pass
      const prev = this.files.get(f)
      const probe = read.probe
      if (prev?.sig === probe.sig) { next.set(f, prev); continue }
      if (!probe.ok) {
        changed = true
        // Remembered by signature, so the next poll does not report it again.
        h.error(probe.error)
        next.set(f, { sig: probe.sig, objects: prev?.objects ?? [], problem: probe.error.message })
        continue
      }
      const r = read.kind === 'text' ? decodeManifests(read.text, basename(f), this.limits)
        : read.kind === 'failed' ? { objects: [], errors: [read.error] }
          : read.kind === 'vanished' ? null : await this.decodeBig(f, probe.sig)
      if (r === null || r === 'pending') {
        if (prev !== undefined) next.set(f, prev)
        continue
      }
      changed = true
      for (const e of r.errors) h.error(e)
      next.set(f, r.errors.length > 0
        ? { sig: probe.sig, objects: prev?.objects ?? [], problem: r.errors[0]?.message ?? 'invalid' }
        : { sig: probe.sig, objects: r.objects, problem: undefined })
    }
    if (next.size !== this.files.size) changed = true
    for (const f of this.inflight.keys()) if (!paths.includes(f)) this.inflight.delete(f)
    const before = this.files
    this.files = next
    if (changed) this.publish(h, before)
  }

  /**
   * The I/O half of one file's pass: its probe and, for a changed readable file small enough to decode
   * inline, its text. Never rejects.
   */
  private async prepare (file: string, prevSig: string | undefined): Promise<Prepared> {
    let probe: FileProbe
    try { probe = await probeManifestFile(file, this.limits.maxBytes) } catch { return { kind: 'gone' } }
    if (!probe.ok || probe.sig === prevSig || !inlineSize(file, probe.size)) return { kind: 'probe', probe }
    try {
      return { kind: 'text', probe, text: await readManifestFile(file, this.limits.maxBytes) }
    } catch (e) {
      // Vanished after the probe: the file keeps its last objects for this pass, as a failed decode does.
      return isFerryError(e) ? { kind: 'failed', probe, error: e } : { kind: 'vanished', probe }
    }
  }

  /**
   * A big file goes to the worker and comes back 'pending': other files' changes are applied meanwhile,
   * and a new pass picks its result up. null: it vanished.
   */
  private async decodeBig (file: string, sig: string): Promise<DecodeResult | null | 'pending'> {
    const running = this.inflight.get(file)
    if (running?.sig === sig) {
      if (running.result === undefined) return 'pending'
      this.inflight.delete(file)
      return running.result
    }
    const job: InFlight = { sig, done: Promise.resolve() }
    job.done = this.pool.decodeFile(file, basename(file), this.limits).then(r => {
      job.result = r.readFailed ? null : r
      if (this.inflight.get(file) === job) this.schedule(0)
    })
    this.inflight.set(file, job)
    return 'pending'
  }

  /**
   * The first state goes in whole; later passes send only what differs from the last published state.
   * Only the files whose state changed since `before` are merged again, so a one-file edit at 10k
   * Services costs that file's keys, not a re-merge and a replace of 20k objects (33-113 ms here).
   */
  private publish (h: SourceHandler, before: ReadonlyMap<string, FileState>): void {
    const names = new Set([...before.keys(), ...this.files.keys()])
    for (const file of [...names].sort()) {
      this.merged.update(file, before.get(file)?.objects ?? [], this.files.get(file)?.objects ?? [])
    }
    const affected = this.merged.takeAffected()
    this.reportConflicts(h)
    if (!this.everReplaced) {
      const all = this.merged.winners()
      h.replace(all)
      this.everReplaced = true
      this.published = new Map(all.map(o => [cachedKey(o), o]))
      return
    }
    const upserts: KObject[] = []
    for (const key of affected) {
      const obj = this.merged.winner(key)
      const was = this.published.get(key)
      if (obj === was) continue
      if (obj === undefined) {
        this.published.delete(key)
        if (was !== undefined) h.remove(was.kind, was.metadata.namespace, was.metadata.name)
      } else {
        this.published.set(key, obj)
        upserts.push(obj)
      }
    }
    for (const obj of upserts) h.upsert(obj)
  }

  /** The first definition in file-name order wins; each new conflict is reported once. */
  private reportConflicts (h: SourceHandler): void {
    this.conflicts = this.merged.conflicts()
    const now = new Set<string>()
    for (const c of this.conflicts) {
      const id = `${c.key}|${c.kept}|${c.ignored.join(',')}`
      now.add(id)
      if (!this.reportedConflicts.has(id)) {
        h.error(new FerryError('FERRY_ERR_DUPLICATE', `manifests: ${c.key} is defined in ${c.ignored.map(f => basename(f)).join(', ')} and in ${basename(c.kept)}; keeping ${basename(c.kept)} (first in file-name order)`, { key: c.key, kept: c.kept, ignored: c.ignored }))
      }
    }
    this.reportedConflicts = now
  }
}
