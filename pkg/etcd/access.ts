// How ferry reaches etcd: endpoint URLs, TLS files, username and password → the client's settings,
// checked once at start-up with errors that name the flag and file. Shared by ferryd and ferryctl.
//
// Credentials may come from the URL (http://user:secret@host:2379) or from --etcd-username plus
// --etcd-password-file; URL credentials are used, never shown (see url.ts), and earn a warning
// because command lines are visible to every user through ps and /proc.
import { readFileSync } from 'node:fs'
import { FerryError, errorMessage } from '../errors/errors.js'
import { parseEndpoint, redact, type Endpoint } from './url.js'

/** What the user gave: flags, config keys or (ferryctl) environment variables. Paths, not contents. */
export interface EtcdAccessSettings {
  endpoints: readonly string[]
  caFile?: string | undefined
  certFile?: string | undefined
  keyFile?: string | undefined
  username?: string | undefined
  passwordFile?: string | undefined
  /** A password given directly (ferryctl's FERRY_ETCD_PASSWORD); never a flag, flags show in ps. */
  password?: string | undefined
}

export interface EtcdTLS {
  /** PEM CA bundle; without it the system's roots verify the server. */
  ca?: Buffer
  /** PEM client certificate and key (etcd --client-cert-auth); always both or neither. */
  cert?: Buffer
  key?: Buffer
}

export interface EtcdAuth { username: string, password: string }

export interface EtcdAccess {
  /** scheme://host:port for the client: no userinfo. */
  readonly hosts: string[]
  /** The endpoints as messages show them: passwords replaced by "***". */
  readonly shown: string[]
  readonly tls?: EtcdTLS
  readonly auth?: EtcdAuth
  /** Things worth one warning at start-up (credentials in a URL). */
  readonly warnings: string[]
}

function fail (msg: string): never {
  throw new FerryError('FERRY_ERR_CONFIG', msg)
}

/** Checks what can be checked without reading files; throws FERRY_ERR_CONFIG naming the flag. */
export function checkAccessSettings (s: EtcdAccessSettings): Endpoint[] {
  const eps = s.endpoints.map(parseEndpoint)
  if (eps.length === 0) return eps
  const secure = eps.filter(e => e.secure).length
  if (secure !== 0 && secure !== eps.length) fail('--etcd-endpoints: mixes http:// and https:// URLs; use one scheme for the whole cluster')
  const tlsFlags = [['--etcd-cafile', s.caFile], ['--etcd-certfile', s.certFile], ['--etcd-keyfile', s.keyFile]].filter(([, v]) => v !== undefined).map(([f]) => f)
  if (tlsFlags.length > 0 && secure === 0) fail(`${tlsFlags.join(', ')} given but --etcd-endpoints are http://; use https:// endpoints with TLS`)
  if ((s.certFile === undefined) !== (s.keyFile === undefined)) fail('--etcd-certfile and --etcd-keyfile go together: give both or neither')
  const inURL = eps.filter(e => e.username !== undefined)
  if (inURL.length > 0) {
    if (s.username !== undefined || s.passwordFile !== undefined || s.password !== undefined) {
      fail('--etcd-endpoints carry credentials and --etcd-username/--etcd-password-file are given too; use one of them')
    }
    const first = inURL[0] as Endpoint
    if (inURL.some(e => e.username !== first.username || e.password !== first.password)) fail('--etcd-endpoints: URLs carry different credentials; one cluster has one login')
    if (first.username === '' || first.password === '') fail(`--etcd-endpoints: ${first.shown} needs both a username and a password (user:password@)`)
  } else {
    if (s.username !== undefined && s.username === '') fail('--etcd-username: empty')
    const hasPassword = s.passwordFile !== undefined || s.password !== undefined
    if (s.username !== undefined && !hasPassword) fail('--etcd-username needs --etcd-password-file (ferryctl: or FERRY_ETCD_PASSWORD)')
    if (s.username === undefined && hasPassword) fail('--etcd-password-file needs --etcd-username')
  }
  return eps
}

function readPEM (flag: string, path: string, readFile: (p: string) => Buffer): Buffer {
  let buf: Buffer
  try { buf = readFile(path) } catch (e) { return fail(`${flag} ${path}: ${errorMessage(e)}`) }
  if (!buf.includes('-----BEGIN ')) fail(`${flag} ${path}: not a PEM file (no "-----BEGIN" line)`)
  return buf
}

/** Checks the settings, reads the TLS files and the password file; the result holds no file paths. */
export function loadAccess (s: EtcdAccessSettings, readFile: (p: string) => Buffer = p => readFileSync(p)): EtcdAccess {
  const eps = checkAccessSettings(s)
  if (eps.length === 0) fail('--etcd-endpoints: no endpoints given')
  const tls: EtcdTLS = {}
  if (s.caFile !== undefined) tls.ca = readPEM('--etcd-cafile', s.caFile, readFile)
  if (s.certFile !== undefined) tls.cert = readPEM('--etcd-certfile', s.certFile, readFile)
  if (s.keyFile !== undefined) tls.key = readPEM('--etcd-keyfile', s.keyFile, readFile)
  let auth: EtcdAuth | undefined
  if (s.username !== undefined) {
    let password = s.password
    if (s.passwordFile !== undefined) {
      try { password = readFile(s.passwordFile).toString('utf8') } catch (e) { fail(`--etcd-password-file ${s.passwordFile}: ${errorMessage(e)}`) }
      password = password.replace(/\r?\n$/, '') // files end with a newline; passwords do not
      if (password === '') fail(`--etcd-password-file ${s.passwordFile}: empty`)
    }
    auth = { username: s.username, password: password ?? '' }
  }
  return combineAccess(eps, Object.keys(tls).length > 0 ? tls : undefined, auth)
}

/**
 * Endpoints (with or without userinfo) plus TLS contents and a login → client settings. URL credentials
 * fill in the login when none is given separately.
 */
export function combineAccess (endpoints: ReadonlyArray<string | Endpoint>, tls?: EtcdTLS, auth?: EtcdAuth): EtcdAccess {
  const eps = endpoints.map(e => typeof e === 'string' ? parseEndpoint(e) : e)
  if (eps.length === 0) fail('etcd: no endpoints given')
  const fromURL = eps.find(e => e.username !== undefined && e.password !== undefined)
  const warnings: string[] = []
  if (fromURL !== undefined) {
    warnings.push('the etcd password is part of --etcd-endpoints, which any local user can read with ps; prefer --etcd-username with --etcd-password-file')
  }
  const login = auth ?? (fromURL !== undefined ? { username: fromURL.username as string, password: fromURL.password as string } : undefined)
  return {
    hosts: eps.map(e => e.url),
    shown: eps.map(e => e.shown),
    ...(tls !== undefined ? { tls } : {}),
    ...(login !== undefined ? { auth: login } : {}),
    warnings,
  }
}

/** A short pointer to the likely cause when etcd's own words are vague (TLS handshakes, logins). */
export function hint (e: unknown, access: Pick<EtcdAccess, 'tls' | 'hosts'>): string {
  const msg = errorMessage(e)
  if (/authentication failed|invalid user ID or password/i.test(msg)) return ' (check --etcd-username and the password)'
  if (/user name is empty|permission denied/i.test(msg)) return ' (etcd wants a login: --etcd-username with --etcd-password-file)'
  if (!access.hosts.some(h => h.startsWith('https:'))) return ''
  if (/alert bad certificate|certificate required|alert unknown ca|alert handshake failure/i.test(msg)) {
    return access.tls?.cert === undefined
      ? ' (TLS: etcd wants a client certificate: --etcd-certfile and --etcd-keyfile)'
      : ' (TLS: etcd refused the client certificate: is --etcd-certfile signed by a CA etcd trusts?)'
  }
  if (/self.signed|unable to (verify|get local issuer)|certificate verify failed|altnames|Hostname\/IP does not match/i.test(msg)) {
    return ' (TLS: the server certificate is not trusted: check --etcd-cafile and that the certificate names this host)'
  }
  if (/UNAVAILABLE|SSL|TLS|handshake/i.test(msg)) return ' (TLS: check --etcd-cafile, --etcd-certfile and --etcd-keyfile)'
  return ''
}

/**
 * One line, no passwords: grpc messages carry newlines and the caller's text may carry URLs; grpc-js's
 * empty "Resolution note: " tail says nothing.
 */
export function describe (e: unknown): string {
  return redact(errorMessage(e)).replace(/\s*\n\s*/g, ' ').replace(/\.? Resolution note: ?$/, '')
}
