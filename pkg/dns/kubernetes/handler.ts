// The `kubernetes` link of the chain (CoreDNS plugin/kubernetes/handler.go ServeDNS, DNS.md §2): answers
// names under the cluster zone and the reverse zones from the RecordIndex, synchronously; everything
// else goes to `next`. Only an ExternalName's target may go back out through `next` (a Promise then).
import { RCODE, TYPE, answer, lowerName } from '../message.js'
import type { Answer, Handler, Plugin, Reply, Request, ResourceRecord } from '../message.js'
import type { RecordIndex, RecordIndexOptions } from './index.js'
import { replyAnswer, replyRcode } from '../wire/decode.js'
import { inZone } from './names.js'

export interface KubernetesPluginOptions {
  /** PTR (and any name) in in-addr.arpa / ip6.arpa that the cluster does not know goes to `next`
   * instead of NXDOMAIN, as kubeadm's `fallthrough in-addr.arpa ip6.arpa`. */
  readonly reverseFallthrough?: boolean
}

/** Everything cluster DNS is configured with: the index's part and the handler's. */
export type KubernetesDnsOptions = RecordIndexOptions & KubernetesPluginOptions

// CoreDNS stops following CNAMEs inside the zone after 8 records.
const MAX_CHASE = 8
const REFUSED: Answer = Object.freeze(answer(RCODE.REFUSED, [], [], [], false))

export function kubernetesPlugin (index: RecordIndex, opts: KubernetesPluginOptions = {}): Plugin {
  const fallthrough = opts.reverseFallthrough === true
  const clusterZone = index.zone
  const zones = [...index.zones].sort((a, b) => b.length - a.length)

  return (next: Handler): Handler => {
    const nameError = (req: Request, zone: string): Reply | Promise<Reply> => {
      if (fallthrough && zone !== clusterZone) return next(req)
      // Before the first full state, a missing name may just not have arrived yet (§2.1).
      return withCase(index.negative(index.synced ? RCODE.NXDOMAIN : RCODE.SERVFAIL, zone), req)
    }

    return (req: Request): Reply | Promise<Reply> => {
      const q = req.query.question
      const lname = q.lname
      let zone: string | undefined
      for (const z of zones) if (inZone(lname, z)) { zone = z; break }
      if (zone === undefined) return next(req)
      const type = q.type
      if (type === TYPE.AXFR || type === TYPE.IXFR) return REFUSED
      // SOA exists at the apex only; anywhere else it is NODATA, even for a name that does not exist.
      if (type === TYPE.SOA) return withCase(lname === zone ? index.soa(zone) : index.negative(RCODE.NOERROR, zone), req)
      const entry = index.entry(lname)
      if (entry === undefined) return nameError(req, zone)
      const ans = entry.answers.get(type)
      if (ans !== undefined) return withCase(ans, req)
      if (entry.externalName !== undefined && (type === TYPE.A || type === TYPE.AAAA)) {
        return externalName(index, next, req, entry.externalName, zone)
      }
      if (entry.otherTypes === 'nxdomain') return nameError(req, zone)
      return withCase(index.negative(RCODE.NOERROR, zone), req)
    }
  }
}

/**
 * A/AAAA on an ExternalName (§2.10): the CNAME plus the target's records. A target in the cluster zone
 * is followed in the index (nothing found: NODATA, no CNAME); any other goes through `next` with a
 * synthetic request (target NXDOMAIN: the CNAME alone; the lookup failing: NODATA). The merged answer
 * is the plugin's own, so RA stays clear even with forwarded records in it, as in CoreDNS.
 */
function externalName (index: RecordIndex, next: Handler, req: Request, target: string, zone: string): Reply | Promise<Reply> {
  const q = req.query.question
  const nodata = (): Answer => withCase(index.negative(RCODE.NOERROR, zone), req)
  const ltarget = lowerName(target)
  if (ltarget === q.lname) return nodata()
  const cname: ResourceRecord = { name: q.name, ttl: index.ttl, data: { type: TYPE.CNAME, target } }
  if (inZone(ltarget, index.zone)) {
    const chain = chaseLocal(index, ltarget, q.type, 1)
    return chain.length === 0 ? nodata() : answer(RCODE.NOERROR, [cname, ...chain])
  }
  const sub: Request = { ...req, query: { ...req.query, question: { name: target, lname: ltarget, type: q.type, class: q.class } } }
  const done = (reply: Reply): Answer => {
    // A signed target's RRSIGs (DO=1) or a DNAME must not cost the client the target's addresses.
    const a = replyRcode(reply) === RCODE.NXDOMAIN ? null : replyAnswer(reply, { skipUnknown: true })
    return answer(RCODE.NOERROR, a === null ? [cname] : [cname, ...a.answer])
  }
  let r: Reply | Promise<Reply>
  try {
    r = next(sub)
  } catch {
    return nodata()
  }
  return r instanceof Promise ? r.then(done, nodata) : done(r)
}

function chaseLocal (index: RecordIndex, lname: string, type: number, depth: number): ResourceRecord[] {
  const entry = index.entry(lname)
  if (entry === undefined) return []
  const ans = entry.answers.get(type)
  if (ans !== undefined) return [...ans.answer]
  const target = entry.externalName
  if (target === undefined || depth >= MAX_CHASE || !inZone(lowerName(target), index.zone)) return []
  const rest = chaseLocal(index, lowerName(target), type, depth + 1)
  return rest.length === 0 ? [] : [{ name: lname, ttl: index.ttl, data: { type: TYPE.CNAME, target } }, ...rest]
}

/**
 * Owners are stored lower case; when the question had capitals, owners equal to the question (or to a
 * suffix of it, as the SOA's zone) take the question's bytes (§2.13). The common all-lower question
 * gets the stored object itself, so the server can cache its encoding by identity.
 */
export function withCase (ans: Answer, req: Request): Answer {
  const { name, lname } = req.query.question
  if (name === lname) return ans
  const fix = (rs: readonly ResourceRecord[]): readonly ResourceRecord[] => rs.map(r => {
    const n = r.name
    if (n === lname) return { ...r, name }
    if (n !== '' && lname.endsWith(n) && lname.charCodeAt(lname.length - n.length - 1) === 46) return { ...r, name: name.slice(name.length - n.length) }
    return r
  })
  return { kind: 'answer', rcode: ans.rcode, aa: ans.aa, answer: fix(ans.answer), authority: fix(ans.authority), additional: ans.additional, ra: ans.ra }
}
