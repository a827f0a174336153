// ferryctl: write manifests into etcd in ferry's key layout and read them back. Heavy modules (etcd3,
// yaml, validation) are imported only by the commands that need them, so --help stays instant.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { KObject, Kind } from '../pkg/api/types.js'

export const DEFAULT_ENDPOINTS = 'http://127.0.0.1:2379'

export const HELP = `ferryctl: manage ferry's cluster state in etcd

Usage:
  ferryctl apply  -f FILE|DIR [-f ...]     validate all objects, then write them in one etcd transaction
  ferryctl delete -f FILE|DIR [-f ...]     delete the objects the manifests name (one transaction)
  ferryctl get RESOURCE [NAME] [-n NS | -A] [-o table|json|yaml]

Resources: services (svc), endpointslices (eps), nodes (no), pods (po)

Flags:
  -f, --filename PATH        manifest file, or a directory of *.yaml, *.yml, *.json (not recursive,
                             read in name order); repeatable. Multi-document YAML and kind: List work.
  -n, --namespace NS         namespace for get (default "default"); ignored for nodes
  -A, --all-namespaces       get: list every namespace (adds a NAMESPACE column)
  -o, --output FORMAT        get: table (default), json or yaml
      --ignore-not-found     delete: objects that do not exist are not an error
      --etcd-endpoints URLS  comma-separated etcd client URLs (env FERRY_ETCD_ENDPOINTS;
                             default ${DEFAULT_ENDPOINTS})
      --etcd-prefix PREFIX   key prefix (env FERRY_ETCD_PREFIX; default /ferry). Objects live at
                             PREFIX/v1/<resource>/<namespace>/<name> (nodes: PREFIX/v1/nodes/<name>)
  -h, --help                 show this help

Errors print "error: <message>" (naming the file, object and field) to stderr and exit 1; when any
object is invalid nothing is written.
`

const RESOURCES: Record<string, Kind> = {
  services: 'Service', service: 'Service', svc: 'Service',
  endpointslices: 'EndpointSlice', endpointslice: 'EndpointSlice', eps: 'EndpointSlice',
  nodes: 'Node', node: 'Node', no: 'Node',
  pods: 'Pod', pod: 'Pod', po: 'Pod',
}

export interface CtlIO {
  env: NodeJS.ProcessEnv
  stdout: (s: string) => void
  stderr: (s: string) => void
}

class UsageError extends Error {}

/** Runs one command; returns the exit code. Never throws. */
export async function main (argv: string[], io: CtlIO): Promise<number> {
  try {
    return await run(argv, io)
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e)
    io.stderr(`error: ${msg}\n`)
    if (e instanceof UsageError) io.stderr('Run "ferryctl --help" for usage.\n')
    return 1
  }
}

async function run (argv: string[], io: CtlIO): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        filename: { type: 'string', short: 'f', multiple: true },
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        output: { type: 'string', short: 'o' },
        'ignore-not-found': { type: 'boolean' },
        'etcd-endpoints': { type: 'string' },
        'etcd-prefix': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e))
  }
  const { values: v, positionals: pos } = parsed
  const [command, ...rest] = pos
  if (v.help === true || command === undefined || command === 'help') { io.stdout(HELP); return 0 }

  const endpointsText = v['etcd-endpoints'] ?? io.env.FERRY_ETCD_ENDPOINTS ?? DEFAULT_ENDPOINTS
  const prefix = v['etcd-prefix'] ?? io.env.FERRY_ETCD_PREFIX
  const openStore = async () => {
    const { EtcdStore } = await import('../pkg/source/etcd-store.js')
    const { parseEndpoints } = await import('../pkg/source/etcd-codec.js')
    const endpoints = parseEndpoints(endpointsText)
    if (endpoints.length === 0) throw new UsageError('--etcd-endpoints: no endpoints given')
    return new EtcdStore({ endpoints, prefix })
  }

  switch (command) {
    case 'apply':
    case 'delete': {
      if (rest.length > 0) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(rest[0])} (use -f FILE|DIR)`)
      const files = v.filename ?? []
      if (files.length === 0) throw new UsageError(`${command}: -f FILE|DIR is required`)
      const { readManifests } = await import('../pkg/ctl/read-manifests.js')
      const read = await readManifests(files)
      if (read.errors.length > 0) {
        for (const e of read.errors) io.stderr(`error: ${e.message}\n`)
        io.stderr(`error: ${read.errors.length} problem(s) found; nothing was ${command === 'apply' ? 'written' : 'deleted'}\n`)
        return 1
      }
      if (read.objects.length === 0) throw new Error(`no objects found in ${files.join(', ')}`)
      const store = await openStore()
      try {
        return command === 'apply' ? await apply(store, read.objects, io) : await del(store, read.objects, v['ignore-not-found'] === true, io)
      } finally { store.close() }
    }
    case 'get': {
      const [resource, name, extra] = rest
      if (resource === undefined) throw new UsageError('get: which resource? (services, endpointslices, nodes, pods)')
      if (extra !== undefined) throw new UsageError(`get: unexpected argument ${JSON.stringify(extra)}`)
      const kind = RESOURCES[resource.toLowerCase()]
      if (kind === undefined) throw new UsageError(`get: unknown resource ${JSON.stringify(resource)} (services, endpointslices, nodes, pods)`)
      const output = v.output ?? 'table'
      if (!['table', 'json', 'yaml'].includes(output)) throw new UsageError(`--output: must be table, json or yaml, got ${JSON.stringify(output)}`)
      if (v['all-namespaces'] === true && v.namespace !== undefined) throw new UsageError('-n and -A cannot be used together')
      const all = v['all-namespaces'] === true
      const ns = kind === 'Node' || all ? undefined : (v.namespace ?? 'default')
      const store = await openStore()
      let objects: KObject[]
      try {
        const res = await store.list(kind, ns)
        for (const e of res.errors) io.stderr(`warning: ${e.message}\n`)
        objects = res.objects
      } finally { store.close() }
      if (name !== undefined) {
        objects = objects.filter(o => o.metadata.name === name)
        if (objects.length === 0) {
          throw new Error(`${kind.toLowerCase()} "${ns !== undefined ? ns + '/' : ''}${name}" not found`)
        }
      }
      return await print(kind, objects, { output, all, ns, single: name !== undefined }, io)
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)} (apply, delete, get)`)
  }
}

type Store = InstanceType<typeof import('../pkg/source/etcd-store.js').EtcdStore>

async function apply (store: Store, objects: KObject[], io: CtlIO): Promise<number> {
  const { displayName } = await import('../pkg/source/etcd-keys.js')
  const results = await store.apply(objects)
  for (const r of results) {
    io.stdout(`${displayName({ kind: r.object.kind, namespace: r.object.metadata.namespace, name: r.object.metadata.name })} ${r.action}\n`)
  }
  return 0
}

async function del (store: Store, objects: KObject[], ignoreNotFound: boolean, io: CtlIO): Promise<number> {
  const { displayName } = await import('../pkg/source/etcd-keys.js')
  const results = await store.delete(objects)
  let code = 0
  for (const r of results) {
    if (r.deleted) io.stdout(`${displayName(r.target)} deleted\n`)
    else if (!ignoreNotFound) { io.stderr(`error: ${displayName(r.target)} not found\n`); code = 1 }
  }
  return code
}

async function print (kind: Kind, objects: KObject[], o: { output: string, all: boolean, ns: string | undefined, single: boolean }, io: CtlIO): Promise<number> {
  const doc = o.single && objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects }
  if (o.output === 'json') { io.stdout(JSON.stringify(doc, null, 2) + '\n'); return 0 }
  if (o.output === 'yaml') {
    const { stringify } = await import('yaml')
    io.stdout(stringify(doc))
    return 0
  }
  if (objects.length === 0) {
    io.stderr(o.ns !== undefined ? `No resources found in ${o.ns} namespace.\n` : 'No resources found\n')
    return 0
  }
  const { formatTable } = await import('../pkg/ctl/printers.js')
  io.stdout(formatTable(kind, objects, o.all))
  return 0
}

function isEntry (): boolean {
  const arg = process.argv[1]
  if (arg === undefined) return false
  try { return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url)) } catch { return false }
}

if (isEntry()) {
  const code = await main(process.argv.slice(2), {
    env: process.env,
    stdout: s => { process.stdout.write(s) },
    stderr: s => { process.stderr.write(s) },
  })
  process.exitCode = code
}
