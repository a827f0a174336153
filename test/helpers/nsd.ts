// A real second DNS server for the tests: NSD serving one zone on a given address inside a lab
// namespace, as the authority behind the resolver ferry forwards to (unbound.ts). NSD never sets RA.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Lab } from '../../pkg/lab/lab.js'

export interface Nsd { readonly address: string, readonly port: number, stop: () => Promise<void> }

/** Starts NSD in `ns` serving `zone` (records as zone-file lines relative to the origin). */
export async function startNsd (lab: Lab, o: { address: string, port: number, zone: string, records: string[], ns?: string }): Promise<Nsd> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-nsd-'))
  await writeFile(join(dir, 'nsd.conf'), `server:
  ip-address: ${o.address}
  port: ${o.port}
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  pidfile: "${dir}/nsd.pid"
  database: ""
  xfrdfile: "${dir}/xfrd.state"
  xfrdir: "${dir}"
  zonelistfile: "${dir}/zone.list"
  logfile: "${dir}/nsd.log"
  server-count: 1
remote-control:
  control-enable: no
zone:
  name: ${o.zone}
  zonefile: zone
`)
  await writeFile(join(dir, 'zone'), [`$ORIGIN ${o.zone}.`, '$TTL 300', `@ IN SOA ns.${o.zone}. admin.${o.zone}. 1 3600 600 86400 60`, `@ IN NS ns.${o.zone}.`, ...o.records, ''].join('\n'))
  const proc = lab.spawn(['nsd', '-d', '-c', join(dir, 'nsd.conf')], o.ns ?? lab.nodeNs)
  const ns = o.ns ?? lab.nodeNs
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM')
      await new Promise(resolve => { proc.once('exit', resolve) })
    }
    await rm(dir, { recursive: true, force: true })
  }
  const end = Date.now() + 10_000
  for (;;) {
    const out = await lab.sh(['dig', `@${o.address}`, '-p', String(o.port), '+short', '+time=1', '+tries=1', o.zone, 'SOA'], ns).catch(() => '')
    if (out.startsWith(`ns.${o.zone}.`)) break
    if (Date.now() > end || proc.exitCode !== null) {
      await stop()
      throw new Error(`nsd did not start (exit ${String(proc.exitCode)})`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return { address: o.address, port: o.port, stop }
}
