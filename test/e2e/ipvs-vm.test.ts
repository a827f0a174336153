// IPVS mode on a real IPVS kernel: one boot of the test VM (test/vm/) runs the generic-netlink codec
// against the kernel (test/vm-scripts/ipvs-kernel-smoke.mjs, with ipvsadm as the witness), then ferryd in
// IPVS mode with real traffic (test/vm-scripts/ipvs-e2e.mjs), then ferryd in nftables mode on the VM's
// 6.1 kernel, older than the host's (test/vm-scripts/nftables-e2e.mjs). Skipped, saying why, without
// root or qemu.
import t, { type Test } from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT, runInVM, vmAvailable } from '../vm/vm.js'

t.setTimeout(1_800_000) // TCG emulation on a shared 2-core host: ferryd and node start in seconds there

const CHECKS = [
  'ready in ipvs mode',
  'ferry_proxy_mode gauge says ipvs',
  'pod -> ClusterIP reaches every endpoint',
  'pod -> ClusterIP keeps the client IP',
  'external -> NodePort reaches every endpoint',
  'external -> NodePort is masqueraded',
  'ipvsadm agrees with /debug/state',
  'ClusterIPs bound to ferry-ipvs0',
  'a Service without endpoints is refused at once',
  'a bound VIP on a port no Service uses is refused',
  'ClientIP affinity sticks to one endpoint',
  'eTP=Local: external clients reach only the local endpoint',
  'eTP=Local keeps the client IP',
  'eTP=Local: pods reach every endpoint (short-circuit)',
  'a removed endpoint drains with weight 0 while its connection lives',
  'new connections avoid the draining endpoint',
  'the drained endpoint is deleted once its connection ends (before the 60 s cap)',
  'deleting a Service removes its virtual server and its VIP',
  'traffic flows while ferryd is stopped',
  'auto picks IPVS where the kernel has it',
  'the restarted ferryd adopts the kernel state unchanged',
  'traffic flows after the restart',
  'the first sync after a restart sent only what differed',
  'ferryd --cleanup removes ferry\'s virtual servers, device and sets',
]

const NFT_CHECKS = [
  'ready in nftables mode',
  'the first full sync loaded its elements over netlink',
  'the kernel holds the dispatch elements',
  'pod -> ClusterIP reaches every endpoint',
  'ClientIP affinity sticks to one endpoint',
  'the sticky Service has its own chains',
  'without affinity the Service spreads again',
  'the flushed chains are deleted by a later transaction on this kernel',
  'the endpoint change applied',
  'no sync or chain deletion failed',
  'a flushed ruleset is rebuilt, its elements over netlink',
  'traffic flows after the rebuild',
  'ferryd --cleanup removes the table',
]

const script = (name: string): string => readFileSync(join(REPO_ROOT, 'test', 'vm-scripts', name), 'utf8')

const vm = await vmAvailable()
if (!vm.ok && process.env.FERRY_VM === '1') t.fail(`FERRY_VM=1 but the VM is not available: ${vm.reason}`)
const skip = vm.ok ? false : `IPVS VM suite skipped: ${vm.reason}`

/** Asserts each named check of one script's output section, and that nothing else failed. */
function assertChecks (t: Test, section: string, names: readonly string[]): void {
  const lines = section.split('\n').filter(l => l.startsWith('CHECK '))
  for (const name of names) {
    const line = lines.find(l => l.startsWith(`CHECK ok ${name}`) || l.startsWith(`CHECK fail ${name}`))
    t.ok(line?.startsWith('CHECK ok'), name, { line: line ?? '(not reached)' })
  }
  const unexpected = lines.filter(l => !names.some(n => l.includes(` ${n}`)))
  t.same(unexpected, [], 'no other check failed', { output: section.slice(-6000) })
  t.match(section, /\nDONE\n/, 'the script cleaned up and finished')
}

t.test('IPVS mode in the VM: the codec against the kernel, then ferryd with real traffic; then the nftables mode on 6.1', { skip }, async t => {
  if (!vm.ok) return
  const r = await runInVM({
    script: 'cd /ferry && echo "@@ smoke" && FERRY_DIST=/ferry/dist node ipvs-kernel-smoke.mjs; echo "@@ smoke rc=$?"; ipvsadm -C; echo "@@ e2e" && node ipvs-e2e.mjs; echo "@@ nftables" && node nftables-e2e.mjs',
    files: { 'vm-lib.mjs': script('vm-lib.mjs'), 'ipvs-kernel-smoke.mjs': script('ipvs-kernel-smoke.mjs'), 'ipvs-e2e.mjs': script('ipvs-e2e.mjs'), 'nftables-e2e.mjs': script('nftables-e2e.mjs') },
    timeoutMs: 1_500_000,
  })
  t.comment(`boot ${r.bootMs} ms, scripts ${r.runMs} ms`)
  if (process.env.FERRY_VM_LOG !== undefined) writeFileSync(process.env.FERRY_VM_LOG, r.output)
  const e2eAt = r.output.indexOf('@@ e2e')
  const nftAt = r.output.indexOf('@@ nftables')
  const smoke = r.output.slice(r.output.indexOf('@@ smoke'), e2eAt)
  t.match(smoke, /@@ smoke rc=0/, 'the netlink codec agrees with the kernel and ipvsadm', { output: smoke.slice(-4000) })
  t.test('IPVS mode', async t => { assertChecks(t, r.output.slice(e2eAt, nftAt < 0 ? undefined : nftAt), CHECKS) })
  t.test('nftables mode on the 6.1 kernel', async t => { assertChecks(t, nftAt < 0 ? '' : r.output.slice(nftAt), NFT_CHECKS) })
})
