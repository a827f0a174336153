// The server file bin/ferry-cni reads to find ferryd: FERRY_CNI_HOST, FERRY_CNI_PORT and the request
// token, mode 0600 (the token is the only thing keeping other local users out). Written atomically so the
// front never reads half a file; removed on clean exit only while it is still ours (another ferryd on
// the same path, in another netns, may have replaced it).
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export interface ServerFile { readonly host: string, readonly port: number, readonly token: string }

/** 32 random bytes as 64 lower-case hex digits. */
export function newToken (): string { return randomBytes(32).toString('hex') }

export function renderServerFile (f: ServerFile): string {
  return `FERRY_CNI_HOST=${f.host}\nFERRY_CNI_PORT=${f.port}\nFERRY_CNI_TOKEN=${f.token}\n`
}

export async function writeServerFile (path: string, f: ServerFile): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true, mode: 0o755 })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(renderServerFile(f))
      await fh.chmod(0o600)
    } finally { await fh.close() }
    await rename(tmp, path)
  } catch (e) {
    await unlink(tmp).catch(() => {})
    throw e
  }
}

/** Removes the file if it still holds `token`; true when it did. */
export async function removeServerFile (path: string, token: string): Promise<boolean> {
  let text: string
  try { text = await readFile(path, 'utf8') } catch { return false }
  if (!text.includes(`FERRY_CNI_TOKEN=${token}\n`)) return false
  await unlink(path).catch(() => {})
  return true
}
