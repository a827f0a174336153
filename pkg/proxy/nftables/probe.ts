// Can this host run the nftables mode? The nft binary must exist, and the kernel must accept the
// layout's unusual forms: a `typeof ... numgen random mod N` map feeding `dnat ... map`, fib, and
// masquerade fully-random (NFTABLES.md §5 option C: "probe with nft --check at startup"). `--check` sends
// the transaction to the kernel and aborts it, so nothing is left behind.
import { spawnExec, type Exec } from '../../exec/exec.js'
import { FerryError, errorMessage } from '../../errors/errors.js'

export type NftablesProbe = { ok: true } | { ok: false, reason: string }

const PROBE_TABLE = 'ferry-probe'
/** TEST-NET-2 addresses, never real services. */
export const PROBE_TEXT = [
  `add table ip ${PROBE_TABLE}`,
  `add map ip ${PROBE_TABLE} eps { typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport ; }`,
  `add map ip ${PROBE_TABLE} vips { type ipv4_addr . inet_proto . inet_service : verdict ; }`,
  `add chain ip ${PROBE_TABLE} pre { type nat hook prerouting priority -100 ; policy accept ; }`,
  `add chain ip ${PROBE_TABLE} post { type nat hook postrouting priority 100 ; policy accept ; }`,
  `add chain ip ${PROBE_TABLE} pick`,
  `add rule ip ${PROBE_TABLE} pick meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @eps`,
  `add rule ip ${PROBE_TABLE} pre fib daddr type local meta l4proto . th dport { tcp . 1 } return`,
  `add rule ip ${PROBE_TABLE} pre ip daddr . meta l4proto . th dport vmap @vips`,
  `add rule ip ${PROBE_TABLE} post masquerade fully-random`,
  `add element ip ${PROBE_TABLE} vips { 198.51.100.1 . tcp . 80 : goto pick }`,
  `add element ip ${PROBE_TABLE} eps { 198.51.100.1 . tcp . 80 . 0 : 198.51.100.2 . 80, 198.51.100.1 . tcp . 80 . 1 : 198.51.100.3 . 80 }`,
  '',
].join('\n')

export async function probeNftables (exec: Exec = spawnExec): Promise<NftablesProbe> {
  let r
  try {
    r = await exec(['nft', '--check', '-f', '-'], PROBE_TEXT)
  } catch (e) {
    return { ok: false, reason: `nft is not installed or cannot run (${errorMessage(e)})` }
  }
  if (r.code === 0) return { ok: true }
  const why = r.stderr.trim().split('\n').find(l => l.includes('Error')) ?? r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`
  return { ok: false, reason: `nft --check refused the layout's forms: ${why}` }
}

/** For --proxy-mode nftables: the probe's failure as a start-up error, never a silent fallback. */
export function nftablesRequired (p: NftablesProbe): void {
  if (!p.ok) throw new FerryError('FERRY_ERR_CONFIG', `--proxy-mode nftables: ${p.reason}`)
}
