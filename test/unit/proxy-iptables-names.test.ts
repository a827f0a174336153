import t from 'tap'
import {
  Chain, MAX_CHAIN_LEN, endpointChainName, endpointString, isPerServiceChain, serviceChainNames, servicePortHash,
} from '../../pkg/proxy/iptables/names.js'

t.test('PROXY.md example hashes', async t => {
  t.equal(servicePortHash('ns1/svc1:p80', 'TCP'), 'XPGD46QRK7WJZT7O')
  t.equal(servicePortHash('ns1/svc1:p80', 'tcp'), 'XPGD46QRK7WJZT7O', 'protocol is lower-cased')
  const n = serviceChainNames('ns1/svc1:p80', 'TCP')
  t.same(n, {
    svc: 'FERRY-SVC-XPGD46QRK7WJZT7O',
    svl: 'FERRY-SVL-XPGD46QRK7WJZT7O',
    ext: 'FERRY-EXT-XPGD46QRK7WJZT7O',
    fw: 'FERRY-FW-XPGD46QRK7WJZT7O',
  })
  t.equal(endpointChainName('ns1/svc1:p80', 'TCP', '10.180.0.1', 80), 'FERRY-SEP-SXIVWICOYRO3J4NJ')
})

t.test('protocols and endpoints give distinct names', async t => {
  const names = new Set([
    servicePortHash('ns/a:dns', 'UDP'), servicePortHash('ns/a:dns', 'TCP'), servicePortHash('ns/a:dns', 'SCTP'),
    servicePortHash('ns/a', 'TCP'),
  ])
  t.equal(names.size, 4)
  t.not(endpointChainName('ns/a', 'TCP', '10.0.0.1', 80), endpointChainName('ns/a', 'TCP', '10.0.0.1', 81))
})

t.test('IPv6 endpoints are bracketed like JoinHostPort', async t => {
  t.equal(endpointString('fd00::1', 80), '[fd00::1]:80')
  t.equal(endpointString('10.0.0.1', 80), '10.0.0.1:80')
})

t.test('every name fits iptables limit', async t => {
  for (const c of Object.values(Chain)) t.ok(c.length <= MAX_CHAIN_LEN, c)
  const n = serviceChainNames('a-very-long-namespace-name/a-very-long-service-name:a-long-port-name', 'SCTP')
  for (const c of Object.values(n)) t.ok(c.length <= MAX_CHAIN_LEN, c)
  t.ok(endpointChainName('x/y', 'UDP', 'fd00:1234:5678::abcd', 65535).length <= MAX_CHAIN_LEN)
})

t.test('per-service prefixes', async t => {
  t.ok(isPerServiceChain('FERRY-SEP-SXIVWICOYRO3J4NJ'))
  t.ok(isPerServiceChain('FERRY-FW-XPGD46QRK7WJZT7O'))
  t.notOk(isPerServiceChain('FERRY-SERVICES'))
  t.notOk(isPerServiceChain('KUBE-SVC-XPGD46QRK7WJZT7O'))
})
