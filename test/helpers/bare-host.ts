// A bare network namespace (loopback only) as a FerrydHost: ferryd and what it starts run inside it,
// and the namespace and every process go at teardown. For e2e tests of ferryd's own behaviour.
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { run } from '../../pkg/exec/exec.js'
import type { FerrydHost } from '../../pkg/lab/ferryd.js'

/** ferryd's arguments beside its source: no CNI server, whose file would land in the host's /run/ferry. */
export const BARE_FERRYD_ARGS = ['--node-name', 'n1', '--cluster-cidr', '10.244.0.0/16', '--cni-listen', '']

/** A namespace named `<prefix><6 hex>`, removed with everything started in it. */
export async function bareHost (t: Test, prefix: string): Promise<FerrydHost> {
  const ns = `${prefix}${randomBytes(3).toString('hex')}`
  const procs: ChildProcess[] = []
  await run(['ip', 'netns', 'add', ns])
  t.teardown(async () => {
    for (const p of procs) {
      if (p.exitCode !== null || p.signalCode !== null) continue
      p.kill('SIGKILL')
      await new Promise(resolve => p.once('exit', resolve))
    }
    await run(['ip', 'netns', 'del', ns])
  })
  const sh = async (argv: string[], where = ns, stdin?: string): Promise<string> => await run(['ip', 'netns', 'exec', where, ...argv], stdin)
  await sh(['ip', 'link', 'set', 'lo', 'up'])
  return {
    nodeNs: ns,
    sh,
    spawn: (argv, where = ns, opts = {}) => {
      const p = spawn('ip', ['netns', 'exec', where, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env })
      procs.push(p)
      return p
    },
  }
}
