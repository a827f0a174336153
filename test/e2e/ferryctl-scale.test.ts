// ferryctl at cluster scale against a real etcd with its default limits (--max-txn-ops 128,
// --max-request-bytes 1.5 MiB): 20k objects apply in chunked transactions, read back, re-apply as
// unchanged and delete; one invalid object among them writes nothing; objects too big to share a
// transaction are split by bytes; a transaction failing part way reports what was and was not written.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startEtcd } from '../helpers/etcd.js'
import { ferryctl } from '../helpers/ferryctl.js'

const etcd = await startEtcd(t)
const ctl = ferryctl({ FERRY_ETCD_ENDPOINTS: etcd.endpoint }, { timeoutMs: 120_000, maxBuffer: 256 * 1024 * 1024 })

const ip = (i: number, base: string): string => `${base}.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`
const service = (i: number): Record<string, unknown> => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: `ns-${i % 50}` },
  spec: { clusterIP: ip(i, '10.96'), ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
})
const slice = (i: number, endpoints = 3, nodeName = `node-${i % 100}`): Record<string, unknown> => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { name: `svc-${i}-abc`, namespace: `ns-${i % 50}`, labels: { 'kubernetes.io/service-name': `svc-${i}` } },
  addressType: 'IPv4',
  endpoints: Array.from({ length: endpoints }, (_, k) => ({ addresses: [ip(i * endpoints + k, '10.244')], nodeName, conditions: { ready: true } })),
  ports: [{ name: 'http', port: 8080 }],
})

/** `services` Services and as many EndpointSlices, as JSON `kind: List` files of 1000 objects. */
function generate (dir: string, services: number, edit?: (o: Record<string, unknown>, i: number) => void): string {
  mkdirSync(dir, { recursive: true })
  const all: Array<Record<string, unknown>> = []
  for (let i = 0; i < services; i++) all.push(service(i), slice(i))
  all.forEach((o, i) => edit?.(o, i))
  for (let f = 0; f * 1000 < all.length; f++) {
    writeFileSync(join(dir, `part-${String(f).padStart(3, '0')}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: all.slice(f * 1000, (f + 1) * 1000) }))
  }
  return dir
}

const count = async (resource: string): Promise<number> => {
  const r = await ctl(['get', resource, '-A', '-o', 'json'])
  if (r.code !== 0) throw new Error(r.stderr)
  return (JSON.parse(r.stdout) as { items: unknown[] }).items.length
}

t.test('20k objects: apply in chunks, read back, apply again unchanged, delete', async t => {
  const dir = generate(t.testdir(), 10_000)
  const first = await ctl(['apply', '-f', dir])
  t.equal(first.code, 0, first.stderr.slice(0, 2000))
  const lines = first.stdout.trimEnd().split('\n')
  t.equal(lines.length, 20_000, 'one stdout line per object')
  t.equal(lines[0], 'service/svc-0 created', 'input order')
  t.equal(lines.filter(l => l.endsWith(' created')).length, 20_000)
  t.match(first.stderr, /^applied \d+\/20000 objects \(transaction \d+ of 157\)\n/, 'progress on stderr')
  t.match(first.stderr, /applied 20000\/20000 objects \(transaction 157 of 157\)\n/, 'progress reaches the end')
  t.match(first.stderr, /applied 20000 objects: 20000 created, 0 configured, 0 unchanged \(157 transactions\)\n$/, 'summary on stderr')
  t.equal(await count('services'), 10_000, 'every Service is in etcd')
  t.equal(await count('endpointslices'), 10_000, 'every EndpointSlice is in etcd')

  const before = await etcd.revision()
  const again = await ctl(['apply', '-f', dir])
  t.equal(again.code, 0, again.stderr)
  t.equal(again.stdout.trimEnd().split('\n').filter(l => l.endsWith(' unchanged')).length, 20_000, 'all unchanged')
  t.match(again.stderr, /applied 20000 objects: 0 created, 0 configured, 20000 unchanged \(0 transactions\)/)
  t.equal(await etcd.revision(), before, 'nothing written')

  // A tenth of them edited or deleted: still several transactions, and only those objects touched.
  const some = generate(t.testdir(), 1000, (o, i) => { if (i % 100 === 0) (o.metadata as Record<string, unknown>).labels = { edited: 'yes' } })
  const third = await ctl(['apply', '-f', some])
  t.equal(third.code, 0, third.stderr)
  t.match(third.stderr, /applied 2000 objects: 0 created, 20 configured, 1980 unchanged \(1 transaction\)/, 'only the changes are written')
  const gone = await ctl(['delete', '-f', some])
  t.equal(gone.code, 0, gone.stderr)
  t.equal(gone.stdout.trimEnd().split('\n').length, 2000)
  t.match(gone.stderr, /deleted 2000\/2000 objects \(transaction 16 of 16\)/, 'delete is chunked too')
  t.equal(await count('services'), 9000)
})

t.test('one invalid object among 20k writes nothing', async t => {
  const dir = generate(t.testdir(), 10_000, (o, i) => {
    if (i === 13_576) (o.spec as Record<string, unknown>).clusterIP = '10.96.0.300'
  })
  const before = await etcd.revision()
  const r = await ctl(['apply', '-f', dir])
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.equal(await count('services'), 9000, 'the Services deleted above were not re-created')
  t.match(r.stderr, /^error: Service "ns-38\/svc-6788" \(.*part-013\.json.*\): spec\.clusterIP: Invalid value: "10\.96\.0\.300"/)
  t.match(r.stderr, /1 problem\(s\) found; nothing was written/)
  t.equal(await etcd.revision(), before, 'etcd unchanged')
})

t.test('objects are split by bytes; an oversized one is refused before anything is written', async t => {
  // etcd with a 128 KiB request limit; 8 slices of ~40 KB are far under 128 operations but not under it.
  const small = await startEtcd(t, { args: ['--max-request-bytes', '131072'] })
  const limit = ['--etcd-endpoints', small.endpoint, '--max-request-bytes', '131072']
  const dir = t.testdir()
  writeFileSync(join(dir, 'big.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: Array.from({ length: 8 }, (_, i) => slice(i, 400)) }))
  const r = await ctl(['apply', '-f', dir, ...limit])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.trimEnd().split('\n').length, 8)
  t.match(r.stderr, /applied 8\/8 objects \(transaction 3 of 3\)/, 'three transactions of at most ~115 KB')
  t.equal(await keyCount(small.endpoint), 8)
  const whole = await ctl(['apply', '-f', dir, '--etcd-endpoints', small.endpoint])
  t.equal(whole.code, 0, 'unchanged: nothing to write')

  const huge = t.testdir()
  writeFileSync(join(huge, 'huge.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [service(1), slice(9, 4000)] }))
  const before = await small.revision()
  const h = await ctl(['apply', '-f', huge, ...limit])
  t.equal(h.code, 1)
  t.match(h.stderr, /^error: endpointslice\/ns-9\/svc-9-abc: \d+ bytes stored is more than one etcd request may carry .*nothing written/)
  t.equal(await small.revision(), before, 'nothing written')

  // ferryctl told 16 MiB packs two ~90 KB slices into transaction 2; etcd (128 KiB) refuses it after
  // transaction 1 (two small Services) has landed.
  const two = t.testdir()
  writeFileSync(join(two, 'a.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [service(90_001), service(90_002), slice(90_001, 1000), slice(90_002, 1000)] }))
  const p = await ctl(['apply', '-f', two, '--etcd-endpoints', small.endpoint, '--max-txn-ops', '2', '--max-request-bytes', String(16 * 1024 * 1024)])
  t.equal(p.code, 1)
  t.equal(p.stdout, 'service/svc-90001 created\nservice/svc-90002 created\n', 'what was written is listed')
  t.match(p.stderr, /error: etcd apply: transaction 2 of 2 failed \(etcd apply failed: .*too large.*\); 2 of 4 objects were written, the other 2 were not\. A batch over one transaction is not atomic; run the command again to finish/)
  t.equal(await keyCount(small.endpoint), 10, 'the first transaction landed, the second did not')
})

t.test('a --max-txn-ops above etcd\'s own fails before writing; a bad value is a usage error', async t => {
  const dir = generate(t.testdir(), 100, (o, i) => { (o.metadata as Record<string, unknown>).name = `other-${i}` })
  const tooMany = await ctl(['apply', '-f', dir, '--max-txn-ops', '200'])
  t.equal(tooMany.code, 1)
  t.match(tooMany.stderr, /^error: etcd read failed: .*too many operations.*; nothing was written/)
  const bad = await ctl(['apply', '-f', dir, '--max-txn-ops', '0'])
  t.match(bad.stderr, /^error: --max-txn-ops: must be a positive integer, got "0"/)
})

async function keyCount (endpoint: string): Promise<number> {
  const { Etcd3 } = await import('etcd3')
  const c = new Etcd3({ hosts: endpoint })
  try { return await c.getAll().prefix('/ferry/v1/').count() } finally { c.close() }
}
