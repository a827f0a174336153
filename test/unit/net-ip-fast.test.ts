// parseIP's dotted-quad fast path agrees with the general parser on every input, canonical or not.
import t from 'tap'
import { isIPv4, isIPv6 } from 'node:net'
import { familyOf, parseIP, parseIPGeneral } from '../../pkg/net/ip.js'

t.test('the fast path matches parseIPGeneral', async t => {
  const inputs = ['0.0.0.0', '255.255.255.255', '10.0.137.239', '1.2.3.4', '192.168.099.011', '010.1.1.1', '1.2.3.04',
    '256.1.1.1', '1.2.3.256', '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', '', ' 1.2.3.4', '1.2.3.4 ', '1234.1.1.1',
    'a.b.c.d', '::1', 'fd00::1', '::ffff:10.0.0.1', '2001:DB8::1', '1.2.3.4/32', '00.0.0.0', '0.00.0.0', '999.999.999.999']
  let seed = 11
  const o = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % 300 }
  for (let i = 0; i < 500; i++) inputs.push(`${o()}.${o()}.${o()}.${o()}`)
  for (const ip of inputs) {
    t.same(parseIP(ip), parseIPGeneral(ip), JSON.stringify(ip))
    t.equal(familyOf(ip), isIPv4(ip) ? 'IPv4' : isIPv6(ip) ? 'IPv6' : null, `familyOf ${JSON.stringify(ip)} as node:net says`)
  }
  t.same(parseIP('10.1.2.3'), { family: 'IPv4', ip: '10.1.2.3' })
})
