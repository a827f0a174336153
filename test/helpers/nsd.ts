// A real second DNS server for the tests: NSD serving one zone on a given address inside a lab
// namespace, as the authority behind the resolver ferry forwards to (unbound.ts). NSD never sets RA.
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Lab } from '../../pkg/lab/lab.js'
import { untilServing } from './dns-process.js'

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
  const ns = o.ns ?? lab.nodeNs
  const proc = lab.spawn(['nsd', '-d', '-c', join(dir, 'nsd.conf')], ns)
  const stop = await untilServing(lab, proc, { name: 'nsd', dir, address: o.address, port: o.port, zone: o.zone, ns })
  return { address: o.address, port: o.port, stop }
}
