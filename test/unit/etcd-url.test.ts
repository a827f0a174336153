import t from 'tap'
import { parseEndpoint, redact } from '../../pkg/etcd/url.js'

t.test('redact replaces the password of every URL in a text', async t => {
  const cases: Array<[string, string]> = [
    ['http://user:secret@host:2379', 'http://user:***@host:2379'],
    ['https://u:p%40ss@10.0.0.1:2379,http://v:x@[::1]:2379', 'https://u:***@10.0.0.1:2379,http://v:***@[::1]:2379'],
    ['etcd http://a:b@h:1: list failed: connect ECONNREFUSED', 'etcd http://a:***@h:1: list failed: connect ECONNREFUSED'],
    ['http://:only-password@h:1', 'http://:***@h:1'],
    ['http://user@host:2379', 'http://user@host:2379'],
    ['http://host:2379', 'http://host:2379'],
    ['no url here: a:b@c', 'no url here: a:b@c'],
    ['etcd http://u:pa:ss@h:1 failed', 'etcd http://u:***@h:1 failed'],
  ]
  for (const [input, want] of cases) t.equal(redact(input), want, input.replace(/:[^:@/]*@/g, ':…@'))
})

t.test('parseEndpoint splits userinfo from what the client dials', async t => {
  t.same(parseEndpoint('http://127.0.0.1:2379'), { url: 'http://127.0.0.1:2379', shown: 'http://127.0.0.1:2379', secure: false })
  t.same(parseEndpoint('https://ferry:p%40ss%3Aword@etcd-1:2379/'), {
    url: 'https://etcd-1:2379', shown: 'https://ferry:***@etcd-1:2379/', secure: true, username: 'ferry', password: 'p@ss:word',
  }, 'percent-decoded credentials')
  t.same(parseEndpoint('https://[fd00::1]:2379').url, 'https://[fd00::1]:2379')
  for (const bad of ['127.0.0.1:2379', 'unix:///run/etcd.sock', 'http://u:hunter2@h:1/v3', 'http://h:1?x=1', 'not a url']) {
    t.throws(() => parseEndpoint(bad), { code: 'FERRY_ERR_CONFIG' }, bad.replace('hunter2', '***'))
    try { parseEndpoint(bad) } catch (e) { t.notMatch((e as Error).message, /hunter2/, 'no password in the error') }
  }
})

t.test('an endpoint\'s password is hidden however it is spelled (spaces, a raw "@" or "/")', async t => {
  for (const text of ['http://root:my secret@127.0.0.1:2379', 'http://root:my secret@127.0.0.1:2379/v3', 'http://root:p@ss@127.0.0.1:2379', 'http://root:pa/ss@127.0.0.1:2379']) {
    let shown = ''
    try { shown = parseEndpoint(text).shown } catch (e) { shown = (e as Error).message }
    t.match(shown, /root:\*\*\*@127\.0\.0\.1:2379/, 'redacted')
    t.notMatch(shown, /secret|ss@|pa\//, 'no part of the password shown')
  }
})
