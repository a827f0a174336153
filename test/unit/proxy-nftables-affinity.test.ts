// Reading the kernel's affinity sets from nf_tables netlink dumps (byte-built messages), and the lines
// that put their clients back.
import t from 'tap'
import { affinitySetNames, rememberedClients } from '../../pkg/proxy/nftables/affinity-read.js'
import { carryLines } from '../../pkg/proxy/nftables/affinity-carry.js'
import { renderFull } from '../../pkg/proxy/nftables/render.js'
import { resolveNftablesOptions } from '../../pkg/proxy/nftables/options.js'
import { desired, ep, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'

function attr (type: number, payload: Buffer, nested = false): Buffer {
  const b = Buffer.alloc((4 + payload.length + 3) & ~3)
  b.writeUInt16LE(4 + payload.length, 0)
  b.writeUInt16LE(type | (nested ? 0x8000 : 0), 2)
  payload.copy(b, 4)
  return b
}
const str = (s: string): Buffer => Buffer.from(s + '\0')
const be64 = (n: number): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b }
/** One NFTA_LIST_ELEM: key (NFTA_SET_ELEM_KEY > NFTA_DATA_VALUE), timeout, and expiration when given. */
function elem (key: Buffer, expiresMs?: number): Buffer {
  const parts = [attr(1, attr(1, key), true), attr(4, be64(600_000))]
  if (expiresMs !== undefined) parts.push(attr(5, be64(expiresMs)))
  return attr(1, Buffer.concat(parts), true)
}

t.test('set names: only the affinity sets', async t => {
  const bodies = ['aff-1-cluster-2', 'service-ips', 'hairpin', 'aff-x'].map(n => Buffer.concat([attr(1, str('ferry')), attr(2, str(n)), attr(3, Buffer.from([0, 0, 0, 1]))]))
  t.same(affinitySetNames(bodies), ['aff-1-cluster-2', 'aff-x'])
})

t.test('elements: address and time left, per family; malformed or unexpiring ones skipped', async t => {
  const v4 = Buffer.concat([attr(1, str('ferry')), attr(2, str('aff-a')), attr(3, Buffer.concat([
    elem(Buffer.from([10, 0, 0, 7]), 4200), elem(Buffer.from([10, 0, 0, 8]), 0), elem(Buffer.from([10, 0, 0, 9])), elem(Buffer.from([10, 0]), 100),
  ]), true)])
  t.same(rememberedClients([v4, Buffer.concat([attr(1, str('ferry'))])], 'IPv4'), [{ ip: '10.0.0.7', expiresMs: 4200 }])
  const ip6 = Buffer.alloc(16); ip6.writeUInt16BE(0xfd00, 0); ip6[15] = 1
  const v6 = Buffer.concat([attr(3, elem(ip6, 99), true)])
  t.same(rememberedClients([v6], 'IPv6'), [{ ip: 'fd00::1', expiresMs: 99 }])
})

t.test('carry lines: declared sets only, capped, batched', async t => {
  const opts = resolveNftablesOptions({ family: 'IPv4', clusterCIDR: '10.0.0.0/8' })
  const sticky = desired(svcInfo({ name: 's', clusterIP: '172.30.0.13', stickyMaxAgeSeconds: 30 }), { cluster: [ep('10.180.0.3')] })
  const r = renderFull(stateOf([sticky]), opts)
  const set = /add set ip ferry (aff-\S+) /.exec(r.text)?.[1] ?? ''
  t.equal(carryLines('IPv4', r.owned, new Map()), '', 'nothing remembered, nothing written')
  const many = Array.from({ length: 501 }, (_, i) => ({ ip: `10.9.${i >> 8}.${i & 255}`, expiresMs: 1000 + i }))
  const lines = carryLines('IPv4', r.owned, new Map([[set, [{ ip: '10.0.0.1', expiresMs: 99_000 }, ...many]], ['aff-other', many]])).split('\n').filter(l => l !== '')
  t.equal(lines.length, 2, '502 clients in batches of 500, the unknown set skipped')
  t.ok(lines[0]?.startsWith(`add element ip ferry ${set} { 10.0.0.1 expires 30000ms, 10.9.0.0 expires 1000ms,`), 'capped at the 30 s timeout')
  t.equal(lines[1], `add element ip ferry ${set} { 10.9.1.243 expires 1499ms, 10.9.1.244 expires 1500ms }`)
})
