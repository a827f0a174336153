// What the tests' other DNS servers (NSD, unbound) share once started: a stop that ends the process
// and removes its directory, and a wait until it answers its zone's SOA.
import { rm } from 'node:fs/promises'
import type { ChildProcess } from 'node:child_process'
import type { Lab } from '../../pkg/lab/lab.js'

/**
 * Waits up to 10 s for the server in `ns` at address:port to answer `zone`'s SOA with its `ns.` name
 * server; returns its stop, or stops it and throws if it exits or never answers.
 */
export async function untilServing (lab: Lab, proc: ChildProcess, o: { name: string, dir: string, address: string, port: number, zone: string, ns: string }): Promise<() => Promise<void>> {
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM')
      await new Promise(resolve => { proc.once('exit', resolve) })
    }
    await rm(o.dir, { recursive: true, force: true })
  }
  const end = Date.now() + 10_000
  for (;;) {
    const out = await lab.sh(['dig', `@${o.address}`, '-p', String(o.port), '+short', '+time=1', '+tries=1', o.zone, 'SOA'], o.ns).catch(() => '')
    if (out.startsWith(`ns.${o.zone}.`)) return stop
    if (Date.now() > end || proc.exitCode !== null) {
      await stop()
      throw new Error(`${o.name} did not start (exit ${String(proc.exitCode)})`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
