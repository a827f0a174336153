// bin/ferry-cni's bash front reads stdin in large reads: a pipe read byte by byte (bash's read when it must
// stop at a delimiter) took ~7 s for 5 MB. Every byte must still arrive: at ferryd up to the 1,000,000 it
// takes, and past that at node, which gets what the front read and the rest. Stdin as a runtime gives it:
// a pipe, a file, a socket (node's own spawn), or empty. The node here is a stand-in under dist/ that
// reports what it read; ferryd is the real CNI server with a verb that reports what it got.
import t from 'tap'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { launcherTree } from '../helpers/launcher-tree.js'
import { silentLogger } from '../../pkg/log/log.js'
import { CniServer } from '../../pkg/cni-server/server.js'
import { newToken, writeServerFile } from '../../pkg/cni-server/server-file.js'

const { root, launcher, dist } = launcherTree(t, 'ferry-cni', 'fy-front-stdin-', 'cni-plugin')
// The stand-in for node's entry: what it read on stdin, and how many reads the front (its parent) made.
writeFileSync(join(dist, 'main.js'), `
const { createHash } = require('node:crypto')
const { readFileSync } = require('node:fs')
const data = readFileSync(0)
const io = /^syscr: (\\d+)$/m.exec(readFileSync('/proc/' + process.ppid + '/io', 'utf8'))
process.stdout.write(JSON.stringify({ by: 'node', bytes: data.length, sha256: createHash('sha256').update(data).digest('hex'), frontReads: Number(io[1]) }))
`)

/** read(2) calls a process has made so far (/proc/PID/io), or -1 where the kernel does not count them. */
function reads (pid: string): number {
  try { return Number(/^syscr: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? -1) } catch { return -1 }
}

const token = newToken()
const server = new CniServer({
  host: '127.0.0.1', port: 0, token, log: silentLogger,
  run: async req => {
    const stdin = Buffer.from(req.stdin)
    const stdout = JSON.stringify({ by: 'ferryd', bytes: stdin.length, sha256: sha(stdin), frontReads: reads(req.env.get('PID') ?? '') })
    return { code: 0, stdout }
  },
})
const serverFile = join(root, 'cni-server.env')
t.before(async () => {
  const { port } = await server.listen()
  await writeServerFile(serverFile, { host: '127.0.0.1', port, token })
})
t.teardown(async () => { await server.close(0) })

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** A config of exactly `size` bytes holding what bash treats specially: multi-byte characters, CR, backslashes, 0x01 and 0x7f, trailing newlines. */
function config (size: number): Buffer {
  const head = Buffer.from('{"cniVersion":"1.0.0","name":"fy","pad":"é€\\\\ \r\x01\x7f')
  const tail = Buffer.from('"}\n\n')
  return Buffer.concat([head, Buffer.alloc(size - head.length - tail.length, 'x'), tail])
}

type Via = 'pipe' | 'file' | 'socket'
interface Answer { by: string, bytes: number, sha256: string, frontReads: number }

/** Runs ADD through the front with `input` on stdin as `via` gives it; the answer of whoever ran it. */
async function add (input: Buffer, via: Via): Promise<{ code: number | null, answer: Answer, err: string }> {
  const file = join(root, `stdin-${via}`)
  writeFileSync(file, input)
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', FERRY_CNI_SERVER_FILE: serverFile, CNI_COMMAND: 'ADD' }
  const fd = via === 'file' ? openSync(file, 'r') : -1
  const child = via === 'pipe'
    ? spawn('sh', ['-c', 'cat "$1" | exec bash "$2"', 'sh', file, launcher], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('bash', [launcher], { env, stdio: [via === 'file' ? fd : 'pipe', 'pipe', 'pipe'] })
  if (fd >= 0) closeSync(fd)
  if (via === 'socket') child.stdin?.end(input)
  let out = ''
  let err = ''
  child.stdout?.on('data', (b: Buffer) => { out += b.toString() })
  child.stderr?.on('data', (b: Buffer) => { err += b.toString() })
  const code = await new Promise<number | null>((resolve, reject) => { child.on('error', reject); child.on('close', resolve) })
  let answer: Answer = { by: '', bytes: -1, sha256: '', frontReads: -1 }
  try { answer = JSON.parse(out) as Answer } catch {}
  return { code, answer, err }
}

t.test('up to 1,000,000 bytes go to ferryd byte for byte, from a pipe, a file or a socket, in large reads', async t => {
  for (const size of [1_000_000, 600_000]) {
    const input = config(size)
    for (const via of ['pipe', 'file', 'socket'] as const) {
      const r = await add(input, via)
      const name = `${size} bytes, ${via}`
      t.same([r.code, r.answer.by, r.answer.bytes, r.answer.sha256], [0, 'ferryd', size, sha(input)], `${name}: ${r.err}`)
      // Not byte by byte: a read(2) per byte made ~1,000,000 of them; large reads take a few hundred.
      if (r.answer.frontReads >= 0) t.ok(r.answer.frontReads < size / 64, `${name}: ${r.answer.frontReads} reads`)
    }
  }
})

t.test('more than ferryd takes (5 MB and 1,000,001 bytes) goes to node, every byte, the front reading only the first MB', async t => {
  for (const size of [5_000_000, 1_000_001]) {
    const input = config(size)
    for (const via of ['pipe', 'file', 'socket'] as const) {
      const r = await add(input, via)
      const name = `${size} bytes, ${via}`
      t.same([r.code, r.answer.by, r.answer.bytes, r.answer.sha256], [0, 'node', size, sha(input)], `${name}: ${r.err}`)
      if (r.answer.frontReads >= 0) t.ok(r.answer.frontReads < 1_000_000 / 64, `${name}: the front made ${r.answer.frontReads} reads`)
    }
  }
})

t.test('empty stdin: an empty pipe, file or socket, and /dev/null', async t => {
  for (const via of ['pipe', 'file', 'socket'] as const) {
    const r = await add(Buffer.alloc(0), via)
    t.same([r.code, r.answer.by, r.answer.bytes], [0, 'ferryd', 0], `${via}: ${r.err}`)
  }
  const child = spawn('bash', [launcher], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FERRY_CNI_SERVER_FILE: serverFile, CNI_COMMAND: 'DEL' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  const code = await new Promise<number | null>(resolve => { child.on('close', resolve) })
  t.same([code, (JSON.parse(out) as Answer).bytes], [0, 0], '/dev/null')
})
