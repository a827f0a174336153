// Turning what a name stands for into ready answers: the address/port items CoreDNS's findServices
// yields become A, AAAA and SRV answers (DNS.md §2.6, §2.9), and the zone's SOA and NS (§2.2, §2.3).
// Every owner here is lower case; the handler puts the question's case back.
import { RCODE, TYPE, answer } from '../message.js'
import type { Answer, ResourceRecord } from '../message.js'
import { ipFamily } from './names.js'

/**
 * Everything the index knows about one name. Entries are immutable: a change builds a new entry with a
 * new `version`, so the server may key pre-encoded replies on the entry (or its answers) by identity.
 */
export interface NameEntry {
  /** The index generation that built this entry; unique per build. */
  readonly version: number
  /** Positive answers by query type; a type missing here is NODATA (or NXDOMAIN, see `otherTypes`). */
  readonly answers: ReadonlyMap<number, Answer>
  /** What types without an answer get: NODATA, or NXDOMAIN for dns-version and reverse names. */
  readonly otherTypes: 'nodata' | 'nxdomain'
  /** ExternalName target (no trailing dot): A/AAAA chase it, which is the handler's job. */
  readonly externalName?: string
}

/** One (address, port) CoreDNS would return for a name, with the SRV target it stands for. */
export interface Item {
  readonly host: string
  /** -1 for the "no ports" sentinel: it makes the name exist but gives no SRV. */
  readonly port: number
  readonly target: string
}

const positive = (records: ResourceRecord[], additional: ResourceRecord[] = []): Answer =>
  Object.freeze(answer(RCODE.NOERROR, Object.freeze(records), [], Object.freeze(additional)))

/** A, AAAA (deduplicated by address) and SRV (by target and port, glue by target and address). */
export function itemAnswers (owner: string, items: readonly Item[], ttl: number): Map<number, Answer> {
  const a: ResourceRecord[] = []
  const aaaa: ResourceRecord[] = []
  const srv: ResourceRecord[] = []
  const glue: ResourceRecord[] = []
  const seenAddr = new Set<string>()
  const seenSrv = new Set<string>()
  const seenGlue = new Set<string>()
  // Weight counts every matching (address, port) before deduplication, sentinels included (§2.9).
  const weight = Math.max(1, Math.floor(100 / Math.max(1, items.length)))
  for (const it of items) {
    const fam = ipFamily(it.host)
    if (fam === 0) continue
    if (!seenAddr.has(it.host)) {
      seenAddr.add(it.host)
      ;(fam === 4 ? a : aaaa).push(addressRecord(owner, it.host, fam, ttl))
    }
    if (it.port < 0) continue
    const sk = `${it.target} ${it.port}`
    if (!seenSrv.has(sk)) {
      seenSrv.add(sk)
      srv.push({ name: owner, ttl, data: { type: TYPE.SRV, priority: 0, weight, port: it.port, target: it.target } })
    }
    const gk = `${it.target} ${it.host}`
    if (!seenGlue.has(gk)) {
      seenGlue.add(gk)
      glue.push(addressRecord(it.target, it.host, fam, ttl))
    }
  }
  const out = new Map<number, Answer>()
  if (a.length > 0) out.set(TYPE.A, positive(a))
  if (aaaa.length > 0) out.set(TYPE.AAAA, positive(aaaa))
  if (srv.length > 0) out.set(TYPE.SRV, positive(srv, glue))
  return out
}

export function addressRecord (name: string, ip: string, fam: 4 | 6, ttl: number): ResourceRecord {
  return fam === 4 ? { name, ttl, data: { type: TYPE.A, address: ip } } : { name, ttl, data: { type: TYPE.AAAA, address: ip } }
}

/** The answers of a name that holds addresses only (ns.dns.<zone>, pod names). */
export function addressAnswers (owner: string, ips: readonly string[], ttl: number): Map<number, Answer> {
  return itemAnswers(owner, ips.map(host => ({ host, port: -1, target: owner })), ttl)
}

export function cnameAnswer (owner: string, target: string, ttl: number): Answer {
  return positive([{ name: owner, ttl, data: { type: TYPE.CNAME, target } }])
}

export function ptrAnswer (owner: string, targets: readonly string[], ttl: number): Answer {
  return positive(targets.map(target => ({ name: owner, ttl, data: { type: TYPE.PTR, target } })))
}

export function txtAnswer (owner: string, text: string, ttl: number): Answer {
  return positive([{ name: owner, ttl, data: { type: TYPE.TXT, texts: [text] } }])
}

/** The zone's SOA record (§2.2): MINIMUM is the ttl, the record's own TTL min(ttl, 300). */
export function soaRecord (zone: string, serial: number, ttl: number): ResourceRecord {
  return {
    name: zone,
    ttl: Math.min(ttl, 300),
    data: {
      type: TYPE.SOA, mname: join('ns.dns', zone), rname: join('hostmaster', zone), serial: serial >>> 0,
      refresh: 7200, retry: 1800, expire: 86400, minimum: ttl,
    },
  }
}

export function soaAnswer (zone: string, serial: number, ttl: number): Answer {
  return positive([soaRecord(zone, serial, ttl)])
}

/** NXDOMAIN, NODATA or SERVFAIL: authoritative, one SOA in authority (CoreDNS BackendError). */
export function negativeAnswer (rcode: typeof RCODE.NOERROR | typeof RCODE.NXDOMAIN | typeof RCODE.SERVFAIL, zone: string, serial: number, ttl: number): Answer {
  return Object.freeze(answer(rcode, [], Object.freeze([soaRecord(zone, serial, ttl)])))
}

/** Apex NS (§2.3): ns.dns.<zone>, with the server's addresses as glue. */
export function nsAnswer (zone: string, addresses: readonly string[], ttl: number): Answer {
  const ns = join('ns.dns', zone)
  const glue: ResourceRecord[] = []
  for (const ip of addresses) {
    const fam = ipFamily(ip)
    if (fam !== 0) glue.push(addressRecord(ns, ip, fam, ttl))
  }
  return positive([{ name: zone, ttl, data: { type: TYPE.NS, target: ns } }], glue)
}

export function join (label: string, zone: string): string {
  return zone === '' ? label : `${label}.${zone}`
}

/** Two entries answer alike (so the old one, and its identity, can be kept). */
export function sameAnswers (x: ReadonlyMap<number, Answer>, y: ReadonlyMap<number, Answer>): boolean {
  if (x.size !== y.size) return false
  for (const [t, ax] of x) {
    const ay = y.get(t)
    if (ay === undefined || !sameRecords(ax.answer, ay.answer) || !sameRecords(ax.additional, ay.additional)) return false
  }
  return true
}

function sameRecords (x: readonly ResourceRecord[], y: readonly ResourceRecord[]): boolean {
  if (x.length !== y.length) return false
  for (let i = 0; i < x.length; i++) {
    const rx = x[i] as ResourceRecord
    const ry = y[i] as ResourceRecord
    if (rx.name !== ry.name || rx.ttl !== ry.ttl || JSON.stringify(rx.data) !== JSON.stringify(ry.data)) return false
  }
  return true
}
