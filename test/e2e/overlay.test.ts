// Pod networking end to end: two simulated nodes (network namespaces on one underlay bridge), each running
// ferryd with the overlay against one real etcd, and pods created by calling bin/ferry-cni exactly as a
// runtime does. Over vxlan and over host-gw: pod to pod across nodes (ping, HTTP), the vxlan traffic seen
// on the underlay as UDP 8472, the MTU, a lease deleted, a node restarted.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Etcd3 } from 'etcd3'
import { spawnExec } from '../../pkg/exec/exec.js'
import { startEtcd } from '../helpers/etcd.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

const ROOT = resolve(import.meta.dirname, '../..')
const FERRYD = join(ROOT, 'dist/cmd/ferryd.js')
const CNI = join(ROOT, 'bin/ferry-cni')
const sh = async (...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await spawnExec(argv)
const must = async (...argv: string[]): Promise<string> => {
  const r = await sh(...argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}: ${r.stderr}`)
  return r.stdout
}
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) { if (await check()) return; await sleep(200) }
  throw new Error(`timed out waiting for ${what}`)
}

interface Node { readonly name: string, readonly ns: string, readonly ip: string, readonly dev: string, readonly dir: string, ferryd?: ChildProcess, log: string }

const PREFIX = '/ferry'

async function cluster (t: Test, backend: 'vxlan' | 'host-gw'): Promise<{ nodes: Node[], etcd: Etcd3, endpoint: string, id: string }> {
  const id = randomBytes(2).toString('hex')
  const br = `fy${id}ul`
  const hostIP = '192.168.91.1'
  await must('ip', 'link', 'add', br, 'type', 'bridge')
  t.teardown(async () => { await sh('ip', 'link', 'del', br) })
  await must('ip', 'addr', 'add', `${hostIP}/24`, 'dev', br)
  await must('ip', 'link', 'set', br, 'up')
  const nodes: Node[] = []
  for (const [i, name] of ['a', 'b'].entries()) {
    const ns = `fy${id}${name}`
    const dev = `fy${id}${name}u`
    const ip = `192.168.91.${10 + i}`
    await must('ip', 'netns', 'add', ns)
    t.teardown(async () => { await sh('ip', 'netns', 'del', ns) })
    await must('ip', 'link', 'add', `${dev}h`, 'type', 'veth', 'peer', 'name', dev, 'netns', ns)
    await must('ip', 'link', 'set', `${dev}h`, 'master', br, 'up')
    await must('ip', '-n', ns, 'link', 'set', 'lo', 'up')
    await must('ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', dev)
    await must('ip', '-n', ns, 'link', 'set', dev, 'up')
    await must('ip', '-n', ns, 'route', 'add', 'default', 'via', hostIP)
    await must('ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
    const dir = mkdtempSync(join(tmpdir(), `fy-ovl-${name}-`))
    t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
    nodes.push({ name, ns, ip, dev, dir, log: '' })
  }
  const etcdHandle = await startEtcd(t, { extraClientHosts: [hostIP] })
  const endpoint = `http://${hostIP}:${etcdHandle.clientPort}`
  const etcd = new Etcd3({ hosts: etcdHandle.endpoint })
  t.teardown(() => { etcd.close() })
  await etcd.put(`${PREFIX}/network/config`).value(JSON.stringify({ Network: '10.244.0.0/16', SubnetLen: 24, Backend: { Type: backend } }))
  for (const n of nodes) await startNode(t, n, endpoint)
  return { nodes, etcd, endpoint, id }
}

async function startNode (t: Test, n: Node, endpoint: string): Promise<void> {
  const args = ['netns', 'exec', n.ns, process.execPath, FERRYD, '--node-name', `node-${n.name}`, '--etcd-endpoints', endpoint,
    '--overlay', '--overlay-iface', n.dev, '--subnet-file', join(n.dir, 'subnet.env'), '--cluster-cidr', '10.244.0.0/16',
    '--proxy-mode', 'iptables', '--http-listen', '127.0.0.1:10249', '--subnet-lease-ttl', '60s']
  const p = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  n.ferryd = p
  p.stdout?.on('data', (b: Buffer) => { n.log += b.toString() })
  p.stderr?.on('data', (b: Buffer) => { n.log += b.toString() })
  t.teardown(async () => { await stopNode(n) })
  await waitFor(`node ${n.name} ready`, async () => {
    if (p.exitCode !== null) throw new Error(`ferryd ${n.name} exited ${p.exitCode}:\n${n.log}`)
    const r = await sh('ip', 'netns', 'exec', n.ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', 'http://127.0.0.1:10249/readyz')
    return r.stdout === '200'
  })
}

async function stopNode (n: Node): Promise<void> {
  const p = n.ferryd
  if (p === undefined || p.exitCode !== null || p.signalCode !== null) return
  p.kill('SIGTERM')
  await new Promise(resolve => { p.once('exit', resolve) })
}

interface Pod { readonly ns: string, readonly ip: string, readonly cid: string }

/** ADD through bin/ferry-cni in the node's netns, as a runtime calls it. */
async function addPod (t: Test, n: Node, name: string): Promise<Pod> {
  const ns = `${n.ns}p${name}`
  await must('ip', 'netns', 'add', ns)
  t.teardown(async () => { await sh('ip', 'netns', 'del', ns) })
  const cid = `fy${name}${randomBytes(4).toString('hex')}`
  const conf = { cniVersion: '1.0.0', name: 'fyovl', type: 'ferry-cni', bridge: 'fybr0', subnetFile: join(n.dir, 'subnet.env'), dataDir: join(n.dir, 'ipam') }
  const out = await cni(n, 'ADD', { CNI_CONTAINERID: cid, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0' }, conf)
  const ip = ((out.ips as Array<{ address: string }> | undefined)?.[0]?.address ?? '').split('/')[0] ?? ''
  if (ip === '') throw new Error(`ADD gave no IP: ${JSON.stringify(out)}`)
  return { ns, ip, cid }
}

async function cni (n: Node, command: string, env: Record<string, string>, conf: Record<string, unknown>): Promise<Record<string, unknown>> {
  return await new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', n.ns, CNI], { env: { ...process.env, CNI_COMMAND: command, CNI_PATH: '/usr/lib/cni', ...env }, stdio: ['pipe', 'pipe', 'inherit'] })
    let raw = ''
    child.stdout.on('data', (b: Buffer) => { raw += b.toString() })
    child.on('error', reject)
    child.on('close', code => {
      if (code !== 0) { reject(new Error(`ferry-cni ${command} exit ${code ?? ''}: ${raw}`)); return }
      resolve(raw === '' ? {} : JSON.parse(raw) as Record<string, unknown>)
    })
    child.stdin.end(JSON.stringify(conf))
  })
}

const inNs = async (ns: string, ...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await sh('ip', 'netns', 'exec', ns, ...argv)

function subnetOf (n: Node): string {
  return /FERRY_SUBNET=([\d./]+)/.exec(readFileSync(join(n.dir, 'subnet.env'), 'utf8'))?.[1] ?? ''
}

async function scenario (t: Test, backend: 'vxlan' | 'host-gw'): Promise<void> {
  const { nodes, etcd, endpoint } = await cluster(t, backend)
  const [a, b] = nodes as [Node, Node]
  t.not(subnetOf(a), subnetOf(b), `each node leased its own subnet (${subnetOf(a)}, ${subnetOf(b)})`)
  t.match(readFileSync(join(a.dir, 'subnet.env'), 'utf8'), backend === 'vxlan'
    ? /^FERRY_NETWORK=10\.244\.0\.0\/16\nFERRY_SUBNET=10\.244\.\d+\.1\/24\nFERRY_MTU=1450\nFERRY_IPMASQ=false\n$/
    : /^FERRY_NETWORK=10\.244\.0\.0\/16\nFERRY_SUBNET=10\.244\.\d+\.1\/24\nFERRY_MTU=1500\nFERRY_IPMASQ=false\n$/, 'the node file, exactly its keys')
  const pa = await addPod(t, a, 'x')
  const pb = await addPod(t, b, 'y')
  const server = spawn('ip', ['netns', 'exec', pb.ns, 'python3', '-m', 'http.server', '8080', '--bind', '0.0.0.0'], { stdio: 'ignore' })
  t.teardown(() => { server.kill('SIGKILL') })

  if (backend === 'vxlan') await must('ip', 'netns', 'exec', a.ns, 'iptables', '-I', 'OUTPUT', '-p', 'udp', '--dport', '8472', '-m', 'comment', '--comment', 'fy-test-count')
  await waitFor('pod on A reaches pod on B', async () => (await inNs(pa.ns, 'ping', '-c1', '-W1', pb.ip)).code === 0)
  t.pass(`pod ${pa.ip} on node a pings pod ${pb.ip} on node b`)
  await waitFor('HTTP across nodes', async () => (await inNs(pa.ns, 'curl', '-s', '--max-time', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://${pb.ip}:8080/`)).stdout === '200')
  t.pass('and fetches over HTTP from it')
  if (backend === 'vxlan') {
    const rules = await must('ip', 'netns', 'exec', a.ns, 'iptables', '-L', 'OUTPUT', '-v', '-x', '-n')
    const line = rules.split('\n').find(l => l.includes('fy-test-count')) ?? ''
    t.ok(Number(line.trim().split(/\s+/)[0]) > 0, `the traffic crossed the underlay as UDP 8472 (${line.trim().split(/\s+/)[0] ?? '?'} packets)`)
    t.equal((await inNs(pa.ns, 'ping', '-c1', '-W2', '-M', 'do', '-s', '1422', pb.ip)).code, 0, 'a 1422-byte DF ping fits the overlay MTU')
    t.not((await inNs(pa.ns, 'ping', '-c1', '-W2', '-M', 'do', '-s', '1423', pb.ip)).code, 0, 'a 1423-byte one does not')
  } else {
    t.match((await inNs(a.ns, 'ip', 'route', 'show', subnetOf(b).replace(/\.1\//, '.0/'))).stdout, new RegExp(`via ${b.ip} dev ${a.dev}`), 'host-gw: a route via node b\'s address')
  }

  // A route deleted by hand comes back (the slow-period check).
  const bSubnet = subnetOf(b).replace(/\.1\//, '.0/')
  await must('ip', '-n', a.ns, 'route', 'del', bSubnet)
  await waitFor('the deleted route restored', async () => (await inNs(a.ns, 'ip', 'route', 'show', bSubnet)).stdout.trim() !== '', 25_000)
  t.pass('a route to node b deleted by hand is restored')

  // Node b restarts: same subnet.
  const before = subnetOf(b)
  await stopNode(b)
  await startNode(t, b, endpoint)
  t.equal(subnetOf(b), before, 'node b\'s restart reuses its subnet')
  await waitFor('pods reach each other after the restart', async () => (await inNs(pa.ns, 'ping', '-c1', '-W1', pb.ip)).code === 0)
  t.pass('and the pods still reach each other')

  // Node b's lease deleted (node gone): its routes leave node a.
  await stopNode(b)
  await etcd.delete().key(`${PREFIX}/network/subnets/${bSubnet.replace('/', '-')}`)
  await waitFor('routes to b removed on a', async () => (await inNs(a.ns, 'ip', 'route', 'show', bSubnet)).stdout.trim() === '')
  t.pass('deleting node b\'s lease removes its routes on node a')
  if (backend === 'vxlan') {
    t.equal((await inNs(a.ns, 'bridge', 'fdb', 'show', 'dev', 'ferry.1')).stdout.includes(b.ip), false, 'and its FDB entry')
  }
  await cni(a, 'DEL', { CNI_CONTAINERID: pa.cid, CNI_NETNS: `/run/netns/${pa.ns}`, CNI_IFNAME: 'eth0' }, { cniVersion: '1.0.0', name: 'fyovl', type: 'ferry-cni', bridge: 'fybr0', subnetFile: join(a.dir, 'subnet.env'), dataDir: join(a.dir, 'ipam') })
}

t.test('two nodes over vxlan', async t => { await scenario(t, 'vxlan') })
t.test('two nodes over host-gw', async t => { await scenario(t, 'host-gw') })
