// A real container runtime on ferry-cni: podman 4.3 + runc run busybox containers on a ferry network inside
// a throwaway node (netns + mount namespace, see test/helpers/podman.ts). Pod to pod by IP, pod to pod
// through a ClusterIP programmed by the real ferryd, podman's -p through the chained portmap plugin, and
// nothing left in the IPAM store or on the bridge after `podman rm -f`.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { HOST_VETH, hostVethName } from '../../cni-plugin/names.js'
import { PodmanNode, podmanMissing } from '../helpers/podman.js'
import { webManifests } from '../helpers/web-lab.js'

const missing = podmanMissing()
if (missing !== null) {
  t.plan(0, `skipped: ${missing}`)
  process.exit(0)
}

const NODE_IP = '192.168.77.1'
const CLUSTER_IP = '10.96.0.10'

t.test('podman runs containers on a ferry-cni network', async t => {
  const node = await PodmanNode.create({
    subnet: '10.244.5.1/24',
    clusterCIDR: '10.244.0.0/16',
    network: 'fyferry',
    bridge: 'fybr0',
    files: { 'www/index.html': 'hello from a\n' },
  })
  t.teardown(async () => { await node.close() })

  // A node address that is not the bridge's, for podman's -p (an uplink with nothing behind it).
  for (const argv of [['ip', 'link', 'add', 'fyup0', 'type', 'veth', 'peer', 'name', 'fyup1'], ['ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', 'fyup0'],
    ['ip', 'link', 'set', 'fyup1', 'up'], ['ip', 'link', 'set', 'fyup0', 'up']]) {
    const r = await node.sh(argv)
    t.equal(r.code, 0, `${argv.join(' ')} ${r.stderr}`)
  }

  // Container A serves /www on 8080, published on the node's port 18080.
  const a = await node.run(['-d', '--name', 'a', '-p', '18080:8080'], ['/bin/busybox', 'httpd', '-f', '-p', '8080', '-h', '/www'])
  t.equal(a.code, 0, `podman run -d a: ${a.stderr}`)
  const idA = a.stdout.trim()
  const inspect = await node.podman(['inspect', 'a', '--format', '{{json .NetworkSettings.Networks}}'])
  const nets = JSON.parse(inspect.stdout) as Record<string, { IPAddress: string, Gateway: string, IPPrefixLen: number }>
  const ipA = nets.fyferry?.IPAddress ?? ''
  t.match(nets.fyferry, { Gateway: '10.244.5.1', IPPrefixLen: 24 }, 'podman sees ferry-cni\'s result')
  t.match(ipA, /^10\.244\.5\.(\d+)$/, 'A got an IP from the node subnet')
  t.not(ipA, '10.244.5.1', 'never the gateway')
  t.equal(node.ipamOwner(ipA), idA, 'the IPAM store holds A\'s IP for A\'s container ID')
  t.equal((await node.sh(['ip', 'link', 'show', hostVethName(idA, 'eth0')])).code, 0, 'A\'s host veth is in the node netns')
  t.match((await node.sh(['ip', '-br', 'addr', 'show', 'fybr0'])).stdout, /10\.244\.5\.1\/24/, 'the bridge has the gateway address')

  // B runs `script` under sh as PID 1, which sh stays by a trailing command: a command exec'd as PID 1
  // ignores timeout's SIGTERM. (busybox 1.35's `wget -T` segfaults, hence `timeout`.) --timeout backs it up.
  const b = async (script: string): Promise<{ code: number, out: string }> => {
    const r = await node.run(['--rm', '--timeout', '20'], ['/bin/sh', '-c', `${script}; st=$?; exit $st`])
    return { code: r.code, out: r.stdout + r.stderr }
  }

  const direct = await b(`ip -4 -o addr show eth0; wget -qO- http://${ipA}:8080/ && ping -c1 -W2 ${ipA} >/dev/null && echo pinged`)
  t.equal(direct.code, 0, `B reaches A by IP: ${direct.out}`)
  t.match(direct.out, /eth0\s+inet 10\.244\.5\.\d+\/24/, 'B is on the node subnet too')
  t.notMatch(direct.out, new RegExp(`inet ${ipA.replace(/\./g, '\\.')}/`), 'B got another IP than A')
  t.match(direct.out, /hello from a/, 'B fetched A\'s page by IP')
  t.match(direct.out, /pinged/, 'B pinged A')

  const published = await node.sh(['curl', '-sS', '--max-time', '3', `http://${NODE_IP}:18080/`])
  t.equal(published.stdout, 'hello from a\n', `the chained portmap publishes A on ${NODE_IP}:18080 ${published.stderr}`)
  t.match((await node.sh(['iptables-save', '-t', 'nat'])).stdout, `--dport 18080 -j DNAT --to-destination ${ipA}:8080`, 'portmap got A\'s IP from ferry-cni\'s prevResult')

  // ClusterIP → A through the real ferryd in the node netns.
  const manifests = join(node.dir, 'manifests')
  mkdirSync(manifests)
  writeFileSync(join(manifests, 'web.yaml'), webManifests([ipA]))
  const ferryd = await node.startFerryd(['--manifests', manifests, '--node-name', 'lab-node', '--cluster-cidr', '10.244.0.0/16', '--min-sync-period', '100ms'])
  t.teardown(ferryd.stop)

  // A ClusterIP on the same bridge: the reply A → B is bridged, so only br_netfilter sends it through
  // conntrack to undo the DNAT. ferry-cni turns bridge-nf-call-iptables on at each ADD, even after
  // something turned it off (B's `podman run` is an ADD).
  t.equal((await node.sh(['sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=0'])).code, 0, 'bridge-nf-call-iptables turned off in the node netns')
  const viaService = await b(`timeout 5 wget -qO- http://${CLUSTER_IP}/`)
  t.equal(viaService.code, 0, `B reaches A through the ClusterIP: ${viaService.out}\n${viaService.code !== 0 ? ferryd.logs() : ''}`)
  t.match(viaService.out, /hello from a/, 'B fetched A\'s page through the ClusterIP')
  t.equal((await node.sh(['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'])).stdout.trim(), '1', 'ferry-cni turned bridge-nf-call-iptables back on')
  await ferryd.stop()

  // podman rm -f: DEL releases A's IP and its veth; B's (--rm) are long gone.
  const rm = await node.podman(['rm', '-f', '-t', '0', 'a'])
  t.equal(rm.code, 0, `podman rm -f a: ${rm.stderr}`)
  t.same(node.ipamEntries(), [], 'no reservations or ownership records left in the IPAM store')
  const links = (await node.sh(['ip', '-o', 'link', 'show'])).stdout.split('\n').map(l => (l.split(': ')[1] ?? '').split('@')[0] ?? '')
  t.same(links.filter(l => HOST_VETH.test(l)), [], 'no host veths left on the node')
  t.equal((await node.sh(['iptables-save', '-t', 'nat'])).stdout.includes('--dport 18080'), false, 'portmap removed A\'s port mapping')
})

// A runtime whose /sys belongs to another netns than its own (podman entered with `nsenter --net` only, or
// a containerised runtime): ferry-cni must find the node's existing bridge in its own netns, not in /sys.
t.test('ferry-cni under a runtime whose /sys shows another netns', async t => {
  const node = await PodmanNode.create({ subnet: '10.244.6.1/24', clusterCIDR: '10.244.0.0/16', network: 'fyferry', bridge: 'fybr0' })
  t.teardown(async () => { await node.close() })
  for (const i of [1, 2]) {
    const r = await node.podman(['run', '--rm', '--timeout', '20', '--network', 'fyferry', '--rootfs', node.rootfs, '/bin/sh', '-c', 'ip -4 -o addr show eth0'], { hostSys: true })
    t.equal(r.code, 0, `container ${i} started on the same bridge: ${r.stderr.trim()}`)
  }
  t.same(node.ipamEntries(), [], 'no reservations left after both containers')
})
