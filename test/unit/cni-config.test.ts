// ferry-cni's network configuration: the network name rule (SPEC §"Configuration format", libcni's
// ValidateNetworkName), which every verb enforces before the name reaches a path, a chain or a comment;
// and how fields are decoded (null as absent, like the Go plugins).
import t from 'tap'
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { conf, env, harness, NETNS_A, NODE_FILE, NODE_V4 } from './fixtures/cni.js'
import { makeFuncs } from '../../cni-plugin/commands.js'
import { FakeDataplane } from '../../cni-plugin/dataplane-fake.js'
import { dispatch } from '../../cni-plugin/skel.js'
import { openDiskIpam } from '../../pkg/ipam/disk.js'

const BAD_NAMES = ['..', '../escape', 'a/b', '/abs', '.hidden', 'my net', ' lead', 'tab\there', 'x\n-A POSTROUTING -j ACCEPT', '-dash', '_under', 'ünïcode', 'semi;colon']
const GOOD_NAMES = ['ferry', 'a', '0net', 'cbr0.v4', 'pod_net-1', 'a..b']

const verbs: Record<string, Record<string, string>> = {
  ADD: env('ADD'),
  DEL: env('DEL'),
  CHECK: env('CHECK'),
  GC: { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' },
  STATUS: { CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' },
}

t.test('network name: every verb rejects a name outside libcni\'s rule with code 7, before touching anything', async t => {
  for (const name of BAD_NAMES) {
    for (const [verb, e] of Object.entries(verbs)) {
      const h = harness()
      const r = await h.run(e, conf('1.1.0', { name, ipMasq: true, prevResult: {}, 'cni.dev/valid-attachments': [] }))
      const what = `${verb} ${JSON.stringify(name)}`
      t.equal(r.code, 1, `${what}: exit 1`)
      t.same(r.out, { cniVersion: '1.1.0', code: 7, msg: 'invalid characters found in network name', details: name }, `${what}: error JSON`)
      t.same(h.ipamOpens, [], `${what}: no IPAM store opened`)
      t.same(h.dp.calls, [], `${what}: no kernel change`)
    }
  }
})

t.test('network name: empty is "missing network name", code 7', async t => {
  const h = harness()
  const r = await h.run(env('ADD'), conf('1.0.0', { name: '' }))
  t.same([r.code, r.out?.code, r.out?.msg], [1, 7, 'missing network name'])
  t.same(h.dp.calls, [])
})

t.test('network name: names the rule allows work', async t => {
  for (const name of GOOD_NAMES) {
    const h = harness()
    const r = await h.run(env('ADD'), conf('1.1.0', { name }))
    t.equal(r.code, 0, `${name}: ${r.raw}`)
    t.equal(h.ipamOpens[0]?.network, name)
  }
})

t.test('network name: a hostile name creates nothing beside or outside the IPAM data directory', async t => {
  const root = mkdtempSync(join(tmpdir(), 'fy-cni-name-'))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }) })
  const dataDir = join(root, 'networks')
  mkdirSync(dataDir)
  const dp = new FakeDataplane()
  dp.addNetns(NETNS_A)
  const funcs = makeFuncs({
    dataplane: dp,
    openIpam: (o) => openDiskIpam({ ...o, dataDir }),
    readFile: async (path) => {
      if (path === NODE_FILE) return NODE_V4
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' })
    },
  })
  for (const name of ['.hidden', 'my net', '..']) {
    let raw = ''
    const code = await dispatch(funcs, { getenv: (k) => env('ADD')[k], stdin: async () => JSON.stringify(conf('1.1.0', { name })), stdout: (s) => { raw += s } })
    t.equal(code, 1, `${JSON.stringify(name)}: refused`)
    t.equal((JSON.parse(raw) as { code?: number }).code, 7, `${JSON.stringify(name)}: code 7`)
  }
  t.same(readdirSync(dataDir), [], 'no store created under dataDir')
  t.same(readdirSync(root), ['networks'], 'nothing created beside it')
})

t.test('a null field is an absent one, as Go\'s encoding/json reads it (libcni, the reference plugins)', async t => {
  // Every optional key ferry-cni reads, null. These were refused with code 7 ("must be an object"), DEL too.
  const nulls = { type: null, bridge: null, subnetFile: null, dataDir: null, mtu: null, ipMasq: null, hairpinMode: null, dns: null, prevResult: null }
  const plain = harness()
  const want = await plain.run(env('ADD'), conf('1.0.0'))
  const h = harness()
  const add = await h.run(env('ADD'), conf('1.0.0', nulls))
  t.same([add.code, add.out], [0, want.out], 'ADD as without the fields')
  const check = await h.run(env('CHECK'), conf('1.0.0', { ...nulls, prevResult: add.out }))
  t.same([check.code, check.raw], [0, ''], 'CHECK')
  for (const n of [1, 2]) t.same(await h.run(env('DEL'), conf('1.0.0', nulls)), { code: 0, raw: '', out: null }, `DEL #${n}`)
  t.same(await h.ipam().available(), [253], 'DEL released the address')
})

t.test('GC: the list null under either key alone means no attachment is valid', async t => {
  for (const key of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
    const h = harness()
    t.equal((await h.run(env('ADD'), conf())).code, 0)
    const r = await h.run({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf('1.1.0', { [key]: null }))
    t.same([r.code, r.raw], [0, ''], key)
    t.same(await h.ipam().available(), [253], `${key}: released`)
  }
})
