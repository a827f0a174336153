// The node file as ferry-cni reads it: the shared parser (pkg/overlay/subnet-file.ts), errors naming the
// key, and the per-family view the bridge and IPAM use.
import t from 'tap'
import { nodeFamilies } from '../../cni-plugin/subnet-file.js'
import { parseSubnetFile } from '../../pkg/overlay/subnet-file.js'

const V4 = 'FERRY_NETWORK=10.244.0.0/16\nFERRY_SUBNET=10.244.1.1/24\nFERRY_MTU=1450\nFERRY_IPMASQ=true\n'

t.test('parses single and dual stack', async t => {
  t.same(parseSubnetFile(V4), { network: '10.244.0.0/16', subnet: '10.244.1.1/24', mtu: 1450, ipMasq: true })
  const dual = parseSubnetFile('# written by ferryd\n' + V4.replace('true', 'false') + 'FERRY_NETWORK_IPV6=fd00:10:244::/56\nFERRY_SUBNET_IPV6=fd00:10:244:1::1/64\n')
  t.same(dual, { network: '10.244.0.0/16', subnet: '10.244.1.1/24', mtu: 1450, ipMasq: false, networkIPv6: 'fd00:10:244::/56', subnetIPv6: 'fd00:10:244:1::1/64' })
  t.same(nodeFamilies(dual), [
    { family: 'IPv4', network: '10.244.0.0/16', subnet: '10.244.1.0/24', gateway: '10.244.1.1', prefix: 24 },
    { family: 'IPv6', network: 'fd00:10:244::/56', subnet: 'fd00:10:244:1::/64', gateway: 'fd00:10:244:1::1', prefix: 64 },
  ])
})

t.test('families come out in canonical text whatever the file spells', async t => {
  const f = parseSubnetFile(V4 + 'FERRY_NETWORK_IPV6=FD00:10:244:0::/56\nFERRY_SUBNET_IPV6=fd00:0010:244:1:0:0:0:1/64\n')
  t.same(nodeFamilies(f)[1], { family: 'IPv6', network: 'fd00:10:244::/56', subnet: 'fd00:10:244:1::/64', gateway: 'fd00:10:244:1::1', prefix: 64 })
})

t.test('errors name the key', async t => {
  const drop = (k: string): string => V4.split('\n').filter(l => !l.startsWith(k + '=')).join('\n')
  const cases: Array<[string, string, RegExp]> = [
    ['no network', drop('FERRY_NETWORK'), /FERRY_NETWORK: missing FERRY_NETWORK=/],
    ['no subnet', drop('FERRY_SUBNET'), /FERRY_SUBNET: missing FERRY_SUBNET=/],
    ['no mtu', drop('FERRY_MTU'), /FERRY_MTU: missing FERRY_MTU=/],
    ['no ipmasq', drop('FERRY_IPMASQ'), /FERRY_IPMASQ: missing FERRY_IPMASQ=/],
    ['empty value', V4.replace('FERRY_MTU=1450', 'FERRY_MTU='), /FERRY_MTU: missing/],
    ['bad mtu', V4.replace('1450', '14x'), /FERRY_MTU: must be an integer, got "14x"/],
    ['bad ipmasq', V4.replace('true', 'yes'), /FERRY_IPMASQ: must be true or false, got "yes"/],
    ['network address as gateway', V4.replace('10.244.1.1/24', '10.244.1.0/24'), /FERRY_SUBNET: .* names the network address/],
    ['v6 subnet in the v4 key', V4.replace('10.244.1.1/24', 'fd00::1/64'), /FERRY_SUBNET: want an IPv4 gateway/],
    ['subnet outside the network', V4.replace('10.244.1.1/24', '10.245.1.1/24'), /FERRY_SUBNET: .* is not inside FERRY_NETWORK/],
    ['half of dual stack', V4 + 'FERRY_NETWORK_IPV6=fd00::/56\n', /FERRY_SUBNET_IPV6: /],
    ['not KEY=VALUE', V4 + 'garbage\n', /line 5: want KEY=VALUE, got "garbage"/],
  ]
  for (const [name, text, msg] of cases) t.throws(() => parseSubnetFile(text), { code: 'FERRY_ERR_PARSE', message: msg }, name)
})

t.test('keys of other tools are ignored', async t => {
  t.same(parseSubnetFile(V4 + 'FLANNEL_MTU=1450\n'), parseSubnetFile(V4))
})
