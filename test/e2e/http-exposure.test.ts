// The operations endpoint seen from another host: ferryd listens on 0.0.0.0 or [::] in the lab's node
// namespace, and the client namespace (192.168.77.2, fd00:77::2) asks for /debug/state, /metrics and
// the probes over the veth. Real sockets, real source addresses, the real start-up log.
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFerryd, type LabFerryd } from '../../pkg/lab/ferryd.js'
import { Lab, LAB } from '../../pkg/lab/lab.js'
import { EMPTY_SVC } from '../helpers/web-lab.js'

const PORT = 10249

/** GET `url` from namespace `ns` with curl: status and body (status 0 when the connection failed). */
async function get (lab: Lab, ns: string, url: string): Promise<{ status: number, body: string }> {
  const r = await lab.sh(['curl', '-gsS', '--max-time', '3', '-w', '\n%{http_code}', url], ns).catch(() => '\n0')
  const i = r.lastIndexOf('\n')
  return { status: Number(r.slice(i + 1)), body: r.slice(0, i) }
}

/** ferryd's JSON log lines at level warn. */
function warnings (ferryd: LabFerryd): Array<Record<string, unknown>> {
  return ferryd.logs().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>).filter(r => r.level === 'warn')
}

t.test('/debug/ stays on loopback when ferryd listens beyond it', async t => {
  const lab = await Lab.create()
  const dir = await mkdtemp(join(tmpdir(), 'ferry-e2e-'))
  t.teardown(async () => { await lab.close(); await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'empty.yaml'), EMPTY_SVC)
  const run = async (extra: string[]): Promise<LabFerryd> => {
    const ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'lab-node', '--min-sync-period', '100ms', ...extra], { httpPort: PORT })
    await ferryd.waitReady()
    return ferryd
  }
  const node = `http://${LAB.nodeExternalIP}:${PORT}`
  const node6 = `http://[${LAB.nodeExternalIP6}]:${PORT}`

  await t.test('--http-listen 0.0.0.0: warned, /debug/state refused to the client, open paths answer', async t => {
    const ferryd = await run(['--http-listen', `0.0.0.0:${PORT}`])
    t.teardown(async () => { await ferryd.stop() })
    t.match(warnings(ferryd), [{
      msg: /reachable from other hosts/, addresses: [`0.0.0.0:${PORT}`],
      exposes: ['/metrics', '/healthz', '/livez', '/readyz'], debug: /loopback clients only/,
    }], 'one JSON warning on stderr naming the address and what it serves')

    const refused = await get(lab, lab.clientNs, `${node}/debug/state`)
    t.equal(refused.status, 403, 'the client gets 403 for /debug/state')
    t.match(refused.body, `${LAB.clientIP} is not one`)
    t.match(refused.body, /--debug-remote/)
    t.notMatch(refused.body, /demo|empty|10\.96\./, 'and nothing of the state')
    t.equal((await get(lab, lab.clientNs, `${node}/debug/nothing`)).status, 404)
    const metrics = await get(lab, lab.clientNs, `${node}/metrics`)
    t.equal(metrics.status, 200, '/metrics answers the client')
    t.match(metrics.body, /kubeproxy_sync_proxy_rules_last_timestamp_seconds\{ip_family="IPv4"\}/)
    for (const path of ['/healthz', '/livez', '/readyz']) t.equal((await get(lab, lab.clientNs, `${node}${path}`)).status, 200, `${path} answers the client`)

    const local = await ferryd.http('/debug/state')
    t.equal(local.status, 200, 'from 127.0.0.1 on the node: served')
    t.match(JSON.parse(local.body), { nodeName: 'lab-node', objects: { services: 1 } })
    t.equal((await get(lab, lab.nodeNs, `${node}/debug/state`)).status, 403, 'the node itself through its external address is not loopback either')
  })

  await t.test('--http-listen [::]: IPv6 clients refused, loopback of either family served', async t => {
    const ferryd = await run(['--http-listen', `[::]:${PORT}`])
    t.teardown(async () => { await ferryd.stop() })
    t.match(warnings(ferryd), [{ addresses: [`[::]:${PORT}`] }])
    t.equal((await get(lab, lab.clientNs, `${node6}/debug/state`)).status, 403, 'from fd00:77::2')
    t.equal((await get(lab, lab.clientNs, `${node}/debug/state`)).status, 403, 'from 192.168.77.2 (an IPv4-mapped peer)')
    t.equal((await get(lab, lab.clientNs, `${node6}/healthz`)).status, 200)
    t.equal((await get(lab, lab.nodeNs, `http://127.0.0.1:${PORT}/debug/state`)).status, 200, 'from 127.0.0.1 (::ffff:127.0.0.1 on the socket)')
    t.equal((await get(lab, lab.nodeNs, `http://[::1]:${PORT}/debug/state`)).status, 200, 'from ::1')
  })

  await t.test('--debug-remote opens /debug/state to every client, and the warning says so', async t => {
    const ferryd = await run(['--http-listen', `0.0.0.0:${PORT}`, '--debug-remote'])
    t.teardown(async () => { await ferryd.stop() })
    t.match(warnings(ferryd), [{ exposes: ['/metrics', '/healthz', '/livez', '/readyz', '/debug/state'], debug: /--debug-remote/ }])
    const r = await get(lab, lab.clientNs, `${node}/debug/state`)
    t.equal(r.status, 200)
    t.match(JSON.parse(r.body), { nodeName: 'lab-node', objects: { services: 1 } })
  })

  await t.test('the default loopback listener logs no warning', async t => {
    const ferryd = await run([])
    t.teardown(async () => { await ferryd.stop() })
    t.same(warnings(ferryd), [])
    t.match(ferryd.logs(), `"msg":"http listening","address":"127.0.0.1:${PORT}"`)
    t.equal((await ferryd.http('/debug/state')).status, 200)
  })
})
