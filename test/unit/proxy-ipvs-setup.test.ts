// IPVS mode's start-up pieces against fakes: the kernel probe (family and scheduler), the sysctls, and
// the VIP binder's minimal kernel traffic.
import t from 'tap'
import { silentLogger } from '../../pkg/log/log.js'
import { FakeLinks } from '../../pkg/netlink/fake.js'
import { FerryError } from '../../pkg/errors/errors.js'
import { FakeIpvsKernel } from '../../pkg/proxy/ipvs/fake-kernel.js'
import { ipvsRequired, probeIpvs } from '../../pkg/proxy/ipvs/probe.js'
import { applySysctls, ipvsSysctls, type SysctlFS } from '../../pkg/proxy/ipvs/sysctl.js'
import { VipBinder } from '../../pkg/proxy/ipvs/vips.js'
import type { Exec } from '../../pkg/exec/exec.js'
import { kernelAtLeast, kernelVersion } from '../../pkg/os/kernel.js'

const noModprobe: Exec = async () => ({ code: 1, stdout: '', stderr: 'modprobe: not found' })

t.test('probe: a scheduler the kernel has passes and leaves no trace', async t => {
  const k = new FakeIpvsKernel()
  t.same(await probeIpvs('rr', noModprobe, async () => k), { ok: true })
  t.same(k.snapshot(), [], 'the probe server is deleted again')
  t.same(k.applied.map(o => o.op), ['addService', 'deleteService'], 'one add (which loads the scheduler module) and its delete')
})

t.test('probe: a missing scheduler is refused with its module name', async t => {
  const k = new FakeIpvsKernel({ schedulers: ['rr'] })
  const p = await probeIpvs('mh', noModprobe, async () => k)
  t.same(p, { ok: false, reason: 'the kernel has no IPVS scheduler mh (module ip_vs_mh)' })
  t.throws(() => { ipvsRequired('mh', p) }, /--proxy-mode ipvs: the kernel has no IPVS scheduler mh \(module ip_vs_mh\)/)
})

t.test('probe: no IPVS family before 5.16 tries modprobe once, then reports', async t => {
  const calls: string[][] = []
  const exec: Exec = async argv => { calls.push([...argv]); return { code: 1, stdout: '', stderr: '' } }
  const missing = async (): Promise<never> => { throw new FerryError('FERRY_ERR_IPVS_UNAVAILABLE', 'IPVS is not available in this kernel') }
  const p = await probeIpvs('rr', exec, missing, '5.15.0-91-generic')
  t.same(calls, [['modprobe', '-q', 'ip_vs']])
  t.same(p, { ok: false, reason: 'IPVS is not available in this kernel' })
  let opened = 0
  const k = new FakeIpvsKernel()
  const loads: Exec = async () => ({ code: 0, stdout: '', stderr: '' })
  const p2 = await probeIpvs('rr', loads, async () => {
    if (opened++ === 0) throw new FerryError('FERRY_ERR_IPVS_UNAVAILABLE', 'not loaded yet')
    return k
  }, '4.19.0')
  t.same(p2, { ok: true }, 'a successful modprobe is followed by a second lookup')

  calls.length = 0
  for (const release of ['5.16.0', '6.1.0-28-cloud-amd64', '10.0']) {
    t.same(await probeIpvs('rr', exec, missing, release), { ok: false, reason: 'IPVS is not available in this kernel' })
  }
  t.same(calls, [], 'from 5.16 the lookup itself loads ip_vs: no modprobe')
})

t.test('kernel versions', async t => {
  t.same(kernelVersion('6.1.0-28-cloud-amd64'), [6, 1])
  t.same(kernelVersion('garbage'), [0, 0])
  t.ok(kernelAtLeast(5, 16, '5.16.0'))
  t.ok(kernelAtLeast(5, 16, '6.0.0'))
  t.notOk(kernelAtLeast(5, 16, '5.15.9'))
  t.notOk(kernelAtLeast(5, 16, '4.19.0'))
})

t.test('sysctls: conn_reuse_mode only on 4.1-5.8, strict ARP on request, each change logged', async t => {
  const keys = (k: string, strict = false): string[] => ipvsSysctls({ strictARP: strict, ipv6: false, kernel: k }).map(s => s.key)
  t.notOk(keys('6.1.0-28-cloud-amd64').includes('net/ipv4/vs/conn_reuse_mode'))
  t.ok(keys('5.4.0').includes('net/ipv4/vs/conn_reuse_mode'))
  t.notOk(keys('4.0.9').includes('net/ipv4/vs/conn_reuse_mode'))
  t.ok(keys('6.1.0', true).includes('net/ipv4/conf/all/arp_ignore'))
  const files = new Map<string, string>([['/proc/sys/net/ipv4/vs/conntrack', '0'], ['/proc/sys/net/ipv4/ip_forward', '1']])
  const fs: SysctlFS = {
    read: async p => { const v = files.get(p); if (v === undefined) throw new Error(`ENOENT ${p}`); return v },
    write: async (p, v) => { files.set(p, v) },
  }
  const logged: string[] = []
  const log = { ...silentLogger, info: (msg: string, f?: Record<string, unknown>) => { logged.push(`${msg} ${String(f?.key)}`) }, warn: (msg: string, f?: Record<string, unknown>) => { logged.push(`${msg} ${String(f?.key)}`) } }
  const failed = await applySysctls(ipvsSysctls({ strictARP: false, ipv6: false, kernel: '6.1.0' }), log as typeof silentLogger, fs)
  t.equal(files.get('/proc/sys/net/ipv4/vs/conntrack'), '1')
  t.same(failed, ['net/ipv4/vs/expire_nodest_conn', 'net/ipv4/vs/expire_quiescent_template'], 'unreadable keys are reported, not fatal')
  t.same(logged, ['sysctl set net.ipv4.vs.conntrack', 'sysctl not set net.ipv4.vs.expire_nodest_conn', 'sysctl not set net.ipv4.vs.expire_quiescent_template'],
    'one line per change or failure; an unchanged ip_forward is silent')
})

t.test('VIP binder: an address already bound (or already gone) is done; any other refusal names the VIP and the errno, and the next call re-reads the kernel', async t => {
  const links = new FakeLinks()
  const b = new VipBinder({ links, family: 'IPv4', log: silentLogger })
  t.equal(await b.bind(new Set(['10.96.0.10'])), 1)
  const dev = await links.linkByName('ferry-ipvs0')
  const index = dev?.index ?? -1
  // Someone else binds .11 and removes .10 behind ferry's back: EEXIST and EADDRNOTAVAIL are done.
  await links.addAddress(index, '10.96.0.11', 32)
  await links.deleteAddress(index, '10.96.0.10', 32)
  t.equal(await b.bind(new Set(['10.96.0.10', '10.96.0.11'])), 1, 'only .11 was missing in ferry\'s picture')
  t.same([...b.current()].sort(), ['10.96.0.10', '10.96.0.11'])
  t.equal(await b.unbindStale(new Set()), 2)
  t.same((await links.addresses(index)).map(a => a.ip), [], 'both gone')
  // A refusal ferry cannot take as done: EINVAL for an address the kernel will not parse.
  await t.rejects(b.bind(new Set(['10.96.0.12', 'not-an-ip'])), { code: 'FERRY_ERR_NETLINK', message: /binding 1 VIP\(s\) on ferry-ipvs0 failed; first: not-an-ip: EINVAL \(22\)/ })
  t.same((await links.addresses(index)).map(a => a.ip), ['10.96.0.12'], 'the others applied')
  links.calls.clear()
  t.equal(await b.bind(new Set(['10.96.0.12'])), 0, 'the next call read the kernel again and found .12 bound')
  t.equal(links.calls.get('addresses'), 1)
  // A failed socket fails the call the same way.
  links.failNext('changeAddresses', 'ENOBUFS')
  await t.rejects(b.bind(new Set(['10.96.0.13'])), { message: /ENOBUFS/ })
})

t.test('VIP binder: creates the device once, binds and unbinds in one pipelined call each, reads the kernel only when asked', async t => {
  const links = new FakeLinks()
  const b = new VipBinder({ links, family: 'IPv4', log: silentLogger })
  t.equal(await b.bind(new Set(['10.96.0.10', '10.96.0.11'])), 2)
  const dev = await links.linkByName('ferry-ipvs0')
  t.ok(dev !== null, 'ferry-ipvs0 created')
  t.same((await links.addresses(dev?.index)).map(a => a.ip).sort(), ['10.96.0.10', '10.96.0.11'])
  links.calls.clear()
  t.equal(await b.bind(new Set(['10.96.0.10', '10.96.0.11', '10.96.0.12'])), 1)
  t.equal(await b.unbindStale(new Set(['10.96.0.11', '10.96.0.12'])), 1)
  t.same(Object.fromEntries(links.calls), { changeAddresses: 2 }, 'no listing on a normal sync')
  // A restarted ferryd adopts what is bound.
  const again = new VipBinder({ links, family: 'IPv4', log: silentLogger })
  links.calls.clear()
  t.equal(await again.bind(new Set(['10.96.0.11', '10.96.0.12'])), 0)
  t.same(Object.fromEntries(links.calls), { linkByName: 1, addresses: 1 }, 'one read at start, nothing re-added')
  // Someone deletes the device: after resync() it is made again and every VIP bound.
  await links.deleteLink('ferry-ipvs0')
  again.resync()
  t.equal(await again.bind(new Set(['10.96.0.11', '10.96.0.12'])), 2)
  const v6 = new VipBinder({ links, family: 'IPv6', log: silentLogger })
  t.equal(await v6.bind(new Set(['fd00:96::10'])), 1)
  t.equal(await v6.unbindStale(new Set()), 1)
  t.same((await links.addresses()).map(a => a.ip).sort(), ['10.96.0.11', '10.96.0.12'], 'each family unbinds only its own')
})
