// Reading `conntrack -L` default text output (conntrack-tools 1.4.x). Pure: no process, no kernel.
//
//   udp  17 29 src=10.0.0.2 dst=172.30.0.10 sport=40000 dport=53 [UNREPLIED] src=10.180.0.1 dst=10.0.0.2 sport=5353 dport=40000 mark=0 use=1
//
// The first src/dst/sport/dport group is the original direction, the second the reply. Flags in
// brackets, counters (packets=, bytes=), mark=, zone=, use= and a leading "ipv4 2" (`-o extended`)
// may appear anywhere around them and are skipped.
import { parseIP } from '../../net/ip.js'

export interface ConntrackEntry {
  /** Layer-4 protocol name as conntrack prints it: 'udp', 'tcp', 'sctp'. */
  readonly proto: string
  readonly origSrc: string
  readonly origDst: string
  readonly origSport: number
  readonly origDport: number
  readonly replySrc: string
  readonly replyDst: string
  readonly replySport: number
  readonly replyDport: number
}

const L3 = new Set(['ipv4', 'ipv6'])

/** One line of `conntrack -L`, or null when it is not a flow with ports (ICMP, summaries, blank lines). */
export function parseConntrackLine (line: string, cache?: Map<string, string | null>): ConntrackEntry | null {
  const tokens = line.trim().split(/\s+/)
  let i = 0
  if (L3.has(tokens[0] ?? '')) i = 2 // `-o extended`: "ipv4 2 udp 17 ..."
  const proto = tokens[i]
  if (proto === undefined || !/^[a-z][a-z0-9-]*$/.test(proto) || !/^\d+$/.test(tokens[i + 1] ?? '')) return null
  const src: string[] = []
  const dst: string[] = []
  const sport: number[] = []
  const dport: number[] = []
  for (const tok of tokens.slice(i + 2)) {
    const eq = tok.indexOf('=')
    if (eq <= 0) continue
    const key = tok.slice(0, eq)
    const value = tok.slice(eq + 1)
    if (key === 'src') src.push(value)
    else if (key === 'dst') dst.push(value)
    else if (key === 'sport') sport.push(Number(value))
    else if (key === 'dport') dport.push(Number(value))
  }
  const canon = (ip: string): string | null => canonical(ip, cache)
  const [origSrc, replySrc] = src.map(canon)
  const [origDst, replyDst] = dst.map(canon)
  const [origSport, replySport] = sport
  const [origDport, replyDport] = dport
  if (origSrc == null || origDst == null || replySrc == null || replyDst == null) return null
  if (!isPort(origSport) || !isPort(origDport) || !isPort(replySport) || !isPort(replyDport)) return null
  return { proto, origSrc, origDst, origSport, origDport, replySrc, replyDst, replySport, replyDport }
}

/** Every flow in `conntrack -L` output; other lines are skipped. */
export function parseConntrackList (text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = []
  const cache = new Map<string, string | null>() // a big table repeats few addresses; IPv6 parsing is not free
  for (const line of text.split('\n')) {
    const e = parseConntrackLine(line, cache)
    if (e !== null) out.push(e)
  }
  return out
}

/** The same address text the rest of ferry stores (parseIP's canonical form), or null. */
function canonical (ip: string, cache?: Map<string, string | null>): string | null {
  const hit = cache?.get(ip)
  if (hit !== undefined) return hit
  const c = parseIP(ip)?.ip ?? null
  cache?.set(ip, c)
  return c
}

function isPort (n: number | undefined): n is number {
  return n !== undefined && Number.isInteger(n) && n >= 0 && n <= 65535
}
