// The state source's own metrics: what it is serving around, so a conflict or a rejected file shows on a
// dashboard and not only in one log line.
import type { Registry } from 'prom-client'
import { Counter, Gauge } from '../metrics/prom.js'
import type { FerryError } from '../errors/errors.js'
import type { Source } from './source.js'

export interface SourceMetrics {
  /** Counts every problem the source reported, by error code. */
  readonly reportError: (e: FerryError) => void
}

export function createSourceMetrics (registry: Registry, source: Source): SourceMetrics {
  const errors = new Counter({
    name: 'ferry_source_errors_total',
    help: 'Problems the state source reported and recovered from (bad files, invalid objects, etcd outages), by error code',
    labelNames: ['code'] as const,
    registers: [registry],
  })
  void new Gauge({
    name: 'ferry_source_duplicate_objects',
    help: 'Objects defined more than once; the first definition in file-name order is served',
    registers: [registry],
    collect () { this.set(source.status?.().conflicts.length ?? 0) },
  })
  void new Gauge({
    name: 'ferry_source_rejected_files',
    help: 'Manifest files ignored in their current form (over a limit, not a regular file, or invalid); their last good objects are still served',
    registers: [registry],
    collect () { this.set(source.status?.().rejectedFiles.length ?? 0) },
  })
  return { reportError: e => { errors.inc({ code: e.code }) } }
}
