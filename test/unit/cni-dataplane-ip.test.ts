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
    ['/run/netns/cni-1234', [v4, v6], ['nsenter', '--net=/run/netns/cni-1234', 'sh', '-c', 'echo 0 > "/proc/sys/net/ipv6/conf/$1/accept_dad" && exec ip -batch -', 'sh', 'eth0']],
  ]
  for (const [netns, addresses, want] of cases) t.same(podArgv({ netns, ifname: 'eth0', addresses }), want, `${netns} ${addresses.map(a => a.family).join('+')}`)
})

t.test('setupPod runs one batch: addresses, up, default routes', async t => {
  const runs: Array<{ argv: string[], stdin: string }> = []
  const dp = new IpDataplane(async (argv, stdin) => { runs.push({ argv: [...argv], stdin: stdinText(stdin) }); return { code: 0, stdout: '', stderr: '' } })
  await dp.setupPod({ netns: '/run/netns/fy-a', ifname: 'eth0', addresses: [v4] })
  t.same(runs, [{ argv: ['ip', '-n', 'fy-a', '-batch', '-'], stdin: 'addr add 10.244.1.5/24 dev eth0\nlink set eth0 up\nroute append default via 10.244.1.1 dev eth0\n' }])
})

t.test('a failing line is reported with its text', async t => {
  const dp = new IpDataplane(async () => ({ code: 1, stdout: '', stderr: 'RTNETLINK answers: File exists\nCommand failed -:1' }))
  await t.rejects(dp.setupPod({ netns: '/run/netns/fy-a', ifname: 'eth0', addresses: [v4] }), /ip -n fy-a -batch -: RTNETLINK answers: File exists.*\(at "addr add 10\.244\.1\.5\/24 dev eth0"\)/s)
})
