// A real recursive resolver for the tests: unbound inside a lab namespace, resolving one zone from an
// authoritative server (NSD, test/helpers/nsd.ts) through a stub zone. Unlike NSD it answers with RA=1,
// as the resolvers ferry forwards to in a cluster do.
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Lab } from '../../pkg/lab/lab.js'
import { untilServing } from './dns-process.js'

export interface Unbound { readonly address: string, readonly port: number, stop: () => Promise<void> }

/** Starts unbound in `ns` on address:port; `stub` names the zone it asks the authoritative server for. */
export async function startUnbound (lab: Lab, o: { address: string, port: number, stub: { zone: string, address: string, port: number }, ns?: string }): Promise<Unbound> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-unbound-'))
  // No validation (no trust anchor to fetch offline); localhost upstreams allowed, since NSD is on lo; the
  // zone made transparent, since unbound answers RFC 6761 names (test., invalid.) itself by default.
  await writeFile(join(dir, 'unbound.conf'), `server:
  interface: ${o.address}@${o.port}
  port: ${o.port}
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${dir}/unbound.pid"
  use-syslog: no
  logfile: "${dir}/unbound.log"
  num-threads: 1
  do-ip6: no
  do-not-query-localhost: no
  module-config: "iterator"
  auto-trust-anchor-file: ""
  access-control: 127.0.0.0/8 allow
  local-zone: "${o.stub.zone}." transparent
remote-control:
  control-enable: no
stub-zone:
  name: "${o.stub.zone}"
  stub-addr: ${o.stub.address}@${o.stub.port}
`)
  const ns = o.ns ?? lab.nodeNs
  const proc = lab.spawn(['unbound', '-d', '-c', join(dir, 'unbound.conf')], ns)
  const stop = await untilServing(lab, proc, { name: 'unbound', dir, address: o.address, port: o.port, zone: o.stub.zone, ns })
  return { address: o.address, port: o.port, stop }
}
