// Can this kernel run IPVS mode, with this scheduler? The generic-netlink family answers the first
// question (kernels from 5.16 load ip_vs on that lookup; older ones after a modprobe); a throwaway
// virtual server answers the second, since adding one loads ip_vs_<scheduler> or fails with ENOENT. On
// 5.16 and later a failed lookup already tried to load the module, so no modprobe is started.
import { spawnExec, type Exec } from '../../exec/exec.js'
import { FerryError, errorMessage, isFerryError } from '../../errors/errors.js'
import { kernelAtLeast } from '../../os/kernel.js'
import { openIpvsKernel } from './kernel.js'
import type { IpvsKernel, VirtualServer } from './types.js'

export type IpvsProbe = { ok: true } | { ok: false, reason: string }

/** TEST-NET-2, never a real service; kube-proxy probes with the same address. */
const PROBE: VirtualServer = { family: 'IPv4', protocol: 'TCP', address: '198.51.100.0', port: 20000, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 }
const ENOENT = 2
const EEXIST = 17

async function open (exec: Exec, openKernel: () => Promise<IpvsKernel>, release: string | undefined): Promise<IpvsKernel> {
  try {
    return await openKernel()
  } catch (e) {
    if (!isFerryError(e, 'FERRY_ERR_IPVS_UNAVAILABLE')) throw e
    // Kernels before 5.16 do not load the module on the family lookup; later ones already tried.
    if (kernelAtLeast(5, 16, release)) throw e
    const r = await exec(['modprobe', '-q', 'ip_vs']).catch(() => ({ code: 1 }))
    if (r.code !== 0) throw e
    return await openKernel()
  }
}

/** `release`: the kernel release to judge the module autoload by (default: this kernel's). */
export async function probeIpvs (scheduler: string, exec: Exec = spawnExec, openKernel: () => Promise<IpvsKernel> = openIpvsKernel, release?: string): Promise<IpvsProbe> {
  let kernel: IpvsKernel
  try { kernel = await open(exec, openKernel, release) } catch (e) { return { ok: false, reason: errorMessage(e) } }
  try {
    const vs = { ...PROBE, scheduler }
    const [added] = await kernel.apply([{ op: 'addService', service: vs }])
    if (added?.errno === ENOENT) return { ok: false, reason: `the kernel has no IPVS scheduler ${scheduler} (module ip_vs_${scheduler})` }
    if (added !== undefined && added.errno !== 0 && added.errno !== EEXIST) return { ok: false, reason: `probing scheduler ${scheduler} failed with errno ${added.errno}` }
    if (added?.errno === 0) await kernel.apply([{ op: 'deleteService', service: vs }])
    return { ok: true }
  } catch (e) {
    return { ok: false, reason: errorMessage(e) }
  } finally {
    kernel.close()
  }
}

/** For --proxy-mode ipvs: the probe's failure as a start-up error, never a silent fallback. */
export function ipvsRequired (scheduler: string, p: IpvsProbe): void {
  if (!p.ok) throw new FerryError('FERRY_ERR_IPVS_UNAVAILABLE', `--proxy-mode ipvs: ${p.reason}`, { scheduler })
}
