// The netlink element loader run inside a network namespace: the real loader (dist/) in a child
// `ip netns exec NS node`, since a netlink socket belongs to its creating thread's netns and the test
// process stays in the host's. The batches go over stdin as JSON; a refusal comes back as its message.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { FerryError } from '../../pkg/errors/errors.js'
import type { ElementLoader } from '../../pkg/proxy/nftables/element-load.js'

const CHILD = `
const { netlinkLoadElements } = await import(process.argv[1])
const chunks = []
for await (const c of process.stdin) chunks.push(c)
const { family, batches } = JSON.parse(Buffer.concat(chunks).toString())
try {
  await netlinkLoadElements(family, batches.map(b => ({ bytes: Buffer.from(b.bytes, 'base64'), messages: b.messages })))
} catch (e) {
  process.stderr.write(JSON.stringify({ code: e.code, message: e.message }))
  process.exit(3)
}
`

export function netnsElementLoader (ns: string): ElementLoader {
  const module = resolve('dist/pkg/proxy/nftables/element-load.js')
  return async (family, batches) => {
    if (!existsSync(module)) throw new Error(`${module} missing: run \`npm run build\` first`)
    const input = JSON.stringify({
      family,
      batches: batches.map(b => ({ bytes: b.bytes.toString('base64'), messages: b.messages.map(m => ({ seq: m.seq, map: m.map, count: m.count })) })),
    })
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', CHILD, module], { stdio: ['pipe', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.stdin.end(input)
    const code = await new Promise<number | null>(resolve => child.on('close', resolve))
    if (code === 0) return
    if (code === 3) {
      const e = JSON.parse(stderr) as { code: 'FERRY_ERR_APPLY', message: string }
      throw new FerryError(e.code, e.message, {})
    }
    throw new Error(`element loader in ${ns} exited ${String(code)}: ${stderr}`)
  }
}
