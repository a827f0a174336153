// Running `nft` through the injectable Exec seam: one `nft -f -` per transaction (the text on stdin),
// one small set listed for the cheap presence check. A refused transaction becomes FERRY_ERR_APPLY quoting
// nft's own error, which names the offending line.
import { FerryError } from '../../errors/errors.js'
import { stdinText, type Exec } from '../../exec/exec.js'
import type { IPFamily } from '../../net/ip.js'
import { lineAt } from '../iptables/restore.js'
import { MapName, TABLE, familyWords } from './names.js'

/** nft's stderr can repeat a long line per error: keep the message readable. */
const STDERR_MAX = 4000

/**
 * Runs one `nft -f -` transaction. `text` may be pieces rendered while nft parses the earlier ones; a
 * refusal then quotes its line from `whole()`, the same text rendered again.
 */
export async function nftApply (exec: Exec, text: string | Iterable<string>, what = 'nft -f -', whole: () => string = () => stdinText(text)): Promise<void> {
  const r = await exec(['nft', '-f', '-'], text)
  if (r.code === 0) return
  const stderr = r.stderr.trim().slice(0, STDERR_MAX)
  // "/dev/stdin:12:39-59: Error: Could not process rule: No such file or directory"
  const m = /^\/dev\/stdin:(\d+):[^ ]* (Error: .*)$/m.exec(stderr)
  const details: Record<string, unknown> = { code: r.code, stderr }
  let where = ''
  if (m?.[1] !== undefined) {
    const line = Number(m[1])
    details.line = line
    details.lineText = lineAt(whole(), line)
    where = ` at line ${line} (${String(details.lineText).slice(0, 300)})`
  }
  const first = m?.[2] ?? stderr.split('\n')[0] ?? `exit ${r.code}`
  throw new FerryError('FERRY_ERR_APPLY', `${what} failed${where}: ${first}`, details)
}

/**
 * Whether the family's ferry table is in the kernel. nft 1.0.6 fetches every set with its elements for
 * `list tables` or `list chain` (1 s and 150 MB at 10k Services), but only the named set for `list set`:
 * so the check lists the small `firewall-ips` set, which every ferry table declares.
 */
export async function tablePresent (exec: Exec, family: IPFamily): Promise<boolean> {
  const w = familyWords(family)
  const r = await exec(['nft', 'list', 'set', w.table, TABLE, MapName.FIREWALL_IPS])
  if (r.code === 0) return true
  if (/No such file or directory/.test(r.stderr)) return false
  throw new FerryError('FERRY_ERR_EXEC', `nft list set ${w.obj} ${MapName.FIREWALL_IPS} failed: ${r.stderr.trim()}`, { code: r.code })
}

/** Families whose ferry table exists, each checked the cheap way (tablePresent). */
export async function ferryTables (exec: Exec): Promise<Set<IPFamily>> {
  const out = new Set<IPFamily>()
  for (const family of ['IPv4', 'IPv6'] as const) if (await tablePresent(exec, family)) out.add(family)
  return out
}

/** Deletes the family's ferry table; absent is fine (declaring it first makes the delete always valid). */
export function deleteTableText (families: Iterable<IPFamily>): string {
  const out: string[] = []
  for (const f of families) {
    const obj = familyWords(f).obj
    out.push(`add table ${obj}`, `delete table ${obj}`)
  }
  return out.join('\n') + '\n'
}
