// ferryd's dataplane for ferry-cni: the host side over rtnetlink, against the stateful FakeNetlink. The
// pod's netns is a fake fd the fake knows (FakeNetlink.netns); opened and closed fds are counted.
import t from 'tap'
import { NetlinkDataplane } from '../../cni-plugin/dataplane-netlink.js'
import type { BridgeSpec, VethSpec } from '../../cni-plugin/dataplane.js'
import { CniError } from '../../cni-plugin/errors.js'
import { FakeNetlink } from '../../pkg/netlink/fake.js'

const NETNS = '/run/netns/fy-pod-a'
const FD = 41

const bridge = (o: Partial<BridgeSpec> = {}): BridgeSpec => ({ name: 'ferry0', mtu: 1450, mac: '02:00:00:00:00:03', addresses: ['10.244.1.1/24'], ...o })
const veth = (o: Partial<VethSpec> = {}): VethSpec => ({
  hostName: 'fy0123456789a', hostMac: '02:00:00:00:00:01', podName: 'eth0', podMac: '02:00:00:00:00:02', netns: NETNS, mtu: 1450, hairpin: true, ...o,
})

function setup (): { nl: FakeNetlink, dp: NetlinkDataplane, fds: { open: number[], closed: number[] } } {
  const nl = new FakeNetlink()
  nl.netns.set(FD, new Map())
  const fds = { open: [] as number[], closed: [] as number[] }
  const dp = new NetlinkDataplane({
    links: nl,
    openNetns: path => { if (path !== NETNS) throw new Error(`ENOENT: ${path}`); fds.open.push(FD); return FD },
    closeNetns: fd => { fds.closed.push(fd) },
    exec: async argv => { throw new Error(`no process may be started for the host side: ${argv.join(' ')}`) },
  })
  return { nl, dp, fds }
}

t.test('a new bridge, then the veth pair with its pod end in the netns, enslaved, up, hairpin', async t => {
  const { nl, dp, fds } = setup()
  t.equal(await dp.setupHost(bridge({ addresses: ['10.244.1.1/24', 'fd00:0:0:1::1/64'] }), veth()), '02:00:00:00:00:03', 'the new bridge\'s MAC')
  const br = await nl.linkDetails('ferry0')
  t.match(br, { kind: 'bridge', mtu: 1450, mac: '02:00:00:00:00:03', up: true })
  t.same((await nl.addresses(br?.index)).map(a => `${a.ip}/${a.prefix}`), ['10.244.1.1/24', 'fd00:0:0:1::1/64'])
  const host = await nl.linkDetails('fy0123456789a')
  t.match(host, { kind: 'veth', master: br?.index, up: true, mtu: 1450, mac: '02:00:00:00:00:01' })
  t.equal(nl.hairpin('fy0123456789a'), true, 'hairpin on')
  t.match(nl.netns.get(FD)?.get('eth0'), { kind: 'veth', mac: '02:00:00:00:00:02', mtu: 1450, up: false }, 'the pod end, created in the pod netns, left down for the pod side')
  t.equal(await nl.linkDetails('eth0'), null, 'no pod end in the node netns')
  t.same([fds.open, fds.closed], [[FD], [FD]], 'the netns fd is closed again')
  t.equal(nl.calls.get('createVeth'), 1, 'one request for the pair, master and up')

  // A second pod on the same bridge: the bridge is left as it is.
  nl.netns.set(FD + 1, new Map())
  const dp2 = new NetlinkDataplane({ links: nl, openNetns: () => FD + 1, closeNetns: () => {} })
  t.equal(await dp2.setupHost(bridge({ addresses: ['10.244.1.1/24', 'fd00:0:0:1::1/64'], mac: '02:00:00:00:00:99' }), veth({ hostName: 'fyb', hairpin: false })), '02:00:00:00:00:03', 'the existing bridge\'s MAC')
  t.equal(nl.calls.get('createBridge'), 1)
  t.equal(nl.calls.get('addAddress'), 2, 'no address added twice')
  t.equal(nl.hairpin('fyb'), false, 'hairpinMode false: off')
})

t.test('an existing bridge is reconciled: stale global addresses go, link-local stays, MTU, up', async t => {
  const { nl, dp } = setup()
  const br = nl.addLink({ name: 'ferry0', kind: 'bridge', mtu: 1500, up: false, mac: '0a:00:00:00:00:aa' })
  await nl.addAddress(br.index, '10.9.0.1', 24)
  await nl.addAddress(br.index, 'fe80::1', 64)
  await nl.addAddress(br.index, '10.244.1.1', 24)
  t.equal(await dp.setupHost(bridge(), veth()), '0a:00:00:00:00:aa')
  t.same((await nl.addresses(br.index)).map(a => `${a.ip}/${a.prefix}`).sort(), ['10.244.1.1/24', 'fe80::1/64'])
  t.match(await nl.linkDetails('ferry0'), { mtu: 1450, up: true })
  t.equal(nl.calls.get('createBridge'), undefined, 'not created again')
})

t.test('the pod interface exists: CNI error 101, nothing left on the host', async t => {
  const { nl, dp, fds } = setup()
  nl.netns.get(FD)?.set('eth0', nl.addLink({ name: 'elsewhere' }))
  const e = await dp.setupHost(bridge(), veth()).catch((e: unknown) => e)
  t.ok(e instanceof CniError, 'a CNI error')
  t.match(e, { code: 101, message: /"eth0" already exists in \/run\/netns\/fy-pod-a/ })
  t.equal(await nl.linkDetails('fy0123456789a'), null, 'no host end')
  t.same(fds.closed, [FD], 'fd closed on failure too')
})

t.test('failures: a non-bridge link with the bridge name, a missing netns, hairpin refused', async t => {
  {
    const { nl, dp } = setup()
    nl.addLink({ name: 'ferry0', kind: 'dummy' })
    await t.rejects(dp.setupHost(bridge(), veth()), /ferry0 exists and is not a bridge/)
  }
  {
    const { dp } = setup()
    const e = await dp.setupHost(bridge(), veth({ netns: '/run/netns/fy-gone' })).catch((e: unknown) => e)
    t.ok(e instanceof CniError, 'a CNI error')
    t.match(e, { code: 8, message: /fy-gone cannot be opened/ })
  }
  {
    const { nl, dp } = setup()
    nl.failNext('setHairpin', 'EOPNOTSUPP')
    await t.rejects(dp.setupHost(bridge(), veth()), { code: 'FERRY_ERR_NETLINK' })
    t.equal(await nl.linkDetails('fy0123456789a'), null, 'the half-made pair is removed')
    t.equal(nl.netns.get(FD)?.has('eth0'), false, 'with its pod end')
  }
})

t.test('removeVeth deletes both ends and tolerates a missing link', async t => {
  const { nl, dp } = setup()
  await dp.setupHost(bridge(), veth())
  await dp.removeVeth('fy0123456789a')
  t.equal(await nl.linkDetails('fy0123456789a'), null)
  t.equal(nl.netns.get(FD)?.has('eth0'), false, 'the pod end goes with it')
  await dp.removeVeth('fy0123456789a')
  t.equal(await nl.linkDetails('ferry0') !== null, true, 'the bridge stays')
})
