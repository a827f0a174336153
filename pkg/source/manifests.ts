// The built-in source: a file or directory of Kubernetes manifests, watched for changes.
// A broken or rejected file is reported once and the objects it last held stay, so one typo (or one
// hostile file) never drops a Service. Files are merged in name order, so duplicates resolve the same
// way at run time and after a restart. A pass after fs events stats and reads only the files the events
// named; the periodic rescan (and any event it cannot place) walks the whole directory.
import { basename, join } from 'node:path'
import { decodeManifests, type DecodeResult } from '../api/decode.js'
import { decodeListDelta } from '../api/decode-delta.js'
import { listIndexOf, type ListIndex } from '../api/list-index.js'
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from '../api/limits.js'
import type { KObject } from '../api/types.js'
import { sameJSON } from '../cache/same.js'
import { FerryError, errorMessage } from '../errors/errors.js'
import { DecodePool } from './decode-pool.js'
import { isManifestName, nodeManifestFs, readFailure, type FileProbe, type ManifestFs, type ManifestWatch } from './manifest-files.js'
import { ManifestMerge, NO_OBJECTS, type Conflict, type FileObjects } from './manifest-merge.js'
import type { Source, SourceHandler, SourceStatus } from './source.js'

export interface ManifestSourceOptions {
  path: string
  /**
   * Period of the full rescan, the safety net for what fs events miss or cannot say: a queue overflow
   * (dropped silently), an event without a file name, a directory swapped under the watch.
   */
  pollMs?: number
  /**
   * Quiet time after the last fs event before a pass (default DEBOUNCE_MS). It only coalesces one save's
   * burst of events; a file read mid-write is re-read on its next event, its last good objects kept.
   */
  debounceMs?: number
  /** How long after its first event a file's losses are held back (default TORN_WRITE_MS). */
  tornWriteMs?: number
  limits?: DecodeLimits
  /** Per-file decode deadline in the worker; default 60 s. */
  decodeTimeoutMs?: number
  /** Worker heap cap in MB; default 1024. */
  decodeMaxHeapMb?: number
  /** The file-system calls (default: node:fs); tests count them. */
  fs?: ManifestFs
  /** Debug log of each pass that changed something, with its timings. */
  log?: (msg: string, fields: Record<string, unknown>) => void
}

/**
 * One save is a burst of fs events a few ms long: measured here (Node fs.watch on ext4), vim's save in
 * its four backup modes spans 0.1-4.5 ms (the longest with an fsync), `sed -i` 0.04 ms, `cp` 0.1 ms. A
 * pass waits for this much quiet after the last event: twice the longest burst.
 */
export const DEBOUNCE_MS = 10
/**
 * What a pass after events would take away (objects a file no longer holds, a file gone, a file that no
 * longer decodes) waits until this long after the file's first event, then is read again. The first
 * event of a plain rewrite is its truncation: a file read then may be empty or hold fewer documents yet
 * still decode, which would remove Services until the rest is written. Additions and changes apply at once.
 */
export const TORN_WRITE_MS = 50
/** A named pass's verdict on a file that might be read mid-write: read it again later. */
const HELD = Symbol('held')
type Held = typeof HELD

/** Whether `after` lacks an object key that `before` has. */
function losesKeys (before: FileObjects, after: FileObjects): boolean {
  if (before.keys.length === 0) return false
  const keep = new Set(after.keys)
  return before.keys.some(k => !keep.has(k))
}

/**
 * `after`'s objects, with each one equal to `before`'s object of the same key replaced by that object.
 * The same object then flows on: the merge, the published map and the store see it as no change, so a
 * one-object edit of a 100-object file costs one upsert (99 store compares and upserts before).
 */
function reuseUnchanged (before: FileObjects, after: FileObjects): KObject[] {
  if (before.objects.length === 0) return after.objects as KObject[]
  const prev = new Map<string, KObject>()
  before.objects.forEach((o, i) => { prev.set(before.keys[i] as string, o) })
  return after.objects.map((o, i) => {
    const p = prev.get(after.keys[i] as string)
    return p !== undefined && sameJSON(p, o) ? p : o
  })
}
/** Files up to this size are decoded on the event loop (JSON: ~10 ms a MiB); bigger ones in the worker. */
const INLINE_JSON_BYTES = 1024 * 1024
const INLINE_YAML_BYTES = 32 * 1024
/** A full pass reads and decodes this long between turns of the event loop. */
const PASS_SLICE_MS = 20
/** Files stat'ed per turn of the event loop in a full pass: ~0.15 ms natively, ~10 ms under emulation, so a due sync waits no longer. */
const PROBE_SLICE = 32
const GONE: Prepared = { kind: 'gone' }

function isJSONName (file: string): boolean {
  return /\.json$/i.test(file)
}

function inlineSize (file: string, size: number): boolean {
  return size <= (isJSONName(file) ? INLINE_JSON_BYTES : INLINE_YAML_BYTES)
}

interface FileState extends FileObjects { readonly sig: string, readonly problem: string | undefined }
/** One file's probe and (when it will be decoded inline) its text, read ahead of its turn. */
type Prepared =
  | { readonly kind: 'gone' }
  | { readonly kind: 'probe', readonly probe: FileProbe }
  | { readonly kind: 'text', readonly probe: FileProbe, readonly text: string }
  | { readonly kind: 'failed', readonly probe: FileProbe, readonly error: FerryError }
  | { readonly kind: 'vanished', readonly probe: FileProbe }
/** A big file being decoded in the worker; the pass that finds `result` set applies it. */
interface InFlight { sig: string, done: Promise<void>, result?: DecodeResult | null }
/** One file whose state a pass changed: merged again by publish(). */
interface FileChange { readonly file: string, readonly before: FileState | undefined, readonly after: FileState | undefined }
/** What one pass did, for the debug log: `validated` counts objects decoded, not reused. */
interface PassStats { probed: number, read: number, validated: number }
/** A file state's List index: valid while `state` is the file's current state. */
interface Indexed { readonly state: FileState, readonly index: ListIndex }
export type { Conflict }

export class ManifestSource implements Source {
  readonly name: string
  private readonly limits: DecodeLimits
  private readonly pool: DecodePool
  private files = new Map<string, FileState>()
  private readonly fs: ManifestFs
  private handler: SourceHandler | undefined
  private watcher: ManifestWatch | undefined
  /** The watched directory's identity, to re-watch one swapped in under the same path. */
  private watchedId: string | undefined
  /** From the last full pass: whether the path is a directory (only then can an event name a file). */
  private directory = false
  /** Files named by events since the last pass started, and whether a full pass is owed. */
  private pendingFiles = new Set<string>()
  private pendingFull = false
  /** When the first event of the pending batch arrived (for the log, and where the torn-write hold starts). */
  private pendingSince: number | undefined
  /** Files held back by TORN_WRITE_MS, with the time of the first event that named them. */
  private readonly heldSince = new Map<string, number>()
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
  /** JSON Lists' item indexes, so a re-read decodes only its changed items (pkg/api/decode-delta.ts). */
  private readonly indexes = new Map<string, Indexed>()
  private indexing: Promise<void> = Promise.resolve()
  private indexingStarted = false

  constructor (private readonly opts: ManifestSourceOptions) {
    this.name = `manifests:${opts.path}`
    this.limits = opts.limits ?? DEFAULT_DECODE_LIMITS
    this.pool = new DecodePool({ timeoutMs: opts.decodeTimeoutMs, maxHeapMb: opts.decodeMaxHeapMb })
    this.fs = opts.fs ?? nodeManifestFs
  }

  async start (handler: SourceHandler): Promise<void> {
    this.handler = handler
    // The first state includes big files: a restart must not drop their Services' rules meanwhile.
    await this.reload()
    this.pollTimer = setInterval(() => { this.schedule(0, null) }, this.opts.pollMs ?? 2000)
    this.pollTimer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.watcher?.close()
    clearInterval(this.pollTimer)
    clearTimeout(this.debounceTimer)
    await this.pool.close()
    await this.reloading
    await this.indexing
  }

  /** Re-read changed files now; resolves when the handler has the result, big files included. */
  async reload (): Promise<void> {
    await this.pass(null)
    while (this.inflight.size > 0 && !this.stopped) {
      await Promise.all([...this.inflight.values()].map(async f => { await f.done }))
      await this.pass(null)
    }
  }

  /**
   * One pass over `files` (null: the whole path); big files still decoding are applied by a later pass.
   * Passes run one at a time, in the order asked.
   */
  private async pass (files: ReadonlySet<string> | null, since?: number): Promise<void> {
    const run = async (): Promise<void> => {
      try { await this.doReload(files, since) } catch (e) {
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
      rejectedFiles: [...this.files].filter(([, s]) => s.problem !== undefined).map(([file, s]) => ({ file, reason: s.problem ?? '' }))
        .sort((a, b) => a.file < b.file ? -1 : a.file > b.file ? 1 : 0),
      conflicts: this.conflicts.map(c => ({ ...c, ignored: [...c.ignored] })),
    }
  }

  /** Files whose last read failed, for /debug/state and readiness. */
  brokenFiles (): string[] {
    return this.status().rejectedFiles.map(r => r.file)
  }

  /** A pass after `ms` of quiet, over `files` (null: the whole path); requests coalesce until it starts. */
  private schedule (ms: number, files: readonly string[] | null): void {
    if (this.stopped) return
    if (files === null) this.pendingFull = true
    else for (const f of files) this.pendingFiles.add(f)
    this.pendingSince ??= performance.now()
    clearTimeout(this.debounceTimer)
    this.debounceTimer = setTimeout(() => {
      const named = this.pendingFull ? null : this.pendingFiles
      const since = this.pendingSince
      this.pendingFiles = new Set()
      this.pendingFull = false
      this.pendingSince = undefined
      void this.pass(named, since)
    }, ms)
  }

  /**
   * An event naming a manifest file in the watched directory asks for that file alone. Anything else
   * asks for a full pass: no name, a single-file path, the directory itself, or another entry (kubelet
   * swaps a ConfigMap volume's `..data` link, not the files' own links; editors rename temp files).
   */
  private onEvent (filename: string | null): void {
    const debounce = this.opts.debounceMs ?? DEBOUNCE_MS
    if (filename === null || !this.directory || filename.includes('/') || !isManifestName(filename) || filename === basename(this.opts.path)) {
      this.schedule(debounce, null)
    } else {
      this.schedule(debounce, [join(this.opts.path, filename)])
    }
  }

  private startWatch (id: string): void {
    if (this.watcher !== undefined && this.watchedId === id) return
    this.watcher?.close()
    this.watcher = undefined
    try {
      const w = this.fs.watch(this.opts.path, f => { this.onEvent(f) }, () => {
        if (this.watcher === w) { this.watcher = undefined; this.watchedId = undefined }
      })
      this.watcher = w
      this.watchedId = id
    } catch { /* missing path: the poll notices when it appears */ }
  }

  private async doReload (files: ReadonlySet<string> | null, since: number | undefined): Promise<void> {
    const h = this.handler
    if (h === undefined || this.stopped) return
    const t0 = performance.now()
    const stats: PassStats = { probed: 0, read: 0, validated: 0 }
    const changes = files !== null && this.directory && !this.lastMissing && this.everReplaced
      ? await this.namedPass(h, [...files].sort(), stats, since)
      : await this.fullPass(h, stats)
    if (changes === null) return // stopped
    const t1 = performance.now()
    if (changes.length > 0 || !this.everReplaced) this.publish(h, changes)
    if (changes.length > 0 && this.opts.log !== undefined) {
      const t2 = performance.now()
      this.opts.log('manifest pass', {
        pass: files === null ? 'full' : 'named', changedFiles: changes.length, probed: stats.probed, read: stats.read, validated: stats.validated,
        ...(since !== undefined ? { sinceEventMs: Math.round(t0 - since) } : {}),
        filesMs: Math.round(t1 - t0), publishMs: Math.round(t2 - t1),
      })
    }
  }

  /** Every file under the path, in name order; files not listed any more are gone. */
  private async fullPass (h: SourceHandler, stats: PassStats): Promise<FileChange[] | null> {
    const listing = await this.fs.list(this.opts.path)
    if (listing === null) {
      if (!this.lastMissing) h.error(new FerryError('FERRY_ERR_SOURCE', `manifests: ${this.opts.path} does not exist; serving no objects until it appears`, { path: this.opts.path }))
      this.lastMissing = true
      this.watcher?.close()
      this.watcher = undefined
      this.watchedId = undefined
      const changes = [...this.files].map(([file, before]) => ({ file, before, after: undefined }))
      this.files = new Map()
      return changes
    }
    if (this.stopped) return null
    this.lastMissing = false
    this.directory = listing.directory
    this.startWatch(listing.id)
    const paths = listing.files
    // Every file is stat'ed before any is read: the poll's usual finding is that nothing changed, and
    // then a pass is a stat per file (under emulation the per-file read-ahead and settle turns made a
    // no-change poll of 200 files cost more CPU than an edit's whole sync).
    const probes = await this.probeAll(paths, stats)
    if (this.stopped) return null
    /** The file at `i` has the state it had after the last pass. */
    const unchanged = (i: number): boolean => {
      const prev = this.files.get(paths[i] as string)
      return prev !== undefined && prev.sig === probes[i]?.sig
    }
    if (this.inflight.size === 0 && paths.length === this.files.size && paths.every((_, i) => unchanged(i))) return []
    const next = new Map<string, FileState>()
    const changes: FileChange[] = []
    // Blocking reads, in name order, with a turn of the event loop every PASS_SLICE_MS (probes, signals
    // and a due sync wait no longer): a read through the thread pool cost 0.5 ms of this thread in
    // promises and FileHandles, 100 ms of a 10k start, for 75 KiB that a direct read copies in 0.02 ms.
    let sliceStart = performance.now()
    for (let i = 0; i < paths.length; i++) {
      const f = paths[i] as string
      const prev = this.files.get(f)
      // Unchanged since the last pass: kept as it is, without a turn of the loop.
      if (prev !== undefined && unchanged(i)) { next.set(f, prev); continue }
      if (performance.now() - sliceStart > PASS_SLICE_MS) {
        await new Promise(resolve => setImmediate(resolve))
        if (this.stopped) return null
        sliceStart = performance.now()
      }
      const probe = probes[i]
      const read = probe == null ? GONE : this.prepare(f, prev?.sig, stats, probe)
      if (this.stopped) return null
      const state = await this.settle(h, f, read, prev, false, stats)
      if (state !== undefined) next.set(f, state)
      if (state !== prev) changes.push({ file: f, before: prev, after: state })
    }
    const listed = new Set(paths)
    for (const [f, prev] of this.files) if (!listed.has(f)) changes.push({ file: f, before: prev, after: undefined })
    for (const f of this.inflight.keys()) if (!listed.has(f)) this.inflight.delete(f)
    for (const f of this.indexes.keys()) if (!listed.has(f)) this.indexes.delete(f)
    this.files = next
    return changes
  }

  /**
   * Only the files fs events named: a stat each, a read of those that changed, no directory listing.
   * A named file that is gone (deleted, renamed away) leaves; one that appeared joins, as the listing
   * would have it: the name was checked against the same pattern when the event came.
   */
  private async namedPass (h: SourceHandler, files: string[], stats: PassStats, since: number | undefined): Promise<FileChange[] | null> {
    const reads = files.map(f => {
      const probe = this.probeNow(f, stats)
      return probe === null ? GONE : this.prepare(f, this.files.get(f)?.sig, stats, probe)
    })
    const changes: FileChange[] = []
    for (let i = 0; i < files.length; i++) {
      const f = files[i] as string
      const read = reads[i] as Prepared
      if (this.stopped) return null
      const prev = this.files.get(f)
      const first = Math.min(this.heldSince.get(f) ?? Infinity, since ?? performance.now())
      const waitMs = (this.opts.tornWriteMs ?? TORN_WRITE_MS) - (performance.now() - first)
      const state = await this.settle(h, f, read, prev, waitMs > 0, stats)
      if (state === HELD) {
        this.heldSince.set(f, first)
        this.schedule(Math.ceil(waitMs), [f])
        continue
      }
      this.heldSince.delete(f)
      if (state !== prev) changes.push({ file: f, before: prev, after: state })
    }
    for (const c of changes) {
      if (c.after === undefined) { this.files.delete(c.file); this.inflight.delete(c.file); this.indexes.delete(c.file) } else this.files.set(c.file, c.after)
    }
    return changes
  }

  /**
   * A file's state after this pass (undefined: not there), reporting its errors; `prev` when unchanged.
   * With `hold`, an outcome that takes objects away is HELD instead, unreported (TORN_WRITE_MS).
   */
  private async settle (h: SourceHandler, f: string, read: Prepared, prev: FileState | undefined, hold: false, stats: PassStats): Promise<FileState | undefined>
  private async settle (h: SourceHandler, f: string, read: Prepared, prev: FileState | undefined, hold: boolean, stats: PassStats): Promise<FileState | undefined | Held>
  private async settle (h: SourceHandler, f: string, read: Prepared, prev: FileState | undefined, hold: boolean, stats: PassStats): Promise<FileState | undefined | Held> {
    if (read.kind === 'gone') return hold && (prev?.objects.length ?? 0) > 0 ? HELD : undefined // vanished between readdir (or the event) and stat
    const probe = read.probe
    if (prev?.sig === probe.sig) return prev
    if (!probe.ok) {
      // Remembered by signature, so the next poll does not report it again.
      h.error(probe.error)
      return { sig: probe.sig, objects: prev?.objects ?? [], keys: prev?.keys ?? [], problem: probe.error.message }
    }
    const decoded = read.kind === 'text' ? this.decodeText(f, read.text, prev, stats) : undefined
    const r = decoded !== undefined ? decoded.result
      : read.kind === 'failed' ? { objects: [], keys: [], errors: [read.error] }
        : read.kind === 'vanished' ? null : await this.decodeBig(f, probe.sig)
    if (r === null || r === 'pending') return prev
    if (hold && (r.errors.length > 0 || losesKeys(prev ?? NO_OBJECTS, r))) return HELD
    for (const e of r.errors) h.error(e)
    return r.errors.length > 0
      ? { sig: probe.sig, objects: prev?.objects ?? [], keys: prev?.keys ?? [], problem: r.errors[0]?.message ?? 'invalid' }
      : this.indexed(f, { sig: probe.sig, objects: reuseUnchanged(prev ?? NO_OBJECTS, r), keys: r.keys, problem: undefined }, decoded?.index)
  }

  private indexed (f: string, state: FileState, index: ListIndex | undefined): FileState {
    if (index !== undefined) this.indexes.set(f, { state, index })
    return state
  }

  /**
   * A read file's decode: only its changed items when it is a JSON List indexed at its last good state,
   * else in full. Files decoded after the first state are indexed at once; those of the start-up pass
   * are indexed in idle time after it (indexInIdleTime).
   */
  private decodeText (f: string, text: string, prev: FileState | undefined, stats: PassStats): { result: DecodeResult, index: ListIndex | undefined } {
    const origin = basename(f)
    const known = this.indexes.get(f)
    if (prev !== undefined && known?.state === prev) {
      const d = decodeListDelta(text, origin, this.limits, { index: known.index, objects: prev.objects, keys: prev.keys })
      if (d !== null) {
        stats.validated += d.validated
        return { result: d.result, index: d.index }
      }
    }
    const result = decodeManifests(text, origin, this.limits)
    stats.validated += result.objects.length
    const index = this.everReplaced && result.errors.length === 0 && isJSONName(f) ? listIndexOf(text, result.objects.length) : undefined
    return { result, index }
  }

  /** Indexes the JSON Lists read before the daemon was ready; resolves when done. */
  async settled (): Promise<void> {
    if (!this.indexingStarted) {
      this.indexingStarted = true
      this.indexing = this.indexInIdleTime()
    }
    await this.indexing
  }

  /**
   * Indexes the JSON Lists of the start-up pass, one file per turn of the event loop, each read again
   * (keeping every text of the first pass would raise the start-up peak by their size: 15 MB at 10k).
   * Not before the daemon is ready: it would compete with the first sync for the one thread.
   */
  private async indexInIdleTime (): Promise<void> {
    for (const f of [...this.files.keys()]) {
      if (this.stopped) return
      await new Promise(resolve => setImmediate(resolve))
      await this.indexOne(f)
    }
  }

  private async indexOne (f: string): Promise<void> {
    const state = this.files.get(f)
    if (state === undefined || state.problem !== undefined || !isJSONName(f) || this.indexes.get(f)?.state === state) return
    const max = this.limits.maxBytes
    try {
      const probe = await this.fs.probe(f, max)
      if (!probe.ok || probe.sig !== state.sig || !inlineSize(f, probe.size)) return
      const text = await this.fs.read(f, max)
      // Unchanged across the read, and still the state the text must match.
      if ((await this.fs.probe(f, max)).sig !== state.sig || this.files.get(f) !== state) return
      this.indexed(f, state, listIndexOf(text, state.objects.length))
    } catch { /* gone or unreadable: the next pass sees to it */ }
  }

  /**
   * Each file's probe (null: vanished since the listing), in blocking stats, PROBE_SLICE files per turn
   * of the event loop. A stat through the thread pool costs about five times the CPU of a direct one
   * (promise, hand-off, wake-up); a poll every 2 s of 200 files cost 4-7 ms natively, several times that
   * under emulation, and competed with edits. A hung file system would stall the loop here, but it does
   * already at the next edit, whose named pass reads in blocking calls.
   */
  private async probeAll (paths: readonly string[], stats: PassStats): Promise<Array<FileProbe | null>> {
    const out = new Array<FileProbe | null>(paths.length).fill(null)
    for (let i = 0; i < paths.length; i++) {
      if (i > 0 && i % PROBE_SLICE === 0) {
        await new Promise(resolve => setImmediate(resolve))
        if (this.stopped) return out
      }
      out[i] = this.probeNow(paths[i] as string, stats)
    }
    return out
  }

  /** One file's probe in a blocking stat; null when it is gone. */
  private probeNow (file: string, stats: PassStats): FileProbe | null {
    stats.probed++
    try { return this.fs.probeNow(file, this.limits.maxBytes) } catch { return null }
  }

  /**
   * The read half of one file's pass, after its probe: for a changed readable file small enough to
   * decode inline, its text, read in blocking calls (the probe showed a regular file within the limit).
   * Never throws.
   */
  private prepare (file: string, prevSig: string | undefined, stats: PassStats, probe: FileProbe): Prepared {
    const max = this.limits.maxBytes
    if (!probe.ok || probe.sig === prevSig || !inlineSize(file, probe.size)) return { kind: 'probe', probe }
    stats.read++
    try {
      return { kind: 'text', probe, text: this.fs.readNow(file, max) }
    } catch (e) {
      const error = readFailure(file, e)
      // Vanished after the probe: the file keeps its last objects for this pass, as a failed decode does.
      return error === null ? { kind: 'vanished', probe } : { kind: 'failed', probe, error }
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
      if (this.inflight.get(file) === job) this.schedule(0, [file])
    })
    this.inflight.set(file, job)
    return 'pending'
  }

  /**
   * The first state goes in whole; later passes send only what differs from the last published state.
   * Only the files whose state changed are merged again, so a one-file edit at 10k Services costs that
   * file's keys, not a re-merge and a replace of 20k objects (33-113 ms here).
   */
  private publish (h: SourceHandler, changes: readonly FileChange[]): void {
    for (const c of changes) this.merged.update(c.file, c.before ?? NO_OBJECTS, c.after ?? NO_OBJECTS)
    const affected = this.merged.takeAffected()
    this.reportConflicts(h)
    if (!this.everReplaced) {
      const all = this.merged.winners()
      h.replace(all.map(([, o]) => o))
      this.everReplaced = true
      this.published = new Map(all)
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
