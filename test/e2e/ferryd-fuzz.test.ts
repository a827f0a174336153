// Fuzz through the real daemon (issue 9): a stream of mutated manifests lands next to a good one while
// ferryd runs. It stays up, probes stay green, and the good Service keeps answering from the kernel.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFerryd } from '../../pkg/lab/ferryd.js'
import { LAB } from '../../pkg/lab/lab.js'
import { mutate, rng } from '../helpers/fuzz.js'
import { EMPTY_SVC, waitUntil, webLab, webManifests } from '../helpers/web-lab.js'

const ALL = ['10.244.0.11', '10.244.0.12', '10.244.0.13']

t.test('ferryd under 200 mutated manifests keeps the last good state in the kernel', async t => {
  const { lab, dir, client } = await webLab(t)
  const web = webManifests(ALL)
  await writeFile(join(dir, 'web.yaml'), web)
  const ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'lab-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '100ms'])
  t.teardown(async () => { await ferryd.stop('SIGKILL') })
  await ferryd.waitReady()

  const corpus = [web, EMPTY_SVC, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'other', namespace: 'demo' }, spec: { clusterIP: '10.96.0.40', ports: [{ port: 80, targetPort: 8080 }] } }] })]
  const r = rng(2026)
  let answeredDuring = 0
  for (let i = 0; i < 200; i++) {
    const base = corpus[i % corpus.length] ?? web
    // Sorted after web.yaml, so a mutated copy of demo/web never wins the duplicate.
    await writeFile(join(dir, i % 3 === 2 ? 'zz-fuzz.json' : 'zz-fuzz.yaml'), mutate(base, r))
    await new Promise(resolve => setTimeout(resolve, 40))
    if (i % 20 === 19) {
      if (ferryd.proc.exitCode !== null) break
      if ((await lab.get('http://10.96.0.10/', client.ns)).ok) answeredDuring++
    }
  }
  t.equal(ferryd.proc.exitCode, null, 'ferryd is still running')
  t.equal(answeredDuring, 10, 'web answered at every check during the storm')
  await writeFile(join(dir, 'zz-fuzz.yaml'), '')
  await writeFile(join(dir, 'zz-fuzz.json'), '{"apiVersion": "v1", "kind": "List", "items": []}')
  await t.resolves(waitUntil('healthz 200', async () => (await ferryd.http('/healthz')).status === 200), 'probes are green')
  const spread = await lab.spread('http://10.96.0.10/', 45, client.ns)
  t.same([...spread.keys()].sort(), ['web-1', 'web-2', 'web-3'], 'the ClusterIP reaches every endpoint')
  const np = await lab.spread(`http://${LAB.nodeExternalIP}:30080/`, 45)
  t.same([...np.keys()].sort(), ['web-1', 'web-2', 'web-3'], 'the NodePort reaches every endpoint')
  t.match((await ferryd.http('/metrics')).body, /^ferry_source_errors_total\{code="FERRY_ERR_\w+"\} [1-9]/m, 'the bad inputs were counted')
})
