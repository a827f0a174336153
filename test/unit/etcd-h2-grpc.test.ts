// The bare etcd client's gRPC transport against a real HTTP/2 server on loopback: message framing split
// at every byte, grpc-status in trailers and in trailers-only replies, deadlines, refused connections,
// bidirectional streams, and the keepalive ping ending a connection whose peer went silent.
import { createServer as createTcpServer, connect as tcpConnect, type Server as TcpServer, type Socket } from 'node:net'
import { constants, createServer, type Http2Server, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2'
import t, { type Test } from 'tap'
import { FrameReader, GrpcError, H2Channel, grpcTimeout, type GrpcStream } from '../../pkg/etcd/h2-grpc.js'

const frame = (m: Buffer, flag = 0): Buffer => { const b = Buffer.alloc(5 + m.length); b[0] = flag; b.writeUInt32BE(m.length, 1); m.copy(b, 5); return b }

type Handler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void

async function server (t: Test, handler: Handler): Promise<{ url: string, srv: Http2Server }> {
  const srv = createServer()
  srv.on('stream', handler)
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise(resolve => srv.close(resolve)) })
  const a = srv.address()
  return { url: `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`, srv }
}

/** Reads the request's one message, then answers with `reply` framed and grpc-status 0 in trailers. */
function echoUpper (stream: ServerHttp2Stream): void {
  const reader = new FrameReader('test')
  stream.on('data', (c: Buffer) => {
    for (const m of reader.push(c)) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
      stream.on('wantTrailers', () => { stream.sendTrailers({ 'grpc-status': '0' }) })
      stream.end(frame(Buffer.from(m.toString().toUpperCase())))
    }
  })
}

/** How a stream ends: its error's message, or 'end'. */
async function ending (s: GrpcStream): Promise<string> {
  return await new Promise<string>(resolve => {
    s.on('error', (e: Error) => { resolve(e.message) })
    s.on('end', () => { resolve('end') })
  })
}

t.test('FrameReader: messages split at every byte, several per chunk, empty ones', async t => {
  const msgs = [Buffer.from('one'), Buffer.alloc(0), Buffer.from('x'.repeat(300)), Buffer.from('last')]
  const wire = Buffer.concat(msgs.map(m => frame(m)))
  for (let cut = 0; cut <= wire.length; cut++) {
    const r = new FrameReader('m')
    const got = [...r.push(wire.subarray(0, cut)), ...r.push(wire.subarray(cut))]
    if (got.map(String).join('|') !== msgs.map(String).join('|')) { t.fail(`split at ${cut}`); return }
  }
  const r = new FrameReader('m')
  const bytewise = [...wire].flatMap(b => r.push(Buffer.of(b)))
  t.same(bytewise.map(String), msgs.map(String), 'one byte per chunk')
  t.throws(() => new FrameReader('m').push(frame(Buffer.from('z'), 1)), /compressed/, 'a compressed message is refused')
  const huge = Buffer.alloc(5); huge.writeUInt32BE(2 ** 31, 1)
  t.throws(() => new FrameReader('m').push(huge), /exceeds/, 'a length over the cap is refused before any allocation')
})

t.test('unary: request and reply messages, metadata and deadline sent as headers', async t => {
  let seen: IncomingHttpHeaders = {}
  const { url } = await server(t, (stream, headers) => { seen = headers; echoUpper(stream) })
  const ch = new H2Channel({ url })
  t.teardown(() => { ch.close() })
  const reply = await ch.unary('/pkg.Svc/Method', Buffer.from('hello'), { token: 'abc' }, 3000)
  t.equal(reply.toString(), 'HELLO')
  t.equal(seen[':path'], '/pkg.Svc/Method')
  t.equal(seen['content-type'], 'application/grpc')
  t.equal(seen.te, 'trailers')
  t.equal(seen.token, 'abc')
  t.equal(seen['grpc-timeout'], '3000m')
  const big = Buffer.alloc(3 * 1024 * 1024, 'a')
  t.equal((await ch.unary('/pkg.Svc/Method', big, {}, 5000)).length, big.length, 'a 3 MiB reply, beyond the 64 KiB default window')
})

t.test('unary: grpc-status errors, in trailers and trailers-only, with grpc-message decoded', async t => {
  const { url } = await server(t, (stream, headers) => {
    stream.on('data', () => {})
    if (headers[':path'] === '/only') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'etcdserver%3A invalid auth token' }, { endStream: true })
      return
    }
    if (headers[':path'] === '/http') { stream.respond({ ':status': 503 }, { endStream: true }); return }
    if (headers[':path'] === '/http401') { stream.respond({ ':status': 401 }, { endStream: true }); return }
    if (headers[':path'] === '/http418') { stream.respond({ ':status': 418 }, { endStream: true }); return }
    if (headers[':path'] === '/pct') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'disk 100% full %FF' }, { endStream: true })
      return
    }
    if (headers[':path'] === '/nan') { stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': 'x' }, { endStream: true }); return }
    if (headers[':path'] === '/rst') { stream.close(constants.NGHTTP2_CANCEL); return }
    if (headers[':path'] === '/none') { stream.respond({ ':status': 200, 'content-type': 'application/grpc' }); stream.end(); return }
    if (headers[':path'] === '/two') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
      stream.on('wantTrailers', () => { stream.sendTrailers({ 'grpc-status': '0' }) })
      stream.end(Buffer.concat([frame(Buffer.from('a')), frame(Buffer.from('b'))]))
      return
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
    stream.on('wantTrailers', () => { stream.sendTrailers({ 'grpc-status': '11', 'grpc-message': 'required revision is a future revision' }) })
    stream.end(frame(Buffer.from('partial')))
  })
  const ch = new H2Channel({ url })
  t.teardown(() => { ch.close() })
  const err = async (path: string): Promise<GrpcError> => {
    try { await ch.unary(path, Buffer.from('q'), {}, 2000) } catch (e) { return e as GrpcError }
    throw new Error(`${path} did not fail`)
  }
  const only = await err('/only')
  t.equal(only.code, 16)
  t.match(only.message, /etcdserver: invalid auth token/)
  const trailer = await err('/trailer')
  t.equal(trailer.code, 11, 'the trailers\' status wins over a reply message')
  t.match(trailer.message, /future revision/)
  const http = await err('/http')
  t.match(http.message, /HTTP 503/)
  t.equal(http.code, 14, '503 without grpc-status: UNAVAILABLE')
  t.equal((await err('/http401')).code, 16, '401: UNAUTHENTICATED')
  t.equal((await err('/http418')).code, 2, 'another HTTP status: UNKNOWN')
  const pct = await err('/pct')
  t.equal(pct.code, 14)
  t.match(pct.message, /disk 100% full %FF/, 'a malformed grpc-message is shown as sent, not thrown')
  t.equal((await err('/nan')).code, 2, 'a grpc-status that is no number: UNKNOWN')
  t.equal((await err('/rst')).code, 1, 'a stream the server cancelled: CANCELLED')
  t.match((await err('/none')).message, /no grpc-status/)
  t.match((await err('/two')).message, /more than one reply/)
})

t.test('unary: a deadline ends a call etcd never answers, and the stream is cancelled', async t => {
  let closedWith: number | undefined
  const { url } = await server(t, stream => {
    stream.on('data', () => {})
    stream.on('close', () => { closedWith = stream.rstCode })
  })
  const ch = new H2Channel({ url })
  t.teardown(() => { ch.close() })
  const t0 = Date.now()
  await t.rejects(ch.unary('/slow', Buffer.from('q'), {}, 200), { code: 4, message: /deadline of 200 ms/ })
  t.ok(Date.now() - t0 < 2000, 'within the deadline, not a transport timeout')
  for (let i = 0; i < 50 && closedWith === undefined; i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(closedWith, constants.NGHTTP2_CANCEL, 'the server saw the stream cancelled')
})

t.test('unary: a refused connection rejects, and the next call dials again', async t => {
  const probe = createTcpServer()
  await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve))
  const a = probe.address()
  const port = typeof a === 'object' && a !== null ? a.port : 0
  await new Promise(resolve => probe.close(resolve))
  const ch = new H2Channel({ url: `http://127.0.0.1:${port}` })
  t.teardown(() => { ch.close() })
  await t.rejects(ch.unary('/x', Buffer.from('q'), {}, 2000), /ECONNREFUSED/)
  const srv = createServer()
  srv.on('stream', echoUpper)
  await new Promise<void>(resolve => srv.listen(port, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise(resolve => srv.close(resolve)) })
  t.equal((await ch.unary('/x', Buffer.from('back'), {}, 2000)).toString(), 'BACK', 'a new connection once the port listens')
  ch.close()
  await t.rejects(ch.unary('/x', Buffer.from('q'), {}, 2000), /channel closed/)
})

t.test('stream: messages both ways, end on OK, error on a status, cancel reaches the server', async t => {
  let serverClose: number | undefined
  const { url } = await server(t, (stream, headers) => {
    const reader = new FrameReader('srv')
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
    stream.on('wantTrailers', () => { stream.sendTrailers(headers[':path'] === '/fail' ? { 'grpc-status': '9', 'grpc-message': 'no' } : { 'grpc-status': '0' }) })
    stream.on('close', () => { serverClose = stream.rstCode })
    stream.on('data', (c: Buffer) => {
      for (const m of reader.push(c)) {
        if (m.toString() === 'bye') { stream.end(); return }
        stream.write(frame(Buffer.from(`${m.toString()}!`)))
        stream.write(frame(Buffer.from(`${m.toString()}?`)))
      }
    })
  })
  const ch = new H2Channel({ url })
  t.teardown(() => { ch.close() })
  const run = async (path: string, sends: string[]): Promise<{ got: string[], end: string }> => {
    const s = ch.stream(path, {})
    const got: string[] = []
    const end = new Promise<string>(resolve => {
      s.on('data', (m: Buffer) => { got.push(m.toString()) })
      s.on('end', () => { resolve('end') })
      s.on('error', (e: Error) => { resolve(`error ${e.message}`) })
    })
    for (const m of sends) s.write(Buffer.from(m))
    return { got, end: await end }
  }
  t.same(await run('/ok', ['a', 'b', 'bye']), { got: ['a!', 'a?', 'b!', 'b?'], end: 'end' })
  const failed = await run('/fail', ['a', 'bye'])
  t.same(failed.got, ['a!', 'a?'])
  t.match(failed.end, /error \/fail: no/)
  const s = ch.stream('/ok', {})
  const first = new Promise(resolve => s.once('data', resolve))
  s.write(Buffer.from('x'))
  await first
  let ended = false
  s.on('end', () => { ended = true })
  s.on('error', () => { ended = true })
  s.cancel()
  for (let i = 0; i < 50 && serverClose !== constants.NGHTTP2_CANCEL; i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(serverClose, constants.NGHTTP2_CANCEL, 'the server saw the cancel')
  t.notOk(ended, 'a cancelled stream emits nothing more')
})

t.test('keepalive: a peer that stops answering pings ends the open stream', async t => {
  const { url } = await server(t, stream => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' })
    stream.on('data', () => {})
  })
  // A TCP relay that can freeze: the server's ping answers stop arriving, as from a hung etcd.
  const target = Number(new URL(url).port)
  const sockets: Socket[] = []
  const relay: TcpServer = createTcpServer(client => {
    const up = tcpConnect(target, '127.0.0.1')
    client.pipe(up); up.pipe(client)
    sockets.push(client, up)
    client.on('error', () => {}); up.on('error', () => {})
  })
  await new Promise<void>(resolve => relay.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const s of sockets) s.destroy(); await new Promise(resolve => relay.close(resolve)) })
  const ra = relay.address()
  const ch = new H2Channel({ url: `http://127.0.0.1:${typeof ra === 'object' && ra !== null ? ra.port : 0}`, keepalive: { intervalMs: 100, timeoutMs: 200 } })
  t.teardown(() => { ch.close() })
  const s = ch.stream('/watch', {})
  const ended = ending(s)
  s.write(Buffer.from('w'))
  await new Promise(resolve => setTimeout(resolve, 400))
  let settled = false
  void ended.then(() => { settled = true })
  await new Promise(resolve => setTimeout(resolve, 0))
  t.notOk(settled, 'pings answered: the stream stays open')
  for (const sock of sockets) sock.pause()
  const t0 = Date.now()
  t.match(await ended, /ping|closed|cancel|destroy|reset/i, 'ended once the pings go unanswered')
  t.ok(Date.now() - t0 < 2000, `ended within ${Date.now() - t0} ms`)
})

t.test('grpc-timeout: milliseconds up to 8 digits, then seconds, then hours', async t => {
  t.equal(grpcTimeout(5000), '5000m')
  t.equal(grpcTimeout(0.4), '1m')
  t.equal(grpcTimeout(99_999_999), '99999999m')
  t.equal(grpcTimeout(100_000_000), '100000S')
  t.equal(grpcTimeout(1e12), '277778H')
  t.equal(grpcTimeout(1e15), '99999999H')
})

t.test('keepalive: a stream left on a session that got a graceful GOAWAY is not left unwatched', async t => {
  // etcd's graceful stop (or a proxy draining) sends GOAWAY(NO_ERROR); the open watch stays on the
  // draining session, where node refuses to send a ping, so a partition would go unnoticed for good.
  // Such a session ends after one unanswered ping instead, and the watch is opened again elsewhere.
  const { url } = await server(t, stream => {
    stream.on('error', () => {})
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' })
    stream.on('data', () => {})
    setTimeout(() => { stream.session?.goaway(constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1) }, 150)
  })
  const ch = new H2Channel({ url, keepalive: { intervalMs: 100, timeoutMs: 200 } })
  t.teardown(() => { ch.close() })
  const s = ch.stream('/watch', {})
  const ended = ending(s)
  s.write(Buffer.from('w'))
  const r = await Promise.race([ended, new Promise<string>(resolve => setTimeout(() => { resolve('still open') }, 3000))])
  t.match(r, /ping/, 'ended by the ping that could not be answered')
})

t.test('close: a connection whose TLS handshake never ends is closed, not left to the kernel', async t => {
  // Accepts TCP and never answers: the TLS handshake waits forever.
  let serverSide: Socket | undefined
  const silent = createTcpServer(sock => { serverSide = sock; sock.on('error', () => {}); sock.resume() })
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { serverSide?.destroy(); await new Promise(resolve => silent.close(resolve)) })
  const a = silent.address()
  const ch = new H2Channel({ url: `https://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}` })
  await t.rejects(ch.unary('/x', Buffer.from('q'), {}, 200), { code: 4 })
  for (let i = 0; i < 50 && serverSide === undefined; i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.ok(serverSide !== undefined, 'the client connected')
  const closed = new Promise<boolean>(resolve => { serverSide?.once('close', () => { resolve(true) }) })
  ch.close()
  t.ok(await Promise.race([closed, new Promise<boolean>(resolve => setTimeout(() => { resolve(false) }, 2000))]), 'the socket is closed at once')
})
