// The pod side's process: which command enters the pod's netns, and the batch it is given.
import t from 'tap'
import { IpDataplane, podArgv } from '../../cni-plugin/dataplane-ip.js'
import { stdinText } from '../../pkg/exec/exec.js'
import type { Allocation } from '../../pkg/ipam/types.js'

const v4: Allocation = { family: 'IPv4', ip: '10.244.1.5', prefix: 24, gateway: '10.244.1.1' }
const v6: Allocation = { family: 'IPv6', ip: 'fd00::5', prefix: 64, gateway: 'fd00::1' }

t.test('podArgv: ip -n for /run/netns/NAME, nsenter otherwise and for IPv6', async t => {
  const cases: Array<[string, Allocation[], string[]]> = [
    ['/run/netns/cni-1234', [v4], ['ip', '-n', 'cni-1234', '-batch', '-']],
    ['/var/run/netns/cni-1234', [v4], ['nsenter', '--net=/var/run/netns/cni-1234', 'ip', '-batch', '-']],
    ['/proc/42/ns/net', [v4], ['nsenter', '--net=/proc/42/ns/net', 'ip', '-batch', '-']],
    ['/run/netns/a/b', [v4], ['nsenter', '--net=/run/netns/a/b', 'ip', '-batch', '-']],
    ['/run/netns/..', [v4], ['nsenter', '--net=/run/netns/..', 'ip', '-batch', '-']],
    ['/run/netns/', [v4], ['nsenter', '--net=/run/netns/', 'ip', '-batch', '-']],
    ['/run/netns/cni-1234', [v4, v6], ['nsenter', '--net=/run/netns/cni-1234', 'sh', '-c', 'echo 0 > "/proc/sys/net/ipv6/conf/$1/accept_dad" && shift && exec ip "$@"', 'sh', 'eth0', '-batch', '-']],
  ]
  for (const [netns, addresses, want] of cases) t.same(podArgv({ netns, ifname: 'eth0', addresses }), want, `${netns} ${addresses.map(a => a.family).join('+')}`)
})

t.test('setupPod runs one batch: addresses, up, default routes', async t => {
  const runs: Array<{ argv: string[], stdin: string }> = []
  const dp = new IpDataplane(async (argv, stdin) => { runs.push({ argv: [...argv], stdin: stdinText(stdin) }); return { code: 0, stdout: '', stderr: '' } })
  await dp.setupPod({ netns: '/run/netns/fy-a', ifname: 'eth0', addresses: [v4] })
  t.same(runs, [{ argv: ['ip', '-n', 'fy-a', '-batch', '-'], stdin: 'addr add 10.244.1.5/24 dev eth0\nlink set dev eth0 up\nroute append default via 10.244.1.1 dev eth0\n' }])
})

t.test('a failing line is reported with its text', async t => {
  const dp = new IpDataplane(async () => ({ code: 1, stdout: '', stderr: 'RTNETLINK answers: File exists\nCommand failed -:1' }))
  await t.rejects(dp.setupPod({ netns: '/run/netns/fy-a', ifname: 'eth0', addresses: [v4] }), /ip -n fy-a -batch -: RTNETLINK answers: File exists.*\(at "addr add 10\.244\.1\.5\/24 dev eth0"\)/s)
})

t.test('names ip -batch cannot carry: quoted, or one ip per command (the "#" comment)', async t => {
  const runs: Array<{ argv: string[], stdin: string }> = []
  const exec = async (argv: readonly string[], stdin?: string | Iterable<string>): Promise<{ code: number, stdout: string, stderr: string }> => {
    runs.push({ argv: [...argv], stdin: stdinText(stdin) })
    return { code: 0, stdout: '', stderr: '' }
  }
  const dp = new IpDataplane(exec)
  // "help" (or any prefix of it, or "up") standing where ip takes a device name was read as the keyword.
  await dp.setupPod({ netns: '/run/netns/fy-a', ifname: 'help', addresses: [v4] })
  t.same(runs.splice(0), [{ argv: ['ip', '-n', 'fy-a', '-batch', '-'], stdin: 'addr add 10.244.1.5/24 dev help\nlink set dev help up\nroute append default via 10.244.1.1 dev help\n' }])
  await dp.setupPod({ netns: '/run/netns/fy-a', ifname: '"x', addresses: [v4] })
  t.match(runs.splice(0)[0]?.stdin, /^link set dev '"x' up$/m, 'a leading quote is quoted')
  await dp.setupPod({ netns: '/run/netns/fy-a', ifname: 'a#b', addresses: [v4] })
  t.same(runs.splice(0), [
    { argv: ['ip', '-n', 'fy-a', 'addr', 'add', '10.244.1.5/24', 'dev', 'a#b'], stdin: '' },
    { argv: ['ip', '-n', 'fy-a', 'link', 'set', 'dev', 'a#b', 'up'], stdin: '' },
    { argv: ['ip', '-n', 'fy-a', 'route', 'append', 'default', 'via', '10.244.1.1', 'dev', 'a#b'], stdin: '' },
  ])
  await dp.setupPod({ netns: '/run/netns/fy-a', ifname: 'a#b', addresses: [v6] })
  t.same(runs.splice(0)[0]?.argv, ['nsenter', '--net=/run/netns/fy-a', 'sh', '-c', 'echo 0 > "/proc/sys/net/ipv6/conf/$1/accept_dad" && shift && exec ip "$@"', 'sh', 'a#b', 'addr', 'add', 'fd00::5/64', 'dev', 'a#b', 'nodad'], 'IPv6: DAD off, then the command')
})

t.test('one ip per command stops at the first failure and names it, as the batch does', async t => {
  const argvs: string[][] = []
  const dp = new IpDataplane(async argv => {
    argvs.push([...argv])
    return argvs.length === 2 ? { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' } : { code: 0, stdout: '', stderr: '' }
  })
  await t.rejects(dp.setupPod({ netns: '/run/netns/fy-a', ifname: 'a#b', addresses: [v4] }), { message: 'ip -n fy-a link set dev a#b up: RTNETLINK answers: Operation not permitted' })
  t.equal(argvs.length, 2, 'nothing after the failed command')
})

t.test('setupHost: the bridge and the pod end by keyword ("name", "dev"), one ip each for a "#"', async t => {
  const runs: Array<{ argv: string[], stdin: string }> = []
  const dp = new IpDataplane(async (argv, stdin) => { runs.push({ argv: [...argv], stdin: stdinText(stdin) }); return { code: 0, stdout: '', stderr: '' } })
  const bridge = { name: 'help', mtu: 1400, mac: '02:00:00:00:00:01', addresses: ['10.244.1.1/24'] }
  const veth = { hostName: 'fy0123456789a', hostMac: '02:00:00:00:00:02', podName: 'h', podMac: '02:00:00:00:00:03', netns: '/run/netns/fy a', mtu: 1400, hairpin: false }
  await dp.setupHost(bridge, veth)
  t.same(runs.splice(0), [{
    argv: ['ip', '-batch', '-'],
    stdin: 'link add name help address 02:00:00:00:00:01 mtu 1400 type bridge\n' +
      'addr replace 10.244.1.1/24 dev help\n' +
      'link set dev help mtu 1400 up\n' +
      'link add name fy0123456789a mtu 1400 address 02:00:00:00:00:02 type veth peer name h mtu 1400 address 02:00:00:00:00:03 netns "/run/netns/fy a"\n' +
      'link set dev fy0123456789a master help up\n',
  }])
  await dp.setupHost(bridge, { ...veth, podName: 'a#b' })
  t.same(runs.splice(0).map(r => r.argv.slice(0, 5)), [
    ['ip', 'link', 'add', 'name', 'help'],
    ['ip', 'addr', 'replace', '10.244.1.1/24', 'dev'],
    ['ip', 'link', 'set', 'dev', 'help'],
    ['ip', 'link', 'add', 'name', 'fy0123456789a'],
    ['ip', 'link', 'set', 'dev', 'fy0123456789a'],
  ])
})
