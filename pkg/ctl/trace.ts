// `ferryctl trace SRC DST:PORT[/PROTO]`: asks the running ferryd (its /debug/trace) which entry point a
// new connection hits and which endpoints can answer it, and prints the answer for people.
import { parseIP } from '../net/ip.js'

export const DEFAULT_SERVER = 'http://127.0.0.1:10249'

export interface TraceTarget { readonly src: string, readonly dst: string, readonly port: number, readonly protocol: string }

/** "10.0.0.2" "172.30.0.41:80/udp" or "[fd00::1]:443" → the query; throws with what is wrong. */
export function parseTraceArgs (src: string | undefined, dst: string | undefined): TraceTarget {
  if (src === undefined || dst === undefined) throw new Error('trace needs SRC and DST:PORT[/PROTO]')
  if (parseIP(src) === null) throw new Error(`SRC must be an IP address, got ${JSON.stringify(src)}`)
  const m = /^(?:\[([^\]]+)\]|([^:/]+)):(\d+)(?:\/(tcp|udp|sctp))?$/i.exec(dst)
  if (m === null) throw new Error(`DST must be IP:PORT[/PROTO] (IPv6 as [IP]:PORT), got ${JSON.stringify(dst)}`)
  const ip = m[1] ?? m[2] ?? ''
  if (parseIP(ip) === null) throw new Error(`DST must hold an IP address, got ${JSON.stringify(ip)}`)
  return { src, dst: ip, port: Number(m[3]), protocol: (m[4] ?? 'tcp').toUpperCase() }
}

interface Answer {
  readonly entry?: { readonly servicePort: string, readonly kind: string } | null
  readonly verdict?: string
  readonly reason?: string
  readonly endpoints?: ReadonlyArray<{ readonly ip: string, readonly port: number, readonly masquerade: boolean }>
  readonly error?: string
}

const hostPort = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`)

export function formatTrace (t: TraceTarget, a: Answer): string {
  const lines = [`${t.src} -> ${hostPort(t.dst, t.port)}/${t.protocol}`]
  lines.push(`entry:     ${a.entry == null ? '(none)' : `${a.entry.servicePort} (${a.entry.kind})`}`)
  lines.push(`verdict:   ${a.verdict ?? '?'}`)
  if (a.reason !== undefined) lines.push(`reason:    ${a.reason}`)
  if (a.verdict === 'forward') {
    lines.push('endpoints:')
    for (const e of a.endpoints ?? []) lines.push(`  ${hostPort(e.ip, e.port)}${e.masquerade ? '  (source masqueraded to a node address)' : ''}`)
  }
  return lines.join('\n') + '\n'
}

/** Queries ferryd; returns the printed answer. Throws with ferryd's message on a refused query. */
export async function trace (server: string, t: TraceTarget, fetchFn: typeof fetch = fetch): Promise<string> {
  const url = new URL('/debug/trace', server)
  for (const [k, v] of Object.entries(t)) url.searchParams.set(k, String(v))
  let res: Response
  try {
    res = await fetchFn(url, { signal: AbortSignal.timeout(10_000) })
  } catch (e) {
    throw new Error(`cannot reach ferryd at ${server}: ${e instanceof Error ? e.message : String(e)}`)
  }
  const body = await res.json().catch(() => ({})) as Answer
  if (!res.ok) throw new Error(`ferryd at ${server} answered ${res.status}: ${body.error ?? res.statusText}`)
  return formatTrace(t, body)
}
