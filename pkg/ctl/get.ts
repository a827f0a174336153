// `ferryctl get`: read the named types (or objects) from the store and print them as kubectl get does.
// Several types (`svc,eps`, or TYPE/NAME arguments of different types) print one table per type, in the
// order kubectl visits them, separated by a blank line, with `service/web`-style names when the objects
// found are of more than one type; -o json/yaml wrap them in one `kind: List`. Each missing name is
// kubectl's NotFound line on stderr and makes the exit code 1.
import type { KObject, Kind } from '../api/types.js'
import type { FerryError } from '../errors/errors.js'
import { isNamespaced } from '../etcd/keys.js'
import { notFound, notFoundLine } from './not-found.js'
import { formatNames, formatTable } from './printers.js'
import type { ResourceArgs } from './resource-args.js'

export const GET_OUTPUTS = ['table', 'wide', 'json', 'yaml', 'name'] as const
export type GetOutput = typeof GET_OUTPUTS[number]

export function isGetOutput (s: string): s is GetOutput {
  return (GET_OUTPUTS as readonly string[]).includes(s)
}

export interface GetRequest {
  args: ResourceArgs
  /** -n, else "default"; not used for cluster-scoped kinds or with `all`. */
  namespace: string
  /** -A */
  all: boolean
  output: GetOutput
  ignoreNotFound: boolean
}

/** The part of the store get reads: one kind, in one namespace or all. Objects come in key order. */
export interface Lister {
  list: (kind: Kind, namespace?: string) => Promise<{ objects: KObject[], errors: FerryError[] }>
}

export interface GetIO {
  stdout: (s: string) => void
  stderr: (s: string) => void
}

/** Prints what `req` names; returns the exit code (1 when a named object is missing). */
export async function get (store: Lister, req: GetRequest, io: GetIO): Promise<number> {
  const nsFor = (kind: Kind): string | undefined => isNamespaced(kind) && !req.all ? req.namespace : undefined
  const listed = new Map<Kind, KObject[]>()
  for (const kind of req.args.kinds) {
    const res = await store.list(kind, nsFor(kind))
    for (const e of res.errors) io.stderr(`warning: ${e.message}\n`)
    listed.set(kind, res.objects)
  }
  const { found, missing } = select(req.args, listed, nsFor)
  const errors = req.ignoreNotFound ? [] : missing

  if (req.output === 'name') io.stdout(formatNames(found))
  else if (req.output === 'json' || req.output === 'yaml') {
    const doc = document(found, req)
    if (doc !== undefined) io.stdout(req.output === 'json' ? JSON.stringify(doc, null, 2) + '\n' : (await import('yaml')).stringify(doc))
  } else if (found.length > 0) io.stdout(tables(found, req))
  else if (errors.length === 0 && !req.ignoreNotFound) io.stderr(noResources(req))

  io.stderr(errors.map(notFoundLine).join(''))
  return errors.length > 0 ? 1 : 0
}

/** The objects in kubectl's order (each type's list in store order; named ones in argument order), and the missing names. */
function select (args: ResourceArgs, listed: ReadonlyMap<Kind, KObject[]>, nsFor: (k: Kind) => string | undefined): { found: KObject[], missing: FerryError[] } {
  if (args.targets.length === 0) return { found: args.kinds.flatMap(k => listed.get(k) ?? []), missing: [] }
  const found: KObject[] = []
  const missing: FerryError[] = []
  // By name per kind: thousands of names against thousands of objects stay linear (the first wins, as find did).
  const byName = new Map<Kind, Map<string, KObject>>()
  for (const [kind, objects] of listed) {
    const m = new Map<string, KObject>()
    for (const o of objects) if (!m.has(o.metadata.name)) m.set(o.metadata.name, o)
    byName.set(kind, m)
  }
  for (const t of args.targets) {
    const o = byName.get(t.kind)?.get(t.name)
    if (o !== undefined) found.push(o)
    else missing.push(notFound({ kind: t.kind, name: t.name, namespace: nsFor(t.kind) }))
  }
  return { found, missing }
}

/**
 * kubectl's -o json/yaml: the object itself when exactly one was named and found; else a List, even an
 * empty one, except that with --ignore-not-found nothing found prints nothing, and one missing named
 * object prints only its error. kubectl builds that List itself, so it has no resourceVersion, yet
 * prints the empty one; its keys come in kubectl's (sorted) order.
 */
function document (found: KObject[], req: GetRequest): object | undefined {
  if (req.args.targets.length === 1) return found[0]
  if (found.length === 0 && req.ignoreNotFound) return undefined
  return { apiVersion: 'v1', items: found, kind: 'List', metadata: { resourceVersion: '' } }
}

/** One table per run of objects of one type, a blank line between; TYPE/NAME names when types are mixed. */
function tables (found: KObject[], req: GetRequest): string {
  const withKind = new Set(found.map(o => o.kind)).size > 1
  const runs: Array<{ kind: Kind, objects: KObject[] }> = []
  for (const o of found) {
    const last = runs[runs.length - 1]
    if (last?.kind === o.kind) last.objects.push(o)
    else runs.push({ kind: o.kind, objects: [o] })
  }
  return runs.map(r => formatTable(r.kind, r.objects, { withNamespace: req.all, wide: req.output === 'wide', withKind })).join('\n')
}

/**
 * What kubectl says when a list is empty. kubectl names the namespace even for cluster-scoped kinds
 * (kubernetes#80855); ferryctl leaves it out when every type asked for is cluster-scoped.
 */
function noResources (req: GetRequest): string {
  return req.all || req.args.kinds.every(k => !isNamespaced(k)) ? 'No resources found\n' : `No resources found in ${req.namespace} namespace.\n`
}
