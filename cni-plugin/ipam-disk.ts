// The one place that opens the real IPAM store (pkg/ipam/disk.ts). Until pkg/ipam is merged into this
// branch it refuses; at merge this becomes: export { openDiskIpam } from '../pkg/ipam/disk.js'.
import type { Ipam } from '../pkg/ipam/types.js'
import type { IpamOptions } from './commands.js'

export async function openDiskIpam (_o: IpamOptions): Promise<Ipam> {
  throw new Error('pkg/ipam not merged yet')
}

/** false while the stand-in above is in place (the e2e test skips on it). */
export const DISK_IPAM_AVAILABLE: boolean = false
