// IPVS mode on a real IPVS kernel: one boot of the test VM (test/vm/) runs the generic-netlink codec
// against the kernel (test/vm-scripts/ipvs-kernel-smoke.mjs, with ipvsadm as the witness), then ferryd in
// IPVS mode with real traffic (test/vm-scripts/ipvs-e2e.mjs). Skipped, saying why, without root or qemu.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT, runInVM, vmAvailable } from '../vm/vm.js'

t.setTimeout(1_500_000) // TCG emulation on a shared 2-core host: ferryd and node start in seconds there

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

const script = (name: string): string => readFileSync(join(REPO_ROOT, 'test', 'vm-scripts', name), 'utf8')

const vm = await vmAvailable()
if (!vm.ok && process.env.FERRY_VM === '1') t.fail(`FERRY_VM=1 but the VM is not available: ${vm.reason}`)
const skip = vm.ok ? false : `IPVS VM suite skipped: ${vm.reason}`

t.test('IPVS mode in the VM: the codec against the kernel, then ferryd with real traffic', { skip }, async t => {
  if (!vm.ok) return
  const r = await runInVM({
    script: 'cd /ferry && echo "@@ smoke" && FERRY_DIST=/ferry/dist node ipvs-kernel-smoke.mjs; echo "@@ smoke rc=$?"; ipvsadm -C; echo "@@ e2e" && node ipvs-e2e.mjs',
    files: { 'ipvs-kernel-smoke.mjs': script('ipvs-kernel-smoke.mjs'), 'ipvs-e2e.mjs': script('ipvs-e2e.mjs') },
    timeoutMs: 1_200_000,
  })
  t.comment(`boot ${r.bootMs} ms, scripts ${r.runMs} ms`)
  if (process.env.FERRY_VM_LOG !== undefined) writeFileSync(process.env.FERRY_VM_LOG, r.output)
  const smoke = r.output.slice(r.output.indexOf('@@ smoke'), r.output.indexOf('@@ e2e'))
  t.match(smoke, /@@ smoke rc=0/, 'the netlink codec agrees with the kernel and ipvsadm', { output: smoke.slice(-4000) })
  const lines = r.output.split('\n').filter(l => l.startsWith('CHECK '))
  for (const name of CHECKS) {
    const line = lines.find(l => l.startsWith(`CHECK ok ${name}`) || l.startsWith(`CHECK fail ${name}`))
    t.ok(line?.startsWith('CHECK ok'), name, { line: line ?? '(not reached)' })
  }
  const unexpected = lines.filter(l => !CHECKS.some(n => l.includes(` ${n}`)))
  t.same(unexpected, [], 'no other check failed', { output: r.output.slice(-6000) })
  t.match(r.output, /\nDONE\n/, 'the e2e script cleaned up and finished')
})
