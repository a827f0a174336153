// ferry-cni entry. VERSION (podman asks it of every plugin on every run) is answered from the small
// versions module alone; every other verb imports the rest on demand. bin/ferry-cni answers the usual
// VERSION inputs itself and runs this file from the one-file bundle (cmd/bundle.ts), so this
// module must also run as CommonJS: no top-level await.
import { readFileSync, writeSync } from 'node:fs'
import { versionInfo } from './versions.js'

async function readStdin (): Promise<string> {
  try {
    return readFileSync(0, 'utf8')
  } catch (e) {
    // A non-blocking stdin (EAGAIN) or none at all: read it as a stream instead.
    if ((e as { code?: unknown }).code !== 'EAGAIN') throw e
    const chunks: Buffer[] = []
    for await (const c of process.stdin) chunks.push(c as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  }
}

function write (text: string): void {
  const buf = Buffer.from(text)
  let off = 0
  while (off < buf.length) off += writeSync(1, buf, off)
}

async function main (): Promise<void> {
  if (process.env.CNI_COMMAND === 'VERSION') {
    write(versionInfo(await readStdin().catch(() => '')))
    return
  }
  const { runPlugin } = await import('./plugin.js')
  process.exitCode = await runPlugin({ getenv: (k) => process.env[k], stdin: readStdin, stdout: write })
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
