// The objects a ferryctl command line names, in kubectl's two spellings: `TYPE [NAME...]` or
// `TYPE/NAME...`. Pure: arguments in, one kind and its names out.
import type { Kind } from '../api/types.js'
import { FerryError } from '../errors/errors.js'

/** Resource names and aliases, lower case; the `.discovery.k8s.io` forms are what `-o name` prints. */
export const RESOURCE_ALIASES: Readonly<Record<string, Kind>> = {
  services: 'Service', service: 'Service', svc: 'Service',
  endpointslices: 'EndpointSlice', endpointslice: 'EndpointSlice', eps: 'EndpointSlice',
  'endpointslices.discovery.k8s.io': 'EndpointSlice', 'endpointslice.discovery.k8s.io': 'EndpointSlice',
  nodes: 'Node', node: 'Node', no: 'Node',
  pods: 'Pod', pod: 'Pod', po: 'Pod',
}

export const RESOURCE_LIST = 'services, endpointslices, nodes, pods'

export interface ResourceArgs {
  kind: Kind
  /** In argument order, each once; empty: every object of the kind. */
  names: string[]
}

function kindOf (verb: string, resource: string): Kind {
  const kind = RESOURCE_ALIASES[resource.toLowerCase()]
  if (kind === undefined) throw new FerryError('FERRY_ERR_CONFIG', `${verb}: unknown resource ${JSON.stringify(resource)} (${RESOURCE_LIST})`)
  return kind
}

/** Throws FERRY_ERR_CONFIG for a usage mistake, with kubectl's wording where kubectl has one. */
export function parseResourceArgs (verb: string, args: readonly string[]): ResourceArgs {
  const [first, ...rest] = args
  if (first === undefined) throw new FerryError('FERRY_ERR_CONFIG', `${verb}: which resource? (${RESOURCE_LIST})`)
  if (!first.includes('/')) {
    const misplaced = rest.find(a => a.includes('/'))
    if (misplaced !== undefined) {
      throw new FerryError('FERRY_ERR_CONFIG', `${verb}: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form ` +
        `(e.g. 'ferryctl ${verb} ${misplaced}' instead of 'ferryctl ${verb} ${first} ${misplaced}')`)
    }
    return { kind: kindOf(verb, first), names: checkNames(verb, rest) }
  }
  const pairs = args.map(a => {
    const slash = a.indexOf('/')
    if (slash < 0) throw new FerryError('FERRY_ERR_CONFIG', `${verb}: arguments in resource/name form must have a single resource and name, got ${JSON.stringify(a)}`)
    return { kind: kindOf(verb, a.slice(0, slash)), name: a.slice(slash + 1) }
  })
  const kind = kindOf(verb, first.slice(0, first.indexOf('/')))
  const other = pairs.find(p => p.kind !== kind)
  if (other !== undefined) throw new FerryError('FERRY_ERR_CONFIG', `${verb}: one resource type at a time, got ${kind} and ${other.kind}`)
  return { kind, names: checkNames(verb, pairs.map(p => p.name)) }
}

/** Each name once; names never hold "/" (DNS-1123), so one that does would make a key outside the layout. */
function checkNames (verb: string, names: readonly string[]): string[] {
  const bad = names.find(n => n === '' || n.includes('/'))
  if (bad !== undefined) throw new FerryError('FERRY_ERR_CONFIG', `${verb}: invalid name ${JSON.stringify(bad)}`)
  return [...new Set(names)]
}
