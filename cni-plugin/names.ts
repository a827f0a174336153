// Names derived from the attachment alone, so DEL and GC find what ADD made without the netns or a
// prevResult (OVERLAY.md §4.5: the reference's masquerade rules leak when the netns is gone).
import { createHash, randomBytes } from 'node:crypto'

function digest (...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex')
}

/** Host end of the pod's veth: "fy" + 11 hex = 13 characters (IFNAMSIZ allows 15). */
export function hostVethName (containerID: string, ifname: string): string {
  return 'fy' + digest(containerID, ifname).slice(0, 11)
}

export const HOST_VETH = /^fy[0-9a-f]{11}$/

/** nat chain of one attachment's masquerade rules: "FY-" + 24 hex = 27 characters (iptables allows 28). */
export function masqChainName (network: string, containerID: string, ifname: string): string {
  return 'FY-' + digest(network, containerID, ifname).slice(0, 24)
}

/** A random locally administered unicast MAC, chosen up front so the result needs no lookup. */
export function randomMac (): string {
  const b = randomBytes(6)
  b[0] = ((b[0] ?? 0) & 0xfc) | 0x02
  return [...b].map(x => x.toString(16).padStart(2, '0')).join(':')
}
