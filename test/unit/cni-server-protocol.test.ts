// The request parser of ferryd's CNI server: what bin/ferry-cni's bash front writes, fed whole and byte
// by byte; every malformed or oversized shape is refused before anything runs.
import t from 'tap'
import { encodeRequest, encodeResponse, RequestParser, type ParseResult } from '../../pkg/cni-server/protocol.js'

const TOKEN = 'ab'.repeat(32)
const CONF = '{"cniVersion":"1.0.0","name":"fy","type":"ferry-cni","x":"é€"}'

function feed (bytes: Buffer | string, max = 1 << 20, chunk = Infinity): ParseResult {
  const p = new RequestParser(max)
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)
  let r: ParseResult = { kind: 'more' }
  for (let i = 0; i < b.length && r.kind === 'more'; i += Math.min(chunk, b.length)) r = p.push(b.subarray(i, i + Math.min(chunk, b.length)))
  return r
}

t.test('a request as the front writes it, whole or a byte at a time', async t => {
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_ARGS: 'K=V;A=B', CNI_PATH: '/opt/cni/bin', PWD: '/' }
  const bytes = encodeRequest(TOKEN, env, CONF)
  for (const chunk of [Infinity, 1, 7]) {
    const r = feed(bytes, 1 << 20, chunk)
    if (r.kind !== 'done') { t.fail(`chunk ${chunk}: ${JSON.stringify(r)}`); continue }
    t.equal(r.request.token, TOKEN)
    t.same(Object.fromEntries(r.request.env), env, `chunk ${chunk}: every variable`)
    t.equal(r.request.stdin, CONF, 'stdin by byte length, multi-byte characters included')
  }
  const empty = feed(`ferry-cni/1 ${TOKEN}\n\n0\n`)
  t.same(empty.kind === 'done' ? [Object.fromEntries(empty.request.env), empty.request.stdin] : empty, [{}, ''], 'no variables, no stdin')
  const blank = feed(`ferry-cni/1 ${TOKEN}\nCNI_NETNS=\n\n0\n`)
  t.same(blank.kind === 'done' ? Object.fromEntries(blank.request.env) : blank, { CNI_NETNS: '' }, 'a variable set but empty stays set')
  t.equal(feed(`ferry-cni/1 ${TOKEN}\nCNI_COMMAND=ADD\n`).kind, 'more', 'incomplete: wait for more')
  t.equal(feed(`ferry-cni/1 ${TOKEN}\n\n5\nabc`).kind, 'more', 'short body: wait for more')
})

t.test('malformed requests', async t => {
  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['another protocol', 'GET / HTTP/1.1\r\n\r\n', /not a ferry-cni\/1/],
    ['another version', `ferry-cni/2 ${TOKEN}\n\n0\n`, /not a ferry-cni\/1/],
    ['no token', 'ferry-cni/1\n\n0\n', /not a ferry-cni\/1/],
    ['token not hex', 'ferry-cni/1 xyz\n\n0\n', /hex/],
    ['unknown variable', `ferry-cni/1 ${TOKEN}\nLD_PRELOAD=/x.so\n\n0\n`, /unexpected line "LD_PRELOAD"/],
    ['line without =', `ferry-cni/1 ${TOKEN}\nCNI_COMMAND\n\n0\n`, /unexpected line/],
    ['variable twice', `ferry-cni/1 ${TOKEN}\nCNI_COMMAND=ADD\nCNI_COMMAND=DEL\n\n0\n`, /given twice/],
    ['NUL in a value', `ferry-cni/1 ${TOKEN}\nCNI_ARGS=a\0b\n\n0\n`, /NUL/],
    ['length not a number', `ferry-cni/1 ${TOKEN}\n\n12a\n`, /decimal/],
    ['length with a sign', `ferry-cni/1 ${TOKEN}\n\n-1\n`, /decimal/],
    ['length with a leading zero', `ferry-cni/1 ${TOKEN}\n\n01\nx`, /decimal/],
    ['bytes after the body', `ferry-cni/1 ${TOKEN}\n\n2\nabc`, /after the request/],
  ]
  for (const [name, input, reason] of cases) {
    const r = feed(input)
    t.equal(r.kind, 'malformed', name)
    if (r.kind === 'malformed') t.match(r.reason, reason, name)
  }
  t.throws(() => encodeRequest(TOKEN, { CNI_ARGS: 'a\nb' }, ''), /newline/, 'the encoder refuses a newline, as the front does')
})

t.test('oversized requests stop early', async t => {
  t.equal(feed(`ferry-cni/1 ${TOKEN}\n\n2000000\n`, 1 << 20).kind, 'oversized', 'a declared length past the limit, before its bytes')
  t.equal(feed(`ferry-cni/1 ${TOKEN}\nCNI_ARGS=${'x'.repeat(2000)}\n`, 1024).kind, 'oversized', 'headers past the limit')
  t.equal(feed(encodeRequest(TOKEN, {}, 'y'.repeat(900)), 1024).kind, 'done', 'just under the limit')
  const p = new RequestParser(64)
  t.equal(p.push(Buffer.from('x'.repeat(65))).kind, 'oversized')
  t.equal(p.push(Buffer.from('x')).kind, 'malformed', 'nothing more is read after a verdict')
})

t.test('the response: exit code line, then stdout', async t => {
  t.equal(encodeResponse(0, '{"a":1}').toString(), '0\n{"a":1}')
  t.equal(encodeResponse(1, '').toString(), '1\n')
})
