// One expected packet flow checked against several tracers (the plan's, and each renderer's rules): the
// scenario tests of every proxy mode share it, so an expectation reads the same whichever mode it checks.
import type { Test } from 'tap'
import type { Packet, TracedEndpoint } from '../../pkg/proxy/trace.js'

/** A refusal (or not-handled), or the endpoints reached (ip or ip:port; port 80 if omitted) and whether masqueraded. */
export type Want = { verdict: 'REJECT' | 'DROP' | 'not-handled' } | { reach: readonly string[], masq: boolean }

export interface Traced {
  readonly verdict: string
  readonly endpoints: readonly TracedEndpoint[]
  readonly paths?: readonly string[]
}

export const fmtEps = (eps: readonly TracedEndpoint[]): string => eps.map(e => `${e.ip}:${e.port}${e.masquerade ? '(masq)' : ''}`).join(' ')

/** Checks each tracer's answer for `pkt` against `want`; an endpoint reaching itself is always masqueraded (hairpin). */
export function expectFlow (t: Test, pkt: Packet, want: Want, name: string, traced: ReadonlyArray<readonly [string, Traced]>): void {
  if ('verdict' in want) {
    for (const [who, r] of traced) t.equal(r.verdict, want.verdict, `${name}: ${who} says ${want.verdict}`, { paths: r.paths })
    return
  }
  const expected = want.reach.map(r => {
    const [ip, port] = r.split(':')
    return `${ip ?? ''}:${port ?? '80'}${want.masq || ip === pkt.src ? '(masq)' : ''}`
  }).sort().join(' ')
  for (const [who, r] of traced) {
    t.equal(r.verdict, 'forward', `${name}: ${who} forwards`, { paths: r.paths })
    t.equal(fmtEps(r.endpoints), expected, `${name}: ${who} reaches ${expected}`, { paths: r.paths })
  }
}
