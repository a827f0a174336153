// spawnExec's piece-wise stdin: the event loop turns while pieces are still being produced, so the
// program reads (and parses) the first pieces while later ones are rendered.
import t from 'tap'
import { spawnExec } from '../../pkg/exec/exec.js'

t.test('a long stdin stream lets the event loop turn between pieces and arrives whole', async t => {
  const PIECES = 40
  const piece = 'x'.repeat(64 * 1024 - 1) + '\n'
  let pulled = 0
  let pulledAtFirstTurn = -1
  const pieces = function * (): Generator<string, void, undefined> {
    for (let i = 0; i < PIECES; i++) { pulled++; yield piece }
  }
  setImmediate(() => { pulledAtFirstTurn = pulled })
  const r = await spawnExec(['wc', '-c'], pieces())
  t.equal(r.code, 0)
  t.equal(Number(r.stdout.trim()), PIECES * piece.length, 'every byte arrives, in one stream')
  t.ok(pulledAtFirstTurn > 0 && pulledAtFirstTurn < PIECES, `the loop turned after ${pulledAtFirstTurn} of ${PIECES} pieces`)
})

t.test('a short stream is written without waiting', async t => {
  const r = await spawnExec(['cat'], ['a\n', 'b\n'])
  t.equal(r.stdout, 'a\nb\n')
})
