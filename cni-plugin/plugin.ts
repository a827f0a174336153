// Real wiring for every verb but VERSION: loaded by main.ts with import() so VERSION never pays for it,
// and by ferryd's CNI server (pkg/cni-server), which runs many verbs at once in one process: so nothing
// here may touch process-wide state (process.env, exit, cwd, signals). The verbs spawn `ip` and
// `nsenter` for kernel work, or use rtnetlink from the caller's netns, and so never switch it.
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { makeFuncs } from './commands.js'
import type { Dataplane } from './dataplane.js'
import { IpDataplane } from './dataplane-ip.js'
import { openDiskIpam } from './ipam-disk.js'
import { dispatch, type Io } from './skel.js'

export interface PluginOptions {
  /**
   * The caller's working directory: relative subnetFile and dataDir paths in the config resolve against
   * it (ferryd's own cwd is not the runtime's). Default: this process's cwd.
   */
  readonly cwd?: string
  /**
   * The kernel side. Default IpDataplane (the node path: loading pkg/netlink would cost more than the `ip`
   * process it saves); ferryd passes NetlinkDataplane (dataplane-netlink.ts).
   */
  readonly dataplane?: Dataplane
}

export async function runPlugin (io: Io, o: PluginOptions = {}): Promise<number> {
  const at = (path: string): string => o.cwd === undefined ? path : resolve(o.cwd, path)
  const funcs = makeFuncs({
    dataplane: o.dataplane ?? new IpDataplane(),
    openIpam: (opts) => openDiskIpam({ ...opts, dataDir: at(opts.dataDir) }),
    readFile: async (path) => await readFile(at(path), 'utf8'),
  })
  return await dispatch(funcs, io)
}
