// autopath (DNS.md §3.3; CoreDNS plugin/autopath): the server walks a pod's search path for it. A name
// under the client pod's first search domain <podns>.svc.<zone> is stripped of it and tried with each
// search element through the rest of the chain; the first reply that is not NXDOMAIN wins, behind a
// CNAME original → found name. Every try NXDOMAIN: the first reply, and the client searches on.
// A failure (SERVFAIL, REFUSED, FORMERR, ...) also ends the walk, as in CoreDNS: forward writes an
// upstream's failure (autopath returns the written reply) and returns its own with an error (autopath
// returns at once), so no later element is tried after either.
import { RCODE, TYPE, answer, lowerName } from '../message.js'
import type { Handler, Plugin, Reply, Request } from '../message.js'
import { replyAnswer, replyRcode } from '../wire/decode.js'
import { inZone } from './names.js'

export interface AutopathOptions {
  /** The cluster domain. */
  readonly zone: string
  /** The namespace of the pod with this source IP (RecordIndex.podNamespaceByIP; needs pods verified). */
  readonly podNamespace: (clientIP: string) => string | undefined
  /** The server's own resolv.conf search domains, tried after <zone> and before the bare name. */
  readonly searchDomains: readonly string[]
}

export function autopathPlugin (opts: AutopathOptions): Plugin {
  const zone = lowerName(opts.zone.replace(/\.$/, ''))
  const domains = opts.searchDomains.map(d => lowerName(d.replace(/\.$/, ''))).filter(d => d !== '')
  return (next: Handler): Handler => (req: Request): Reply | Promise<Reply> => {
    const q = req.query.question
    if (!inZone(q.lname, zone)) return next(req)
    const ns = opts.podNamespace(req.client.address)
    if (ns === undefined) return next(req)
    const first = lowerName(`${ns}.svc.${zone}`)
    if (q.lname.length <= first.length || !inZone(q.lname, first)) return next(req)
    const base = q.name.slice(0, q.name.length - first.length - 1)
    // The first try is the question itself (kept as asked, so its cached form can be reused).
    const names = [q.name, `${base}.svc.${zone}`, `${base}.${zone}`, ...domains.map(d => `${base}.${d}`), base]
    const sub = (name: string): Request => ({ ...req, query: { ...req.query, question: { ...q, name, lname: lowerName(name) } } })

    const accept = (i: number, reply: Reply): Reply | undefined => {
      const rcode = replyRcode(reply)
      if (rcode === RCODE.NXDOMAIN) return undefined
      if (i === 0) return reply
      // A failure carries no answer to put behind a CNAME: records the model lacks may be left out.
      const a = replyAnswer(reply, { skipUnknown: rcode !== RCODE.NOERROR })
      if (a === null) return undefined // a record the model cannot carry: keep searching
      const head = a.answer[0]
      if (head === undefined) return a // NODATA comes back without a CNAME, as in CoreDNS
      const cname = { name: q.name, ttl: head.ttl, data: { type: TYPE.CNAME, target: head.name } } as const
      // The found reply's flags, as CoreDNS writes it: RA from a forwarded one, clear from the cluster's.
      return answer(a.rcode, [cname, ...a.answer], a.authority, a.additional, a.aa, a.ra)
    }

    const walk = (from: number, firstReply: Reply | undefined): Reply | Promise<Reply> => {
      let firstSeen = firstReply
      for (let i = from; i < names.length; i++) {
        const r = i === 0 ? next(req) : next(sub(names[i] as string))
        if (r instanceof Promise) {
          return r.then(res => accept(i, res) ?? walk(i + 1, firstSeen ?? res))
        }
        firstSeen ??= r
        const done = accept(i, r)
        if (done !== undefined) return done
      }
      return firstSeen as Reply
    }
    return walk(0, undefined)
  }
}
