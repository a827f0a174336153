// The wire format between bin/ferry-cni's bash front and ferryd's CNI server. It is shaped for a writer
// that has only bash builtins (printf, ${#var} under LC_ALL=C) and a reader that has only `read`:
//
//   request:  "ferry-cni/1 <token>\n"
//             "NAME=value\n" for each variable the runtime set (names below; values hold no newline)
//             "\n"
//             "<stdin byte length>\n" <stdin bytes>
//   response: "<exit code>\n" <the plugin's stdout>            (then ferryd closes)
//         or  "refused\n": nothing ran, so the front runs the verb itself (the token did not match, or
//             ferryd does not see the caller's CNI_NETNS as the same namespace: another mount namespace).
//
// No NUL anywhere (bash strings cannot hold one). The parser is incremental: it is fed chunks as they
// arrive and says when a request is complete, malformed or too big, so the server can stop reading early.

export const MAGIC = 'ferry-cni/1'

/**
 * The runtime's CNI variables the front forwards; PWD, the front's cwd (relative paths in the config); PID,
 * the front's pid (ferryd checks that CNI_NETNS names the same namespace in the front's mount namespace).
 */
export const REQUEST_VARS = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH', 'PWD', 'PID'] as const
export type RequestVar = typeof REQUEST_VARS[number]

export const REFUSED = 'refused\n'

export interface CniRequest {
  readonly token: string
  readonly env: ReadonlyMap<RequestVar, string>
  readonly stdin: string
}

export type ParseResult =
  | { readonly kind: 'more' }
  | { readonly kind: 'done', readonly request: CniRequest }
  | { readonly kind: 'malformed', readonly reason: string }
  | { readonly kind: 'oversized' }

const NL = 0x0a
const LENGTH = /^(0|[1-9][0-9]{0,9})$/
const TOKEN = /^[0-9a-f]{1,128}$/

function isVar (name: string): name is RequestVar {
  return (REQUEST_VARS as readonly string[]).includes(name)
}

/** Reads one request from the chunks of a connection; at most maxBytes in all. */
export class RequestParser {
  private readonly maxBytes: number
  private buf: Buffer = Buffer.alloc(0)
  /** Where the next unparsed byte of buf is. */
  private pos = 0
  private phase: 'magic' | 'env' | 'length' | 'body' | 'finished' = 'magic'
  private token = ''
  private readonly env = new Map<RequestVar, string>()
  private bodyLength = 0

  constructor (maxBytes: number) { this.maxBytes = maxBytes }

  push (chunk: Buffer): ParseResult {
    if (this.phase === 'finished') return { kind: 'malformed', reason: 'bytes after the request' }
    if (this.buf.length + chunk.length > this.maxBytes) { this.phase = 'finished'; return { kind: 'oversized' } }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    const r = this.parse()
    if (r.kind !== 'more') this.phase = 'finished'
    return r
  }

  private line (): string | null {
    const nl = this.buf.indexOf(NL, this.pos)
    if (nl < 0) return null
    const text = this.buf.toString('utf8', this.pos, nl)
    this.pos = nl + 1
    return text
  }

  private parse (): ParseResult {
    for (;;) {
      switch (this.phase) {
        case 'magic': {
          const l = this.line()
          if (l === null) return { kind: 'more' }
          const sp = l.indexOf(' ')
          if (sp < 0 || l.slice(0, sp) !== MAGIC) return { kind: 'malformed', reason: 'not a ferry-cni/1 request' }
          this.token = l.slice(sp + 1)
          if (!TOKEN.test(this.token)) return { kind: 'malformed', reason: 'token is not lower-case hex' }
          this.phase = 'env'
          break
        }
        case 'env': {
          const l = this.line()
          if (l === null) return { kind: 'more' }
          if (l === '') { this.phase = 'length'; break }
          const eq = l.indexOf('=')
          const name = eq < 0 ? l : l.slice(0, eq)
          if (eq < 0 || !isVar(name)) return { kind: 'malformed', reason: `unexpected line ${JSON.stringify(name.slice(0, 40))}` }
          if (this.env.has(name)) return { kind: 'malformed', reason: `${name} given twice` }
          const value = l.slice(eq + 1)
          if (value.includes('\0')) return { kind: 'malformed', reason: `${name} holds a NUL` }
          this.env.set(name, value)
          break
        }
        case 'length': {
          const l = this.line()
          if (l === null) return { kind: 'more' }
          if (!LENGTH.test(l)) return { kind: 'malformed', reason: 'stdin length is not a decimal number' }
          this.bodyLength = Number(l)
          if (this.pos + this.bodyLength > this.maxBytes) return { kind: 'oversized' }
          this.phase = 'body'
          break
        }
        case 'body': {
          const have = this.buf.length - this.pos
          if (have < this.bodyLength) return { kind: 'more' }
          if (have > this.bodyLength) return { kind: 'malformed', reason: 'bytes after the request' }
          return { kind: 'done', request: { token: this.token, env: this.env, stdin: this.buf.toString('utf8', this.pos) } }
        }
        case 'finished':
          return { kind: 'malformed', reason: 'bytes after the request' }
      }
    }
  }
}

/** The request as the front writes it (tests, the bench's own client). Throws on a value with a newline. */
export function encodeRequest (token: string, env: Readonly<Partial<Record<RequestVar, string>>>, stdin: string): Buffer {
  let head = `${MAGIC} ${token}\n`
  for (const name of REQUEST_VARS) {
    const v = env[name]
    if (v === undefined) continue
    if (v.includes('\n')) throw new Error(`${name} holds a newline`)
    head += `${name}=${v}\n`
  }
  const body = Buffer.from(stdin)
  return Buffer.concat([Buffer.from(`${head}\n${body.length}\n`), body])
}

export function encodeResponse (code: number, stdout: string): Buffer {
  return Buffer.from(`${code}\n${stdout}`)
}
