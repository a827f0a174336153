// Allocation logic over the in-memory store: order, wrap, exhaustion, idempotency, release, GC, crash recovery.
import t from 'tap'
import { isFerryError } from '../../pkg/errors/errors.js'
import { candidates, nextFree, pickNext, PROBES_BEFORE_LISTING } from '../../pkg/ipam/allocator.js'
import { createIpam } from '../../pkg/ipam/ipam.js'
import { MemoryIpamStore } from '../../pkg/ipam/memory-store.js'
import { bigintToIp, ipToBigint, resolveRange } from '../../pkg/ipam/range.js'
import type { Attachment } from '../../pkg/ipam/types.js'

const att = (i: number, ifname = 'eth0'): Attachment => ({ containerID: `c${i}`, ifname })
const v4 = (n: bigint): string => bigintToIp(n, 'IPv4')

t.test('candidates: after the hint, wrapping, gateway skipped, each once', async t => {
  const r = resolveRange({ subnet: '10.90.0.0/29' }, 0) // .1 (gateway) to .6
  t.same([...candidates(r, null)].map(v4), ['10.90.0.2', '10.90.0.3', '10.90.0.4', '10.90.0.5', '10.90.0.6'])
  t.same([...candidates(r, ipToBigint('10.90.0.4', 'IPv4'))].map(v4), ['10.90.0.5', '10.90.0.6', '10.90.0.2', '10.90.0.3', '10.90.0.4'])
  t.same([...candidates(r, ipToBigint('10.90.0.6', 'IPv4'))].map(v4)[0], '10.90.0.2', 'hint at rangeEnd wraps')
  t.same([...candidates(r, ipToBigint('10.1.1.1', 'IPv4'))].map(v4)[0], '10.90.0.2', 'a hint outside the range is ignored')
  const taken = new Set(['10.90.0.5', '10.90.0.6', '10.90.0.2'].map(ip => ipToBigint(ip, 'IPv4')))
  t.equal(v4(nextFree(r, ipToBigint('10.90.0.4', 'IPv4'), n => taken.has(n)) ?? -1n), '10.90.0.3')
  t.equal(nextFree(r, null, () => true), null)
})

t.test('first pod gets .2, then round-robin; freed addresses wait for the wrap', async t => {
  const store = new MemoryIpamStore()
  const ipam = createIpam(store, [{ subnet: '10.90.0.0/29' }])
  const got: string[] = []
  for (let i = 0; i < 3; i++) got.push((await ipam.allocate(att(i)))[0]?.ip ?? '')
  t.same(got, ['10.90.0.2', '10.90.0.3', '10.90.0.4'])
  t.same(await ipam.allocate(att(0)), [{ family: 'IPv4', ip: '10.90.0.2', prefix: 29, gateway: '10.90.0.1' }])
  await ipam.release(att(1))
  t.equal((await ipam.allocate(att(3)))[0]?.ip, '10.90.0.5', 'the freed .3 is not reused before the wrap')
  t.equal((await ipam.allocate(att(4)))[0]?.ip, '10.90.0.6')
  t.equal((await ipam.allocate(att(5)))[0]?.ip, '10.90.0.3', 'wrapped to the first free one')
  t.same(await ipam.available(), [0])
  t.equal(store.hints.get(0), '10.90.0.3', 'the hint is the last reservation')
})

t.test('exhaustion names the range and leaves nothing behind', async t => {
  const store = new MemoryIpamStore()
  const ipam = createIpam(store, [{ subnet: '10.90.0.0/29', rangeEnd: '10.90.0.3' }])
  await ipam.allocate(att(1))
  await ipam.allocate(att(2))
  const err = await ipam.allocate(att(3)).catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_IPAM_EXHAUSTED'))
  t.match((err as Error).message, 'no IP addresses available in range 0: 10.90.0.0/29 (10.90.0.1-10.90.0.3)')
  t.equal(store.readRecord(att(3)), null, 'no record for the failed attachment')
  t.same(await ipam.reserved(att(3)), [])
})

t.test('dual-stack: one IP per range, all or nothing', async t => {
  const store = new MemoryIpamStore()
  const ipam = createIpam(store, [{ subnet: '10.90.0.0/30' }, { subnet: 'fd00:10:244:1::/64' }]) // v4 holds one pod (.2)
  t.same(await ipam.allocate(att(1)), [
    { family: 'IPv4', ip: '10.90.0.2', prefix: 30, gateway: '10.90.0.1' },
    { family: 'IPv6', ip: 'fd00:10:244:1::2', prefix: 64, gateway: 'fd00:10:244:1::1' },
  ])
  t.equal((await ipam.allocate(att(1)))[1]?.ip, 'fd00:10:244:1::2', 'idempotent')
  const err = await ipam.allocate(att(2)).catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_IPAM_EXHAUSTED'))
  t.same([...store.entries.keys()].sort(), ['10.90.0.2', 'fd00:10:244:1::2'], 'nothing of attachment 2 stays reserved')
  const avail = await ipam.available()
  t.equal(avail[0], 0)
  t.ok((avail[1] ?? 0) > 1e18, 'a /64 is practically endless')
})

t.test('one reservation per (containerID, ifname): another ifname is another attachment', async t => {
  const ipam = createIpam(new MemoryIpamStore(), [{ subnet: '10.90.0.0/24' }])
  const a = await ipam.allocate(att(1, 'eth0'))
  const b = await ipam.allocate(att(1, 'net1'))
  t.not(a[0]?.ip, b[0]?.ip)
  t.same(await ipam.reserved(att(1, 'net1')), b)
  await ipam.release(att(1, 'eth0'))
  t.same(await ipam.reserved(att(1, 'eth0')), [])
  t.same(await ipam.reserved(att(1, 'net1')), b, 'releasing eth0 leaves net1')
  await ipam.release(att(9)) // never allocated: no error
  await ipam.release(att(1, 'eth0')) // twice: no error
})

t.test('gc frees exactly the reservations of attachments not in the valid list', async t => {
  const store = new MemoryIpamStore()
  const ipam = createIpam(store, [{ subnet: '10.90.0.0/24' }, { subnet: 'fd00::/120' }])
  for (let i = 0; i < 6; i++) await ipam.allocate(att(i))
  store.entries.set('10.90.0.200', 'unknown') // an entry whose owner was never written
  const valid = [att(1), att(3), att(5), att(7)]
  t.equal(await ipam.gc(valid), 3 * 2 + 1)
  for (const i of [1, 3, 5]) t.equal((await ipam.reserved(att(i))).length, 2, `c${i} kept`)
  for (const i of [0, 2, 4]) t.same(await ipam.reserved(att(i)), [], `c${i} freed`)
  t.same(store.listRecords().map(a => a.containerID).sort(), ['c1', 'c3', 'c5'])
  t.equal(await ipam.gc(valid), 0, 'a second gc finds nothing')
})

t.test('a crash between reservation and record is recovered by release and by gc', async t => {
  for (const recover of ['release', 'gc', 'allocate'] as const) {
    const store = new MemoryIpamStore()
    const ipam = createIpam(store, [{ subnet: '10.90.0.0/24' }])
    await ipam.allocate(att(1))
    // What allocate leaves when the process dies after the exclusive create: an intent record, an owned entry.
    store.writeRecord(att(2), { ips: [], complete: false })
    store.reserve('10.90.0.3', att(2))
    if (recover === 'release') {
      await ipam.release(att(2))
      t.same([...store.entries.keys()], ['10.90.0.2'], 'DEL freed the orphan')
    } else if (recover === 'gc') {
      t.equal(await ipam.gc([att(1)]), 1)
      t.same([...store.entries.keys()], ['10.90.0.2'], 'GC freed the orphan')
    } else {
      t.equal((await ipam.allocate(att(2)))[0]?.ip, '10.90.0.3', 'a retried ADD adopts its orphan, no second IP')
      t.equal(store.entries.size, 2)
    }
  }
})

t.test('a reservation deleted behind the store is re-allocated, a foreign one is not returned', async t => {
  const store = new MemoryIpamStore()
  const ipam = createIpam(store, [{ subnet: '10.90.0.0/24' }])
  await ipam.allocate(att(1))
  store.entries.set('10.90.0.2', { containerID: 'other', ifname: 'eth0' })
  t.same(await ipam.reserved(att(1)), [], 'CHECK sees the reservation is not ours')
  t.equal((await ipam.allocate(att(1)))[0]?.ip, '10.90.0.3')
  await ipam.release(att(1))
  t.same(store.entries.get('10.90.0.2'), { containerID: 'other', ifname: 'eth0' }, 'release never frees a foreign entry')
})

t.test('a nearly full /16 costs a bounded number of probes', async t => {
  const store = new MemoryIpamStore()
  const r = resolveRange({ subnet: '10.1.0.0/16' }, 0)
  const free = ipToBigint('10.1.3.7', 'IPv4')
  for (const n of candidates(r, null)) if (n !== free) store.entries.set(v4(n), { containerID: 'x', ifname: 'eth0' })
  t.equal(v4(pickNext(store, r, ipToBigint('10.1.200.0', 'IPv4')) ?? 0n), '10.1.3.7')
  t.equal(store.ownerCalls, PROBES_BEFORE_LISTING, 'probes, then one listing')
  store.ownerCalls = 0
  t.equal(pickNext(store, r, null, new Set([free])), null, 'full once the last one is lost to a race')
  t.equal(store.ownerCalls, PROBES_BEFORE_LISTING)
})

t.test('a crash after the record, before the exclusive create, leaves nothing to free', async t => {
  const store = new MemoryIpamStore()
  const ipam = createIpam(store, [{ subnet: '10.90.0.0/24' }])
  store.writeRecord(att(1), { ips: ['10.90.0.2'], complete: true }) // recorded, never created
  t.same(await ipam.reserved(att(1)), [])
  t.equal((await ipam.allocate(att(2)))[0]?.ip, '10.90.0.2', 'the address is free for others')
  t.equal((await ipam.allocate(att(1)))[0]?.ip, '10.90.0.3', 'and the retried ADD takes another')
  await ipam.release(att(1))
  t.same(store.readRecord(att(1)), null)
  t.same([...store.entries.keys()], ['10.90.0.2'])
})

t.test('invalid attachments are refused', async t => {
  const ipam = createIpam(new MemoryIpamStore(), [{ subnet: '10.90.0.0/24' }])
  await t.rejects(ipam.allocate({ containerID: '', ifname: 'eth0' }), { code: 'FERRY_ERR_INVALID_OBJECT' })
  await t.rejects(ipam.release({ containerID: 'c', ifname: '' }), { code: 'FERRY_ERR_INVALID_OBJECT' })
})

t.test('opened without ranges (DEL and GC with the node file gone): release and gc work, allocate refuses', async t => {
  const store = new MemoryIpamStore()
  await createIpam(store, [{ subnet: '10.90.0.0/24' }]).allocate(att(1))
  await createIpam(store, [{ subnet: '10.90.0.0/24' }]).allocate(att(2))
  const bare = createIpam(store, [])
  await bare.release(att(1))
  t.equal(await bare.gc([]), 1, 'gc frees the other one')
  t.same(store.listReserved(), [])
  await t.rejects(bare.allocate(att(3)), /no IPAM range configured/)
  await t.rejects(bare.available(), /no IPAM range configured/)
})
