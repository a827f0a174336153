// ferryd's side of the thick ferry-cni: listen, publish the server file, run each verb with the
// plugin's own dispatcher (cni-plugin/plugin.ts) over the request's variables only, count what it did.
// Started right after the config is valid and never awaited by the start-up: the proxy and readiness
// do not wait for it, and a failure to listen only means fronts fall back to starting node.
import { statSync } from 'node:fs'
import { Counter, type Registry } from '../metrics/prom.js'
import { errorMessage } from '../errors/errors.js'
import type { Logger } from '../log/log.js'
import type { CniRequest } from './protocol.js'
import { CniServer, type RunResult } from './server.js'
import { newToken, removeServerFile, writeServerFile } from './server-file.js'

export interface CniServiceConfig {
  readonly cniListen?: { readonly host: string, readonly port: number }
  readonly cniServerFile: string
}

export interface CniService {
  /** Resolves once listening and published (or given up); never rejects. */
  readonly started: Promise<void>
  stop: () => Promise<void>
}

/**
 * Runs one verb in this process, as the plugin binary would: getenv reads the request, never process.env.
 * The host side goes over rtnetlink from ferryd's netns (the node's), on a socket opened for this verb
 * only, so no request shares a socket's sequence numbers or failures with another.
 */
export async function runRequest (req: CniRequest): Promise<RunResult> {
  const [{ runPlugin }, { NetlinkDataplane }, { openLinks }] = await Promise.all([
    import('../../cni-plugin/plugin.js'), import('../../cni-plugin/dataplane-netlink.js'), import('../netlink/links.js'),
  ])
  let stdout = ''
  const cwd = req.env.get('PWD')
  const links = openLinks()
  try {
    const code = await runPlugin({
      getenv: name => (name.startsWith('CNI_') ? (req.env as ReadonlyMap<string, string>).get(name) : undefined),
      stdin: async () => req.stdin,
      stdout: text => { stdout += text },
    }, { ...(cwd !== undefined && cwd.startsWith('/') ? { cwd } : {}), dataplane: new NetlinkDataplane({ links }) })
    return { code, stdout }
  } finally {
    links.close()
  }
}

/**
 * Null when CNI_NETNS (if any) is the same namespace for ferryd as for the front: a runtime in another
 * mount namespace (podman's own /run/netns, say) may name a path that ferryd sees as a plain file or not
 * at all. Seen from the front through /proc/<its pid>/root. Anything unsure: let the front run it.
 */
export function netnsViewProblem (req: CniRequest, procRoot = '/proc'): string | null {
  const netns = req.env.get('CNI_NETNS') ?? ''
  if (netns === '') return null
  const pid = req.env.get('PID') ?? ''
  if (!/^[1-9][0-9]*$/.test(pid)) return 'no caller pid to compare CNI_NETNS with'
  try {
    const mine = statSync(netns)
    const theirs = statSync(`${procRoot}/${pid}/root${netns.startsWith('/') ? '' : '/'}${netns}`)
    if (mine.dev === theirs.dev && mine.ino === theirs.ino) return null
  } catch {}
  return `CNI_NETNS ${netns} is not the same file for ferryd as for the caller (another mount namespace)`
}

export function startCniService (cfg: CniServiceConfig, log: Logger, registry: Registry): CniService {
  const listen = cfg.cniListen
  if (listen === undefined) return { started: Promise.resolve(), stop: async () => {} }
  const requests = new Counter({ name: 'ferry_cni_requests_total', help: 'CNI verbs ferryd ran for bin/ferry-cni, by command and exit code', labelNames: ['command', 'code'], registers: [registry] })
  const rejected = new Counter({ name: 'ferry_cni_rejected_total', help: 'CNI server connections answered without running anything, by reason', labelNames: ['reason'], registers: [registry] })
  const token = newToken()
  const server = new CniServer({
    host: listen.host,
    port: listen.port,
    token,
    run: runRequest,
    precheck: req => netnsViewProblem(req),
    log,
    metrics: {
      served: (command, code) => { requests.inc({ command, code: String(code) }) },
      rejected: reason => { rejected.inc({ reason }) },
    },
  })
  let published = false
  const started = (async () => {
    try {
      const a = await server.listen()
      await writeServerFile(cfg.cniServerFile, { host: a.host, port: a.port, token })
      published = true
      log.info('serving ferry-cni verbs', { listen: `${a.host}:${a.port}`, serverFile: cfg.cniServerFile })
    } catch (e) {
      log.warn('CNI server not started; ferry-cni starts node for each call instead', { listen: `${listen.host}:${listen.port}`, serverFile: cfg.cniServerFile, err: errorMessage(e) })
      await server.close(0)
    }
  })()
  return {
    started,
    stop: async () => {
      await started
      // The file first: a front that reads it from now on finds no file, or a closed port, and falls back.
      if (published) await removeServerFile(cfg.cniServerFile, token)
      await server.close()
    },
  }
}
