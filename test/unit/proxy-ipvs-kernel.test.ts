// The netlink IpvsKernel. On this host (no IPVS): opening reports FERRY_ERR_IPVS_UNAVAILABLE and leaves
// nothing holding the process. Against a scripted socket: the window, batching, sequence matching,
// dumps, errors and timeouts. Against a byte-level IPVS emulator: the same answers as FakeIpvsKernel.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { realServer, virtualServer } from '../../pkg/proxy/ipvs/desired.js'
import { formatAddress } from '../../pkg/proxy/ipvs/address.js'
import { FakeIpvsKernel } from '../../pkg/proxy/ipvs/fake-kernel.js'
import { NetlinkIpvsKernel, ipvsSupported, openIpvsKernel, openIpvsKernelWith } from '../../pkg/proxy/ipvs/kernel.js'
import { openGenericNetlink, type NetlinkTransport } from '../../pkg/proxy/ipvs/transport.js'
import type { IPFamily, IpvsOp, RealServer, VirtualServer, VirtualServerKey } from '../../pkg/proxy/ipvs/types.js'
import { parseAttrs, parseMessages, type NetlinkMessage } from '../../pkg/netlink/wire.js'

const FAMILY = 0x25
const KERNEL_TS = fileURLToPath(new URL('../../pkg/proxy/ipvs/kernel.js', import.meta.url))

// ---- Hand-built replies (little-endian host) ----
function tlv (type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length
  return Buffer.concat([Buffer.from([len & 0xff, len >> 8, type & 0xff, type >> 8]), payload, Buffer.alloc((4 - (len % 4)) % 4)])
}
const u16 = (v: number): Buffer => Buffer.from([v & 0xff, v >> 8])
const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b }
const i32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b }
const be16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff])
function nlmsg (type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const len = 16 + payload.length
  const h = Buffer.alloc(16)
  h.writeUInt32LE(len, 0); h.writeUInt16LE(type, 4); h.writeUInt16LE(flags, 6); h.writeUInt32LE(seq, 8)
  return Buffer.concat([h, payload, Buffer.alloc((4 - (len % 4)) % 4)])
}
/** NLMSG_ERROR: -errno, then the request's header (16 bytes; the kernel copies it). */
const ack = (seq: number, errno = 0): Buffer => nlmsg(2, 0x100, seq, Buffer.concat([i32(-errno), Buffer.alloc(16)]))
const done = (seq: number, errno = 0): Buffer => nlmsg(3, 0x2, seq, i32(-errno))
const familyReply = (seq: number, id: number): Buffer =>
  nlmsg(0x10, 0, seq, Buffer.concat([Buffer.from([1, 2, 0, 0]), tlv(2, Buffer.from('IPVS\0')), tlv(1, u16(id))]))

function addr16 (family: IPFamily, text: string): Buffer {
  if (family === 'IPv4') return Buffer.concat([Buffer.from(text.split('.').map(Number)), Buffer.alloc(12)])
  const [head = '', tail = ''] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const tl = tail === '' ? [] : tail.split(':')
  const groups = [...h, ...Array<string>(8 - h.length - tl.length).fill('0'), ...tl]
  return Buffer.concat(groups.map(g => be16(Number.parseInt(g, 16))))
}
function serviceMsg (seq: number, s: VirtualServer): Buffer {
  const af = s.family === 'IPv4' ? 2 : 10
  const mask = s.family === 'IPv4' ? Buffer.from([0, 0, 0, 0].map((_, i) => 0xff & (0xff << (8 - Math.max(0, Math.min(8, s.netmask - i * 8)))))) : u32(s.netmask)
  return nlmsg(FAMILY, 0x2, seq, Buffer.concat([Buffer.from([1, 1, 0, 0]), tlv(1, Buffer.concat([
    tlv(1, u16(af)), tlv(2, u16({ TCP: 6, UDP: 17, SCTP: 132 }[s.protocol])), tlv(3, addr16(s.family, s.address)), tlv(4, be16(s.port)),
    tlv(6, Buffer.from(`${s.scheduler}\0`)), tlv(7, Buffer.concat([u32(s.flags | 0x2), u32(0xffffffff)])), tlv(8, u32(s.timeout)), tlv(9, mask),
    tlv(10, tlv(1, u32(0))),
  ]))]))
}
function destMsg (seq: number, family: IPFamily, d: RealServer): Buffer {
  const fwd = { masq: 0, local: 1, tunnel: 2, route: 3, bypass: 4 }[d.forward]
  return nlmsg(FAMILY, 0x2, seq, Buffer.concat([Buffer.from([5, 1, 0, 0]), tlv(2, Buffer.concat([
    tlv(1, addr16(family, d.address)), tlv(2, be16(d.port)), tlv(3, u32(fwd)), tlv(4, u32(d.weight)), tlv(5, u32(d.upperThreshold)), tlv(6, u32(d.lowerThreshold)),
    tlv(7, u32(d.activeConns)), tlv(8, u32(d.inactiveConns)), tlv(9, u32(d.persistConns)), tlv(11, u16(family === 'IPv4' ? 2 : 10)),
  ]))]))
}

/** A socket whose replies the test writes. */
class ScriptedTransport implements NetlinkTransport {
  readonly datagrams: Buffer[] = []
  readonly refs: string[] = []
  closed = false
  private receive: (d: Buffer) => void = () => {}
  private error: (e: Error) => void = () => {}
  onSend: (msgs: NetlinkMessage[]) => void = () => {}

  send (datagram: Buffer, cb: (err?: Error) => void): void {
    this.datagrams.push(datagram)
    setImmediate(() => { cb(); this.onSend(parseMessages(datagram)) })
  }

  onDatagram (fn: (d: Buffer) => void): void { this.receive = fn }
  onError (fn: (e: Error) => void): void { this.error = fn }
  /** Like the real socket's uv handle: a ref holds the event loop open. */
  private hold: NodeJS.Timeout | undefined
  ref (): void { this.refs.push('ref'); this.hold ??= setInterval(() => {}, 1 << 30) }
  unref (): void { this.refs.push('unref'); clearInterval(this.hold); this.hold = undefined }
  close (): void { this.closed = true; this.unref() }
  deliver (...parts: Buffer[]): void { this.receive(Buffer.concat(parts)) }
  fail (e: Error): void { this.error(e) }
  /** Every request sent so far. */
  get sent (): NetlinkMessage[] { return this.datagrams.flatMap(d => parseMessages(d)) }
}

/** Opens over a scripted transport that answers the family lookup with FAMILY. */
async function scripted (options: ConstructorParameters<typeof NetlinkIpvsKernel>[1] = {}): Promise<{ k: NetlinkIpvsKernel, tr: ScriptedTransport }> {
  const tr = new ScriptedTransport()
  tr.onSend = msgs => { const m = msgs[0]; if (m !== undefined) tr.deliver(familyReply(m.seq, FAMILY)) }
  const k = await openIpvsKernelWith(tr, options)
  tr.onSend = () => {}
  tr.datagrams.length = 0
  return { k, tr }
}

const tick = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))
const KEY4: VirtualServerKey = { family: 'IPv4', protocol: 'TCP', address: '10.96.0.1', port: 443 }
const KEY6: VirtualServerKey = { family: 'IPv6', protocol: 'UDP', address: 'fd00::a', port: 53 }
const vs = virtualServer
const rs = (address: string, port = 8080, o: Partial<RealServer> = {}): RealServer => realServer(address, port, o)
const destOps = (n: number): IpvsOp[] => Array.from({ length: n }, (_, i) =>
  ({ op: 'addDestination', service: KEY4, destination: rs(`10.244.${i >> 8}.${i & 0xff}`) }))

// ---- This host's kernel (no IPVS) ----

t.test('on this host opening reports that IPVS is unavailable (ENOENT), with a coded error', async t => {
  await t.rejects(openIpvsKernel(), {
    code: 'FERRY_ERR_IPVS_UNAVAILABLE',
    message: /IPVS is not available in this kernel.*module ip_vs not loaded/,
    details: { errno: 2, family: 'IPVS' },
  })
  const support = await ipvsSupported()
  t.same(support, { ok: false, code: 'FERRY_ERR_IPVS_UNAVAILABLE', reason: support.ok ? '' : support.reason })
  t.match(support, { reason: /ip_vs/ })
})

t.test('the real socket resolves a family that exists (nlctrl is 0x10) and answers ENOENT as null', async t => {
  const k = new NetlinkIpvsKernel(openGenericNetlink())
  t.teardown(() => k.close())
  t.equal(await k.lookupFamily('nlctrl'), 0x10)
  t.equal(await k.lookupFamily('IPVS'), null)
  const [a, b] = await Promise.all([k.lookupFamily('nlctrl'), k.lookupFamily('no-such-family')])
  t.same([a, b], [0x10, null], 'two requests in flight are told apart by sequence number')
  await t.rejects(k.apply([]), { code: 'FERRY_ERR_NETLINK', message: /not resolved/ }, 'IPVS requests need the family id')
  k.close()
  await t.rejects(k.lookupFamily('nlctrl'), { code: 'FERRY_ERR_NETLINK', message: /closed/ })
})

t.test('a failed open, or a kernel left open and idle, never keeps the process alive', async t => {
  const script = `
    const { openIpvsKernel, NetlinkIpvsKernel } = await import(${JSON.stringify(KERNEL_TS)})
    const { openGenericNetlink } = await import(${JSON.stringify(KERNEL_TS.replace(/kernel\.js$/, 'transport.js'))})
    try { await openIpvsKernel() } catch (e) { console.log(e.code) }
    const idle = new NetlinkIpvsKernel(openGenericNetlink())
    console.log(await idle.lookupFamily('nlctrl'))
  `
  const loader = process.execArgv.filter(a => a.includes('typescript'))
  const child = spawn(process.execPath, [...loader, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const [code, signal] = await new Promise<[number | null, string | null]>(resolve => child.on('exit', (c, s) => resolve([c, s])))
  clearTimeout(killer)
  t.equal(signal, null, `exited by itself ${err}`)
  t.equal(code, 0, err)
  t.same(out.trim().split('\n'), ['FERRY_ERR_IPVS_UNAVAILABLE', '16'])
})

// ---- The protocol machinery, against a scripted socket ----

t.test('family resolution: ENOENT closes the socket and says IPVS is missing; success records the id', async t => {
  const tr = new ScriptedTransport()
  tr.onSend = msgs => { const m = msgs[0]; if (m !== undefined) tr.deliver(ack(m.seq, 2)) }
  await t.rejects(openIpvsKernelWith(tr), { code: 'FERRY_ERR_IPVS_UNAVAILABLE' })
  t.equal(tr.closed, true)
  t.same(tr.sent.map(m => [m.type, m.flags]), [[0x10, 0x1]], 'one CTRL_CMD_GETFAMILY request')
  const { k } = await scripted()
  t.equal(k.familyId, FAMILY)
  k.close()
})

t.test('apply: every request carries REQUEST|ACK and the family id; a window of 256, refilled when half drained', async t => {
  const { k, tr } = await scripted()
  const ops = destOps(600)
  const pending = k.apply(ops)
  await tick()
  t.equal(tr.sent.length, 256, 'the first window')
  t.equal(tr.datagrams.length, 1, 'in one sendmsg')
  t.ok(tr.sent.every(m => m.type === FAMILY && m.flags === 0x5))
  t.equal(new Set(tr.sent.map(m => m.seq)).size, 256, 'distinct sequence numbers')
  const first = tr.sent.slice()
  // Every 100th op gets EEXIST.
  const errnoFor = (seq: number): number => (seq - (first[0]?.seq ?? 0)) % 100 === 0 ? 17 : 0
  for (const m of first.slice(0, 127)) tr.deliver(ack(m.seq, errnoFor(m.seq)))
  await tick()
  t.equal(tr.sent.length, 256, 'no refill while more than half is in flight')
  tr.deliver(ack(first[127]?.seq ?? 0, errnoFor(first[127]?.seq ?? 0)))
  await tick()
  t.equal(tr.sent.length, 384, 'refilled to the window once half drained')
  // Ack the rest out of order.
  const answer = (): void => {
    const open = tr.sent.slice(128).filter(m => !answered.has(m.seq)).reverse()
    for (const m of open) { answered.add(m.seq); tr.deliver(ack(m.seq, errnoFor(m.seq))) }
  }
  const answered = new Set<number>(first.slice(0, 128).map(m => m.seq))
  for (let i = 0; i < 10 && answered.size < 600; i++) { answer(); await tick() }
  const results = await pending
  t.equal(results.length, 600)
  t.ok(results.every((r, i) => r.op === ops[i]), 'results in op order')
  t.same(results.flatMap((r, i) => r.errno === 0 ? [] : [[i, r.errno]]), [0, 100, 200, 300, 400, 500].map(i => [i, 17]))
  t.equal(tr.refs.at(-1), 'unref', 'idle again')
  k.close()
})

t.test('apply reads and encodes ops only as the window frees: a full sync holds one window of messages, not all', async t => {
  const { k, tr } = await scripted()
  const ops = destOps(2000)
  // Count which ops apply() has looked at (it must read an op to encode it).
  const read = new Set<number>()
  const watched = ops.map((op, i) => ({ ...op, get service () { read.add(i); return op.service } })) as IpvsOp[]
  const pending = k.apply(watched)
  await tick()
  t.equal(tr.sent.length, 256, 'the first window went out')
  t.ok(read.size <= 257, `before any ack only the first window was encoded (${read.size} of 2000 read)`)
  tr.onSend = msgs => { for (const m of msgs) tr.deliver(ack(m.seq)) }
  for (const m of tr.sent) tr.deliver(ack(m.seq))
  const results = await pending
  t.equal(results.length, 2000)
  t.ok(results.every((r, i) => r.op === watched[i] && r.errno === 0), 'every op acked, in op order')
  t.equal(tr.sent.length, 2000, 'each sent once')
  k.close()
})

t.test('sends are batched up to maxDatagram bytes', async t => {
  const { k, tr } = await scripted({ maxDatagram: 4096 })
  const pending = k.apply(destOps(200))
  await tick()
  t.equal(tr.sent.length, 200)
  t.ok(tr.datagrams.length > 1 && tr.datagrams.every(d => d.length <= 4096), `${tr.datagrams.length} datagrams`)
  for (const m of tr.sent) tr.deliver(ack(m.seq))
  t.equal((await pending).length, 200)
  k.close()
})

t.test('an op that cannot be encoded is EINVAL without being sent; an empty apply sends nothing', async t => {
  const { k, tr } = await scripted()
  tr.onSend = msgs => { for (const m of msgs) tr.deliver(ack(m.seq)) }
  const bad: IpvsOp = { op: 'addService', service: vs({ ...KEY4, address: 'not-an-ip' }) }
  const good: IpvsOp = { op: 'addService', service: vs(KEY4) }
  t.same((await k.apply([bad, good])).map(r => r.errno), [22, 0])
  t.equal(tr.sent.length, 1)
  t.same(await k.apply([]), [])
  t.equal(tr.sent.length, 1)
  k.close()
})

t.test('dumps: REQUEST|DUMP, parts over several datagrams until DONE, one dump at a time', async t => {
  const { k, tr } = await scripted()
  const a = k.listDestinations(KEY4)
  const b = k.listDestinations(KEY6)
  await tick()
  t.same(tr.sent.map(m => [m.type, m.flags]), [[FAMILY, 0x301]], 'the second dump waits for the first')
  const s1 = tr.sent[0]?.seq ?? 0
  tr.deliver(destMsg(s1, 'IPv4', rs('10.244.1.5', 8080, { activeConns: 2 })), destMsg(s1, 'IPv4', rs('10.244.1.6')))
  tr.deliver(destMsg(s1, 'IPv4', rs('10.244.1.7', 8080, { weight: 0 })), done(s1))
  t.same(await a, [rs('10.244.1.5', 8080, { activeConns: 2 }), rs('10.244.1.6'), rs('10.244.1.7', 8080, { weight: 0 })])
  await tick()
  t.equal(tr.sent.length, 2)
  tr.deliver(done(tr.sent[1]?.seq ?? 0))
  t.same(await b, [], 'an empty dump is just DONE')

  const services = k.listServices()
  await tick()
  const s3 = tr.sent[2]?.seq ?? 0
  t.same(tr.sent[2]?.payload, Buffer.from([4, 1, 0, 0]))
  tr.deliver(serviceMsg(s3, vs(KEY4, { flags: 1, timeout: 10800 })), serviceMsg(s3, vs(KEY6, { scheduler: 'mh', flags: 0x10 })), done(s3))
  t.same(await services, [vs(KEY4, { flags: 1, timeout: 10800 }), vs(KEY6, { scheduler: 'mh', flags: 0x10 })])
  k.close()
})

t.test('dump failures are coded errors: an NLMSG_ERROR (EPERM) or an error in DONE; the next dump still runs', async t => {
  const { k, tr } = await scripted()
  tr.onSend = msgs => { for (const m of msgs) tr.deliver(ack(m.seq, 1)) }
  await t.rejects(k.listServices(), { code: 'FERRY_ERR_NETLINK', message: /EPERM/, details: { errno: 1 } })
  tr.onSend = msgs => { for (const m of msgs) tr.deliver(serviceMsg(m.seq, vs(KEY4)), done(m.seq, 16)) }
  await t.rejects(k.listServices(), { code: 'FERRY_ERR_NETLINK', details: { errno: 16 } })
  tr.onSend = msgs => { for (const m of msgs) tr.deliver(done(m.seq)) }
  t.same(await k.listServices(), [])
  k.close()
})

t.test('info, flush and stray replies', async t => {
  const { k, tr } = await scripted()
  tr.onSend = msgs => {
    for (const m of msgs) {
      tr.deliver(ack(m.seq + 1000)) // nobody asked: ignored
      if (m.payload[0] === 15) tr.deliver(nlmsg(FAMILY, 0, m.seq, Buffer.concat([Buffer.from([14, 1, 0, 0]), tlv(1, u32(0x010201)), tlv(2, u32(4096))])))
      else tr.deliver(ack(m.seq, m.payload[0] === 17 ? 0 : 22))
    }
  }
  t.same(await k.info(), { version: '1.2.1', connTableSize: 4096 })
  await k.flush()
  t.same(tr.sent.map(m => [m.flags, m.payload[0]]), [[0x1, 15], [0x5, 17]])
  k.close()
})

t.test('a socket error fails what is outstanding; the kernel stays usable and ignores the late acks', async t => {
  const { k, tr } = await scripted()
  const pending = k.apply(destOps(3))
  await tick()
  const lost = tr.sent.map(m => m.seq)
  tr.fail(Object.assign(new Error('recvmsg ENOBUFS'), { errno: 105 }))
  await t.rejects(pending, { code: 'FERRY_ERR_NETLINK', details: { errno: 105 } })
  tr.onSend = msgs => { for (const m of msgs) tr.deliver(ack(m.seq)) }
  for (const s of lost) tr.deliver(ack(s, 17))
  t.same((await k.apply(destOps(2))).map(r => r.errno), [0, 0])
  k.close()
})

t.test('no reply within timeoutMs fails the request; close() fails what waits and closes the socket', async t => {
  const { k, tr } = await scripted({ timeoutMs: 30 })
  await t.rejects(k.apply(destOps(1)), { code: 'FERRY_ERR_NETLINK', message: /no reply for 30 ms/ })
  t.equal(tr.refs.at(-1), 'unref')
  const waiting = k.listServices()
  await tick()
  k.close()
  await t.rejects(waiting, { code: 'FERRY_ERR_NETLINK', message: /closed/ })
  t.equal(tr.closed, true)
})

// ---- Byte-level IPVS emulator: the netlink class must answer exactly as the fake does ----

/** Reads a request the way ip_vs_genl_parse_service / _parse_dest do, runs it on a FakeIpvsKernel, answers in bytes. */
class EmulatedIpvs extends ScriptedTransport {
  constructor (readonly fake: FakeIpvsKernel) {
    super()
    this.onSend = msgs => { void this.serve(msgs) }
  }

  private async serve (msgs: NetlinkMessage[]): Promise<void> {
    for (const m of msgs) {
      if (m.type === 0x10) { this.deliver(familyReply(m.seq, FAMILY)); continue }
      const cmd = m.payload[0]
      const attrs = parseAttrs(m.payload.subarray(4))
      const svcAttrs = parseAttrs(attrs.get(1) ?? Buffer.alloc(0))
      if (cmd === 4) {
        const list = await this.fake.listServices()
        for (let i = 0; i < list.length; i += 3) this.deliver(...list.slice(i, i + 3).map(s => serviceMsg(m.seq, s)))
        this.deliver(done(m.seq))
      } else if (cmd === 17) {
        await this.fake.flush()
        this.deliver(ack(m.seq))
      } else if (cmd === 8) {
        const key = readKey(svcAttrs)
        this.deliver(...(await this.fake.listDestinations(key)).map(d => destMsg(m.seq, key.family, d)), done(m.seq))
      } else {
        const op = readOp(cmd ?? 0, svcAttrs, parseAttrs(attrs.get(2) ?? Buffer.alloc(0)))
        const [r] = await this.fake.apply([op])
        this.deliver(ack(m.seq, r?.errno ?? 22))
      }
    }
  }
}

function readKey (a: Map<number, Buffer>): VirtualServerKey {
  const family: IPFamily = a.get(1)?.readUInt16LE(0) === 10 ? 'IPv6' : 'IPv4'
  const proto = a.get(2)?.readUInt16LE(0)
  return { family, protocol: proto === 6 ? 'TCP' : proto === 17 ? 'UDP' : 'SCTP', address: formatAddress(family, a.get(3) ?? Buffer.alloc(0)) ?? '?', port: a.get(4)?.readUInt16BE(0) ?? -1 }
}

function readOp (cmd: number, s: Map<number, Buffer>, d: Map<number, Buffer>): IpvsOp {
  const service = readKey(s)
  if (cmd === 3) return { op: 'deleteService', service }
  if (cmd === 1 || cmd === 2) {
    const mask = s.get(9) ?? Buffer.alloc(4)
    const netmask = service.family === 'IPv4' ? mask.readUInt32BE(0).toString(2).replace(/0+$/, '').length : mask.readUInt32LE(0)
    const full: VirtualServer = { ...service, scheduler: (s.get(6) ?? Buffer.alloc(1)).toString('latin1').replace(/\0.*$/, ''), flags: s.get(7)?.readUInt32LE(0) ?? -1, timeout: s.get(8)?.readUInt32LE(0) ?? -1, netmask }
    return { op: cmd === 1 ? 'addService' : 'updateService', service: full }
  }
  const family: IPFamily = d.get(11)?.readUInt16LE(0) === 10 ? 'IPv6' : 'IPv4'
  const key = { address: formatAddress(family, d.get(1) ?? Buffer.alloc(0)) ?? '?', port: d.get(2)?.readUInt16BE(0) ?? -1 }
  if (cmd === 7) return { op: 'deleteDestination', service, destination: key }
  const fwd = (['masq', 'local', 'tunnel', 'route', 'bypass'] as const)[d.get(3)?.readUInt32LE(0) ?? 9] ?? 'masq'
  const destination: RealServer = { ...key, forward: fwd, weight: d.get(4)?.readInt32LE(0) ?? 0, upperThreshold: d.get(5)?.readUInt32LE(0) ?? 0, lowerThreshold: d.get(6)?.readUInt32LE(0) ?? 0, activeConns: 0, inactiveConns: 0, persistConns: 0 }
  return { op: cmd === 5 ? 'addDestination' : 'updateDestination', service, destination }
}

t.test('over the byte-level emulator the netlink kernel gives the fake\'s answers: errnos, listings, dest order', async t => {
  const reference = new FakeIpvsKernel({ schedulers: ['rr', 'mh'] })
  const emulated = new EmulatedIpvs(new FakeIpvsKernel({ schedulers: ['rr', 'mh'] }))
  const k = await openIpvsKernelWith(emulated, { window: 16 })
  t.teardown(() => k.close())
  const script: IpvsOp[] = [
    { op: 'addService', service: vs(KEY4, { flags: 0x1, timeout: 10800 }) },
    { op: 'addService', service: vs(KEY4) },
    { op: 'addService', service: vs(KEY6, { scheduler: 'mh', flags: 0x10 }) },
    { op: 'addService', service: vs({ ...KEY4, port: 80 }, { scheduler: 'wlc' }) },
    { op: 'addService', service: vs({ ...KEY6, port: 54 }, { netmask: 0 }) },
    ...destOps(40),
    { op: 'addDestination', service: KEY6, destination: rs('fd00:10:244::5', 53, { weight: 3 }) },
    { op: 'addDestination', service: KEY6, destination: rs('fd00:10:244::6', 53) },
    { op: 'addDestination', service: KEY4, destination: rs('10.244.0.1') },
    { op: 'updateDestination', service: KEY4, destination: rs('10.244.0.2', 8080, { weight: 0 }) },
    { op: 'updateDestination', service: KEY4, destination: rs('10.9.9.9') },
    { op: 'deleteDestination', service: KEY4, destination: { address: '10.244.0.3', port: 8080 } },
    { op: 'deleteDestination', service: KEY6, destination: { address: 'fd00::1', port: 53 } },
    { op: 'addDestination', service: { ...KEY4, port: 9 }, destination: rs('10.0.0.1') },
    { op: 'addDestination', service: KEY4, destination: rs('10.0.0.1', 80, { weight: -1 }) },
    { op: 'updateService', service: vs(KEY4, { scheduler: 'mh', flags: 0x10 }) },
    { op: 'deleteService', service: { ...KEY4, port: 80 } },
  ]
  const want = (await reference.apply(script)).map(r => r.errno)
  const got = await k.apply(script)
  t.same(got.map(r => r.errno), want)
  t.same(want.filter(e => e !== 0).sort((a, b) => a - b), [2, 2, 2, 3, 3, 17, 17, 22, 34], 'the script exercises the error paths')
  t.same(await k.listServices(), await reference.listServices())
  for (const key of [KEY4, KEY6, { ...KEY4, port: 80 }]) t.same(await k.listDestinations(key), await reference.listDestinations(key), `${key.address}:${key.port}`)
  await k.flush()
  t.same(await k.listServices(), [])
})
