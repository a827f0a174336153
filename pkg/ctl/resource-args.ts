// The objects a ferryctl command line names, in kubectl's two spellings: `TYPE[,TYPE...] [NAME...]` or
// `TYPE/NAME...` (types may differ). Pure: arguments in, the kinds and the named objects out.
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

export interface Target { kind: Kind, name: string }

export interface ResourceArgs {
  /** The types named, in argument order, each once (`svc,services` is one type, as kubectl lists it). */
  kinds: Kind[]
  /**
   * The objects named, in the order kubectl visits them: `TYPE1,TYPE2 A B` is each type's names in turn
   * (kubectl rewrites it as TYPE1/A TYPE1/B TYPE2/A TYPE2/B); TYPE/NAME arguments as given. A repeated
   * name or TYPE/NAME is kept: kubectl fetches (and prints) it once per mention. Empty: every object of
   * `kinds`.
   */
  targets: Target[]
}

function kindOf (verb: string, resource: string): Kind {
  const kind = RESOURCE_ALIASES[resource.toLowerCase()]
  if (kind === undefined) throw new FerryError('FERRY_ERR_CONFIG', `${verb}: unknown resource ${JSON.stringify(resource)} (${RESOURCE_LIST})`)
  return kind
}

/**
 * `svc,eps` → its type names, each spelling once, as kubectl splits them: `svc,svc` is one type, but
 * `svc,services` two spellings of one, which kubectl lists once yet visits twice by name.
 */
function typesOf (verb: string, types: string): Array<{ kind: Kind, spelling: string }> {
  return [...new Set(types.split(','))].map(spelling => ({ kind: kindOf(verb, spelling), spelling }))
}

const uniqueKinds = (kinds: readonly Kind[]): Kind[] => [...new Set(kinds)]

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
    const types = typesOf(verb, first)
    const names = checkNames(verb, rest)
    return { kinds: uniqueKinds(types.map(t => t.kind)), targets: types.flatMap(({ kind }) => names.map(name => ({ kind, name }))) }
  }
  const targets = args.map(a => {
    const slash = a.indexOf('/')
    if (slash < 0 || a.slice(0, slash).includes(',')) {
      throw new FerryError('FERRY_ERR_CONFIG', `${verb}: arguments in resource/name form must have a single resource and name, got ${JSON.stringify(a)}`)
    }
    return { kind: kindOf(verb, a.slice(0, slash)), name: a.slice(slash + 1) }
  })
  checkNames(verb, targets.map(t => t.name))
  return { kinds: uniqueKinds(targets.map(t => t.kind)), targets }
}

/** Each mention of the same object once, the first keeping its place: what delete acts on. */
export function uniqueTargets (targets: readonly Target[]): Target[] {
  const seen = new Set<string>()
  const unique: Target[] = []
  for (const t of targets) {
    const k = `${t.kind}/${t.name}` // names never hold "/" (checkNames)
    if (!seen.has(k)) { seen.add(k); unique.push(t) }
  }
  return unique
}

/** Names never hold "/" (DNS-1123), so one that does would make a key outside the layout. */
function checkNames (verb: string, names: readonly string[]): string[] {
  const bad = names.find(n => n === '' || n.includes('/'))
  if (bad !== undefined) throw new FerryError('FERRY_ERR_CONFIG', `${verb}: invalid name ${JSON.stringify(bad)}`)
  return [...names]
}
