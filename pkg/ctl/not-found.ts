// A missing object, reported in kubectl's words. kubectl shows the API server's NotFound status as
// `Error from server (NotFound): services "web" not found` (group-qualified resource, quoted name, no
// namespace), and prefixes `error when deleting "FILE": ` when the object came from a manifest. Scripts
// and people grep for that line, so ferryctl prints the same one. Pure.
import type { Kind } from '../api/types.js'
import { FerryError } from '../errors/errors.js'
import { qualifiedKind, qualifiedResource } from './kinds.js'

export interface Missing {
  kind: Kind
  name: string
  namespace?: string
  /** The manifest (or STDIN) the object was named in, for delete -f. */
  source?: string
}

/** FERRY_ERR_NOT_FOUND whose message is the server's status message; details keep the object's identity. */
export function notFound (m: Missing, verb?: 'deleting'): FerryError {
  const base = `${qualifiedResource(m.kind)} "${m.name}" not found`
  const message = m.source !== undefined && verb !== undefined ? `error when ${verb} "${m.source}": ${base}` : base
  return new FerryError('FERRY_ERR_NOT_FOUND', message, {
    kind: qualifiedKind(m.kind), name: m.name, ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
    ...(m.source !== undefined ? { source: m.source } : {}),
  })
}

/** The stderr line kubectl prints for a NotFound error. */
export function notFoundLine (e: FerryError): string {
  return `Error from server (NotFound): ${e.message}\n`
}
