// EtcdSource against a real etcd: list + replace, ordered watch events, bad values, compaction,
// a dropped connection, etcd stopped and restarted, etcd down at start, prompt stop.
import { createServer, connect, type Server, type Socket } from 'node:net'
import t from 'tap'
import type { Test } from 'tap'
import { Etcd3 } from 'etcd3'
import { objectKey, type KObject, type Kind } from '../../pkg/api/types.js'
import type { FerryError } from '../../pkg/errors/errors.js'
import { EtcdSource, type EtcdSourceOptions } from '../../pkg/source/etcd.js'
import { freePort, startEtcd, type EtcdHandle } from '../helpers/etcd.js'

const BACKOFF = { initialMs: 50, maxMs: 400 }

const svc = (name: string, ip: string, ns = 'default'): Record<string, unknown> =>
  ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { clusterIP: ip, ports: [{ port: 80 }] } })
const node = (name: string): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR: '10.244.1.0/24' } })
const slice = (name: string, ip: string): Record<string, unknown> => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': 'a' } },
  addressType: 'IPv4', endpoints: [{ addresses: [ip] }], ports: [{ port: 8080 }],
})
const svcKey = (name: string, ns = 'default'): string => `/ferry/v1/services/${ns}/${name}`

/** Records every handler call and mirrors the state the source describes. */
class Recorder {
  readonly events: string[] = []
  readonly errors: FerryError[] = []
  readonly state = new Map<string, KObject>()
  replaces = 0
  private waiters: Array<() => void> = []

  readonly handler = {
    replace: (objs: KObject[]) => {
      this.replaces++
      this.state.clear()
      for (const o of objs) this.state.set(objectKey(o), o)
      this.events.push(`replace ${objs.map(o => objectKey(o)).sort().join(',')}`)
      this.notify()
    },
    upsert: (o: KObject) => {
      this.state.set(objectKey(o), o)
      this.events.push(`upsert ${objectKey(o)}${o.kind === 'Service' ? ' ' + (o.spec.clusterIP ?? '') : ''}`)
      this.notify()
    },
    remove: (kind: Kind, ns: string | undefined, name: string) => {
      const k = ns !== undefined ? `${kind}/${ns}/${name}` : `${kind}/${name}`
      this.state.delete(k)
      this.events.push(`remove ${k}`)
      this.notify()
    },
    error: (e: FerryError) => { this.errors.push(e); this.events.push(`error ${e.code}`); this.notify() },
  }

  keys (): string[] { return [...this.state.keys()].sort() }
  ip (name: string): string | undefined {
    const o = this.state.get(`Service/default/${name}`)
    return o?.kind === 'Service' ? o.spec.clusterIP : undefined
  }

  private notify (): void { for (const w of this.waiters.splice(0)) w() }

  /** Resolves once `pred` holds; fails the wait with the event log after `ms`. */
  async until (pred: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!pred()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events)}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 100))
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }
}

async function setup (t: Test, opts: Partial<EtcdSourceOptions> = {}, etcdIn?: EtcdHandle): Promise<{ etcd: EtcdHandle, client: Etcd3, put: (k: string, v: unknown) => Promise<void>, source: (o?: Partial<EtcdSourceOptions>) => EtcdSource }> {
  const etcd = etcdIn ?? await startEtcd(t)
  const client = new Etcd3({ hosts: etcd.endpoint })
  t.teardown(() => { client.close() })
  const put = async (k: string, v: unknown): Promise<void> => { await client.put(k).value(typeof v === 'string' ? v : JSON.stringify(v)) }
  const source = (o: Partial<EtcdSourceOptions> = {}): EtcdSource => {
    const s = new EtcdSource({ endpoints: [etcd.endpoint], backoff: BACKOFF, requestTimeoutMs: 2000, ...opts, ...o })
    t.teardown(async () => { await s.stop() })
    return s
  }
  return { etcd, client, put, source }
}

t.test('list + replace, then ordered watch events', async t => {
  const { put, client, source } = await setup(t)
  await put(svcKey('a'), svc('a', '10.96.0.1'))
  await put(svcKey('b', 'shop'), svc('b', '10.96.0.2', 'shop'))
  await put('/ferry/v1/nodes/n1', node('n1'))
  await put('/ferry/v1/endpointslices/default/a-1', slice('a-1', '10.244.1.5'))
  await put('/elsewhere/v1/services/default/z', svc('z', '10.96.0.9')) // other prefix: invisible
  await put('/ferry/subnets/10.244.1.0-24', '{"not":"an object"}') // outside <prefix>/v1/: not ours
  const r = new Recorder()
  const s = source()
  await s.start(r.handler)
  t.same(r.events, ['replace EndpointSlice/default/a-1,Node/n1,Service/default/a,Service/shop/b'], 'start resolves after the first replace')
  t.equal(r.errors.length, 0)

  await put(svcKey('c'), svc('c', '10.96.0.3'))
  await put(svcKey('c'), svc('c', '10.96.0.4'))
  await client.delete().key(svcKey('c'))
  await client.delete().key('/ferry/v1/nodes/n1')
  await client.delete().key(svcKey('never-existed'))
  await put('/ferry/v1/endpointslices/default/a-1', slice('a-1', '10.244.1.6'))
  await r.until(() => r.events.length >= 6, 'six watch events')
  t.same(r.events.slice(1), [
    'upsert Service/default/c 10.96.0.3',
    'upsert Service/default/c 10.96.0.4',
    'remove Service/default/c',
    'remove Node/n1',
    'upsert EndpointSlice/default/a-1',
  ].concat(r.events.length > 6 ? r.events.slice(6) : []), 'events arrive in etcd order')
  t.equal(r.events.length, 6, 'deleting a missing key emits nothing')
  t.same(r.keys(), ['EndpointSlice/default/a-1', 'Service/default/a', 'Service/shop/b'])
  t.ok(s.revision > 0)
  const began = Date.now()
  await s.stop()
  t.ok(Date.now() - began < 1000, `stop() is prompt (${Date.now() - began}ms)`)
  await s.stop() // idempotent
})

t.test('custom prefix', async t => {
  const { put, source } = await setup(t)
  await put('/tenant-a/v1/services/default/x', svc('x', '10.96.1.1'))
  await put(svcKey('y'), svc('y', '10.96.1.2'))
  const r = new Recorder()
  await source({ prefix: '/tenant-a/' }).start(r.handler)
  t.same(r.keys(), ['Service/default/x'])
  await put('/tenant-a/v1/nodes/n2', node('n2'))
  await put(svcKey('y2'), svc('y2', '10.96.1.3'))
  await r.until(() => r.state.has('Node/n2'), 'node n2')
  t.same(r.keys(), ['Node/n2', 'Service/default/x'])
})

t.test('bad values are reported and the last good object stays', async t => {
  const { put, client, source } = await setup(t)
  await put(svcKey('good'), svc('good', '10.96.0.1'))
  await put(svcKey('broken'), '{not json')
  await put(svcKey('invalid'), svc('invalid', 'not-an-ip'))
  await put(svcKey('elsewhere'), svc('other-name', '10.96.0.5')) // value names another key
  await put('/ferry/v1/widgets/default/w', '{}') // unknown resource under our prefix
  const r = new Recorder()
  await source().start(r.handler)
  t.same(r.keys(), ['Service/default/good'], 'only the valid object is listed; start did not throw')
  t.equal(r.errors.length, 4)
  const msgs = r.errors.map(e => e.message).join('\n')
  t.match(msgs, /etcd key \/ferry\/v1\/services\/default\/broken: value is not valid JSON/)
  t.match(msgs, /Service "default\/invalid" \(etcd key \/ferry\/v1\/services\/default\/invalid\): spec\.clusterIP/)
  t.match(msgs, /etcd key \/ferry\/v1\/services\/default\/elsewhere: holds Service "default\/other-name"/)
  t.match(msgs, /etcd key \/ferry\/v1\/widgets\/default\/w: not in ferry's key layout/)
  t.same(r.errors.map(e => e.code).sort(), ['FERRY_ERR_INVALID_OBJECT', 'FERRY_ERR_INVALID_OBJECT', 'FERRY_ERR_PARSE', 'FERRY_ERR_PARSE'])
  r.errors.length = 0
  r.events.length = 0

  await put(svcKey('good'), '{"truncated":')
  await r.until(() => r.errors.length === 1, 'parse error on watch')
  t.equal(r.errors[0]?.code, 'FERRY_ERR_PARSE')
  t.match(r.errors[0]?.message, /\/ferry\/v1\/services\/default\/good/)
  await put(svcKey('good'), { ...svc('good', '10.96.0.1'), spec: { clusterIP: '10.96.0.1', ports: [{ port: 99999 }] } })
  await r.until(() => r.errors.length === 2, 'validation error on watch')
  t.equal(r.errors[1]?.code, 'FERRY_ERR_INVALID_OBJECT')
  t.match(r.errors[1]?.message, /Service "default\/good".*spec\.ports\[0\]\.port/)
  t.equal(r.ip('good'), '10.96.0.1', 'last good object kept')
  t.same(r.events, ['error FERRY_ERR_PARSE', 'error FERRY_ERR_INVALID_OBJECT'], 'no upsert/remove for bad values')

  await put(svcKey('broken'), svc('broken', '10.96.0.7')) // a fixed value arrives
  await r.until(() => r.ip('broken') === '10.96.0.7', 'fixed value')
  await put(svcKey('good'), svc('good', '10.96.0.8'))
  await r.until(() => r.ip('good') === '10.96.0.8', 'good again')
  await client.delete().key(svcKey('invalid')) // never valid: nothing to remove
  await client.delete().key(svcKey('good'))
  await r.until(() => !r.state.has('Service/default/good'), 'remove good')
  t.same(r.events.slice(2), ['upsert Service/default/broken 10.96.0.7', 'upsert Service/default/good 10.96.0.8', 'remove Service/default/good'])
})

t.test('a list over many pages: every object, bad values named by key, read at one revision', async t => {
  const { put, client, source } = await setup(t)
  for (let i = 0; i < 20; i++) await put(svcKey(`s${String(i).padStart(2, '0')}`), svc(`s${String(i).padStart(2, '0')}`, `10.96.0.${i + 1}`))
  await put(svcKey('s05'), '{not json') // in the second page of 3
  await put(svcKey('s13'), svc('s13', '10.96.0.300'))
  await put('/ferry/v1/nodes/n1', node('n1')) // sorts before the services: first page
  let last = Number((await client.put(svcKey('s19')).value(JSON.stringify(svc('s19', '10.96.0.20')))).header.revision)
  const want = Array.from({ length: 20 }, (_, i) => `Service/default/s${String(i).padStart(2, '0')}`).filter(k => !/s05|s13/.test(k))
  // The first list goes through the bare http2 client; with a client factory (and after a failure) through etcd3.
  for (const via of ['http2', 'etcd3']) {
    let fellBack = 0
    const listed: unknown[] = []
    const r = new Recorder()
    const s = source({
      pageSize: 3,
      log: (_level, msg, fields) => { if (msg === 'etcd listed' || msg === 'etcd watching') listed.push(fields) },
      ...(via === 'etcd3'
        ? {
            clientFactory: (eps: string[]) => {
              const c = new Etcd3({ hosts: eps })
              const range = c.kv.range.bind(c.kv)
              c.kv.range = async (...a) => { fellBack++; return await range(...a) }
              return c
            },
          }
        : {}),
    })
    await s.start(r.handler)
    t.same(r.keys(), ['Node/n1', ...want].sort(), `${via}: 7 pages of 3, in key order, none lost at the page edges`)
    t.same(r.errors.map(e => e.message.replace(/:.*/, '')).sort(), [
      'Service "default/s13" (etcd key /ferry/v1/services/default/s13)',
      'etcd key /ferry/v1/services/default/s05',
    ], `${via}: bad values named by key`)
    t.equal(s.revision, last, `${via}: the revision of the listing`)
    t.same(listed, [{ revision: s.revision, objects: want.length + 1, via }, { fromRevision: s.revision + 1, via }], `${via}: listed and watching through ${via}`)
    t.equal(fellBack, 0, `${via}: no page through etcd3's kv.range`)
    const name = `w-${via}`
    last = Number((await client.put(svcKey(name)).value(JSON.stringify(svc(name, '10.96.1.1')))).header.revision)
    want.push(`Service/default/${name}`)
    await r.until(() => r.state.has(`Service/default/${name}`), 'the watch from the listed revision')
    await s.stop()
  }
})

t.test('a list turns the event loop while it decodes: timers fire before replace, and a stop meanwhile ends it', async t => {
  const { client, source } = await setup(t)
  const names = Array.from({ length: 300 }, (_, i) => `l${String(i).padStart(3, '0')}`)
  for (let i = 0; i < names.length; i += 100) {
    await client.if('/ferry/none', 'Version', '==', 0).then(...names.slice(i, i + 100).map((n, j) => client.put(svcKey(n)).value(JSON.stringify(svc(n, `10.96.${Math.floor((i + j) / 250)}.${((i + j) % 250) + 1}`))))).commit()
  }
  await client.put(svcKey('a000')).value('{bad') // first in the page: its error marks the start of decoding
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 0)
  t.teardown(() => { clearInterval(timer) })
  const r = new Recorder()
  const s = source({ pageSize: 1000, decodeSliceMs: 0 })
  let ticksAtFirst = -1
  let ticksAtReplace = -1
  const { error, replace } = r.handler
  r.handler.error = e => { if (ticksAtFirst < 0) ticksAtFirst = ticks; error(e) }
  r.handler.replace = objs => { ticksAtReplace = ticks; replace(objs) }
  await s.start(r.handler)
  t.equal(r.keys().length, 300, 'one page, every good object')
  t.ok(ticksAtReplace - ticksAtFirst >= 2, `timers fired between the page's first key and replace (${ticksAtReplace - ticksAtFirst} ticks)`)
  await s.stop()
  // Stopped while decoding (from that first error): no replace, start() fails.
  const r2 = new Recorder()
  const s2 = source({ pageSize: 1000, decodeSliceMs: 0 })
  let stopped: Promise<void> | undefined
  r2.handler.error = e => { r2.errors.push(e); stopped ??= s2.stop() }
  await t.rejects(s2.start(r2.handler), /stopped before the first list completed/)
  await stopped
  t.equal(r2.errors.length, 1, 'stopped at the first key')
  t.equal(r2.replaces, 0, 'no replace after a stop')
})

t.test('the first list skips an endpoint that refuses connections and uses the next', async t => {
  const { put, etcd } = await setup(t)
  await put(svcKey('a'), svc('a', '10.96.0.1'))
  const listed: unknown[] = []
  const errors: string[] = []
  const r = new Recorder()
  const dead = `http://127.0.0.1:${await freePort()}`
  const s = new EtcdSource({
    endpoints: [dead, etcd.endpoint], backoff: BACKOFF, requestTimeoutMs: 2000,
    log: (level, msg, fields) => { if (msg === 'etcd listed') listed.push(fields?.via); if (level !== 'debug') errors.push(msg) },
  })
  t.teardown(async () => { await s.stop() })
  await s.start(r.handler)
  t.same(r.keys(), ['Service/default/a'])
  t.same(listed, ['http2'], 'listed by the bare client on the second endpoint')
  t.same([...r.errors, ...errors], [], 'nothing reported')
})

t.test('a bad value at re-list keeps the last good object', async t => {
  const { put, client, etcd, source } = await setup(t)
  await put(svcKey('keep'), svc('keep', '10.96.0.1'))
  let calls = 0
  const r = new Recorder()
  await source({
    beforeWatch: async () => {
      if (calls++ > 0) return
      // Break the value, then compact past the watch's start revision (etcd keeps the compaction
      // revision itself, so write twice): the source must re-list.
      await put(svcKey('keep'), 'garbage')
      await put(svcKey('other'), svc('other', '10.96.0.2'))
      await etcd.compact()
    },
  }).start(r.handler)
  await r.until(() => r.replaces === 2, 're-list after compaction')
  t.same(r.keys(), ['Service/default/keep', 'Service/default/other'], 'kept through the re-list')
  t.equal(r.ip('keep'), '10.96.0.1')
  t.equal(r.errors[0]?.code, 'FERRY_ERR_PARSE')
  await client.delete().key(svcKey('keep'))
  await r.until(() => !r.state.has('Service/default/keep'), 'removal after re-list')
})

t.test('compaction past the watch revision → re-list and converge', async t => {
  const { put, client, etcd, source } = await setup(t)
  await put(svcKey('a'), svc('a', '10.96.0.1'))
  await put(svcKey('b'), svc('b', '10.96.0.2'))
  const revs: number[] = []
  const r = new Recorder()
  const s = source({
    beforeWatch: async (from) => {
      revs.push(from)
      if (revs.length > 1) return
      // The source has listed but is not watching yet: change things and compact them away.
      await put(svcKey('b'), svc('b', '10.96.0.22'))
      await put(svcKey('c'), svc('c', '10.96.0.3'))
      await client.delete().key(svcKey('a'))
      await etcd.compact()
    },
  })
  await s.start(r.handler)
  await r.until(() => r.replaces === 2 && revs.length === 2, 'second replace and the watch after it')
  t.same(r.keys(), ['Service/default/b', 'Service/default/c'], 'deletion seen through the re-list')
  t.equal(r.ip('b'), '10.96.0.22')
  t.equal(r.errors.length, 0, 'compaction is not an error')
  t.ok((revs[1] ?? 0) > (revs[0] ?? 0), 'second watch starts after the compacted revision')
  await put(svcKey('d'), svc('d', '10.96.0.4'))
  await r.until(() => r.state.has('Service/default/d'), 'watch works after re-list')
})

/** A TCP proxy in front of etcd whose link can be cut (open connections reset, new ones refused). */
async function cuttableProxy (t: Test, target: number): Promise<{ endpoint: string, cut: () => Promise<void>, heal: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  let server: Server | undefined
  let port = 0
  const listen = async (): Promise<void> => {
    const srv = createServer(client => {
      const up = connect(target, '127.0.0.1')
      sockets.add(client); sockets.add(up)
      client.pipe(up); up.pipe(client)
      const close = (): void => { client.destroy(); up.destroy(); sockets.delete(client); sockets.delete(up) }
      client.on('error', close); up.on('error', close); client.on('close', close); up.on('close', close)
    })
    await new Promise<void>(resolve => srv.listen(port, '127.0.0.1', resolve))
    const a = srv.address()
    port = typeof a === 'object' && a !== null ? a.port : 0
    server = srv
  }
  const cut = async (): Promise<void> => {
    const srv = server
    server = undefined
    for (const s of sockets) s.resetAndDestroy()
    sockets.clear()
    if (srv !== undefined) await new Promise<void>(resolve => srv.close(() => { resolve() }))
  }
  await listen()
  t.teardown(cut)
  return { endpoint: `http://127.0.0.1:${port}`, cut, heal: listen }
}

t.test('connection cut while etcd changes and compacts → one error, then re-list converges', async t => {
  const { put, client, etcd, source } = await setup(t)
  const proxy = await cuttableProxy(t, etcd.clientPort)
  await put(svcKey('a'), svc('a', '10.96.0.1'))
  await put(svcKey('b'), svc('b', '10.96.0.2'))
  const r = new Recorder()
  const logs: string[] = []
  await source({ endpoints: [proxy.endpoint], log: (level, msg, fields) => { logs.push(`${level} ${msg}${typeof fields?.via === 'string' ? ` via ${fields.via}` : ''}`) } }).start(r.handler)
  t.equal(r.replaces, 1)
  await r.until(() => logs.includes('debug etcd watching via http2'), 'the watch on the bare client')
  await proxy.cut()
  await r.until(() => r.errors.length === 1, 'outage reported')
  t.equal(r.errors[0]?.code, 'FERRY_ERR_SOURCE')
  await put(svcKey('b'), svc('b', '10.96.0.22'))
  await client.delete().key(svcKey('a'))
  await put(svcKey('c'), svc('c', '10.96.0.3'))
  await etcd.compact()
  await new Promise(resolve => setTimeout(resolve, 600)) // several retries at maxMs 400
  t.equal(r.errors.length, 1, 'reported once per outage')
  t.same(r.keys(), ['Service/default/a', 'Service/default/b'], 'last good state kept while cut off')
  await proxy.heal()
  await r.until(() => r.replaces === 2, 're-list after reconnect')
  t.same(r.keys(), ['Service/default/b', 'Service/default/c'])
  t.equal(r.ip('b'), '10.96.0.22')
  await r.until(() => logs.some(l => l.startsWith('info etcd reachable again')), 'reconnect logged')
  await put(svcKey('d'), svc('d', '10.96.0.4'))
  await r.until(() => r.state.has('Service/default/d'), 'watching again')
  t.equal(r.errors.length, 1)
  t.same(logs.filter(l => / via /.test(l)).slice(-2), ['debug etcd listed via etcd3', 'debug etcd watching via etcd3'], 'after its watch failed, the bare client is not used again')
})

t.test('etcd stopped → state kept, one error; restarted → converges', async t => {
  const { put, client, etcd, source } = await setup(t)
  await put(svcKey('a'), svc('a', '10.96.0.1'))
  await put(svcKey('b'), svc('b', '10.96.0.2'))
  const r = new Recorder()
  await source().start(r.handler)
  await etcd.stop()
  await r.until(() => r.errors.length === 1, 'outage reported')
  t.equal(r.errors[0]?.code, 'FERRY_ERR_SOURCE')
  t.match(r.errors[0]?.message, /keeping the last good state/)
  await new Promise(resolve => setTimeout(resolve, 800))
  t.equal(r.errors.length, 1, 'once per outage, not per retry')
  t.same(r.events.filter(e => !e.startsWith('error')), ['replace Service/default/a,Service/default/b'], 'handler hears nothing else while etcd is down')
  await etcd.restart()
  await r.until(() => r.replaces === 2, 're-list after restart')
  t.same(r.keys(), ['Service/default/a', 'Service/default/b'])
  await client.delete().key(svcKey('a'))
  await put(svcKey('c'), svc('c', '10.96.0.3'))
  await r.until(() => !r.state.has('Service/default/a') && r.state.has('Service/default/c'), 'converged after restart')
  t.same(r.keys(), ['Service/default/b', 'Service/default/c'])

  // A second outage is reported again.
  await etcd.stop()
  await r.until(() => r.errors.length === 2, 'second outage reported')
  await etcd.restart()
  await r.until(() => r.replaces === 3, 're-list after second restart')
})

t.test('etcd down at start: start() waits, resolves once etcd is up', async t => {
  const { put, etcd, source } = await setup(t)
  await put(svcKey('a'), svc('a', '10.96.0.1'))
  await etcd.stop()
  const r = new Recorder()
  let started = false
  const starting = source().start(r.handler).then(() => { started = true })
  await r.until(() => r.errors.length === 1, 'outage reported before the first list')
  t.equal(started, false)
  t.equal(r.replaces, 0)
  await etcd.restart()
  await starting
  t.same(r.keys(), ['Service/default/a'])
  t.equal(r.errors.length, 1)
})

t.test('stop() while etcd was never reachable rejects start() and returns promptly', async t => {
  const etcd = await startEtcd(t)
  await etcd.stop()
  const s = new EtcdSource({ endpoints: [etcd.endpoint], backoff: BACKOFF })
  const r = new Recorder()
  const starting = s.start(r.handler)
  await r.until(() => r.errors.length === 1, 'outage reported')
  const began = Date.now()
  await s.stop()
  await t.rejects(starting, /stopped before the first list/)
  t.ok(Date.now() - began < 1000, `prompt (${Date.now() - began}ms)`)
  await t.rejects(s.start(r.handler), /twice/)
})

t.test('an unreachable (black-hole) endpoint does not block stop()', async t => {
  // 192.0.2.1 (TEST-NET-1) is not routed: connects hang instead of being refused.
  const s = new EtcdSource({ endpoints: ['http://192.0.2.1:2379'], backoff: BACKOFF, requestTimeoutMs: 300 })
  const r = new Recorder()
  const starting = s.start(r.handler).catch((e: unknown) => e)
  await r.until(() => r.errors.length === 1, 'outage reported', 5000)
  const began = Date.now()
  await s.stop()
  t.match(await starting, /stopped before the first list/)
  t.ok(Date.now() - began < 1500, `prompt (${Date.now() - began}ms)`)
})
