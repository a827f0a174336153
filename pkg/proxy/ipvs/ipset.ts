// ipsets as IPVS mode uses them: set specs, canonical entries, and the `ipset restore` texts that load
// them in one process per sync (kube-proxy's one `ipset add` per entry is a known slowness,
// kubernetes#133773). A set's content is replaced atomically by filling a temporary set and swapping it
// in; small changes go as add/del lines (companion-apply.ts). The programs run through the Exec seam (fake-ipset.ts in tests).
import { FerryError } from '../../errors/errors.js'
import type { Exec } from '../../exec/exec.js'
import { parseCIDR, parseIP, type IPFamily } from '../../net/ip.js'

export type IpsetType = 'hash:ip' | 'hash:ip,port' | 'hash:ip,port,ip' | 'hash:ip,port,net' | 'bitmap:port'

export interface IpsetSpec {
  readonly name: string
  readonly type: IpsetType
  /** Address family of hash sets; bitmap:port has none, but each family keeps its own sets. */
  readonly family: IPFamily
}

/** A set and its members, canonical (canonicalEntry), each once. */
export interface IpsetContent {
  readonly spec: IpsetSpec
  readonly entries: ReadonlySet<string>
}

/** Creation parameters are fixed: `create -exist` fails when an existing set differs in maxelem. */
export const HASH_SIZE = 1024
/** Memory grows with entries, not with this cap; kube-proxy's 65536 is too small for 50k endpoints. */
export const MAX_ELEM = 1 << 20
export const TEMP_SUFFIX = '-T'
/** The kernel's IPSET_MAXNAMELEN minus the terminating NUL. */
export const MAX_SET_NAME = 31

export function tempName (name: string): string {
  return name + TEMP_SUFFIX
}

export function createLine (spec: IpsetSpec, name = spec.name): string {
  if (spec.type === 'bitmap:port') return `create ${name} bitmap:port range 0-65535`
  return `create ${name} ${spec.type} family ${spec.family === 'IPv4' ? 'inet' : 'inet6'} hashsize ${HASH_SIZE} maxelem ${MAX_ELEM}`
}

const PROTOS = new Set(['tcp', 'udp', 'sctp'])

function ipOf (text: string, family: IPFamily): string | null {
  const s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text
  const p = parseIP(s)
  return p !== null && p.family === family ? p.ip : null
}

function protoPort (text: string): string | null {
  const i = text.indexOf(':')
  if (i < 0) return null
  const proto = text.slice(0, i).toLowerCase()
  const port = Number(text.slice(i + 1))
  if (!PROTOS.has(proto) || !Number.isInteger(port) || port < 0 || port > 65535 || text.slice(i + 1) === '') return null
  return `${proto}:${port}`
}

/**
 * The canonical text of a member, or null when it does not fit the set: addresses in parseIP form, nets
 * with their prefix always written (`ipset save` drops a full-length one), protocols lower case.
 */
export function canonicalEntry (spec: Pick<IpsetSpec, 'type' | 'family'>, text: string): string | null {
  const parts = text.trim().split(',')
  switch (spec.type) {
    case 'bitmap:port': {
      if (parts.length !== 1) return null
      const p = parts[0] ?? ''
      const port = Number(p.includes(':') ? p.slice(p.indexOf(':') + 1) : p)
      return p !== '' && Number.isInteger(port) && port >= 0 && port <= 65535 ? String(port) : null
    }
    case 'hash:ip': return parts.length === 1 ? ipOf(parts[0] ?? '', spec.family) : null
    case 'hash:ip,port':
    case 'hash:ip,port,ip':
    case 'hash:ip,port,net': {
      const want = spec.type === 'hash:ip,port' ? 2 : 3
      if (parts.length !== want) return null
      const ip = ipOf(parts[0] ?? '', spec.family)
      const pp = protoPort(parts[1] ?? '')
      if (ip === null || pp === null) return null
      if (want === 2) return `${ip},${pp}`
      const third = parts[2] ?? ''
      if (spec.type === 'hash:ip,port,ip') {
        const ip2 = ipOf(third, spec.family)
        return ip2 === null ? null : `${ip},${pp},${ip2}`
      }
      const full = spec.family === 'IPv4' ? 32 : 128
      const c = parseCIDR(third.includes('/') ? third : `${third}/${full}`)
      // ipset's net types refuse /0 (the renderer never asks for one).
      return c === null || c.family !== spec.family || c.prefix === 0 ? null : `${ip},${pp},${c.text}`
    }
  }
}

/**
 * Replaces each set's members atomically: the live set is created if missing, a temporary one is filled
 * and swapped in (the rules keep referring to the live name), then the temporary one is destroyed. For
 * `ipset restore -exist`, which also ignores the destroy of a temporary set that is not there.
 */
export function swapRestore (sets: Iterable<IpsetContent>): string {
  const out: string[] = []
  for (const { spec, entries } of sets) {
    const tmp = tempName(spec.name)
    out.push(createLine(spec), createLine(spec, tmp), `flush ${tmp}`)
    for (const e of entries) out.push(`add ${tmp} ${e}`)
    out.push(`swap ${tmp} ${spec.name}`, `destroy ${tmp}`)
  }
  return out.length === 0 ? '' : out.join('\n') + '\n'
}

export function destroyRestore (names: Iterable<string>): string {
  const out: string[] = []
  for (const n of names) out.push(`destroy ${n}`)
  return out.length === 0 ? '' : out.join('\n') + '\n'
}

const IPSET = 'ipset'

/** Runs `ipset restore -exist` with `text`; FERRY_ERR_APPLY names the failing line. Earlier lines stay applied. */
export async function ipsetRestore (exec: Exec, text: string): Promise<void> {
  const argv = [IPSET, 'restore', '-exist']
  const r = await exec(argv, text)
  if (r.code === 0) return
  const stderr = r.stderr.trim()
  const m = /Error in line (\d+)/.exec(stderr)
  const line = m?.[1] !== undefined ? Number(m[1]) : undefined
  const lineText = line !== undefined ? text.split('\n')[line - 1] : undefined
  throw new FerryError('FERRY_ERR_APPLY', `ipset restore failed${lineText !== undefined ? ` at line ${line ?? 0}: ${lineText}` : ''}: ${stderr.split('\n')[0] ?? ''}`,
    { tool: IPSET, code: r.code, stderr, ...(line !== undefined ? { line, lineText } : {}) })
}

/** Names of every set in the network namespace (`ipset list -n`). */
export async function ipsetNames (exec: Exec): Promise<string[]> {
  const r = await exec([IPSET, 'list', '-n'])
  if (r.code !== 0) throw new FerryError('FERRY_ERR_EXEC', `ipset list -n failed: ${r.stderr.trim()}`, { code: r.code })
  return r.stdout.split('\n').map(s => s.trim()).filter(s => s !== '')
}

export interface SavedSet { readonly type: string, readonly family: IPFamily | null, readonly entries: string[] }

/** Parses `ipset save` output: members as written (canonicalEntry them to compare). */
export function parseIpsetSave (text: string): Map<string, SavedSet> {
  const out = new Map<string, SavedSet>()
  for (const line of text.split('\n')) {
    const t = line.trim().split(/\s+/)
    if (t[0] === 'create' && t[1] !== undefined) {
      const fi = t.indexOf('family')
      const fam = fi >= 0 ? t[fi + 1] : undefined
      out.set(t[1], { type: t[2] ?? '', family: fam === 'inet' ? 'IPv4' : fam === 'inet6' ? 'IPv6' : null, entries: [] })
    } else if (t[0] === 'add' && t[1] !== undefined && t[2] !== undefined) {
      out.get(t[1])?.entries.push(t[2])
    }
  }
  return out
}

export async function ipsetSave (exec: Exec): Promise<Map<string, SavedSet>> {
  const r = await exec([IPSET, 'save'])
  if (r.code !== 0) throw new FerryError('FERRY_ERR_EXEC', `ipset save failed: ${r.stderr.trim()}`, { code: r.code })
  return parseIpsetSave(r.stdout)
}
