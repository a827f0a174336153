import t from 'tap'
import { interfaceNames } from '../../pkg/proxy/ipvs/present.js'
import { IPVS_DEVICE } from '../../pkg/proxy/ipvs/vips.js'

// The presence check reads /proc/self/net/dev instead of loading the netlink client.
const DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 3831821101 1096364    0    0    0     0          0         0 3831821101 1096364    0    0    0     0       0          0
ferry-ipvs0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:1234 5    0    0    0     0          0         0        0       0    0    0    0     0       0          0
`

t.test('interface names from /proc/net/dev', async t => {
  t.same(interfaceNames(DEV), ['lo', 'ferry-ipvs0', 'eth0'])
  t.ok(interfaceNames(DEV).includes(IPVS_DEVICE))
  t.same(interfaceNames(DEV.split('\n').slice(0, 3).join('\n')), ['lo'])
  t.same(interfaceNames(''), [])
})

t.test('this netns: the file lists loopback', async t => {
  const { readFile } = await import('node:fs/promises')
  t.ok(interfaceNames(await readFile('/proc/self/net/dev', 'utf8')).includes('lo'))
})
