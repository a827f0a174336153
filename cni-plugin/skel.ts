// The dispatcher (like CNI's pkg/skel): environment and stdin in, result or error JSON out, one exit code.
// It takes getenv, stdin and stdout so tests drive it without a process.
import { parseNetConf, type NetConf } from './config.js'
import { CniCode, CniError, toCniError } from './errors.js'
import type { CmdArgs, Funcs } from './commands.js'
import { formatResult } from './result.js'
import { compareVersions, CURRENT_VERSION, MIN_VERSION, SUPPORTED_VERSIONS, versionInfo } from './versions.js'

export interface Io {
  readonly getenv: (name: string) => string | undefined
  readonly stdin: () => Promise<string>
  readonly stdout: (text: string) => void
}

const VERBS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const
type Verb = typeof VERBS[number]

// skel's table: which variables each verb needs.
const REQUIRED: Readonly<Record<Verb, readonly string[]>> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: ['CNI_PATH'],
  VERSION: [],
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/

/** SPEC §2: at most 15 bytes, not "." or "..", no "/", ":" or white space. */
export function interfaceNameProblem (name: string): string | null {
  if (name === '.' || name === '..') return 'is "." or ".."'
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 bytes'
  if (/[/:\s]/.test(name)) return 'contains "/", ":" or white space'
  return null
}

/** Runs one plugin invocation; returns the exit code (0 ok, 1 error printed on stdout). */
export async function dispatch (funcs: Funcs, io: Io): Promise<number> {
  let version = CURRENT_VERSION
  try {
    const command = io.getenv('CNI_COMMAND') ?? ''
    if (command === '') throw new CniError(CniCode.INVALID_ENV, 'required env variables [CNI_COMMAND] missing')
    if (!(VERBS as readonly string[]).includes(command)) throw new CniError(CniCode.INVALID_ENV, `unknown CNI_COMMAND: ${command}`)
    const verb = command as Verb
    if (verb === 'VERSION') { io.stdout(versionInfo(await io.stdin())); return 0 }
    const missing = REQUIRED[verb].filter(k => (io.getenv(k) ?? '') === '')
    if (missing.length > 0) throw new CniError(CniCode.INVALID_ENV, `required env variables [${missing.join(',')}] missing`)
    const args: CmdArgs = { containerID: io.getenv('CNI_CONTAINERID') ?? '', netns: io.getenv('CNI_NETNS') ?? '', ifname: io.getenv('CNI_IFNAME') ?? '' }
    if (verb === 'ADD' || verb === 'DEL' || verb === 'CHECK') {
      if (!CONTAINER_ID.test(args.containerID)) {
        throw new CniError(CniCode.INVALID_ENV, 'invalid characters in CNI_CONTAINERID', `${JSON.stringify(args.containerID)} does not match ${CONTAINER_ID.source}`)
      }
      const p = interfaceNameProblem(args.ifname)
      if (p !== null) throw new CniError(CniCode.INVALID_ENV, `invalid CNI_IFNAME: ${JSON.stringify(args.ifname)} ${p}`)
    }
    let stdin: string
    try { stdin = await io.stdin() } catch (e) {
      throw new CniError(CniCode.IO, 'reading from stdin failed', e instanceof Error ? e.message : String(e))
    }
    const conf = parseNetConf(stdin)
    reconcile(verb, conf)
    version = conf.cniVersion
    switch (verb) {
      case 'ADD': io.stdout(JSON.stringify(formatResult(await funcs.add(args, conf), conf.cniVersion))); break
      case 'DEL': await funcs.del(args, conf); break
      case 'CHECK': await funcs.check(args, conf); break
      case 'GC': await funcs.gc(conf); break
      case 'STATUS': await funcs.status(conf); break
    }
    return 0
  } catch (e) {
    io.stdout(JSON.stringify(toCniError(e).toJSON(version)))
    return 1
  }
}

/** Exact-match version check, then the verb's minimum (SPEC: CHECK ≥ 0.4.0, GC and STATUS ≥ 1.1.0). */
function reconcile (verb: Verb, conf: NetConf): void {
  if (!SUPPORTED_VERSIONS.includes(conf.cniVersion)) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, 'incompatible CNI versions',
      `config is "${conf.cniVersion}", plugin supports [${SUPPORTED_VERSIONS.map(v => `"${v}"`).join(' ')}]`)
  }
  const min = MIN_VERSION[verb]
  if (min !== undefined && compareVersions(conf.cniVersion, min) < 0) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `config version does not allow ${verb}`, `${verb} needs cniVersion ${min} or later, config is "${conf.cniVersion}"`)
  }
}
