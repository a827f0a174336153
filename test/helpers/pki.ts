// A throwaway certificate authority for TLS tests, made with openssl in a temp dir (removed at teardown):
// a CA, a server certificate for 127.0.0.1, a client certificate it signed, and a client certificate from
// a second, untrusted CA.
//
//   const pki = await makePKI(t)
//   pki.ca, pki.server.cert, pki.server.key, pki.client.cert, pki.client.key, pki.stranger.cert
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface CertPair { readonly cert: string, readonly key: string }
export interface TestPKI {
  readonly dir: string
  /** CA certificate path. */
  readonly ca: string
  readonly server: CertPair
  readonly client: CertPair
  /** A client certificate signed by another CA, which etcd does not trust. */
  readonly stranger: CertPair
  readonly cleanup: () => void
}

interface Teardownable { teardown: (fn: () => unknown) => void }

async function openssl (args: string[], cwd: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('openssl', args, { cwd }, (err, _out, stderr) => { err === null ? resolve() : reject(new Error(`openssl ${args.join(' ')}: ${stderr}`)) })
  })
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

async function selfSignedCA (dir: string, name: string): Promise<void> {
  await openssl(['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`], dir)
}

async function issue (dir: string, ca: string, name: string, ext: string): Promise<CertPair> {
  writeFileSync(join(dir, `${name}.ext`), ext)
  await openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir)
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir)
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
}

export async function makePKI (t?: Teardownable): Promise<TestPKI> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-pki-'))
  const cleanup = (): void => { rmSync(dir, { recursive: true, force: true }) }
  t?.teardown(cleanup)
  try {
    await selfSignedCA(dir, 'ferry-test-ca')
    await selfSignedCA(dir, 'other-ca')
    const server = await issue(dir, 'ferry-test-ca', 'etcd-server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n')
    const client = await issue(dir, 'ferry-test-ca', 'ferry-client', 'extendedKeyUsage=clientAuth\n')
    const stranger = await issue(dir, 'other-ca', 'stranger', 'extendedKeyUsage=clientAuth\n')
    return { dir, ca: join(dir, 'ferry-test-ca.crt'), server, client, stranger, cleanup }
  } catch (e) { cleanup(); throw e }
}
