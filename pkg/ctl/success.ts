// The lines kubectl prints on stdout when a write succeeds, so scripts that grep kubectl's output work on
// ferryctl's. Pure: the object's identity in, one line out.
//
// apply goes through kubectl's name printer: the group-qualified lower-case kind, the name, the operation
// (`service/web created`, `endpointslice.discovery.k8s.io/web-abc unchanged`); no namespace.
// delete has its own wording: the kind, the quoted name, and since kubectl 1.34 (kubernetes#126619) the
// namespace the object was deleted from; cluster-scoped objects have none to name.
import type { Kind } from '../api/types.js'
import { qualifiedKind } from './kinds.js'

export interface Written {
  kind: Kind
  name: string
  /** Absent for cluster-scoped kinds. */
  namespace?: string
}

/** `service/web created` (action: created, configured or unchanged). */
export function appliedLine (o: Written, action: string): string {
  return `${qualifiedKind(o.kind)}/${o.name} ${action}\n`
}

/** `service "web" deleted from default namespace`; `node "node-1" deleted` */
export function deletedLine (o: Written): string {
  const from = o.namespace !== undefined && o.namespace !== '' ? ` from ${o.namespace} namespace` : ''
  return `${qualifiedKind(o.kind)} "${o.name}" deleted${from}\n`
}
