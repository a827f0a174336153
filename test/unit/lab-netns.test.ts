import t from 'tap'
import type { Exec, ExecResult } from '../../pkg/exec/exec.js'
import { deleteNamespaces } from '../../pkg/lab/netns.js'

/** A fake `ip netns delete`: each name answers from its own queue of results; every call is recorded. */
function fakeIp (answers: Record<string, ExecResult[]>): { exec: Exec, calls: string[] } {
  const calls: string[] = []
  const exec: Exec = async argv => {
    const ns = argv[3] ?? ''
    calls.push(ns)
    return answers[ns]?.shift() ?? { code: 0, stdout: '', stderr: '' }
  }
  return { exec, calls }
}

const busy: ExecResult = { code: 1, stdout: '', stderr: 'Cannot remove namespace file "/run/netns/fyb": Device or resource busy' }
const missing: ExecResult = { code: 1, stdout: '', stderr: 'Cannot remove namespace file "/run/netns/fyc": No such file or directory' }

t.test('deletes in the order given, once each when they succeed', async t => {
  const f = fakeIp({})
  await deleteNamespaces(f.exec, ['fya', 'fyb'])
  t.same(f.calls, ['fya', 'fyb'])
})

t.test('a failed delete is retried once; one already gone is not an error', async t => {
  const f = fakeIp({ fyb: [busy], fyc: [missing] })
  await deleteNamespaces(f.exec, ['fya', 'fyb', 'fyc'])
  t.same(f.calls, ['fya', 'fyb', 'fyb', 'fyc'])
})

t.test('what is still left after the retry is an error naming it; the others are still deleted', async t => {
  const f = fakeIp({ fyb: [busy, busy] })
  await t.rejects(deleteNamespaces(f.exec, ['fyb', 'fyd']), /network namespaces left behind: fyb \(.*Device or resource busy\)/)
  t.same(f.calls, ['fyb', 'fyb', 'fyd'], 'fyd deleted although fyb failed')
})
