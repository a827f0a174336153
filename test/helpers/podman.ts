// A throwaway "node" for running real containers with podman on a ferry-cni network: its own network
// namespace (where ferry-cni's bridge and ferryd's rules live) and its own mount namespace whose /sys
// belongs to that network namespace, a private podman config and storage, and a busybox rootfs.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, copyFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { spawnExec, type ExecResult } from '../../pkg/exec/exec.js'

export const ROOT = resolve(import.meta.dirname, '../..')
export const FERRYD_JS = join(ROOT, 'dist/cmd/ferryd.js')
const CNI_JS = join(ROOT, 'dist/cni-plugin/main.js')
const REFERENCE_PLUGINS = '/usr/lib/cni'
const BUSYBOX = '/usr/bin/busybox'
const APPLETS = ['sh', 'ping', 'wget', 'ip', 'httpd', 'cat', 'sleep', 'nc', 'timeout']

function onPath (cmd: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some(d => existsSync(join(d, cmd)))
}

/** A dynamically linked busybox names its loader in the first page (PT_INTERP); copied alone it cannot run. */
function isStatic (path: string): boolean {
  const fd = openSync(path, 'r')
  try {
    const head = Buffer.alloc(4096)
    readSync(fd, head, 0, head.length, 0)
    return !head.includes('/lib64/ld-') && !head.includes('/lib/ld-')
  } finally { closeSync(fd) }
}

/** Why the podman e2e cannot run here, or null when it can (scripts/setup.sh installs what it needs). */
export function podmanMissing (): string | null {
  if (process.getuid?.() !== 0) return 'needs root'
  for (const cmd of ['podman', 'runc', 'nsenter', 'unshare', 'iptables-save']) {
    if (!onPath(cmd)) return `${cmd} is not installed (scripts/setup.sh installs podman runc containernetworking-plugins busybox-static)`
  }
  if (!existsSync(join(REFERENCE_PLUGINS, 'portmap'))) return `${REFERENCE_PLUGINS}/portmap is missing (containernetworking-plugins)`
  if (!existsSync(BUSYBOX) || !isStatic(BUSYBOX)) return `${BUSYBOX} is missing or not static (busybox-static)`
  if (!existsSync(CNI_JS) || !existsSync(FERRYD_JS)) return 'not built: run npm run build'
  return null
}

/** A minimal rootfs: a static busybox, its applets as symlinks, the empty mount points, plus `files`. */
export function busyboxRootfs (dir: string, files: Record<string, string> = {}): string {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(dir, d), { recursive: true })
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'))
  for (const a of APPLETS) symlinkSync('busybox', join(dir, 'bin', a))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  return dir
}

export interface PodmanNodeOptions {
  /** The node file's FERRY_SUBNET (gateway/prefix). */
  readonly subnet: string
  readonly clusterCIDR: string
  /** The CNI network name (podman's --network). */
  readonly network: string
  readonly bridge: string
  /** Files added to the busybox rootfs. */
  readonly files?: Record<string, string>
}

export interface NodeFerryd {
  readonly logs: () => string
  readonly stop: () => Promise<void>
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export class PodmanNode {
  readonly ns: string
  readonly dir: string
  readonly rootfs: string
  /** The IPAM store of this network: <dataDir>/<network>/. */
  readonly ipamDir: string
  private readonly mntns: string
  private readonly env: NodeJS.ProcessEnv
  private readonly procs: ChildProcess[] = []
  private steps: Array<() => Promise<unknown>> = []

  private constructor (readonly opts: PodmanNodeOptions) {
    this.ns = `fypod${randomBytes(2).toString('hex')}`
    this.dir = mkdtempSync(join(tmpdir(), 'fy-podman-'))
    this.rootfs = join(this.dir, 'rootfs')
    this.ipamDir = join(this.dir, 'ipam', opts.network)
    this.mntns = join(this.dir, 'ns', 'mnt')
    this.env = { ...process.env, CONTAINERS_CONF: join(this.dir, 'containers.conf') }
  }

  /** Sets the node up; on failure undoes what it did and throws. */
  static async create (opts: PodmanNodeOptions): Promise<PodmanNode> {
    const node = new PodmanNode(opts)
    try { await node.setup() } catch (e) { await node.close(); throw e }
    return node
  }

  private async must (argv: string[]): Promise<string> {
    const r = await spawnExec(argv)
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`)
    return r.stdout
  }

  private async setup (): Promise<void> {
    const { dir, opts } = this
    this.steps.push(async () => { rmSync(dir, { recursive: true, force: true }) })
    busyboxRootfs(this.rootfs, opts.files)
    mkdirSync(join(dir, 'net'))
    writeFileSync(join(dir, 'containers.conf'), `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["${join(ROOT, 'bin')}", "${REFERENCE_PLUGINS}"]
network_config_dir = "${join(dir, 'net')}"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
tmp_dir = "${join(dir, 'libpod')}"
events_logger = "none"
`)
    // podman 4.3's libcni refuses cniVersion 1.1.0.
    writeFileSync(join(dir, 'net', `${opts.network}.conflist`), JSON.stringify({
      cniVersion: '1.0.0',
      name: opts.network,
      plugins: [
        { type: 'ferry-cni', bridge: opts.bridge, subnetFile: join(dir, 'subnet.env'), dataDir: join(dir, 'ipam'), hairpinMode: true },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      ],
    }, null, 2))
    writeFileSync(join(dir, 'subnet.env'), `FERRY_NETWORK=${opts.clusterCIDR}\nFERRY_SUBNET=${opts.subnet}\nFERRY_MTU=1500\nFERRY_IPMASQ=false\n`)

    await this.must(['ip', 'netns', 'add', this.ns])
    this.steps.push(async () => await spawnExec(['ip', 'netns', 'del', this.ns]))
    await this.must(['ip', '-n', this.ns, 'link', 'set', 'lo', 'up'])

    // The node's mount namespace, kept alive by a bind mount on a private mount point: /sys remounted
    // from inside the node netns (sysfs shows the netns of whoever mounts it, and ferry-cni and runc read
    // /sys), with the cgroup tree moved over from the old /sys so runc still finds it. `ip netns exec`
    // would remount /sys but lose the cgroup mounts. Slave propagation: nothing mounted there leaks out.
    const nsDir = join(dir, 'ns')
    const stash = join(dir, 'cgroup')
    mkdirSync(nsDir)
    mkdirSync(stash)
    await this.must(['mount', '--bind', nsDir, nsDir])
    this.steps.push(async () => await spawnExec(['umount', '-l', nsDir]))
    await this.must(['mount', '--make-private', nsDir])
    writeFileSync(this.mntns, '')
    await this.must(['nsenter', `--net=/run/netns/${this.ns}`, 'unshare', `--mount=${this.mntns}`, '--propagation', 'slave',
      'sh', '-ec', 'mount --rbind /sys/fs/cgroup "$1"; mount -t sysfs sysfs /sys; mount --move "$1" /sys/fs/cgroup', 'sh', stash])
    this.steps.push(async () => await spawnExec(['umount', this.mntns]))
    this.steps.push(async () => await this.podman(['rm', '--all', '--force', '--time', '0']))
  }

  /**
   * Runs `podman <args>` on this node (its netns and mount namespace, private config and vfs storage).
   * hostSys: in the node netns only, with the host's mounts, so /sys shows the host's links.
   */
  async podman (args: string[], o: { hostSys?: boolean } = {}): Promise<ExecResult> {
    return await this.execEnv(['nsenter', ...(o.hostSys === true ? [] : [`--mount=${this.mntns}`]), `--net=/run/netns/${this.ns}`,
      'podman', '--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'runroot'), '--storage-driver', 'vfs', ...args])
  }

  /** `podman run` of the busybox rootfs on this node's network; `opts` go before --rootfs (a boolean flag). */
  async run (opts: string[], cmd: string[]): Promise<ExecResult> {
    return await this.podman(['run', '--network', this.opts.network, ...opts, '--rootfs', this.rootfs, ...cmd])
  }

  /** Runs argv in the node's network namespace (the host's mounts). */
  async sh (argv: string[]): Promise<ExecResult> {
    return await spawnExec(['nsenter', `--net=/run/netns/${this.ns}`, ...argv])
  }

  private async execEnv (argv: string[]): Promise<ExecResult> {
    const [cmd = '', ...args] = argv
    return await new Promise((done, fail) => {
      const child = spawn(cmd, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (b: Buffer) => { stdout += b.toString() })
      child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
      child.on('error', fail)
      child.on('close', (code) => { done({ code: code ?? 1, stdout, stderr }) })
    })
  }

  /** Starts the compiled ferryd in the node netns and waits for /readyz. */
  async startFerryd (args: string[], timeoutMs = 20_000): Promise<NodeFerryd> {
    const proc = spawn('ip', ['netns', 'exec', this.ns, 'node', FERRYD_JS, '--http-listen', '127.0.0.1:10249', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.procs.push(proc)
    let out = ''
    proc.stdout.on('data', (b: Buffer) => { out += b.toString() })
    proc.stderr.on('data', (b: Buffer) => { out += b.toString() })
    const stop = async (): Promise<void> => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const exited = new Promise<void>(resolve => { proc.once('exit', () => { resolve() }) })
      proc.kill('SIGTERM')
      const timer = setTimeout(() => { proc.kill('SIGKILL') }, 3000)
      await exited
      clearTimeout(timer)
    }
    const end = Date.now() + timeoutMs
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`ferryd exited ${proc.exitCode}:\n${out}`)
      const r = await this.sh(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', 'http://127.0.0.1:10249/readyz'])
      if (r.stdout === '200') break
      if (Date.now() > end) { await stop(); throw new Error(`ferryd not ready after ${timeoutMs} ms:\n${out}`) }
      await sleep(100)
    }
    return { logs: () => out, stop }
  }

  /** The IPAM store's live entries: reserved IPs and ownership records (host-local's hint file excluded). */
  ipamEntries (): string[] {
    if (!existsSync(this.ipamDir)) return []
    const ips = readdirSync(this.ipamDir).filter(n => /^[0-9a-f.:]+$/.test(n))
    const records = existsSync(join(this.ipamDir, 'attachments')) ? readdirSync(join(this.ipamDir, 'attachments')).map(n => `attachments/${n}`) : []
    return [...ips, ...records]
  }

  /** The reserved IP file's owner line: "<containerID>" of whoever holds `ip`. */
  ipamOwner (ip: string): string {
    return readFileSync(join(this.ipamDir, ip), 'utf8').split(/\r?\n/)[0] ?? ''
  }

  /** Removes containers, ferryd, the namespaces and the temp dir, in reverse order of creation. */
  async close (): Promise<void> {
    for (const p of this.procs) {
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise<void>(resolve => { p.once('exit', () => { resolve() }) })
        p.kill('SIGTERM')
        const timer = setTimeout(() => { p.kill('SIGKILL') }, 3000)
        await exited
        clearTimeout(timer)
      }
    }
    const steps = this.steps.reverse()
    this.steps = []
    for (const step of steps) await step().catch(() => undefined)
  }
}
