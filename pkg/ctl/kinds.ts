// How kubectl spells each kind ferryctl handles: the API resource (what the server names in errors) and
// the kind qualified by its API group (what -o name and multi-type tables print). Pure data.
import type { Kind } from '../api/types.js'

interface KindNames {
  /** The API resource, plural and lower case, as in a REST path. */
  readonly resource: string
  /** API group; '' for the core group. */
  readonly group: string
}

const NAMES: { readonly [K in Kind]: KindNames } = {
  Service: { resource: 'services', group: '' },
  EndpointSlice: { resource: 'endpointslices', group: 'discovery.k8s.io' },
  Node: { resource: 'nodes', group: '' },
  Pod: { resource: 'pods', group: '' },
}

const qualify = (name: string, group: string): string => group === '' ? name : `${name}.${group}`

/** The group-qualified resource the API server names in errors: "services", "endpointslices.discovery.k8s.io". */
export function qualifiedResource (kind: Kind): string {
  return qualify(NAMES[kind].resource, NAMES[kind].group)
}

/** The lower-case kind, group-qualified outside the core group: "service", "endpointslice.discovery.k8s.io". */
export function qualifiedKind (kind: Kind): string {
  return qualify(kind.toLowerCase(), NAMES[kind].group)
}

