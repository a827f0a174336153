// The local demo cluster: ferryd serves examples/demo in a network-namespace "node"; pods and an
// external client send real traffic to a ClusterIP and a NodePort. Run as root: npm run demo [-- --keep]
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFerryd, type LabFerryd } from '../pkg/lab/ferryd.js'
import { Lab, LAB } from '../pkg/lab/lab.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const say = (s: string): void => { process.stdout.write(s + '\n') }
const fmt = (m: Map<string, number>): string => [...m].sort().map(([k, v]) => `${k}=${v}`).join(' ')

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) { if (await check()) return; await new Promise(resolve => setTimeout(resolve, 100)) }
  throw new Error(`timed out waiting for ${what}`)
}

async function demo (keep: boolean): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo creates network namespaces: run it as root')
  const dir = await mkdtemp(join(tmpdir(), 'ferry-demo-'))
  await cp(join(root, 'examples', 'demo'), dir, { recursive: true })
  const lab = await Lab.create()
  let ferryd: LabFerryd | undefined
  let podEtc: string | undefined
  const cleanup = async (): Promise<void> => {
    await ferryd?.stop(); await lab.close(); await rm(dir, { recursive: true, force: true })
    if (podEtc !== undefined) await rm(podEtc, { recursive: true, force: true })
  }
  process.on('SIGINT', () => { void cleanup().then(() => process.exit(0)) })
  try {
    say(`== lab ${lab.id}: node netns ${lab.nodeNs}, external client ${lab.clientNs} (${LAB.clientIP})`)
    for (const [i, name] of ['web-1', 'web-2', 'web-3'].entries()) await lab.addPod(name, `10.244.0.${11 + i}`)
    const client = await lab.addPod('client', '10.244.0.50', [])
    say('== pods web-1..3 (10.244.0.11-13:8080) and a client pod (10.244.0.50) are up')
    // The client pod's resolver, as kubelet writes it, pointing at ferry's DNS on the node.
    podEtc = `/etc/netns/${client.ns}`
    await mkdir(podEtc, { recursive: true })
    await writeFile(join(podEtc, 'resolv.conf'), `nameserver ${LAB.podGateway}\nsearch demo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`)

    ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'demo-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '200ms', '--log-format', 'text',
      '--dns-listen', `${LAB.podGateway}:53`])
    await ferryd.waitReady()
    say(`== ferryd is ready, serving ${dir}`)
    const state = JSON.parse((await ferryd.http('/debug/state')).body) as { proxyMode?: { mode: string, reason: string } }
    say(`== proxy mode: ${state.proxyMode?.mode ?? '?'} (${state.proxyMode?.reason ?? ''})`)
    say(await lab.sh(['sh', '-c', 'iptables-legacy-save -t nat 2>/dev/null | grep -c "^-A FERRY-" || iptables-save -t nat | grep -c "^-A FERRY-"']).then(n => `   ${n.trim()} nat rules programmed`))

    say('\n-- pod -> ClusterIP 10.96.0.10:80, 30 new connections:')
    say('   ' + fmt(await lab.spread('http://10.96.0.10/', 30, client.ns)))
    say(`-- external client -> NodePort ${LAB.nodeExternalIP}:30080, 30 new connections:`)
    say('   ' + fmt(await lab.spread(`http://${LAB.nodeExternalIP}:30080/`, 30)))
    const r = await lab.get('http://10.96.0.20/', client.ns)
    say(`-- pod -> ClusterIP 10.96.0.20 (no endpoints): ${r.ok ? 'answered?!' : `${r.error} after ${r.ms} ms`}`)

    say(`\n-- cluster DNS on ${LAB.podGateway}:53, asked from the client pod (search demo.svc.cluster.local ..., ndots:5):`)
    say(`   getent hosts web          -> ${(await lab.sh(['getent', 'hosts', 'web'], client.ns)).trim()}`)
    say(`   curl http://web/          -> ${(await lab.sh(['curl', '-sS', '--max-time', '3', 'http://web/'], client.ns)).trim()}`)
    const dig = async (args: string[]): Promise<string> => (await lab.sh(['dig', `@${LAB.podGateway}`, '+short', ...args], client.ns)).trim().split('\n').join(', ')
    say(`   dig SRV _http._tcp.web... -> ${await dig(['SRV', '_http._tcp.web.demo.svc.cluster.local'])}`)
    say(`   dig PTR 10.96.0.10        -> ${await dig(['-x', '10.96.0.10'])}`)

    say('\n-- scaling web down to web-1 and web-2 (editing web.yaml)...')
    const web = join(dir, 'web.yaml')
    const text = await readFile(web, 'utf8')
    await writeFile(web, text.replace(/ {2}- addresses: \[10\.244\.0\.13\][\s\S]*$/, ''))
    await waitFor('web-3 to leave', async () => (await lab.spread('http://10.96.0.10/', 6, client.ns)).get('web-3') === undefined)
    say('   ' + fmt(await lab.spread('http://10.96.0.10/', 20, client.ns)))

    say('\n-- metrics (excerpt):')
    const m = await ferryd.http('/metrics')
    for (const line of m.body.split('\n')) if (/^(kubeproxy_(sync_proxy_rules_(last_timestamp|duration_seconds_count|iptables_total)|network_programming_duration_seconds_count)|coredns_dns_requests_total)/.test(line)) say('   ' + line)
    say(`-- /healthz: ${(await ferryd.http('/healthz')).body}`)
    if (keep) {
      say(`\nkept running. Try:\n  ip netns exec ${client.ns} curl http://10.96.0.10/\n  ip netns exec ${lab.clientNs} curl http://${LAB.nodeExternalIP}:30080/\n  edit ${dir}/*.yaml and watch ferryd follow\nCtrl-C tears everything down.`)
      await new Promise(() => {})
    }
    say('\n== done; tearing down')
  } finally {
    if (!keep) await cleanup()
  }
}

demo(process.argv.includes('--keep')).catch((e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`)
  process.exit(1)
})
