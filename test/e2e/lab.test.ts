// The netns lab itself: pods are reachable from the node and the client through plain routing,
// and close() leaves no namespace behind.
import t from 'tap'
import { spawnExec } from '../../pkg/exec/exec.js'
import { Lab, LAB } from '../../pkg/lab/lab.js'

t.test('lab wires pods, node and client with real routing', async t => {
  const lab = await Lab.create()
  t.teardown(async () => { await lab.close() })
  const a = await lab.addPod('a', '10.244.0.11')
  await lab.addPod('b', '10.244.0.12')
  const fromClient = await lab.get(`http://${a.ip}:8080/`)
  t.same(fromClient, { ok: true, body: `a ${LAB.clientIP}` }, 'client reaches pod a, source address preserved')
  const fromPod = await lab.get('http://10.244.0.12:8080/', a.ns)
  t.same(fromPod, { ok: true, body: 'b 10.244.0.11' }, 'pod a reaches pod b through the node')
  t.same(await lab.get(`http://[${a.ip6}]:8080/`), { ok: true, body: `a ${LAB.clientIP6}` }, 'IPv6: client reaches pod a')
  t.same(await lab.get('http://[fd00:10:244::c]:8080/', a.ns), { ok: true, body: `b ${a.ip6}` }, 'IPv6: pod a reaches pod b')
  const closedPort = await lab.get('http://10.244.0.12:9/', a.ns)
  t.match(closedPort, { ok: false, error: 'refused' }, 'a closed port is refused, not a timeout')
  await lab.close()
  const left = (await spawnExec(['ip', 'netns', 'list'])).stdout
  t.notMatch(left, `fy${lab.id}`, 'close() removes every namespace')
})
