// prepare(): the first full sync's kernel reads (variant detection, iptables-save scan) start while the
// source loads; the sync then uses them once. Recording fake Exec: no root, no kernel.
import t from 'tap'
import { IptablesBackend } from '../../pkg/proxy/iptables/backend.js'
import { desired, ep, stateOf, svcInfo } from '../../pkg/proxy/iptables/fixtures.js'
import { stdinText, type Exec } from '../../pkg/exec/exec.js'

interface Call { argv: readonly string[], stdin?: string }
function fakeExec (nat: () => string, failSaves = 0): { exec: Exec, calls: Call[] } {
  const calls: Call[] = []
  let failures = failSaves
  const exec: Exec = async (argv, stdin) => {
    calls.push({ argv, ...(stdin !== undefined ? { stdin: stdinText(stdin) } : {}) })
    const tool = argv[0] ?? ''
    if (tool.endsWith('-save')) {
      if (failures > 0) { failures--; return { code: 1, stdout: '', stderr: 'boom' } }
      return { code: 0, stdout: argv[2] === 'nat' && tool.includes('legacy') ? nat() : '', stderr: '' }
    }
    return { code: 0, stdout: '', stderr: '' }
  }
  return { exec, calls }
}
const tools = (calls: Call[]): string[] => calls.map(c => `${c.argv[0] ?? ''} ${c.argv.slice(1, 3).join(' ')}`.trim())
const a = desired(svcInfo({ name: 'a', clusterIP: '172.30.0.1' }), { cluster: [ep('10.180.0.1')] })

t.test('prepare() detects the variant and scans before the first sync, which uses that scan once', async t => {
  let nat = '*nat\n:FERRY-SVC-OLDOLDOLDOLDOLDO - [0:0]\nCOMMIT\n'
  const { exec, calls } = fakeExec(() => nat)
  const be = new IptablesBackend({ family: 'IPv4', exec })
  be.prepare()
  be.prepare() // idempotent
  await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(be.variant, 'legacy', 'variant chosen before any sync')
  t.same(tools(calls), ['iptables-nft-save -t nat', 'iptables-legacy -w 5', 'iptables-legacy-save -t nat', 'iptables-legacy-save -t filter'])
  nat = '' // what the kernel says later is not read again by the first sync
  calls.length = 0
  await be.sync(stateOf([a]), null)
  t.same(tools(calls), ['iptables-legacy-restore -w 5'], 'the first sync only restores')
  t.match(calls[0]?.stdin, /-X FERRY-SVC-OLDOLDOLDOLDOLDO\n/, 'stale chain from the prepared scan is deleted')

  calls.length = 0
  be.requestFullSync()
  await be.sync(stateOf([a]), null)
  t.same(tools(calls), ['iptables-legacy-save -t nat', 'iptables-legacy-save -t filter', 'iptables-legacy-restore -w 5'], 'later full syncs scan afresh')
})

t.test('a failed prepared scan is taken again by the sync', async t => {
  const { exec, calls } = fakeExec(() => '', 1)
  const be = new IptablesBackend({ family: 'IPv4', exec, variant: 'legacy' })
  be.prepare()
  const r = await be.sync(stateOf([a]), null)
  t.equal(r.kind, 'full')
  t.same(tools(calls).filter(c => c.includes('-save')).length, 4, 'two saves prepared (one failed), two taken again')
  t.equal(tools(calls).at(-1), 'iptables-legacy-restore -w 5')
})

t.test('without prepare() the first sync detects and scans itself', async t => {
  const { exec, calls } = fakeExec(() => '')
  const be = new IptablesBackend({ family: 'IPv4', exec })
  await be.sync(stateOf([a]), null)
  t.same(tools(calls), ['iptables-nft-save -t nat', 'iptables-legacy -w 5', 'iptables-legacy-save -t nat', 'iptables-legacy-save -t filter', 'iptables-legacy-restore -w 5'])
})

t.test('a failed streamed restore quotes its line from a second render, not from kept pieces', async t => {
  let sent = ''
  const exec: Exec = async (argv, stdin) => {
    if ((argv[0] ?? '').endsWith('-restore')) {
      sent = stdinText(stdin)
      return { code: 2, stdout: '', stderr: 'iptables-restore v1.8.9 (legacy): unknown option\nError occurred at line: 25\n' }
    }
    return { code: 0, stdout: '', stderr: '' }
  }
  const be = new IptablesBackend({ family: 'IPv4', exec, variant: 'legacy', clusterCIDR: '10.0.0.0/8' })
  const b = desired(svcInfo({ name: 'b', clusterIP: '172.30.0.2' }), { cluster: [ep('10.180.0.2'), ep('10.180.0.3')] })
  const err = await be.sync(stateOf([a, b]), null).catch((e: unknown) => e) as { code: string, details: Record<string, unknown> }
  t.equal(err.code, 'FERRY_ERR_APPLY')
  t.equal(err.details.line, 25)
  t.equal(err.details.lineText, sent.split('\n')[24], 'the 25th line of what was piped')
  t.ok(String(err.details.lineText).length > 0)
  t.equal(be.needFullSync, true)
})
