// ferryctl trace: argument parsing, the /debug/trace query ferryd parses, and the printed answer.
import t from 'tap'
import { formatTrace, parseTraceArgs, trace } from '../../pkg/ctl/trace.js'
import { parseTraceQuery } from '../../pkg/proxy/trace.js'

t.test('SRC and DST:PORT[/PROTO]', async t => {
  t.same(parseTraceArgs('10.0.0.2', '172.30.0.41:80'), { src: '10.0.0.2', dst: '172.30.0.41', port: 80, protocol: 'TCP' })
  t.same(parseTraceArgs('fd00::2', '[fd00::10]:53/udp'), { src: 'fd00::2', dst: 'fd00::10', port: 53, protocol: 'UDP' })
  t.throws(() => parseTraceArgs('10.0.0.2', '172.30.0.41'), /DST must be IP:PORT/)
  t.throws(() => parseTraceArgs('nope', '172.30.0.41:80'), /SRC must be an IP address/)
  t.throws(() => parseTraceArgs('10.0.0.2', 'web:80'), /DST must hold an IP address/)
  t.throws(() => parseTraceArgs('10.0.0.2', '172.30.0.41:80/icmp'), /DST must be IP:PORT/)
})

t.test('ferryd checks the query before tracing', async t => {
  t.same(parseTraceQuery({ src: '10.0.0.2', dst: '172.30.0.41', port: '80' }), { src: '10.0.0.2', dst: '172.30.0.41', port: 80, protocol: 'TCP' })
  t.match(parseTraceQuery({ src: '10.0.0.2', dst: 'fd00::1', port: '80' }), /one IP family/)
  t.match(parseTraceQuery({ src: '10.0.0.2', dst: '172.30.0.41', port: '0' }), /port must be 1-65535/)
  t.match(parseTraceQuery({ src: '10.0.0.2', dst: '172.30.0.41', port: '80', protocol: 'gre' }), /protocol must be/)
  t.match(parseTraceQuery({ dst: '172.30.0.41', port: '80' }), /src must be an IP address/)
})

t.test('the answer is printed for people, and refusals are errors', async t => {
  const target = parseTraceArgs('203.0.113.2', '192.168.0.2:3001')
  const text = formatTrace(target, {
    entry: { servicePort: 'ns1/svc1:p80', kind: 'nodePort' },
    verdict: 'forward',
    reason: 'externalTrafficPolicy=Cluster: masqueraded',
    endpoints: [{ ip: '10.180.0.1', port: 80, masquerade: true }, { ip: 'fd00::1', port: 80, masquerade: false }],
  })
  t.equal(text, [
    '203.0.113.2 -> 192.168.0.2:3001/TCP',
    'entry:     ns1/svc1:p80 (nodePort)',
    'verdict:   forward',
    'reason:    externalTrafficPolicy=Cluster: masqueraded',
    'endpoints:',
    '  10.180.0.1:80  (source masqueraded to a node address)',
    '  [fd00::1]:80',
    '',
  ].join('\n'))
  let asked = ''
  const fake = (async (url: URL) => {
    asked = url.toString()
    return new Response(JSON.stringify({ error: 'this ferryd proxies IPv4 only' }), { status: 400 })
  }) as unknown as typeof fetch
  await t.rejects(trace('http://127.0.0.1:10249', target, fake), /answered 400: this ferryd proxies IPv4 only/)
  t.equal(asked, 'http://127.0.0.1:10249/debug/trace?src=203.0.113.2&dst=192.168.0.2&port=3001&protocol=TCP')
  const down = (async () => { throw new Error('connect ECONNREFUSED') }) as unknown as typeof fetch
  await t.rejects(trace('http://127.0.0.1:1', target, down), /cannot reach ferryd at http:\/\/127.0.0.1:1: connect ECONNREFUSED/)
})
