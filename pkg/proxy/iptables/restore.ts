// The kernel side of the iptables backend: iptables-restore of a rendered payload, iptables-save, and the
// jumps from the built-in chains. Every program runs through an injectable Exec, so tests can wrap argv
// (`ip netns exec NAME ...`) or replace it with a fake.
import { FerryError } from '../../errors/errors.js'
import type { Exec, ExecResult } from '../../exec/exec.js'
import type { IPFamily } from '../../net/ip.js'
import { Chain } from './names.js'
import type { TableExtras } from './render.js'

export type Variant = 'legacy' | 'nft'
export type Table = 'filter' | 'nat' | 'mangle'

/** "iptables-legacy-restore", "ip6tables-nft-save", "iptables-nft", ... */
export function toolName (variant: Variant, family: IPFamily, kind: 'cmd' | 'save' | 'restore'): string {
  const base = family === 'IPv6' ? 'ip6tables' : 'iptables'
  return `${base}-${variant}${kind === 'cmd' ? '' : '-' + kind}`
}

/** Seconds to wait for the xtables lock (legacy; nft ignores it). */
const LOCK_WAIT = ['-w', '5']

/**
 * Applies `payload` in one `iptables-restore --noflush --counters` transaction (per table). The payload
 * may come in pieces (a RenderStream's chunks), piped while later pieces are still being rendered. On
 * failure throws FERRY_ERR_APPLY with the tool's stderr and, when it names one, the failing line. For a
 * payload in pieces, `lineOf` supplies that line (e.g. by rendering again); without it the pieces are
 * kept until the result is known, which at 10k services holds the whole ~17 MB payload at the RSS peak.
 */
export async function restore (exec: Exec, variant: Variant, family: IPFamily, payload: string | Iterable<string>,
  lineOf?: (lineNo: number) => string): Promise<void> {
  const argv = [toolName(variant, family, 'restore'), ...LOCK_WAIT, '--noflush', '--counters']
  const sent: string[] = []
  const stdin = typeof payload === 'string' || lineOf !== undefined ? payload : tee(payload, sent)
  const r = await exec(argv, stdin)
  if (r.code === 0) return
  const stderr = r.stderr.trim()
  const m = /line:? (\d+)/.exec(stderr)
  const lineNo = m?.[1] !== undefined ? Number(m[1]) : undefined
  const details: Record<string, unknown> = { tool: argv[0], code: r.code, stderr }
  if (lineNo !== undefined) {
    details.line = lineNo
    details.lineText = typeof payload === 'string' ? lineAt(payload, lineNo) : lineOf !== undefined ? lineOf(lineNo) : lineAt(sent.join(''), lineNo)
  }
  const where = lineNo !== undefined ? ` at line ${lineNo}: ${String(details.lineText)}` : ''
  throw new FerryError('FERRY_ERR_APPLY', `${argv[0] ?? 'iptables-restore'} failed${where}: ${firstLine(stderr)}`, details)
}

function * tee (pieces: Iterable<string>, into: string[]): Generator<string, void, undefined> {
  for (const p of pieces) { into.push(p); yield p }
}

function firstLine (s: string): string {
  const i = s.indexOf('\n')
  return i < 0 ? s : s.slice(0, i)
}

/** 1-based line of a large text without splitting all of it. */
export function lineAt (text: string, lineNo: number): string {
  let start = 0
  for (let n = 1; n < lineNo; n++) {
    const i = text.indexOf('\n', start)
    if (i < 0) return ''
    start = i + 1
  }
  const end = text.indexOf('\n', start)
  return text.slice(start, end < 0 ? undefined : end)
}

export async function save (exec: Exec, variant: Variant, family: IPFamily, table: Table): Promise<string> {
  const argv = [toolName(variant, family, 'save'), '-t', table]
  const r = await exec(argv)
  if (r.code !== 0) throw new FerryError('FERRY_ERR_EXEC', `${argv[0] ?? 'iptables-save'} -t ${table} failed: ${r.stderr.trim()}`, { argv, code: r.code })
  return r.stdout
}

/** Chain names declared in iptables-save output (built-in chains included). */
export function chainsInSave (text: string): string[] {
  const out: string[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith(':')) continue
    const sp = line.indexOf(' ')
    out.push(line.slice(1, sp < 0 ? undefined : sp))
  }
  return out
}

export interface Jump {
  readonly table: Table
  /** Built-in chain the jump sits in. */
  readonly from: string
  /** Match arguments, then `-j <target>`. */
  readonly args: readonly string[]
}

const NEW = ['-m', 'conntrack', '--ctstate', 'NEW']
const comment = (text: string): string[] => ['-m', 'comment', '--comment', text]

/** The jumps from built-in chains into ferry's chains (PROXY.md §2 "Hooked from"). */
export function jumps (family: IPFamily): Jump[] {
  const j = (table: Table, from: string[], args: string[]): Jump[] => from.map(f => ({ table, from: f, args }))
  return [
    ...j('filter', ['INPUT', 'FORWARD', 'OUTPUT'], [...NEW, ...comment('ferry load balancer firewall'), '-j', Chain.PROXY_FIREWALL]),
    ...j('filter', ['INPUT'], [...comment('ferry health check service ports'), '-j', Chain.NODEPORTS]),
    ...j('filter', ['INPUT', 'FORWARD'], [...NEW, ...comment('ferry externally-visible service portals'), '-j', Chain.EXTERNAL_SERVICES]),
    ...j('filter', ['FORWARD', 'OUTPUT'], [...NEW, ...comment('ferry service portals'), '-j', Chain.SERVICES]),
    ...j('filter', ['FORWARD'], [...comment('ferry forwarding rules'), '-j', Chain.FORWARD]),
    ...(family === 'IPv4' ? j('filter', ['INPUT', 'OUTPUT'], [...comment('ferry localhost nodeport guard'), '-j', Chain.FIREWALL]) : []),
    ...j('nat', ['PREROUTING', 'OUTPUT'], [...comment('ferry service portals'), '-j', Chain.SERVICES]),
    ...j('nat', ['POSTROUTING'], [...comment('ferry postrouting rules'), '-j', Chain.POSTROUTING]),
  ]
}

/** Whether iptables-save output of the jump's table already holds the jump (any position). */
export function jumpPresent (saveText: string, jump: Jump): boolean {
  const target = ` -j ${String(jump.args.at(-1))}`
  const ci = jump.args.indexOf('--comment')
  const text = ci >= 0 ? jump.args[ci + 1] : undefined
  const prefix = `-A ${jump.from} `
  for (const line of saveText.split('\n')) {
    if (line.startsWith(prefix) && line.endsWith(target) && (text === undefined || line.includes(text))) return true
  }
  return false
}

/** The restore line that prepends `jump` to its built-in chain, as kube-proxy's `-I` does. */
export function jumpLine (jump: Jump): string {
  return `-I ${jump.from} 1 ${jump.args.map(a => /\s/.test(a) ? `"${a}"` : a).join(' ')}`
}

/**
 * What a full sync adds to the rendered payload: the jumps its iptables-save scan did not find and the
 * mangle canary. They ride in the same restore: with legacy iptables every single-rule call rereads
 * (and -I rewrites) the whole table, about a second per call for a 10k-service nat table.
 */
export function fullSyncExtras (missing: readonly Jump[]): TableExtras {
  return {
    filter: missing.filter(j => j.table === 'filter').map(jumpLine),
    nat: missing.filter(j => j.table === 'nat').map(jumpLine),
    mangle: [`:${Chain.CANARY} - [0:0]`],
  }
}

/** Deletes every copy of each jump. */
export async function removeJumps (exec: Exec, variant: Variant, family: IPFamily): Promise<void> {
  const cmd = toolName(variant, family, 'cmd')
  for (const jump of jumps(family)) {
    const base = [cmd, ...LOCK_WAIT, '-t', jump.table]
    for (let i = 0; i < 100; i++) {
      const del = await exec([...base, '-D', jump.from, ...jump.args])
      if (del.code !== 0) break
    }
  }
}

function applyError (what: string, r: ExecResult): FerryError {
  return new FerryError('FERRY_ERR_APPLY', `${what} failed: ${r.stderr.trim()}`, { code: r.code, stderr: r.stderr.trim() })
}
