// `ip -batch -` input from argument lists (cni-plugin/ip-batch.ts): each word spelled so iproute2's batch
// reader gives it back as it was, checked against the real `ip` (no root: `link show dev WORD` names the
// word it looked for), and the words no spelling carries.
import t from 'tap'
import { batchWord, renderBatch } from '../../cni-plugin/ip-batch.js'
import { spawnExec } from '../../pkg/exec/exec.js'

t.test('batchWord: plain when it can be, quoted when it must be, null when nothing carries it', async t => {
  const cases: Array<[string, string | null]> = [
    ['eth0', 'eth0'],
    ['help', 'help'], // a keyword only where a keyword may stand: callers put "dev" or "name" first
    ['q"x', 'q"x'], // a quote inside a word is plain
    ["it's", "it's"],
    ['a\\b', 'a\\b'],
    ['a b', '"a b"'],
    ['a\tb', '"a\tb"'],
    ['"x', '\'"x\''],
    ["'x", '"\'x"'],
    ['a\\', '"a\\"'], // a backslash at the end of a line joins the next line
    ['', '""'],
    ['a#b', null], // "#" starts a comment, inside quotes too
    ['#', null],
    ['a\nb', null],
    ['a\0b', null],
    ['"a\'', null], // must be quoted, and holds both quotes
  ]
  for (const [word, want] of cases) t.equal(batchWord(word), want, JSON.stringify(word))
})

t.test('renderBatch: one line per command; null when any word cannot be carried', async t => {
  t.equal(renderBatch([['link', 'set', 'dev', 'help', 'up'], ['addr', 'add', '10.0.0.2/24', 'dev', 'a b']]),
    'link set dev help up\naddr add 10.0.0.2/24 dev "a b"\n')
  t.equal(renderBatch([['link', 'set', 'dev', 'eth0', 'up'], ['link', 'set', 'dev', 'a#b', 'up']]), null)
})

t.test('the real ip reads every rendered word back as it was', async t => {
  // Names Linux allows (no "/", ":" or white space) and paths (a netns path may hold spaces).
  const words = ['help', 'h', 'up', 'dev', 'q"x', "it's", '"x', "'x", 'a\\', 'a\\b', '\\', 'é€', 'a b', 'x\ty', '-', '--']
  const text = renderBatch(words.map(w => ['link', 'show', 'dev', w]))
  if (text === null) { t.fail('every word can be carried'); return }
  const r = await spawnExec(['ip', '-force', '-batch', '-'], text)
  const seen = [...r.stderr.matchAll(/^Device "(.*)" does not exist\.$/gmu)].map(m => m[1])
  t.same(seen, words, 'each word, in order', { stderr: r.stderr })
})
