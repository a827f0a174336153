import t from 'tap'
import { isFerryError } from '../../pkg/errors/errors.js'
import { flannelVNIWarning, leasableSubnets, parseNetworkConfig, validateNetworkConfig } from '../../pkg/overlay/network-config.js'

t.test('defaults follow flannel', async t => {
  const cases: Array<{ name: string, cfg: Record<string, unknown>, len: number, min: string, max: string }> = [
    { name: '/16 → /24 from the second subnet', cfg: { Network: '10.244.0.0/16' }, len: 24, min: '10.244.1.0/24', max: '10.244.255.0/24' },
    { name: '/22 still gets /24', cfg: { Network: '10.10.0.0/22' }, len: 24, min: '10.10.1.0/24', max: '10.10.3.0/24' },
    { name: '/23 is split in four', cfg: { Network: '10.10.0.0/23' }, len: 25, min: '10.10.0.128/25', max: '10.10.1.128/25' },
    { name: '/28 is the narrowest', cfg: { Network: '10.10.0.0/28' }, len: 30, min: '10.10.0.4/30', max: '10.10.0.12/30' },
    { name: 'explicit SubnetLen', cfg: { Network: '10.244.0.0/16', SubnetLen: 26 }, len: 26, min: '10.244.0.64/26', max: '10.244.255.192/26' },
    { name: 'explicit bounds', cfg: { Network: '10.244.0.0/16', SubnetMin: '10.244.10.0', SubnetMax: '10.244.20.0' }, len: 24, min: '10.244.10.0/24', max: '10.244.20.0/24' },
    { name: 'host bits in Network are masked', cfg: { Network: '10.244.7.1/16' }, len: 24, min: '10.244.1.0/24', max: '10.244.255.0/24' },
  ]
  for (const c of cases) {
    const n = validateNetworkConfig(c.cfg)
    t.equal(n.ipv4?.subnetLen, c.len, `${c.name}: len`)
    t.equal(n.ipv4?.subnetMin.text, c.min, `${c.name}: min`)
    t.equal(n.ipv4?.subnetMax.text, c.max, `${c.name}: max`)
    t.same(n.backend, { type: 'vxlan', vni: 1, port: 8472 }, `${c.name}: backend`)
    t.equal(n.ipv6, undefined)
  }
})

t.test('keys match case-insensitively; unknown ones are reported', async t => {
  const n = parseNetworkConfig('{"network":"10.244.0.0/16","subnetlen":24,"backend":{"type":"host-gw","vni":7,"GBP":true},"EnableNFTables":false}')
  t.equal(n.ipv4?.network.text, '10.244.0.0/16')
  t.same(n.backend, { type: 'host-gw', vni: 7, port: 8472 })
  t.same([...n.ignoredKeys].sort(), ['Backend.GBP', 'EnableNFTables'])
  t.ok(Object.isFrozen(n) && Object.isFrozen(n.backend) && Object.isFrozen(n.ipv4))
})

t.test('dual stack and IPv6 only', async t => {
  const d = validateNetworkConfig({ Network: '10.244.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:10:244::/56', Backend: { Type: 'vxlan', VNI: 4096, Port: 4789 } })
  t.equal(d.ipv6?.subnetLen, 64)
  t.equal(d.ipv6?.subnetMin.text, 'fd00:10:244:1::/64')
  t.equal(d.ipv6?.subnetMax.text, 'fd00:10:244:ff::/64')
  t.equal(leasableSubnets(d.ipv6 ?? d.ipv4 ?? t.fail('no v6') as never), 255n)
  t.same(d.backend, { type: 'vxlan', vni: 4096, port: 4789 })
  const six = validateNetworkConfig({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/120' })
  t.equal(six.ipv4, undefined)
  t.equal(six.ipv6?.subnetLen, 122)
})

t.test('errors name the field', async t => {
  const cases: Array<[unknown, string, RegExp]> = [
    [[], '(top level)', /JSON object/],
    [{}, 'Network', /missing/],
    [{ Network: 'fd00::/48' }, 'Network', /not an IPv4 CIDR/],
    [{ Network: '10.0.0.0/29' }, 'Network', /too small.*\/28/],
    [{ Network: '10.0.0.0/16', SubnetLen: 31 }, 'SubnetLen', /at most 30/],
    [{ Network: '10.0.0.0/16', SubnetLen: 17 }, 'SubnetLen', /at least four subnets.*18/],
    [{ Network: '10.0.0.0/16', SubnetLen: '24' }, 'SubnetLen', /integer/],
    [{ Network: '10.0.0.0/16', SubnetMin: '10.1.0.0' }, 'SubnetMin', /not in 10.0.0.0\/16/],
    [{ Network: '10.0.0.0/16', SubnetMax: '10.0.3.7' }, 'SubnetMax', /boundary/],
    [{ Network: '10.0.0.0/16', SubnetMin: '10.0.9.0', SubnetMax: '10.0.3.0' }, 'SubnetMin', /after SubnetMax/],
    [{ Network: '10.0.0.0/16', EnableIPv6: true }, 'IPv6Network', /missing/],
    [{ Network: '10.0.0.0/16', EnableIPv6: 'yes' }, 'EnableIPv6', /true or false/],
    [{ EnableIPv4: false }, 'EnableIPv4', /no family/],
    [{ Network: '10.0.0.0/16', Backend: { Type: 'udp' } }, 'Backend.Type', /vxlan, host-gw/],
    [{ Network: '10.0.0.0/16', Backend: { VNI: 1 << 24 } }, 'Backend.VNI', /between 0 and 16777215/],
    [{ Network: '10.0.0.0/16', Backend: { Port: 70000 } }, 'Backend.Port', /65535/],
    [{ Network: '10.0.0.0/16', Backend: 'vxlan' }, 'Backend', /object/],
    [{ Network: '10.0.0.0/16', network: '10.1.0.0/16' }, 'Network', /given twice/],
  ]
  for (const [cfg, field, msg] of cases) {
    try {
      validateNetworkConfig(cfg)
      t.fail(`${JSON.stringify(cfg)}: accepted`)
    } catch (e) {
      t.ok(isFerryError(e, 'FERRY_ERR_CONFIG'), `${JSON.stringify(cfg)}: code`)
      t.equal((e as { details: { field: string } }).details.field, field, `${JSON.stringify(cfg)}: field`)
      t.match((e as Error).message, msg, `${JSON.stringify(cfg)}: message`)
      t.match((e as Error).message, `network config: ${field}`)
    }
  }
  t.throws(() => parseNetworkConfig('{"Network":'), { code: 'FERRY_ERR_PARSE' })
})

t.test('a vxlan VNI above 65535 is accepted, with a warning: older and Windows flannel keep the lease VNI in 16 bits', async t => {
  const backend = (b: Record<string, unknown>): ReturnType<typeof validateNetworkConfig>['backend'] => validateNetworkConfig({ Network: '10.244.0.0/16', Backend: b }).backend
  for (const vni of [1, 4096, 65535]) t.equal(flannelVNIWarning(backend({ Type: 'vxlan', VNI: vni })), undefined, `VNI ${vni}: no warning`)
  for (const vni of [65536, 70000, 16777215]) {
    t.equal(backend({ Type: 'vxlan', VNI: vni }).vni, vni, `VNI ${vni} accepted (current Linux flannel takes it)`)
    t.match(flannelVNIWarning(backend({ Type: 'vxlan', VNI: vni })), new RegExp(`^Backend\\.VNI ${vni} is above 65535: flannel nodes on Windows or older than v0\\.24\\.0 .* will not route to it`), `VNI ${vni}: warned`)
  }
  t.equal(flannelVNIWarning(backend({ Type: 'host-gw', VNI: 70000 })), undefined, 'host-gw leases carry no VNI')
})
