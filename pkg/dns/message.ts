// The DNS message model every part of pkg/dns shares: the parsed query, the records a handler answers
// with, and the handler chain. Wire encoding lives in wire/; handlers never see bytes except as a raw
// reply passed through from an upstream.
import type { RawInfo } from './wire/raw.js'

export const TYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41,
  DS: 43, RRSIG: 46, NSEC: 47, DNSKEY: 48, NSEC3: 50, HTTPS: 65, IXFR: 251, AXFR: 252, ANY: 255,
} as const

export const CLASS_IN = 1

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const
export type Rcode = typeof RCODE[keyof typeof RCODE]

export const OPCODE_QUERY = 0

/** The UDP payload size ferry advertises in its OPT records (DNS Flag Day 2020). */
export const EDNS_UDP_SIZE = 1232

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE']

/** The rcode's mnemonic, as CoreDNS's metric labels spell it; an unnamed one as its number. */
export function rcodeName (rcode: number): string {
  return rcode === RCODE.BADVERS ? 'BADVERS' : RCODE_NAMES[rcode] ?? String(rcode)
}

export interface Question {
  /** The name as asked, in its exact case, without the trailing dot ("" is the root). */
  readonly name: string
  /** `name` lower-cased (ASCII only, as DNS compares). */
  readonly lname: string
  readonly type: number
  readonly class: number
}

export interface Edns {
  /** The requestor's UDP payload size, as sent (the server applies max(512, size)). */
  readonly udpSize: number
  readonly version: number
  /** The DO bit. */
  readonly do: boolean
}

export interface Query {
  readonly id: number
  readonly opcode: number
  readonly rd: boolean
  readonly cd: boolean
  readonly question: Question
  /** Present when the query carried an OPT record. */
  readonly edns?: Edns
}

export type RData =
  | { readonly type: 1, readonly address: string }
  | { readonly type: 28, readonly address: string }
  | { readonly type: 2 | 5 | 12, readonly target: string }
  | { readonly type: 33, readonly priority: number, readonly weight: number, readonly port: number, readonly target: string }
  | { readonly type: 16, readonly texts: readonly string[] }
  | {
    readonly type: 6, readonly mname: string, readonly rname: string, readonly serial: number,
    readonly refresh: number, readonly retry: number, readonly expire: number, readonly minimum: number,
  }

/** A resource record of class IN. Names carry no trailing dot. */
export interface ResourceRecord {
  readonly name: string
  readonly ttl: number
  readonly data: RData
}

/** A handler's structured answer; the server adds the header, the question and OPT. */
export interface Answer {
  readonly kind: 'answer'
  readonly rcode: Rcode
  /** Authoritative (the cluster zone's answers and cache hits). */
  readonly aa: boolean
  readonly answer: readonly ResourceRecord[]
  readonly authority: readonly ResourceRecord[]
  readonly additional: readonly ResourceRecord[]
  /**
   * Recursion available: only an answer made from an upstream's reply (autopath's CNAME over a forwarded
   * answer) carries it, copied from that reply. ferry's own answers and errors clear it, as CoreDNS's
   * kubernetes plugin and server do (DNS.md §2.1); raw replies keep the upstream's header as sent.
   */
  readonly ra: boolean
}

/**
 * A whole reply message already in wire form (from an upstream or the cache). The server patches in the
 * client's ID and question case, and enforces the client's size limit.
 * Contract: the bytes may carry any ID (forward and cache already write the client's, the server may do
 * it again); the receiver owns them and may patch them in place. They may hold the upstream's OPT record
 * whatever the client sent (ferry always sends EDNS upstream): the server makes the OPT match the
 * client's query (§5.4) as it does for structured answers. TTLs are final (the cache counts them down).
 */
export interface RawReply {
  readonly kind: 'raw'
  readonly bytes: Uint8Array
  /** The walk of `bytes` by whoever already made it (ID, case and TTL patches keep it valid), so no later link walks it again. */
  readonly info?: RawInfo
}

export type Reply = Answer | RawReply

export interface Request {
  readonly query: Query
  /** The client's address, for autopath's pod lookup and the query log. */
  readonly client: { readonly address: string, readonly port: number }
  readonly proto: 'udp' | 'tcp'
}

/** One link of the chain: answers, or hands the request to `next`. Cluster names answer synchronously. */
export type Handler = (req: Request) => Reply | Promise<Reply>
export type Plugin = (next: Handler) => Handler

export function answer (rcode: Rcode, answer: readonly ResourceRecord[] = [], authority: readonly ResourceRecord[] = [], additional: readonly ResourceRecord[] = [], aa = true, ra = false): Answer {
  return { kind: 'answer', rcode, aa, answer, authority, additional, ra }
}

/** ASCII-only lower-casing: DNS compares case-insensitively over ASCII only (RFC 4343). */
export function lowerName (name: string): string {
  return /[A-Z]/.test(name) ? name.replace(/[A-Z]/g, c => String.fromCharCode(c.charCodeAt(0) + 32)) : name
}
