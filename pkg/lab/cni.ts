// Calls bin/ferry-cni exactly as a container runtime does: in the node's network namespace, parameters in
// the environment (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH), the network config on
// stdin, the result (or a CNI error object) on stdout.
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
/** The repository root, whether this module runs from dist/ or from source under tap. */
export const REPO_ROOT = here.includes(join('dist', 'pkg')) ? join(here, '..', '..', '..') : join(here, '..', '..')
export const FERRY_CNI = join(REPO_ROOT, 'bin', 'ferry-cni')
/** Where Debian's containernetworking-plugins live: the CNI_PATH a runtime passes. */
export const CNI_PATH = '/usr/lib/cni'

/** ferry-cni's network config (what a runtime reads from /etc/cni/net.d and passes on stdin). */
export interface FerryCniConf {
  readonly cniVersion: string
  readonly name: string
  readonly type: 'ferry-cni'
  readonly bridge: string
  readonly subnetFile: string
  readonly dataDir: string
}

/** One attachment: the container, its network namespace path and the interface name inside it. */
export interface CniAttachment { readonly containerId: string, readonly netns: string, readonly ifname: string }

/** The parts of a CNI 1.0 ADD result the lab uses. */
export interface CniResult {
  readonly cniVersion?: string
  readonly interfaces?: Array<{ name: string, mac?: string, sandbox?: string }>
  readonly ips?: Array<{ address: string, gateway?: string, interface?: number }>
  readonly routes?: Array<{ dst: string, gw?: string }>
}

/** Runs ferry-cni `command` (ADD, DEL, CHECK...) inside `nodeNs`; resolves with the parsed stdout, rejects on a non-zero exit. */
export async function callCni (nodeNs: string, command: string, att: CniAttachment, conf: FerryCniConf): Promise<CniResult> {
  const env = { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: att.containerId, CNI_NETNS: att.netns, CNI_IFNAME: att.ifname, CNI_PATH }
  return await new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', nodeNs, FERRY_CNI], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { err += b.toString() })
    child.on('error', reject)
    child.on('close', code => {
      if (code !== 0) { reject(new Error(`ferry-cni ${command} ${att.containerId}: exit ${code ?? '?'}: ${out.trim()} ${err.trim()}`)); return }
      try { resolve(out.trim() === '' ? {} : JSON.parse(out) as CniResult) } catch (e) { reject(e instanceof Error ? e : new Error(String(e))) }
    })
    child.stdin.end(JSON.stringify(conf))
  })
}

/** The first address of an ADD result without its prefix length ("10.244.3.2"), or ''. */
export function firstIP (r: CniResult): string {
  return (r.ips?.[0]?.address ?? '').split('/')[0] ?? ''
}
