import t from 'tap'
import { parseMAC } from '../../pkg/net/mac.js'

t.test('parseMAC: the 6-byte notations Go\'s net.ParseMAC takes, any case, → lower-case colon form', async t => {
  const ok: Array<[string, string]> = [
    ['02:00:5e:10:00:01', '02:00:5e:10:00:01'],
    ['02:00:5E:10:00:0A', '02:00:5e:10:00:0a'],
    ['02-00-5e-10-00-01', '02:00:5e:10:00:01'],
    ['02-00-5E-10-00-0a', '02:00:5e:10:00:0a'],
    ['0200.5e10.0001', '02:00:5e:10:00:01'],
    ['0200.5E10.000A', '02:00:5e:10:00:0a'],
    ['FFFF.FFFF.FFFF', 'ff:ff:ff:ff:ff:ff'],
  ]
  for (const [text, want] of ok) t.equal(parseMAC(text), want, text)
})

t.test('parseMAC: anything else is refused', async t => {
  const bad = [
    '', 'zz', '02:00:5e:10:00', '02:00:5e:10:00:01:02', '02:00:5e:10:00:0g', '02:00-5e:10:00:01', // short, long, bad digit, mixed separators
    '02.00.5e.10.00.01', '0200:5e10:0001', '0200-5e10-0001', '02005e100001', '2:0:5e:10:0:1', ' 02:00:5e:10:00:01', '02:00:5e:10:00:01\n',
    '0200.5e10.0001.0203', // EUI-64: ParseMAC takes it, a VTEP cannot be one
    '02:00:5e:10:00:01:02:03', '02-00-5e-10-00-01-02-03',
  ]
  for (const text of bad) t.equal(parseMAC(text), null, JSON.stringify(text))
})
