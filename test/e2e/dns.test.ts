// Cluster DNS end to end: ferryd serving a manifest directory in a lab node, asked by real dig over UDP
// and TCP, forwarding to a real resolver (unbound, resolving example.test from a real NSD), and a pod's
// own resolver (resolv.conf with the search path and ndots:5) resolving a short name and connecting
// through ferry's rules.
import t from 'tap'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFerryd } from '../../pkg/lab/ferryd.js'
import { LAB, type Lab } from '../../pkg/lab/lab.js'
import { startNsd } from '../helpers/nsd.js'
import { startUnbound } from '../helpers/unbound.js'
import { webLab, webManifests, waitUntil } from '../helpers/web-lab.js'

const DNS = '127.0.0.1'
// ferryd forwards to a resolver (which sets RA, as a cluster's upstream does); it asks the authority.
const AUTHORITY = { address: '127.0.0.2', port: 53 }
const UPSTREAM = { address: '127.0.0.3', port: 53 }

async function dig (lab: Lab, args: string[], ns?: string): Promise<string> {
  return (await lab.sh(['dig', `@${DNS}`, '+time=2', '+tries=1', ...args], ns)).trim()
}

/** The status and the answer section's data, from dig's default output. */
async function ask (lab: Lab, name: string, type = 'A', extra: string[] = []): Promise<{ status: string, answers: string[] }> {
  const out = await dig(lab, ['+noall', '+comments', '+answer', ...extra, name, type])
  const status = /status: (\w+)/.exec(out)?.[1] ?? 'none'
  const answers = out.split('\n').filter(l => l !== '' && !l.startsWith(';')).map(l => l.split(/\s+/).slice(4).join(' '))
  return { status, answers }
}

const serviceYAML = (name: string, ip: string): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: demo}
spec:
  clusterIP: ${ip}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: demo, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: ["10.244.0.11"], conditions: {ready: true}}]
`

t.test('ferryd answers cluster names, forwards the rest, and publishes a name only once it routes', async t => {
  const { lab, dir, client } = await webLab(t)
  await writeFile(join(dir, 'web.yaml'), webManifests(['10.244.0.11', '10.244.0.12', '10.244.0.13']))
  const nsd = await startNsd(lab, { ...AUTHORITY, zone: 'example.test', records: ['www IN A 198.51.100.7', 'big IN TXT "' + 'x'.repeat(200) + '"'] })
  t.teardown(nsd.stop)
  const unbound = await startUnbound(lab, { ...UPSTREAM, stub: { zone: 'example.test', ...AUTHORITY } })
  t.teardown(unbound.stop)
  // The pod's resolver, as kubelet writes it (DNS.md §3.1); `ip netns exec` mounts it over /etc/resolv.conf.
  const etc = `/etc/netns/${client.ns}`
  await mkdir(etc, { recursive: true })
  t.teardown(async () => { await rm(etc, { recursive: true, force: true }) })
  await writeFile(join(etc, 'resolv.conf'), `nameserver ${LAB.podGateway}\nsearch demo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`)

  // A long min sync period leaves a window in which the cache has a change the kernel does not.
  const ferryd = startFerryd(lab, ['--manifests', dir, '--node-name', 'lab-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '3s',
    '--dns-listen', `${DNS}:53`, '--dns-listen', `${LAB.podGateway}:53`, '--dns-upstream', `${UPSTREAM.address}:${UPSTREAM.port}`])
  t.teardown(async () => { await ferryd.stop() })
  await ferryd.waitReady()

  await t.test('cluster names over UDP and TCP, case kept', async t => {
    // Negative answers share one SOA object: each name still gets its own well-formed reply.
    for (const n of ['a.svc.cluster.local', 'bb.b.svc.cluster.local', 'ccc.cluster.local', 'a.svc.cluster.local']) {
      t.same(await ask(lab, n), { status: 'NXDOMAIN', answers: [] }, n)
    }
    t.same(await ask(lab, 'web.demo.svc.cluster.local'), { status: 'NOERROR', answers: ['10.96.0.10'] })
    t.same(await ask(lab, 'web.demo.svc.cluster.local', 'A', ['+tcp']), { status: 'NOERROR', answers: ['10.96.0.10'] }, 'over TCP')
    const mixed = await dig(lab, ['+noall', '+answer', 'WeB.Demo.SVC.cluster.local', 'A'])
    t.match(mixed, /^WeB\.Demo\.SVC\.cluster\.local\.\s+\d+\s+IN\s+A\s+10\.96\.0\.10$/m, 'the question\'s case is kept in the answer')
    t.same(await ask(lab, '_http._tcp.web.demo.svc.cluster.local', 'SRV'), { status: 'NOERROR', answers: ['0 100 80 web.demo.svc.cluster.local.'] })
    t.same(await ask(lab, '10.0.96.10.in-addr.arpa', 'PTR'), { status: 'NOERROR', answers: ['web.demo.svc.cluster.local.'] })
    t.same(await ask(lab, 'web.demo.svc.cluster.local', 'AAAA'), { status: 'NOERROR', answers: [] }, 'NODATA for the other family')
    t.same(await ask(lab, 'nope.demo.svc.cluster.local'), { status: 'NXDOMAIN', answers: [] })
  })

  // The odd corners of CoreDNS's kubernetes plugin (pods insecure, as kubeadm): labels in front of a pod
  // name, SRV on a pod name, and ns.dns's TXT (NODATA: here ferry departs from CoreDNS on purpose).
  await t.test('pod names answer as CoreDNS does; ns.dns keeps NODATA for its other types', async t => {
    t.same(await ask(lab, 'x.10-244-0-11.demo.pod.cluster.local'), { status: 'NOERROR', answers: ['10.244.0.11'] }, 'one label in front')
    t.same(await ask(lab, 'a.b.c.10-244-0-11.demo.pod.cluster.local'), { status: 'NXDOMAIN', answers: [] }, 'three are too many')
    t.same(await ask(lab, '10-244-0-11.demo.pod.cluster.local', 'SRV'), { status: 'NOERROR', answers: ['0 100 0 10-244-0-11.demo.pod.cluster.local.'] })
    t.same(await ask(lab, 'ns.dns.cluster.local', 'TXT'), { status: 'NOERROR', answers: [] }, 'NODATA, where CoreDNS says NXDOMAIN for a name that has A records')
    t.same(await ask(lab, 'ns.dns.cluster.local', 'MX'), { status: 'NOERROR', answers: [] })
  })

  await t.test('other names go to the upstream (a real resolver), over UDP and TCP', async t => {
    t.same(await ask(lab, 'www.example.test'), { status: 'NOERROR', answers: ['198.51.100.7'] })
    t.same(await ask(lab, 'www.example.test', 'A', ['+tcp']), { status: 'NOERROR', answers: ['198.51.100.7'] })
    t.same((await ask(lab, 'missing.example.test')).status, 'NXDOMAIN')
    const first = await dig(lab, ['+noall', '+answer', 'www.example.test'])
    await new Promise(resolve => setTimeout(resolve, 1100))
    const again = await dig(lab, ['+noall', '+answer', 'www.example.test'])
    const ttl = (s: string): number => Number(s.split(/\s+/)[1])
    t.ok(ttl(again) < ttl(first), `the cached answer's TTL counts down (${ttl(first)} then ${ttl(again)})`)
    t.match((await ferryd.http('/metrics')).body, /coredns_cache_hits_total\{[^}]*type="success"[^}]*\} [1-9]/, 'served from the cache')
  })

  // CoreDNS's kubernetes plugin writes AA without RA (dig warns "recursion requested but not available");
  // forward passes the upstream's flags on, RA included, and cache keeps them.
  await t.test('header flags: a cluster answer is AA without RA, a forwarded one keeps the resolver\'s RA', async t => {
    const flags = async (name: string): Promise<{ flags: string[], out: string }> => {
      const out = await dig(lab, ['+noall', '+comments', name, 'A'])
      return { flags: (/flags: ([a-z ]*);/.exec(out)?.[1] ?? '').trim().split(/\s+/), out }
    }
    const cluster = await flags('web.demo.svc.cluster.local')
    t.same(cluster.flags, ['qr', 'aa', 'rd'], 'cluster name: aa, no ra')
    t.match(cluster.out, /recursion requested but not available/, 'dig warns, as it does against CoreDNS')
    // Asked above, so this is a cache hit: AA added, the resolver's RA kept.
    t.same((await flags('www.example.test')).flags, ['qr', 'aa', 'rd', 'ra'], 'forwarded name (cached): ra')
    t.same((await flags('fresh.example.test')).flags, ['qr', 'rd', 'ra'], 'forwarded name (a miss): the resolver\'s own flags')
  })

  await t.test('a pod resolves a short name through its search path and connects to it', async t => {
    const r = await lab.sh(['getent', 'ahostsv4', 'web'], client.ns)
    t.match(r, /^10\.96\.0\.10\s/, 'web → web.demo.svc.cluster.local via the search path')
    const got = await lab.sh(['curl', '-sS', '--max-time', '3', 'http://web/'], client.ns)
    t.match(got.trim(), /^web-\d 10\.244\.0\.50$/, 'and the name connects through the ClusterIP rules')
    const t0 = Date.now()
    const ext = await lab.sh(['getent', 'ahostsv4', 'www.example.test'], client.ns)
    t.ok(Date.now() - t0 < 2000, `in ${Date.now() - t0} ms: every search-list miss answered at once (no resolver timeout)`)
    t.match(ext, /^198\.51\.100\.7\s/, 'an outside name from the pod, after the search list misses')
  })

  await t.test('a new Service resolves only once its rules are in the kernel', async t => {
    // The runner lets SYNC_BURST (2) syncs run back to back, then one per --min-sync-period (3 s): two
    // Services programmed one after the other spend both, so `late` waits about 3 s in the cache.
    for (const [name, ip] of [['early', '10.96.0.28'], ['early2', '10.96.0.29']] as const) {
      await writeFile(join(dir, `${name}.yaml`), serviceYAML(name, ip))
      await waitUntil(`${name} resolves`, async () => (await ask(lab, `${name}.demo.svc.cluster.local`)).answers.length > 0)
    }
    await writeFile(join(dir, 'late.yaml'), serviceYAML('late', '10.96.0.30'))
    let sawPending = false
    let resolvedAt = 0
    const t0 = Date.now()
    while (Date.now() - t0 < 15_000) {
      const a = await ask(lab, 'late.demo.svc.cluster.local')
      if (a.status === 'NOERROR' && a.answers.length > 0) {
        resolvedAt = Date.now() - t0
        // Connect at once: a name that resolves must route.
        const r = await lab.get('http://10.96.0.30/', client.ns, 2)
        t.match(r, { ok: true, body: /^web-1 / }, `the first answer (after ${resolvedAt} ms) connects`)
        break
      }
      t.equal(a.status, 'NXDOMAIN', 'before that, the name does not exist')
      const state = JSON.parse((await ferryd.http('/debug/state')).body) as { dns: { pendingChanges: number } }
      if (state.dns.pendingChanges > 0) sawPending = true
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    t.ok(resolvedAt > 0, 'it resolves in the end')
    t.ok(sawPending, 'the cache had the Service while DNS held it back for the proxy')
  })

  await t.test('a deleted Service becomes NXDOMAIN', async t => {
    await rm(join(dir, 'late.yaml'))
    await waitUntil('late is NXDOMAIN', async () => (await ask(lab, 'late.demo.svc.cluster.local')).status === 'NXDOMAIN')
    t.same(await ask(lab, 'late.demo.svc.cluster.local'), { status: 'NXDOMAIN', answers: [] })
    // Reverse names the cluster does not know go upstream, as kubeadm's `fallthrough in-addr.arpa`.
    t.same((await ask(lab, '30.0.96.10.in-addr.arpa', 'PTR')).answers, [], 'its PTR goes with it')
  })

  await t.test('DNS metrics and readiness', async t => {
    const m = (await ferryd.http('/metrics')).body
    t.match(m, /coredns_dns_requests_total\{server="dns:\/\/127\.0\.0\.1:53",zone="\.",view="",proto="tcp",family="1",type="A"\} [1-9]/)
    t.match(m, /coredns_dns_responses_total\{[^}]*rcode="NXDOMAIN"[^}]*\} [1-9]/)
    t.match(m, /coredns_proxy_request_duration_seconds_count\{[^}]*proxy_name="forward"[^}]*to="127\.0\.0\.3:53"/)
    t.match(m, /coredns_dns_request_duration_seconds_bucket/)
    t.equal((await ferryd.http('/readyz')).status, 200)
  })
})
