// The iptables backend against the real kernel, inside throwaway network namespaces (root only).
//
//   client (192.168.77.2) --veth-- node (192.168.77.1; 10.244.0.1 on each pod veth) --veth-- pod1..3 (10.244.1.N)
//
// The lab (pkg/lab) builds it; the node netns gets the rules through IptablesBackend (exec wrapped in
// `ip netns exec`); each pod answers HTTP on :8080 with its name. The node's default route is a black
// hole, so traffic to a service without rules is forwarded (and REJECTed by ferry's filter rules).
import t from 'tap'
import { IptablesBackend } from '../../pkg/proxy/iptables/backend.js'
import { desired, ep, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import { netnsExec } from '../../pkg/exec/exec.js'
import { Lab, LAB, type Pod } from '../../pkg/lab/lab.js'
import type { Variant } from '../../pkg/proxy/iptables/restore.js'
import { servicePortKey, type DesiredServicePort } from '../../pkg/proxy/types.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
  process.exit(0)
}

let lab: Lab
const PODS: Pod[] = []
t.before(async () => {
  lab = await Lab.create()
  for (let i = 1; i <= 3; i++) PODS.push(await lab.addPod(`pod${i}`, `10.244.1.${i}`))
})
t.teardown(async () => { await lab.close() })

const hits = async (url: string, n: number): Promise<Map<string, number>> => await lab.spread(url, n)
const natSave = async (variant: Variant): Promise<string> => await lab.sh([`iptables-${variant}-save`])
const NODE_IP = LAB.nodeExternalIP
const backend = (variant: Variant): IptablesBackend => new IptablesBackend({ family: 'IPv4', exec: netnsExec(lab.nodeNs), variant, clusterCIDR: LAB.podCIDR })

const pod = (i: number): ReturnType<typeof ep> => ep(`10.244.1.${i + 1}`, 8080)
const web = desired(svcInfo({ name: 'web', clusterIP: '172.30.0.10', nodePort: 30080 }), { cluster: [pod(0), pod(1), pod(2)] })
const api = desired(svcInfo({ name: 'api', clusterIP: '172.30.0.11' }), { cluster: [pod(0)] })
const empty = desired(svcInfo({ name: 'empty', clusterIP: '172.30.0.12', nodePort: 30082 }), { cluster: [], hasAny: false })
const sticky = desired(svcInfo({ name: 'sticky', clusterIP: '172.30.0.13', stickyMaxAgeSeconds: 10800 }), { cluster: [pod(0), pod(1), pod(2)] })
const key = (s: DesiredServicePort): string => servicePortKey(s.info)

for (const variant of ['legacy', 'nft'] as const) {
  t.test(`${variant}: traffic through ferry's rules`, async t => {
    const be = backend(variant)
    const r = await be.sync(stateOf([web, api, empty, sticky]), null)
    t.equal(r.kind, 'full')

    const everyPod = new Set(PODS.map(p => p.name))
    t.same(new Set((await hits('http://172.30.0.10/', 45)).keys()), everyPod, 'ClusterIP reaches every backend')
    t.same(new Set((await hits(`http://${NODE_IP}:30080/`, 45)).keys()), everyPod, 'NodePort reaches every backend')

    for (const url of ['http://172.30.0.12/', `http://${NODE_IP}:30082/`]) {
      const c = await lab.get(url, lab.clientNs, 4)
      t.match(c, { ok: false, error: 'refused' }, `${url} is refused`)
      // A timeout takes 5 s; a refusal comes at once or, if the first ICMP error meets the socket lock, on
      // the 1 s SYN retransmission, later still on a loaded host.
      if (!c.ok) t.ok(c.ms < 3500, `${url} refused, not timed out (${c.ms} ms)`)
    }

    const stuck = await hits('http://172.30.0.13/', 10)
    t.equal(stuck.size, 1, `ClientIP affinity sticks to one backend: ${JSON.stringify([...stuck])}`)
    t.ok([...stuck.keys()].every(k => everyPod.has(k)))

    // Partial sync: api moves from pod1 to pod2; web must keep working throughout. The web rules carry
    // packet counters from the traffic above: a chain the restore rewrote would start again from zero.
    const webCounted = async (): Promise<string[]> => (await lab.sh([`iptables-${variant}-save`, '-c', '-t', 'nat']))
      .split('\n').filter(l => /^\[\d+:\d+\] -A FERRY-(SVC|SEP)-/.test(l) && l.includes('ns1/web'))
    const counted = await webCounted()
    t.ok(counted.filter(l => !l.startsWith('[0:0]')).length >= 4, 'web traffic counted in its SVC and SEP rules')
    const api2 = desired(api.info, { cluster: [pod(1)] })
    const p = await be.sync(stateOf([web, api2, empty, sticky]), new Set([key(api)]))
    t.equal(p.kind, 'partial')
    t.same(await webCounted(), counted, "the unchanged service's rules keep their packet counters: not rewritten")
    t.same([...(await hits('http://172.30.0.11/', 5)).keys()], ['pod2'], 'changed service follows its new endpoint')
    t.same(new Set((await hits('http://172.30.0.10/', 45)).keys()), everyPod, 'unchanged service still reaches every backend')
    const after = await natSave(variant)

    // Deleting a service removes its chains.
    const svcChain = `FERRY-SVC-${/-A FERRY-SERVICES .*-d 172\.30\.0\.10\/32 .*-j FERRY-SVC-(\w+)/.exec(after)?.[1] ?? 'missing'}`
    t.match(after, `:${svcChain} `)
    await be.sync(stateOf([api2, empty, sticky]), new Set([key(web)]))
    const gone = await natSave(variant)
    t.notMatch(gone, svcChain, 'deleted service chain removed')
    t.notMatch(gone, /ns1\/web/, 'no rule mentions the deleted service')
    t.match(gone, /ns1\/api/)

    await be.cleanup()
    const clean = await natSave(variant)
    t.notMatch(clean, /FERRY-/, 'cleanup leaves no FERRY- chain or jump')
    t.notMatch(await lab.sh([`iptables-${variant}-save`, '-t', 'mangle']), /FERRY-/)
  })
}

t.test('a restarted backend deletes leftovers without a gap', async t => {
  const old = backend('legacy')
  await old.sync(stateOf([web, api]), null)
  const fresh = backend('legacy')
  await fresh.sync(stateOf([web]), null)
  const text = await natSave('legacy')
  t.notMatch(text, /ns1\/api/, 'leftover chains of a service gone while the daemon was down are deleted')
  t.equal(text.split('\n').filter(l => l.startsWith('-A PREROUTING') && l.includes('FERRY-SERVICES')).length, 1, 'jumps are not duplicated')
  t.same(new Set((await hits('http://172.30.0.10/', 45)).keys()), new Set(PODS.map(p => p.name)))
  await fresh.cleanup()
  t.notMatch(await natSave('legacy'), /FERRY-/)
})
