// ferryd end to end with etcd as the source: ferryctl writes, ferryd follows, real traffic flows.
// etcd runs inside the lab's node namespace so ferryd (in that namespace) reaches it on loopback.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFerryd } from '../../pkg/lab/ferryd.js'
import { LAB } from '../../pkg/lab/lab.js'
import { webLab, webManifests, EMPTY_SVC, waitUntil } from '../helpers/web-lab.js'

const FERRYCTL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ferryctl')
const ETCD = 'http://127.0.0.1:2379'

t.test('ferryd follows etcd written by ferryctl', async t => {
  const { lab, dir, client } = await webLab(t)

  lab.spawn(['etcd', '--name', 'lab', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', ETCD, '--advertise-client-urls', ETCD,
    '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', 'lab=http://127.0.0.1:2380', '--log-level', 'error'])
  await waitUntil('etcd healthy', async () => await lab.sh(['etcdctl', '--endpoints', ETCD, 'endpoint', 'health']).then(() => true, () => false))
  const ctl = async (...args: string[]): Promise<string> => await lab.sh([FERRYCTL, ...args, '--etcd-endpoints', ETCD])

  await writeFile(join(dir, 'web.yaml'), webManifests(['10.244.0.11', '10.244.0.12', '10.244.0.13']))
  await writeFile(join(dir, 'empty.yaml'), EMPTY_SVC)
  await ctl('apply', '-f', join(dir, 'web.yaml'))

  const ferryd = startFerryd(lab, ['--etcd-endpoints', ETCD, '--node-name', 'lab-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '100ms'])
  t.teardown(async () => { await ferryd.stop() })
  await ferryd.waitReady()

  const spread = await lab.spread('http://10.96.0.10/', 45, client.ns)
  t.same([...spread.keys()].sort(), ['web-1', 'web-2', 'web-3'], 'ClusterIP reaches every endpoint')
  const np = await lab.spread(`http://${LAB.nodeExternalIP}:30080/`, 45)
  t.same([...np.keys()].sort(), ['web-1', 'web-2', 'web-3'], 'NodePort reaches every endpoint')

  await ctl('apply', '-f', join(dir, 'empty.yaml'))
  await t.resolves(waitUntil('empty is refused', async () => { const r = await lab.get('http://10.96.0.20/', client.ns, 1); return !r.ok && r.error === 'refused' }), 'a Service applied later without endpoints is refused')

  await writeFile(join(dir, 'web.yaml'), webManifests(['10.244.0.13']))
  await ctl('apply', '-f', join(dir, 'web.yaml'))
  await t.resolves(waitUntil('only web-3', async () => { const s = await lab.spread('http://10.96.0.10/', 8, client.ns); return s.size === 1 && s.has('web-3') }), 'scaled down through etcd')

  const bad = join(dir, 'bad.yaml')
  await writeFile(bad, webManifests(['10.244.0.11']).replace('10.96.0.10', '10.96.0.300'))
  const rejected = await lab.sh([FERRYCTL, 'apply', '-f', bad, '--etcd-endpoints', ETCD]).then(() => '', (e: Error) => e.message)
  t.match(rejected, /Service "demo\/web".*spec\.clusterIP: Invalid value: "10\.96\.0\.300"/, 'ferryctl names object and field')
  t.match(await ctl('get', 'services', '-A'), /web\s+NodePort\s+10\.96\.0\.10/, 'nothing was written')

  await ctl('delete', '-f', join(dir, 'web.yaml'))
  await t.resolves(waitUntil('web gone', async () => !(await lab.get('http://10.96.0.10/', client.ns, 1)).ok), 'deleting the Service through etcd removes it')
  t.equal(ferryd.proc.exitCode, null, 'ferryd still running')
})
