// ferryctl: write manifests into etcd in ferry's key layout and read them back. Heavy modules (etcd3,
// yaml, validation) are imported only by the commands that need them, so --help stays instant.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { KObject } from '../pkg/api/types.js'

export const DEFAULT_ENDPOINTS = 'http://127.0.0.1:2379'
// Mirrors pkg/etcd/chunks.ts (not imported: --help loads no etcd modules).
const DEFAULT_TXN_OPS = 128
const DEFAULT_REQUEST_BYTES = 1572864

export const HELP = `ferryctl: manage ferry's cluster state in etcd

Usage:
  ferryctl apply  -f FILE|DIR [-f ...]     validate all objects, then write the changed ones to etcd
  ferryctl delete -f FILE|DIR [-f ...]     delete the objects the manifests name
  ferryctl delete RESOURCE NAME... [-n NS] delete objects by name (or RESOURCE/NAME..., as get -o name prints)
  ferryctl get RESOURCE[,RESOURCE...] [NAME...] [-n NS | -A] [-o table|wide|json|yaml|name]
  ferryctl get RESOURCE/NAME...            (types may differ: svc/web node/node-1)
  ferryctl trace SRC DST:PORT[/PROTO]      ask the running ferryd which service entry point a new
                                           connection from SRC hits, and which endpoints can answer
                                           (masqueraded or not); DST in IPv6 as [IP]:PORT, PROTO tcp|udp|sctp

Resources: services (svc), endpointslices (eps), nodes (no), pods (po). Several types, as kubectl:
"get svc,eps" prints one table per type (a blank line between, names as service/web when the objects
are of more than one type); -o json/yaml one kind: List of them all; "get svc,eps web" is svc/web eps/web.

Flags:
  -f, --filename PATH        manifest file, a directory of *.yaml, *.yml, *.json (no dot-files, read
                             in name order; subdirectories only with -R), or - for standard input;
                             repeatable. Multi-document YAML and kind: List work.
  -R, --recursive            apply/delete -f DIR: also read its subdirectories, depth first in name
                             order as kubectl -R does (dot-directories and symlinked ones skipped)
  -n, --namespace NS         namespace for get and delete NAME (default "default"); ignored for nodes.
                             Not with -f: manifests name their namespace (none: "default")
  -A, --all-namespaces       get: list every namespace (adds a NAMESPACE column); wins over -n, and
                             takes no NAME, as in kubectl
  -o, --output FORMAT        get: table (default); wide, the table with kubectl's -o wide columns
                             (services: SELECTOR; nodes: EXTERNAL-IP OS-IMAGE KERNEL-VERSION
                             CONTAINER-RUNTIME; pods: NOMINATED NODE, READINESS GATES; fields ferry
                             does not store show as kubectl shows them unset); json; yaml; or name
                             (kubectl's TYPE/NAME lines, e.g. service/web,
                             endpointslice.discovery.k8s.io/web-abc)
      --ignore-not-found     delete, get NAME: objects that do not exist are not an error
      --etcd-endpoints URLS  comma-separated etcd client URLs (env FERRY_ETCD_ENDPOINTS;
                             default ${DEFAULT_ENDPOINTS})
                             (http://user:password@host:2379 logs in as user, but any local user
                             sees it in ps: prefer --etcd-username with --etcd-password-file)
      --etcd-prefix PREFIX   key prefix (env FERRY_ETCD_PREFIX; default /ferry). Objects live at
                             PREFIX/v1/<resource>/<namespace>/<name> (nodes: PREFIX/v1/nodes/<name>)
      --etcd-cafile FILE     PEM CA that signed etcd's server certificate, for https:// endpoints
                             (env FERRY_ETCD_CAFILE; default: the system roots)
      --etcd-certfile FILE   PEM client certificate when etcd runs with --client-cert-auth
                             (env FERRY_ETCD_CERTFILE; needs --etcd-keyfile)
      --etcd-keyfile FILE    its private key (env FERRY_ETCD_KEYFILE)
      --etcd-username USER   etcd user to log in as (env FERRY_ETCD_USERNAME)
      --etcd-password-file FILE
                             file holding that user's password, one trailing newline ignored (env
                             FERRY_ETCD_PASSWORD_FILE, or the password itself in FERRY_ETCD_PASSWORD)
      --max-txn-ops N        operations per etcd transaction: etcd's --max-txn-ops (default ${DEFAULT_TXN_OPS})
      --max-request-bytes N  etcd's --max-request-bytes (default ${DEFAULT_REQUEST_BYTES}); transactions are
                             filled to about 90% of it
      --server URL           trace: ferryd's HTTP address (env FERRY_SERVER; default http://127.0.0.1:10249;
                             /debug answers loopback clients unless ferryd runs with --debug-remote)
  -h, --help                 show this help

Errors print "error: <message>" (naming the file, object and field) to stderr and exit 1; when any
object is invalid nothing is written. get NAME... prints the objects it finds, then kubectl's line
"Error from server (NotFound): <resource> "<name>" not found" (e.g. services "web") per missing name,
and exits 1 if there was any.

apply prints kubectl's "<kind>/<name> created|configured|unchanged" per object on stdout, in input
order (e.g. service/web created, endpointslice.discovery.k8s.io/web-abc unchanged); delete prints
kubectl's '<kind> "<name>" deleted from <namespace> namespace' (nodes: 'node "node-1" deleted'), and
the same NotFound line on stderr (exit 1) for each that was not there (after -f, as kubectl:
...(NotFound): error when deleting "FILE": ...).
Changes that fit one etcd transaction (--max-txn-ops operations, --max-request-bytes) are written
atomically. Larger ones are written in consecutive transactions, with "applied N/M objects" progress
and a summary on stderr; such a write is NOT atomic across transactions. If one fails, the objects
already written are listed on stdout and the error says how many were and were not written; apply is
idempotent, so running it again finishes.
Passwords in endpoint URLs are shown as "***" in every message.
`

export interface CtlIO {
  env: NodeJS.ProcessEnv
  stdout: (s: string) => void
  stderr: (s: string) => void
  /** All of standard input, for `-f -`. */
  stdin?: () => Promise<string>
}

class UsageError extends Error {}

/** `fn`'s result; a mistake in the arguments it parses becomes a UsageError (which points at --help). */
function usage<T> (fn: () => T): T {
  try { return fn() } catch (e) { throw new UsageError(e instanceof Error ? e.message : String(e)) }
}

/** Runs one command; returns the exit code. Never throws. */
export async function main (argv: string[], io: CtlIO): Promise<number> {
  try {
    return await run(argv, io)
  } catch (e) {
    const { redact } = await import('../pkg/etcd/url.js')
    const msg = redact(e instanceof Error ? e.message : String(e))
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
        recursive: { type: 'boolean', short: 'R' },
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        output: { type: 'string', short: 'o' },
        'ignore-not-found': { type: 'boolean' },
        'etcd-endpoints': { type: 'string' },
        'etcd-prefix': { type: 'string' },
        'etcd-cafile': { type: 'string' },
        'etcd-certfile': { type: 'string' },
        'etcd-keyfile': { type: 'string' },
        'etcd-username': { type: 'string' },
        'etcd-password-file': { type: 'string' },
        'max-txn-ops': { type: 'string' },
        'max-request-bytes': { type: 'string' },
        server: { type: 'string' },
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
  /** A flag's value, else the environment variable's; empty counts as unset. */
  const setting = (flag: string | undefined, env: string | undefined): string | undefined => {
    const x = (flag !== undefined ? (v as Record<string, string | boolean | string[] | undefined>)[flag] : undefined) ?? (env !== undefined ? io.env[env] : undefined)
    return typeof x === 'string' && x !== '' ? x : undefined
  }
  const count = (flag: string): number | undefined => {
    const text = setting(flag, undefined)
    if (text === undefined) return undefined
    if (!/^[1-9]\d*$/.test(text)) throw new UsageError(`--${flag}: must be a positive integer, got ${JSON.stringify(text)}`)
    return Number(text)
  }
  const openStore = async () => {
    const { EtcdStore } = await import('../pkg/etcd/store.js')
    const { parseEndpoints } = await import('../pkg/etcd/client.js')
    const { loadAccess } = await import('../pkg/etcd/access.js')
    const endpoints = parseEndpoints(endpointsText)
    if (endpoints.length === 0) throw new UsageError('--etcd-endpoints: no endpoints given')
    const access = loadAccess({
      endpoints,
      caFile: setting('etcd-cafile', 'FERRY_ETCD_CAFILE'),
      certFile: setting('etcd-certfile', 'FERRY_ETCD_CERTFILE'),
      keyFile: setting('etcd-keyfile', 'FERRY_ETCD_KEYFILE'),
      username: setting('etcd-username', 'FERRY_ETCD_USERNAME'),
      passwordFile: setting('etcd-password-file', 'FERRY_ETCD_PASSWORD_FILE'),
      password: setting('etcd-password-file', 'FERRY_ETCD_PASSWORD_FILE') === undefined ? setting(undefined, 'FERRY_ETCD_PASSWORD') : undefined,
    })
    return new EtcdStore({
      endpoints, prefix, tls: access.tls, auth: access.auth,
      maxTxnOps: count('max-txn-ops'), maxRequestBytes: count('max-request-bytes'),
    })
  }

  /** `delete TYPE NAME...` or `delete TYPE/NAME...`: kubectl's everyday form, by key, no manifest needed. */
  const deleteNamed = async (args: string[]): Promise<number> => {
    if (v.filename !== undefined) throw new UsageError('delete: when -f is given, you may not specify resource arguments as well')
    if (v['all-namespaces'] === true) throw new UsageError('delete: -A applies to get only; name the namespace with -n')
    const { parseResourceArgs, uniqueTargets } = await import('../pkg/ctl/resource-args.js')
    // One etcd transaction may not name a key twice, so a repeated object is deleted (and reported) once.
    const targets = uniqueTargets(usage(() => parseResourceArgs('delete', args)).targets)
    if (targets.length === 0) throw new UsageError('delete: resource(s) were provided, but no name was specified')
    const { isNamespaced, keyForName } = await import('../pkg/etcd/keys.js')
    const store = await openStore()
    try {
      const keys = targets.map(t => keyForName(t.kind, isNamespaced(t.kind) ? (v.namespace ?? 'default') : undefined, t.name, store.prefix))
      return await del(store, keys, v['ignore-not-found'] === true, io)
    } finally { store.close() }
  }

  // Refused rather than ignored: a script passing -R to get expects something from it.
  if (v.recursive === true && ((command !== 'apply' && command !== 'delete') || v.filename === undefined)) {
    throw new UsageError(`${command}: -R applies to -f only (apply -f DIR -R, delete -f DIR -R)`)
  }

  switch (command) {
    case 'trace': {
      const { DEFAULT_SERVER, parseTraceArgs, trace } = await import('../pkg/ctl/trace.js')
      if (rest.length !== 2) throw new UsageError('trace needs SRC and DST:PORT[/PROTO]')
      let target
      try { target = parseTraceArgs(rest[0], rest[1]) } catch (e) { throw new UsageError(e instanceof Error ? e.message : String(e)) }
      io.stdout(await trace(setting('server', 'FERRY_SERVER') ?? DEFAULT_SERVER, target))
      return 0
    }
    case 'apply':
    case 'delete': {
      if (command === 'delete' && rest.length > 0) return await deleteNamed(rest)
      if (rest.length > 0) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(rest[0])} (use -f FILE|DIR|-)`)
      const files = v.filename ?? []
      if (files.length === 0) throw new UsageError(`${command}: -f FILE|DIR|- is required`)
      // kubectl users expect -n to place namespace-less objects; ignoring it wrote them to "default".
      if (v.namespace !== undefined || v['all-namespaces'] === true) {
        throw new UsageError(`${command} -f: -n/-A do not apply to manifests; set metadata.namespace in them (objects without one go to "default")`)
      }
      const { readManifests } = await import('../pkg/ctl/read-manifests.js')
      const read = await readManifests(files, io.stdin, { recursive: v.recursive === true })
      if (read.errors.length > 0) {
        for (const e of read.errors) io.stderr(`error: ${e.message}\n`)
        io.stderr(`error: ${read.errors.length} problem(s) found; nothing was ${command === 'apply' ? 'written' : 'deleted'}\n`)
        return 1
      }
      if (read.objects.length === 0) throw new Error(`no objects found in ${files.join(', ')}`)
      const store = await openStore()
      try {
        return command === 'apply' ? await apply(store, read.objects, io) : await del(store, read.objects, v['ignore-not-found'] === true, io, read.sources)
      } finally { store.close() }
    }
    case 'get': {
      const { parseResourceArgs } = await import('../pkg/ctl/resource-args.js')
      const { GET_OUTPUTS, get, isGetOutput } = await import('../pkg/ctl/get.js')
      const args = usage(() => parseResourceArgs('get', rest))
      const output = v.output ?? 'table'
      if (!isGetOutput(output)) throw new UsageError(`--output: must be ${GET_OUTPUTS.slice(0, -1).join(', ')} or ${GET_OUTPUTS[GET_OUTPUTS.length - 1] ?? ''}, got ${JSON.stringify(output)}`)
      // As kubectl: -A wins over -n, and names are looked up in one namespace only.
      const all = v['all-namespaces'] === true
      if (all && args.targets.length > 0) throw new UsageError('get: a resource cannot be retrieved by name across all namespaces')
      const store = await openStore()
      try {
        return await get(store, { args, namespace: v.namespace ?? 'default', all, output, ignoreNotFound: v['ignore-not-found'] === true }, io)
      } finally { store.close() }
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)} (apply, delete, get)`)
  }
}

type Store = InstanceType<typeof import('../pkg/etcd/store.js').EtcdStore>

type Progress = import('../pkg/etcd/store.js').Progress

/** "applied N/M objects" on stderr, about every tenth transaction, when a write takes more than one. */
function progressTo (io: CtlIO, verb: string): (p: Progress) => void {
  return p => {
    if (p.txns > 1 && (p.txn === p.txns || p.txn % Math.ceil(p.txns / 10) === 0)) io.stderr(`${verb} ${p.done}/${p.total} objects (transaction ${p.txn} of ${p.txns})\n`)
  }
}

async function apply (store: Store, objects: KObject[], io: CtlIO): Promise<number> {
  const { appliedLine } = await import('../pkg/ctl/success.js')
  const { PartialWriteError } = await import('../pkg/etcd/store.js')
  const line = (r: { object: KObject, action: string }): string => appliedLine({ kind: r.object.kind, name: r.object.metadata.name }, r.action)
  let txns = 0
  const progress = progressTo(io, 'applied')
  let results
  try {
    results = await store.apply(objects, { progress: p => { txns = p.txns; progress(p) } })
  } catch (e) {
    if (e instanceof PartialWriteError) io.stdout((e.done as Array<{ object: KObject, action: string }>).map(line).join(''))
    throw e
  }
  io.stdout(results.map(line).join(''))
  if (txns > 1 || objects.length > store.maxTxnOps) {
    const n = (a: string): number => results.filter(r => r.action === a).length
    io.stderr(`applied ${results.length} objects: ${n('created')} created, ${n('configured')} configured, ${n('unchanged')} unchanged (${txns} transaction${txns === 1 ? '' : 's'})\n`)
  }
  return 0
}

/**
 * Deletes objects (from manifests, `sources` naming each one's file) or keys in the layout (named on the
 * command line). A missing one is kubectl's NotFound line, naming the file as kubectl delete -f does.
 */
async function del (store: Store, objects: ReadonlyArray<KObject | string>, ignoreNotFound: boolean, io: CtlIO, sources: readonly string[] = []): Promise<number> {
  const { deletedLine } = await import('../pkg/ctl/success.js')
  const { PartialWriteError } = await import('../pkg/etcd/store.js')
  const { notFound, notFoundLine } = await import('../pkg/ctl/not-found.js')
  let code = 0
  // Results come back in target order, so the i-th result is the i-th object and its source.
  const report = (results: Array<{ target: import('../pkg/etcd/keys.js').ParsedKey, deleted: boolean }>): void => {
    io.stdout(results.filter(r => r.deleted).map(r => deletedLine(r.target)).join(''))
    const missing = results.flatMap((r, i) => r.deleted ? [] : [notFound({ ...r.target, source: sources[i] }, 'deleting')])
    if (!ignoreNotFound && missing.length > 0) {
      io.stderr(missing.map(notFoundLine).join(''))
      code = 1
    }
  }
  let results
  try { results = await store.delete(objects, { progress: progressTo(io, 'deleted') }) } catch (e) {
    if (e instanceof PartialWriteError) report(e.done as Array<{ target: import('../pkg/etcd/keys.js').ParsedKey, deleted: boolean }>)
    throw e
  }
  report(results)
  return code
}

function isEntry (): boolean {
  const arg = process.argv[1]
  if (arg === undefined) return false
  try { return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url)) } catch { return false }
}

if (isEntry()) {
  const { exitOnBrokenPipe } = await import('../pkg/ctl/broken-pipe.js')
  exitOnBrokenPipe([process.stdout, process.stderr])
  const code = await main(process.argv.slice(2), {
    env: process.env,
    stdout: s => { process.stdout.write(s) },
    stderr: s => { process.stderr.write(s) },
    stdin: async () => {
      const { readStdinText } = await import('../pkg/ctl/read-manifests.js')
      const { DEFAULT_DECODE_LIMITS } = await import('../pkg/api/limits.js')
      return await readStdinText(process.stdin, DEFAULT_DECODE_LIMITS.maxBytes)
    },
  })
  process.exitCode = code
}
