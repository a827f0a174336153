// The overlay component against a real etcd over the netlink fake (no root): a network config whose vxlan
// VNI is above 65535 starts, publishes the whole VNI in the lease (as Linux flannel ≥ v0.24.0 does), and
// warns once that Windows and older flannel nodes, which keep the lease VNI in 16 bits, will not route to it.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'
import { loadConfig } from '../../pkg/config/config.js'
import { createLogger } from '../../pkg/log/log.js'
import { FakeNetlink } from '../../pkg/netlink/fake.js'
import { OverlayComponent } from '../../pkg/overlay/component.js'
import { writeNetworkConfig } from '../../pkg/overlay/lease-store.js'
import { startEtcd } from '../helpers/etcd.js'

const etcd = await startEtcd(t)
const admin = new Etcd3({ hosts: [etcd.endpoint] })
t.teardown(() => { admin.close() })
let n = 0

/** Starts a component on a fresh prefix holding a vxlan config with `vni`; its warnings and its lease value. */
async function run (t: Test, vni: number): Promise<{ warnings: string[], lease: unknown }> {
  const prefix = `/vni-test-${++n}`
  await writeNetworkConfig(admin, { Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: vni } }, prefix)
  const dir = mkdtempSync(join(tmpdir(), 'fy-ovni-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const cfg = loadConfig(['--overlay', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix, '--overlay-iface', 'eth0',
    '--subnet-file', join(dir, 'subnet.env'), '--subnet-lease-ttl', '60s'])
  if (cfg === 'help') throw new Error('help')
  const nl = new FakeNetlink()
  const eth0 = nl.addLink({ name: 'eth0', mtu: 1500, up: true })
  await nl.addAddress(eth0.index, '192.168.50.7', 24)
  const warnings: string[] = []
  const log = createLogger({ write: line => { const r = JSON.parse(line) as { level: string, msg: string }; if (r.level === 'warn') warnings.push(r.msg) } })
  const c = new OverlayComponent({ config: cfg, log, netlink: nl })
  await c.start()
  t.teardown(async () => { await c.stop() })
  const leases = Object.values(await admin.getAll().prefix(`${prefix}/network/subnets/`).strings())
  t.equal(leases.length, 1, 'one lease')
  t.equal((await nl.linkDetails(`ferry.${vni}`))?.vxlan?.vni, vni, `the device ferry.${vni} has VNI ${vni}`)
  return { warnings, lease: JSON.parse(leases[0] ?? 'null') }
}

t.test('VNI 70000: started, the whole VNI in the lease, one warning about 16-bit flannel nodes', async t => {
  const { warnings, lease } = await run(t, 70000)
  t.match(lease, { PublicIP: '192.168.50.7', BackendType: 'vxlan', BackendData: { VNI: 70000, VtepMAC: /^[0-9a-f:]{17}$/ } })
  const vniWarnings = warnings.filter(w => w.includes('65535'))
  t.equal(vniWarnings.length, 1, warnings.join(' | '))
  t.match(vniWarnings[0], /Backend\.VNI 70000 is above 65535: flannel nodes on Windows or older than v0\.24\.0/)
})

t.test('VNI 65535: no such warning', async t => {
  const { warnings, lease } = await run(t, 65535)
  t.match(lease, { BackendData: { VNI: 65535 } })
  t.same(warnings.filter(w => w.includes('65535')), [])
})
