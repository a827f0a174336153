// A Source turns the outside world (manifest files, etcd) into validated objects. Downstream code
// only ever sees the SourceHandler calls, never files or etcd.
import type { FerryError } from '../errors/errors.js'
import type { KObject, Kind } from '../api/types.js'

export interface SourceHandler {
  /** The source's complete state: objects missing from it are gone. Called at start and on re-list. */
  replace: (objects: KObject[]) => void
  upsert: (obj: KObject) => void
  remove: (kind: Kind, namespace: string | undefined, name: string) => void
  /** A problem the source recovered from by keeping its last good state (bad file, etcd down). */
  error: (err: FerryError) => void
}

/** What a source is serving around, for /debug/state and metrics. */
export interface SourceStatus {
  readonly name: string
  /** Files (or keys) read. */
  readonly files: number
  /** Inputs ignored in their current form (their last good objects, if any, are still served). */
  readonly rejectedFiles: ReadonlyArray<{ readonly file: string, readonly reason: string }>
  /** Objects defined more than once: which definition is served, which are ignored. */
  readonly conflicts: ReadonlyArray<{ readonly key: string, readonly kept: string, readonly ignored: readonly string[] }>
}

export interface Source {
  readonly name: string
  /** Resolves once the first complete state has been handed to `replace`. */
  start: (handler: SourceHandler) => Promise<void>
  stop: () => Promise<void>
  status?: () => SourceStatus
  /**
   * Called once the daemon is ready (its first sync is in the kernel): work that would only slow the
   * start-up down may begin. Resolves when that work is done.
   */
  settled?: () => Promise<void>
}
