// ferry-cni's dispatcher: environment checks, decoding, version negotiation, error JSON, result shapes.
import t from 'tap'
import { CID_A, conf, env, harness, NETNS_A } from './fixtures/cni.js'
import { SUPPORTED_VERSIONS, versionInfo } from '../../cni-plugin/versions.js'

t.test('VERSION echoes a supported cniVersion and lists all versions, without any other env', async t => {
  const h = harness()
  for (const [input, want] of [['0.4.0', '0.4.0'], ['1.1.0', '1.1.0'], ['9.9.9', '1.1.0'], ['', '1.1.0']] as const) {
    const r = await h.run({ CNI_COMMAND: 'VERSION' }, input === '' ? '' : { cniVersion: input })
    t.equal(r.code, 0)
    t.same(r.out, { cniVersion: want, supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] }, `input ${input || '(empty)'}`)
  }
  t.same(JSON.parse(versionInfo('{"cniVersion":"1.0.0"}')), { cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS })
})

t.test('every error code, as spec JSON on stdout with exit 1', async t => {
  const cases: Array<{ name: string, env: Record<string, string>, stdin: Record<string, unknown> | string, code: number, msg: RegExp, details?: RegExp, nodeFile?: null }> = [
    { name: 'no CNI_COMMAND', env: {}, stdin: conf(), code: 4, msg: /^required env variables \[CNI_COMMAND\] missing$/ },
    { name: 'unknown verb', env: { CNI_COMMAND: 'FROB' }, stdin: conf(), code: 4, msg: /unknown CNI_COMMAND: FROB/ },
    { name: 'ADD names every missing variable', env: { CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' }, stdin: conf(), code: 4, msg: /^required env variables \[CNI_CONTAINERID,CNI_NETNS,CNI_PATH\] missing$/ },
    { name: 'DEL needs no CNI_NETNS', env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: CID_A }, stdin: conf(), code: 4, msg: /^required env variables \[CNI_IFNAME,CNI_PATH\] missing$/ },
    { name: 'GC needs CNI_PATH', env: { CNI_COMMAND: 'GC' }, stdin: conf(), code: 4, msg: /\[CNI_PATH\]/ },
    { name: 'bad container ID', env: env('ADD', { CNI_CONTAINERID: '-bad id' }), stdin: conf(), code: 4, msg: /invalid characters in CNI_CONTAINERID/ },
    { name: 'ifname too long', env: env('ADD', { CNI_IFNAME: 'a234567890123456' }), stdin: conf(), code: 4, msg: /CNI_IFNAME.*longer than 15/ },
    { name: 'ifname with slash', env: env('ADD', { CNI_IFNAME: 'et/h0' }), stdin: conf(), code: 4, msg: /CNI_IFNAME/ },
    { name: 'ifname "."', env: env('DEL', { CNI_IFNAME: '.' }), stdin: conf(), code: 4, msg: /CNI_IFNAME/ },
    { name: 'bad JSON', env: env('ADD'), stdin: '{"cniVersion":', code: 6, msg: /decoding network configuration failed/, details: /JSON/ },
    { name: 'JSON but not an object', env: env('ADD'), stdin: '[1]', code: 6, msg: /decoding/ },
    { name: 'no name', env: env('ADD'), stdin: { cniVersion: '1.0.0', type: 'ferry-cni' }, code: 7, msg: /missing network name/ },
    { name: 'mtu not a number', env: env('ADD'), stdin: conf('1.0.0', { mtu: '1450' }), code: 7, msg: /"mtu"/ },
    { name: 'ipMasq not a boolean', env: env('ADD'), stdin: conf('1.0.0', { ipMasq: 'yes' }), code: 7, msg: /"ipMasq"/ },
    { name: 'bridge name too long', env: env('ADD'), stdin: conf('1.0.0', { bridge: 'a-very-long-bridge-name' }), code: 7, msg: /"bridge"/ },
    { name: 'unknown version', env: env('ADD'), stdin: conf('9.9.9'), code: 1, msg: /^incompatible CNI versions$/, details: /config is "9\.9\.9", plugin supports \["0\.3\.0" "0\.3\.1" "0\.4\.0" "1\.0\.0" "1\.1\.0"\]/ },
    { name: 'version not a string (was code 1, "config is 0.1.0")', env: env('DEL'), stdin: { cniVersion: 1, name: 'ferry' }, code: 6, msg: /decoding/, details: /"cniVersion" must be a string, got 1/ },
    { name: 'missing version means 0.1.0', env: env('ADD'), stdin: { name: 'ferry' }, code: 1, msg: /incompatible/, details: /config is "0\.1\.0"/ },
    { name: 'CHECK below 0.4.0', env: env('CHECK'), stdin: conf('0.3.1'), code: 1, msg: /does not allow CHECK/ },
    { name: 'GC below 1.1.0', env: env('GC'), stdin: conf('1.0.0', { 'cni.dev/valid-attachments': [] }), code: 1, msg: /does not allow GC/ },
    { name: 'STATUS below 1.1.0', env: env('STATUS'), stdin: conf('1.0.0'), code: 1, msg: /does not allow STATUS/ },
    { name: 'netns missing', env: env('ADD', { CNI_NETNS: '/run/netns/gone' }), stdin: conf(), code: 8, msg: /does not exist/ },
    { name: 'ADD before the node file exists', env: env('ADD'), stdin: conf(), code: 11, msg: /does not exist yet/, nodeFile: null },
    { name: 'STATUS without the node file', env: env('STATUS'), stdin: conf(), code: 50, msg: /does not exist/, nodeFile: null },
    { name: 'GC without the attachment list', env: env('GC'), stdin: conf(), code: 7, msg: /valid-attachments/ },
    { name: 'CHECK without prevResult', env: env('CHECK'), stdin: conf(), code: 7, msg: /prevResult/ },
  ]
  for (const c of cases) {
    const h = harness(c.nodeFile === null ? { nodeFile: null } : {})
    const r = await h.run(c.env, c.stdin)
    t.equal(r.code, 1, `${c.name}: exit 1`)
    t.equal(r.out?.code, c.code, `${c.name}: code ${c.code}`)
    t.match(r.out?.msg, c.msg, `${c.name}: msg`)
    if (c.details !== undefined) t.match(r.out?.details, c.details, `${c.name}: details`)
    t.type(r.out?.cniVersion, 'string', `${c.name}: cniVersion present`)
  }
})

t.test('an error answers in the config version when it is supported', async t => {
  const h = harness({ nodeFile: null })
  const r = await h.run(env('ADD'), conf('0.4.0'))
  t.same(r.out, { cniVersion: '0.4.0', code: 11, msg: 'node file /run/ferry/subnet.env does not exist yet (is ferryd running?)' })
})

t.test('a malformed node file is code 7 and names the key', async t => {
  const h = harness({ nodeFile: 'FERRY_NETWORK=10.244.0.0/16\nFERRY_MTU=1450\nFERRY_IPMASQ=true\n' })
  const r = await h.run(env('ADD'), conf())
  t.equal(r.out?.code, 7)
  t.match(r.out?.msg, /missing FERRY_SUBNET/)
})

t.test('pool exhaustion is code 100 "no IP addresses available" and leaves no veth behind', async t => {
  const h = harness({ ipamSize: 2 }) // .1 is the gateway, .2 the only pod address
  t.equal((await h.run(env('ADD'), conf())).code, 0)
  const r = await h.run(env('ADD', { CNI_CONTAINERID: 'other', CNI_NETNS: '/run/netns/fy-pod-b' }), conf())
  t.equal(r.code, 1)
  t.equal(r.out?.code, 100)
  t.equal(r.out?.msg, 'no IP addresses available')
  t.equal((await h.dp.bridgePorts('ferry0')).length, 1, 'the second attachment\'s veth was removed')
  const s = await h.run(env('STATUS'), conf())
  t.same([s.code, s.out?.code, s.out?.msg], [1, 50, 'no IP addresses available'], 'STATUS reports the exhausted pool')
})

t.test('result shapes per cniVersion', async t => {
  const shapes: Record<string, (r: Record<string, unknown>) => void> = {
    '0.3.0': r => t.same((r.ips as unknown[])[0], { version: '4', address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 2 }),
    '0.3.1': r => t.same((r.ips as unknown[])[0], { version: '4', address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 2 }),
    '0.4.0': r => t.notOk('mtu' in ((r.interfaces as Array<Record<string, unknown>>)[2] ?? {}), '0.4.0 has no interface mtu'),
    '1.0.0': r => {
      t.same((r.ips as unknown[])[0], { address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 2 }, '1.0.0 drops ips[].version')
      t.notOk('mtu' in ((r.interfaces as Array<Record<string, unknown>>)[0] ?? {}))
    },
    '1.1.0': r => t.same((r.interfaces as unknown[])[2], { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1450, sandbox: NETNS_A }, '1.1.0 adds mtu'),
  }
  for (const [v, check] of Object.entries(shapes)) {
    const h = harness()
    const r = await h.run(env('ADD'), conf(v))
    t.equal(r.code, 0, `ADD at ${v}`)
    const out = r.out ?? {}
    t.equal(out.cniVersion, v)
    t.same((out.interfaces as Array<{ name: string }>).map(i => i.name), ['ferry0', 'fy' + String((out.interfaces as Array<{ name: string }>)[1]?.name).slice(2), 'eth0'])
    t.same(out.routes, [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }])
    t.same(out.dns, {})
    check(out)
  }
})

t.test('dual stack: one address per family, both default routes', async t => {
  const h = harness({ nodeFile: (await import('./fixtures/cni.js')).NODE_DUAL })
  const r = await h.run(env('ADD'), conf('0.4.0'))
  t.equal(r.code, 0)
  t.same(r.out?.ips, [
    { version: '4', address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 2 },
    { version: '6', address: 'fd00:10:244:1::2/64', gateway: 'fd00:10:244:1::1', interface: 2 },
  ])
  t.same(r.out?.routes, [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }, { dst: '::/0', gw: 'fd00:10:244:1::1' }])
  t.same(h.dp.link('', 'ferry0')?.addresses, ['10.244.1.1/24', 'fd00:10:244:1::1/64'])
  t.same([...h.dp.forwarding], ['IPv4', 'IPv6'])
})
