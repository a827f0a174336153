// Fuzz (issue 9): thousands of mutated manifests, YAML and JSON, through the decoder and the manifest
// source. Nothing throws, every problem is a catalogued error naming its file, every object that comes
// out is valid, and the source keeps serving the last good state of every other file.
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeManifests } from '../../pkg/api/decode.js'
import { KINDS } from '../../pkg/api/types.js'
import { validateObject } from '../../pkg/api/validate.js'
import { ClusterStore } from '../../pkg/cache/store.js'
import { ErrorCodes } from '../../pkg/errors/errors.js'
import { ManifestSource } from '../../pkg/source/manifests.js'
import { mutate, rng } from '../helpers/fuzz.js'
import { webManifests } from '../helpers/web-lab.js'

const WEB = webManifests(['10.244.0.11', '10.244.0.12'])
const ANCHORED = `apiVersion: v1
kind: Node
metadata: {name: n1, labels: &l {zone: a, rack: r1}}
spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24]}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: demo, labels: *l}
spec: {nodeName: n1, containers: [{name: c, ports: [{containerPort: 80}]}]}
status: {podIP: 10.244.1.5, podIPs: [{ip: 10.244.1.5}]}
`
const LIST_JSON = JSON.stringify({
  apiVersion: 'v1',
  kind: 'List',
  items: [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'x' }, spec: { type: 'LoadBalancer', clusterIP: '10.96.1.1', ports: [{ port: 443, nodePort: 30443 }], externalTrafficPolicy: 'Local', healthCheckNodePort: 30999 }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's-1', namespace: 'x', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.0.9'], conditions: { ready: true }, zone: 'a', hints: { forZones: [{ name: 'a' }] } }], ports: [{ port: 8443 }] },
  ],
}, null, 2)
const CORPUS: Array<[string, string]> = [['web.yaml', WEB], ['anchored.yaml', ANCHORED], ['list.json', LIST_JSON], ['list-as.yaml', LIST_JSON]]

t.test('3000 mutated manifests through the decoder', async t => {
  const r = rng(9)
  const outcomes = { objects: 0, errors: 0, thrown: 0 }
  const problems: string[] = []
  for (let i = 0; i < 3000; i++) {
    const [origin, base] = CORPUS[i % CORPUS.length] as [string, string]
    const text = mutate(base, r)
    let res
    try { res = decodeManifests(text, origin) } catch (e) {
      outcomes.thrown++
      problems.push(`#${i} threw ${String(e)} on ${JSON.stringify(text.slice(0, 200))}`)
      continue
    }
    outcomes.objects += res.objects.length
    outcomes.errors += res.errors.length
    for (const e of res.errors) {
      if (!(e.code in ErrorCodes)) problems.push(`#${i} uncatalogued code ${e.code}`)
      if (!e.message.includes(origin)) problems.push(`#${i} error does not name ${origin}: ${e.message}`)
    }
    for (const o of res.objects) {
      if (!KINDS.includes(o.kind)) problems.push(`#${i} object of kind ${String(o.kind)}`)
      try { validateObject(JSON.parse(JSON.stringify(o)), 'recheck') } catch (e) { problems.push(`#${i} an object out of the decoder fails validation again: ${String(e)}`) }
      if (Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')) problems.push(`#${i} polluted Object.prototype`)
    }
  }
  t.same(problems.slice(0, 5), [], 'no throw, catalogued errors naming the file, only valid objects')
  t.equal(outcomes.thrown, 0)
  t.ok(outcomes.objects > 100 && outcomes.errors > 100, `both outcomes exercised: ${JSON.stringify(outcomes)}`)
})

t.test('300 mutated files through the manifest source: the good file keeps serving', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-fuzz-'))
  const store = new ClusterStore()
  let reported = 0
  store.onError(() => { reported++ })
  const src = new ManifestSource({ path: dir, pollMs: 60_000, debounceMs: 5_000 })
  t.teardown(async () => { await src.stop(); await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'web.yaml'), WEB)
  await src.start(store)
  const good = JSON.stringify(store.get('Service', 'demo', 'web'))
  const r = rng(99)
  let lost = 0
  for (let i = 0; i < 300; i++) {
    const [origin, base] = CORPUS[i % CORPUS.length] as [string, string]
    const ext = origin.endsWith('.json') ? 'json' : 'yaml'
    // Sorted after web.yaml, so a mutated copy of web never wins the duplicate.
    await writeFile(join(dir, `zz-fuzz.${ext}`), mutate(base, r))
    await src.reload()
    if (JSON.stringify(store.get('Service', 'demo', 'web')) !== good) lost++
  }
  t.equal(lost, 0, 'demo/web is served unchanged after every mutation')
  t.ok(reported > 0, `the bad ones were reported (${reported} errors)`)
})
