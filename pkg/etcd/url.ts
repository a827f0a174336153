// etcd endpoint URLs may carry credentials (http://user:secret@host:2379). This module is the one place
// that takes them apart: the client gets the URL without userinfo plus the username and password, and
// everything a human or a log can see gets the redacted form (http://user:***@host:2379).
import { FerryError } from '../errors/errors.js'

export const REDACTED = '***'

// scheme://user:password@ — the password is whatever sits between the first ":" and the "@" of the
// authority (no "/", "@", whitespace or "," inside, so a comma-separated list redacts item by item).
const USERINFO_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^/@\s:,]*):[^/@\s,]*@/gi

/** One URL or any text holding URLs (an error message, a comma-separated list): passwords → "***". */
export function redact (text: string): string {
  return text.replace(USERINFO_PASSWORD, `$1:${REDACTED}@`)
}

/**
 * One endpoint URL with its password as "***", however it is spelled. The URL parser takes a password
 * up to the authority's last "@", spaces and a raw "@" included, which redact()'s pattern stops short
 * of; one endpoint holds no other text, so everything between the first ":" and the last "@" goes.
 */
export function redactEndpoint (text: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(text)?.[0]
  if (scheme === undefined) return redact(text)
  const rest = text.slice(scheme.length)
  const colon = rest.indexOf(':')
  const at = rest.lastIndexOf('@')
  return colon >= 0 && colon < at ? `${scheme}${rest.slice(0, colon)}:${REDACTED}${rest.slice(at)}` : redact(text)
}

export interface Endpoint {
  /** What the client dials: scheme://host:port, never any userinfo. */
  readonly url: string
  /** What messages show: the given URL with its password replaced by "***". */
  readonly shown: string
  readonly secure: boolean
  /** Percent-decoded userinfo, when the URL had any. */
  readonly username?: string
  readonly password?: string
}

/** Splits `http[s]://[user[:password]@]host[:port]` (nothing after the authority); throws FERRY_ERR_CONFIG. */
export function parseEndpoint (text: string): Endpoint {
  const shown = redactEndpoint(text)
  let u: URL
  try { u = new URL(text) } catch {
    throw new FerryError('FERRY_ERR_CONFIG', `etcd endpoint ${JSON.stringify(shown)}: not a URL (want http://HOST:PORT or https://HOST:PORT)`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new FerryError('FERRY_ERR_CONFIG', `etcd endpoint ${JSON.stringify(shown)}: scheme must be http or https`)
  }
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '' || !/^https?:\/\/[^/]+\/?$/i.test(text)) {
    throw new FerryError('FERRY_ERR_CONFIG', `etcd endpoint ${JSON.stringify(shown)}: must be scheme://HOST:PORT with nothing after the port`)
  }
  const url = `${u.protocol}//${u.host}`
  const out: { url: string, shown: string, secure: boolean, username?: string, password?: string } = { url, shown, secure: u.protocol === 'https:' }
  if (u.username !== '' || u.password !== '') {
    out.username = decodeURIComponent(u.username)
    out.password = decodeURIComponent(u.password)
  }
  return out
}
