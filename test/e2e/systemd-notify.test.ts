// Type=notify: ferryd tells systemd READY=1 only once the first sync is in the kernel, and STOPPING=1
// on SIGTERM. A small listener stands in for systemd's notification socket.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFerryd } from '../../pkg/lab/ferryd.js'
import { Lab, LAB } from '../../pkg/lab/lab.js'
import { EMPTY_SVC, anyProxyRules, waitUntil } from '../helpers/web-lab.js'

const LISTENER = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'notify-listener.py')

t.test('READY=1 after the first sync, STOPPING=1 on SIGTERM', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-notify-'))
  const lab = await Lab.create()
  t.teardown(async () => { await lab.close(); await rm(dir, { recursive: true, force: true }) })
  const sock = join(dir, 'notify.sock')
  const listener = spawn('python3', [LISTENER, sock], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { listener.kill() })
  let heard = ''
  listener.stdout.on('data', (b: Buffer) => { heard += b.toString() })
  await waitUntil('listener up', async () => heard.includes('listening'))

  await writeFile(join(dir, 'empty.yaml'), EMPTY_SVC)
  const ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'n1', '--cluster-cidr', LAB.podCIDR], { env: { ...process.env, NOTIFY_SOCKET: sock } })
  t.teardown(async () => { await ferryd.stop() })
  await waitUntil('READY=1', async () => heard.includes('READY=1'))
  t.match(heard, /READY=1 STATUS=serving 1 services/)
  t.equal((await ferryd.http('/readyz')).status, 200, 'ready means the rules are in: /readyz agrees')
  // In the mode auto picked: an iptables REJECT rule, or an element of the nftables no-endpoint map.
  t.match(await anyProxyRules(lab), /demo\/empty has no endpoints|10\.96\.0\.20 \. tcp \. 80 : goto reject-chain/, 'and the REJECT rule is in the kernel')
  t.equal(await ferryd.stop(), 0)
  await t.resolves(waitUntil('STOPPING=1', async () => heard.includes('STOPPING=1')), 'STOPPING=1 on SIGTERM')
})
