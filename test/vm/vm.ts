// Runs a shell script inside a qemu VM (software emulation, TCG) whose kernel has IPVS, dummy,
// vxlan and the rest of netfilter as modules: the host kernel lacks them. See test/vm/README.md.
//
//   const r = await runInVM({ script: 'ipvsadm -Ln' })   // → { code, output, bootMs, ... }
//
// The base image (kernel + initramfs with node and the network tools) is built once by
// build-image.sh and cached; each run appends a small archive holding the repository's ferry tree
// (at /ferry), the script and any extra files. The guest's /init runs the script and prints an end
// marker with its exit status on the serial console; this side reads the console.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { appendFile, copyFile, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NewcArchive } from './cpio.js'
import { addTree } from './tree.js'

const HERE = dirname(fileURLToPath(import.meta.url))
/** The repository whose tree the VM sees at /ferry. */
export const REPO_ROOT = resolve(HERE, '../..')
const QEMU = process.env.FERRY_VM_QEMU ?? 'qemu-system-x86_64'
/** Boot (kernel, initramfs unpack, modules) under a loaded host; the host-side limit adds it. */
const BOOT_BUDGET_MS = 180_000

export interface VMImage {
  dir: string
  kernel: string
  initrd: string
  /** Whether this process built it (false: found in the cache). */
  built: boolean
  /** How long its build took, whoever built it. */
  buildMs: number
}

export type VMAvailability = { ok: true, image: VMImage } | { ok: false, reason: string }

export interface VMRunOptions {
  /** Shell script run by the guest's sh in /ferry; its exit status is the result's `code`. */
  script: string
  /** Extra files: a relative path lands under /ferry, an absolute one at that path in the guest. */
  files?: Record<string, string | Buffer>
  /** The script's own limit, in the guest (default 120 s); over it the run ends with code 124. */
  timeoutMs?: number
  /** Guest memory (default 2048 MiB). */
  memMiB?: number
  /**
   * Virtual CPUs (default `FERRY_VM_CPUS`, else 1). More than one runs multi-threaded TCG, one host
   * thread per vCPU: the benches use 2 so their own polling does not share ferryd's one CPU.
   */
  cpus?: number
  /** Modules the guest loads at boot instead of test/vm/modules.list (others still autoload). */
  modules?: string[]
  /** Put the repository's ferry tree at /ferry (default true). */
  tree?: boolean
}

export interface VMResult {
  /** The script's exit status (124 when the guest's timeout ended it). */
  code: number
  /** What the script printed (stdout and stderr, interleaved as on the console). */
  output: string
  /** From starting qemu to the script's start (kernel boot, unpack, modules). */
  bootMs: number
  /** The script's own run time, as seen from the host. */
  runMs: number
  /** The whole serial console, for diagnosing a run. */
  console: string
}

let image: Promise<VMImage> | undefined

/** Finds or builds the cached base image (once per process). */
export async function vmImage (): Promise<VMImage> {
  image ??= buildImage().catch(e => { image = undefined; throw e })
  return await image
}

async function buildImage (): Promise<VMImage> {
  const started = Date.now()
  const { code, stdout, stderr } = await run('bash', [join(HERE, 'build-image.sh')])
  if (code !== 0) throw new Error(`test/vm/build-image.sh failed (exit ${code}): ${lastLines(stderr, 5)}`)
  const dir = stdout.trim().split('\n').pop() ?? ''
  const kernel = join(dir, 'vmlinuz')
  const initrd = join(dir, 'base.cpio')
  if (!existsSync(kernel) || !existsSync(initrd)) throw new Error(`build-image.sh printed ${dir}, which has no vmlinuz/base.cpio`)
  const built = stderr.includes('build-image: built ')
  const recorded = Number(readFileSync(join(dir, 'build-ms'), 'utf8'))
  return { dir, kernel, initrd, built, buildMs: built ? Date.now() - started : recorded }
}

/**
 * Whether runInVM can work here, with the reason when not: FERRY_VM=0, not root, no qemu, or an
 * image that cannot be built (a missing host tool, no apt lists). Builds the image when missing.
 */
export async function vmAvailable (): Promise<VMAvailability> {
  if (process.env.FERRY_VM === '0') return { ok: false, reason: 'disabled (FERRY_VM=0)' }
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not root (the VM image is cached under /var/cache)' }
  if (!onPath(QEMU)) return { ok: false, reason: `no qemu (${QEMU} not found; apt-get install --no-install-recommends qemu-system-x86)` }
  try {
    return { ok: true, image: await vmImage() }
  } catch (e) {
    return { ok: false, reason: `VM image not buildable: ${(e as Error).message}` }
  }
}

/** Boots the VM, runs `o.script` in it and returns its exit status and output. */
export async function runInVM (o: VMRunOptions): Promise<VMResult> {
  const img = await vmImage()
  const timeoutMs = o.timeoutMs ?? 120_000
  const token = randomBytes(8).toString('hex')
  // /dev/shm: the joined initramfs is mostly the 130 MB base image, copied per run; keep it off disk.
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()
  await sweepStale(base)
  const tmp = await mkdtemp(join(base, `ferry-vm-${process.pid}-`))
  const cleanup = async (): Promise<void> => { await rm(tmp, { recursive: true, force: true }) }
  try {
    const initrd = join(tmp, 'initrd')
    await copyFile(img.initrd, initrd)
    await appendFile(initrd, overlay(o, token, Math.ceil(timeoutMs / 1000)))
    const cpus = o.cpus ?? Number(process.env.FERRY_VM_CPUS ?? 1)
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 8) throw new Error(`FERRY_VM_CPUS / cpus must be 1-8, not ${String(cpus)}`)
    return await boot(img.kernel, initrd, token, o.memMiB ?? 2048, cpus, timeoutMs + BOOT_BUDGET_MS, cleanup)
  } finally {
    await cleanup()
  }
}

/** Removes joined initramfs files left by runs whose process died before cleaning up. */
async function sweepStale (base: string): Promise<void> {
  for (const name of await readdir(base).catch(() => [])) {
    const pid = Number(/^ferry-vm-(\d+)-/.exec(name)?.[1])
    if (pid > 0 && pid !== process.pid && !alive(pid)) await rm(join(base, name), { recursive: true, force: true })
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The per-run archive: /ferry (tree, run configuration under /ferry/.vm) and the extra files. */
function overlay (o: VMRunOptions, token: string, timeoutS: number): Buffer {
  const a = new NewcArchive()
  const now = Math.floor(Date.now() / 1000)
  if (o.tree !== false) addTree(a, REPO_ROOT, 'ferry')
  a.file('ferry/.vm/token', token + '\n', 0o644, now)
  a.file('ferry/.vm/timeout', `${timeoutS}\n`, 0o644, now)
  a.file('ferry/.vm/script.sh', o.script, 0o755, now)
  if (o.modules !== undefined) a.file('ferry/.vm/modules', o.modules.join('\n') + '\n', 0o644, now)
  for (const [path, data] of Object.entries(o.files ?? {})) {
    const exec = (typeof data === 'string' ? data.slice(0, 2) : data.subarray(0, 2).toString()) === '#!'
    a.file(path.startsWith('/') ? path : `ferry/${path}`, data, exec ? 0o755 : 0o644, now)
  }
  return a.finish()
}

/**
 * Runs qemu until it powers off, killing it after `limitMs`; parses the console's markers. qemu reads
 * the initramfs whole before the guest starts, so `loaded` (which deletes it) runs on first output.
 */
async function boot (kernel: string, initrd: string, token: string, memMiB: number, cpus: number, limitMs: number, loaded: () => Promise<void>): Promise<VMResult> {
  const args = [
    '-accel', cpus > 1 ? 'tcg,thread=multi' : 'tcg', '-m', String(memMiB), '-smp', String(cpus),
    '-display', 'none', '-nodefaults', '-no-user-config', '-serial', 'stdio', '-nic', 'none', '-no-reboot',
    '-kernel', kernel, '-initrd', initrd,
    '-append', 'console=ttyS0 quiet panic=-1 mitigations=off',
  ]
  // timeout(1) also ends qemu if this process dies without killing it (e.g. tap's own timeout); a
  // TERM sent to it is passed on to qemu.
  const child = spawn('timeout', ['-k', '5', `${Math.ceil(limitMs / 1000) + 10}`, QEMU, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const killOnExit = (): void => { child.kill('SIGTERM') }
  process.once('exit', killOnExit)
  const verbose = process.env.FERRY_VM_VERBOSE === '1'
  const begin = `FERRY-VM-BEGIN ${token}`
  const endRe = new RegExp(`\nFERRY-VM-END ${token} rc=(\\d+)\n`)
  const started = Date.now()
  let consoleText = ''
  let stderr = ''
  let bootMs = -1
  let endMs = -1
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stdout.on('data', (s: string) => {
    if (consoleText === '') void loaded()
    consoleText += s.replace(/\r/g, '')
    if (verbose) process.stderr.write(s)
    if (bootMs < 0 && consoleText.includes(begin + '\n')) bootMs = Date.now() - started
    if (endMs < 0 && endRe.test(consoleText)) endMs = Date.now()
  })
  child.stderr.on('data', (s: string) => { stderr += s })
  const timer = setTimeout(() => { child.kill('SIGTERM') }, limitMs)
  const exit = await new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(res => {
    child.on('close', (code, signal) => { res({ code, signal }) })
  })
  clearTimeout(timer)
  process.removeListener('exit', killOnExit)

  const end = endRe.exec(consoleText)
  const from = consoleText.indexOf(begin + '\n')
  if (end === null || from < 0) {
    const why = Date.now() - started >= limitMs ? `timed out after ${limitMs} ms` : `exited (${exit.signal ?? exit.code ?? '?'})`
    throw new Error(`VM ${why} without ${from < 0 ? 'starting the script' : 'an end marker'}: ${lastLines(stderr + consoleText, 15)}`)
  }
  return {
    code: Number(end[1]),
    output: consoleText.slice(from + begin.length + 1, end.index),
    bootMs,
    runMs: endMs - started - bootMs,
    console: consoleText,
  }
}

function onPath (cmd: string): boolean {
  const dirs = cmd.includes('/') ? [''] : (process.env.PATH ?? '').split(delimiter)
  return dirs.some(d => {
    try {
      accessSync(d === '' ? cmd : join(d, cmd), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

function run (cmd: string, args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    child.on('error', rej)
    child.on('close', code => { res({ code: code ?? 1, stdout, stderr }) })
  })
}

function lastLines (s: string, n: number): string {
  return s.trim().split('\n').slice(-n).join('\n')
}
