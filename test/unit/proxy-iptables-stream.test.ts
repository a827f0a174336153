// The streamed render is the joined render, in pieces; spawnExec pipes the pieces; restore quotes the
// failing line of a streamed payload.
import t from 'tap'
import { spawnExec, stdinText, type Exec } from '../../pkg/exec/exec.js'
import { syntheticState, withEndpointChanged } from '../../pkg/proxy/iptables/fixtures.js'
import { renderFull, renderPartial, streamFull, streamPartial } from '../../pkg/proxy/iptables/render.js'
import { fullSyncExtras, jumps, restore } from '../../pkg/proxy/iptables/restore.js'

const OPTS = { family: 'IPv4' as const, clusterCIDR: '10.0.0.0/8' }

t.test('streamed pieces join to the full and partial payloads, with the same counts', async t => {
  const state = syntheticState(2000, 5)
  const extras = fullSyncExtras(jumps('IPv4'))
  const full = renderFull(state, OPTS, new Set(['FERRY-SVC-STALE1234567890AB']), extras)
  const s = streamFull(state, OPTS, new Set(['FERRY-SVC-STALE1234567890AB']), extras)
  t.throws(() => s.rulesWritten, /only after every chunk/, 'counts are not guessed before the stream ends')
  const pieces = [...s.chunks()]
  t.ok(pieces.length > 3, `a large payload comes in several pieces (${pieces.length})`)
  t.ok(pieces.every(p => p.endsWith('\n')), 'every piece ends a line')
  t.equal(pieces.join(''), full.payload)
  t.same(s.rulesWritten, full.rulesWritten)
  t.same(s.rulesTotal, full.rulesTotal)
  t.same([...s.ownedChains].length, [...full.ownedChains].length)
  t.same(s.deletedChains, ['FERRY-SVC-STALE1234567890AB'])

  const next = withEndpointChanged(state, 17, '10.250.0.1')
  const part = renderPartial(next.state, new Set([next.key]), full.ownedChains, OPTS)
  const ps = streamPartial(next.state, new Set([next.key]), full.ownedChains, OPTS)
  t.equal([...ps.chunks()].join(''), part.payload)
  t.same(ps.rulesTotal, part.rulesTotal)
  t.same(ps.deletedChains, part.deletedChains)
  t.ok(part.deletedChains.length > 0, 'the changed endpoint drops its old SEP chain')
})

t.test('spawnExec pipes pieces in order, beyond the pipe buffer', async t => {
  const pieces = Array.from({ length: 300 }, (_, i) => `${String(i).padStart(5, '0')} ${'x'.repeat(30000)}\n`)
  const r = await spawnExec(['cat'], pieces)
  t.equal(r.code, 0)
  t.equal(r.stdout, pieces.join(''))
  t.equal(stdinText(pieces), pieces.join(''))
})

t.test('a producer that throws mid-stream kills the program and rejects', async t => {
  function * broken (): Generator<string> { yield 'a\n'; throw new Error('render bug') }
  await t.rejects(spawnExec(['cat'], broken()), /render bug/)
})

t.test('restore of a streamed payload quotes the failing line', async t => {
  const exec: Exec = async (_argv, stdin) => {
    stdinText(stdin) // the tool reads everything before failing
    return { code: 1, stdout: '', stderr: 'iptables-restore: line 3 failed\n' }
  }
  const err = await restore(exec, 'legacy', 'IPv4', ['*nat\n', '-A OK -j Y\n-A BAD -j X\n', 'COMMIT\n']).catch((e: unknown) => e)
  t.match((err as Error).message, /at line 3: -A BAD -j X/)
})
