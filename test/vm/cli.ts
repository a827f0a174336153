// `test/vm/run.sh SCRIPT [GUEST_PATH=HOST_FILE ...]`: runs a shell script in the test VM, prints its
// output and exits with its status. For people; tests call runInVM directly.
import { readFileSync } from 'node:fs'
import { runInVM, vmAvailable } from './vm.js'

const [scriptPath, ...extra] = process.argv.slice(2)
if (scriptPath === undefined || scriptPath === '-h' || scriptPath === '--help') {
  console.error('usage: test/vm/run.sh SCRIPT [GUEST_PATH=HOST_FILE ...]   (relative guest paths land under /ferry)')
  process.exit(2)
}
const files: Record<string, Buffer> = {}
for (const arg of extra) {
  const eq = arg.indexOf('=')
  if (eq <= 0) {
    console.error(`run.sh: expected GUEST_PATH=HOST_FILE, got ${arg}`)
    process.exit(2)
  }
  files[arg.slice(0, eq)] = readFileSync(arg.slice(eq + 1))
}
const script = readFileSync(scriptPath === '-' ? 0 : scriptPath, 'utf8')

const avail = await vmAvailable()
if (!avail.ok) {
  console.error(`run.sh: the VM is not available: ${avail.reason}`)
  process.exit(2)
}
if (avail.image.built) console.error(`run.sh: built the image in ${avail.image.buildMs} ms: ${avail.image.dir}`)
const timeoutMs = Number(process.env.FERRY_VM_TIMEOUT_MS ?? 600_000)
const r = await runInVM({ script, files, timeoutMs })
process.stdout.write(r.output)
console.error(`run.sh: exit ${r.code}, boot ${r.bootMs} ms, script ${r.runMs} ms`)
process.exit(r.code)
