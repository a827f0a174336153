// IPVS kernel smoke test: run as root inside a VM whose kernel has ip_vs (and ip_vs_rr, ip_vs_mh) loaded,
// after `npm run build`. It drives dist/pkg/proxy/ipvs/kernel.js against the real kernel, reads the
// table back through the same netlink class and through `ipvsadm -Ln` (an independent witness), checks
// that FakeIpvsKernel answers every error case with the kernel's errno, and leaves the table empty.
// Prints one JSON report on stdout; exits 1 on any mismatch. FERRY_DIST overrides where dist/ is.
//
//   node test/vm-scripts/ipvs-kernel-smoke.mjs
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { isDeepStrictEqual } from 'node:util'

const dist = process.env.FERRY_DIST !== undefined ? pathToFileURL(`${resolve(process.env.FERRY_DIST)}/`) : new URL('../../dist/', import.meta.url)
const distUrl = (p) => new URL(p, dist).href
const { openIpvsKernel } = await import(distUrl('pkg/proxy/ipvs/kernel.js'))
const { FakeIpvsKernel } = await import(distUrl('pkg/proxy/ipvs/fake-kernel.js'))

const steps = []
let failed = false
function check (name, ok, detail = {}) {
  steps.push({ name, ok, ...(ok ? {} : { detail }) })
  if (!ok) failed = true
  return ok
}
function same (name, got, want) { return check(name, isDeepStrictEqual(got, want), { got, want }) }

// ---- Fixtures ----
const V4 = { family: 'IPv4', protocol: 'TCP', address: '10.96.0.1', port: 443 }
const V6 = { family: 'IPv6', protocol: 'UDP', address: 'fd00::a', port: 53 }
const svc4 = { ...V4, scheduler: 'rr', flags: 0x1, timeout: 10800, netmask: 32 } // ClientIP affinity
const svc6 = { ...V6, scheduler: 'mh', flags: 0x10, timeout: 0, netmask: 128 } // mh hashing the port too
const rs = (address, port, weight = 1) =>
  ({ address, port, weight, forward: 'masq', upperThreshold: 0, lowerThreshold: 0, activeConns: 0, inactiveConns: 0, persistConns: 0 })
const dests4 = [rs('10.244.1.1', 8080), rs('10.244.1.2', 8080), rs('10.244.1.3', 8080)]
const dests6 = [rs('fd00:10:244::1', 53, 1), rs('fd00:10:244::2', 53, 2), rs('fd00:10:244::3', 53, 3)]
const byAddress = (list) => [...list].sort((a, b) => a.address.localeCompare(b.address))
const byKey = (list) => [...list].sort((a, b) => `${a.protocol}${a.address}${a.port}`.localeCompare(`${b.protocol}${b.address}${b.port}`))
const errnos = (results) => results.map(r => r.errno)

// ---- The witness: ipvsadm -Ln ----
function canonical (host) {
  return host.startsWith('[') ? new URL(`http://${host}/`).hostname.slice(1, -1) : host
}
function splitHostPort (text) {
  const i = text.lastIndexOf(':')
  return { address: canonical(text.slice(0, i)), port: Number(text.slice(i + 1)) }
}
/** ipvsadm -Ln as [{protocol, address, port, scheduler, rest, dests: [{address, port, forward, weight, active, inactive}]}]. */
function ipvsadm () {
  const text = execFileSync('ipvsadm', ['-Ln'], { encoding: 'utf8' })
  const services = []
  for (const line of text.split('\n')) {
    const s = /^(TCP|UDP|SCTP)\s+(\S+)\s+(\S+)(.*)$/.exec(line)
    if (s !== null) {
      services.push({ protocol: s[1], ...splitHostPort(s[2]), scheduler: s[3], rest: s[4].trim(), dests: [] })
      continue
    }
    const d = /^\s+->\s+(\S+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line)
    if (d !== null && services.length > 0) {
      services[services.length - 1].dests.push({ ...splitHostPort(d[1]), forward: d[2], weight: Number(d[3]), active: Number(d[4]), inactive: Number(d[5]) })
    }
  }
  return { text, services: byKey(services).map(s => ({ ...s, dests: byAddress(s.dests) })) }
}
const witnessDests = (list) => byAddress(list).map(d => ({ address: d.address, port: d.port, forward: 'Masq', weight: d.weight, active: 0, inactive: 0 }))

// ---- Run ----
let kernel
const report = { steps }
try {
  kernel = await openIpvsKernel()
  report.familyId = kernel.familyId
  const info = await kernel.info()
  report.info = info
  check('info: version 1.2.1 and a connection table', info.version === '1.2.1' && info.connTableSize > 0, info)

  const before = await kernel.listServices()
  if (!check('the table is empty at start (this script flushes it at the end)', before.length === 0, { before })) throw new Error('refusing to touch a non-empty IPVS table')

  // 1. Add a v4 and a v6 service with three dests each, in one pipelined apply.
  const adds = [
    { op: 'addService', service: svc4 },
    { op: 'addService', service: svc6 },
    ...dests4.map(destination => ({ op: 'addDestination', service: V4, destination })),
    ...dests6.map(destination => ({ op: 'addDestination', service: V6, destination })),
  ]
  same('add: every op acked with 0', errnos(await kernel.apply(adds)), adds.map(() => 0))
  same('list services: HASHED masked, fields as sent', byKey(await kernel.listServices()), byKey([svc4, svc6]))
  same('list v4 dests', byAddress(await kernel.listDestinations(V4)), byAddress(dests4))
  same('list v6 dests', byAddress(await kernel.listDestinations(V6)), byAddress(dests6))
  let w = ipvsadm()
  report.ipvsadmAfterAdd = w.text
  same('ipvsadm sees both services', w.services.map(s => [s.protocol, s.address, s.port, s.scheduler]), [['TCP', '10.96.0.1', 443, 'rr'], ['UDP', 'fd00::a', 53, 'mh']])
  check('ipvsadm sees the v4 persistence', /persistent 10800/.test(w.services[0]?.rest ?? ''), { rest: w.services[0]?.rest })
  same('ipvsadm sees the v4 dests', w.services[0]?.dests, witnessDests(dests4))
  same('ipvsadm sees the v6 dests', w.services[1]?.dests, witnessDests(dests6))

  // 2. Update weights (graceful termination sets 0) and a service's scheduler.
  const updates = [
    { op: 'updateDestination', service: V4, destination: { ...dests4[0], weight: 0 } },
    { op: 'updateDestination', service: V6, destination: { ...dests6[1], weight: 5 } },
    { op: 'updateService', service: { ...svc4, scheduler: 'mh', flags: 0x10, timeout: 0 } },
  ]
  same('update: acked with 0', errnos(await kernel.apply(updates)), [0, 0, 0])
  const dests4b = [{ ...dests4[0], weight: 0 }, dests4[1], dests4[2]]
  const dests6b = [dests6[0], { ...dests6[1], weight: 5 }, dests6[2]]
  same('list after update: v4 dests', byAddress(await kernel.listDestinations(V4)), byAddress(dests4b))
  same('list after update: v6 dests', byAddress(await kernel.listDestinations(V6)), byAddress(dests6b))
  same('list after update: services', byKey(await kernel.listServices()), byKey([{ ...svc4, scheduler: 'mh', flags: 0x10, timeout: 0 }, svc6]))
  w = ipvsadm()
  same('ipvsadm after update: weights', [w.services[0]?.dests, w.services[1]?.dests], [witnessDests(dests4b), witnessDests(dests6b)])
  same('ipvsadm after update: scheduler, no persistence', [w.services[0]?.scheduler, /persistent/.test(w.services[0]?.rest ?? '')], ['mh', false])

  // 3. Error answers: the real kernel's errnos, and FakeIpvsKernel's for the same table and ops.
  const probes = [
    { op: 'addService', service: svc4 }, // EEXIST
    { op: 'addDestination', service: V4, destination: dests4[1] }, // EEXIST
    { op: 'updateService', service: { ...svc4, port: 1 } }, // ESRCH
    { op: 'addDestination', service: { ...V4, port: 1 }, destination: dests4[1] }, // ESRCH
    { op: 'deleteDestination', service: V4, destination: { address: '10.244.9.9', port: 8080 } }, // ENOENT
    { op: 'updateDestination', service: V6, destination: rs('fd00:10:244::9', 53) }, // ENOENT
    { op: 'addService', service: { ...svc4, port: 2, scheduler: 'nosuch' } }, // ENOENT (no module ip_vs_nosuch)
    { op: 'addService', service: { ...svc6, port: 2, netmask: 0 } }, // EINVAL
    { op: 'addDestination', service: V4, destination: { ...rs('10.244.1.9', 8080), weight: -1 } }, // ERANGE
    { op: 'addDestination', service: V4, destination: { ...rs('10.244.1.9', 8080), upperThreshold: 1, lowerThreshold: 2 } }, // ERANGE
    { op: 'addDestination', service: V4, destination: rs('fd00:10:244::9', 8080) }, // EINVAL: other family, not tunnel
    { op: 'addDestination', service: V4, destination: rs('224.0.0.5', 8080) }, // EINVAL: not unicast
    { op: 'deleteService', service: { ...V6, port: 9 } }, // ESRCH
  ]
  const real = errnos(await kernel.apply(probes))
  same('errors: the kernel answers as IPVS.md §4 says', real, [17, 17, 3, 3, 2, 2, 2, 22, 34, 34, 22, 22, 3])
  const fake = new FakeIpvsKernel({ schedulers: ['rr', 'mh'] })
  fake.seed([{ service: { ...svc4, scheduler: 'mh', flags: 0x10, timeout: 0 }, destinations: dests4b }, { service: svc6, destinations: dests6b }])
  same('errors: FakeIpvsKernel answers the same errnos', errnos(await fake.apply(probes)), real)
  same('a dest dump of a missing service is empty, not an error', await kernel.listDestinations({ ...V4, port: 1 }), [])
  same('the failed ops changed nothing', [byAddress(await kernel.listDestinations(V4)), (await kernel.listServices()).length], [byAddress(dests4b), 2])

  // 4. Delete a dest and a service.
  const deletes = [
    { op: 'deleteDestination', service: V4, destination: { address: dests4[2].address, port: dests4[2].port } },
    { op: 'deleteService', service: V6 },
  ]
  same('delete: acked with 0', errnos(await kernel.apply(deletes)), [0, 0])
  same('list after delete: one service', (await kernel.listServices()).map(s => s.address), ['10.96.0.1'])
  same('list after delete: two v4 dests', byAddress(await kernel.listDestinations(V4)), byAddress(dests4b.slice(0, 2)))
  same('list after delete: the v6 service\'s dests went with it', await kernel.listDestinations(V6), [])
  w = ipvsadm()
  same('ipvsadm after delete', w.services.map(s => [s.address, s.dests.length]), [['10.96.0.1', 2]])

  // 5. Many ops pipelined on the socket: 1500 services x 2 dests in one apply.
  const bulk = []
  for (let i = 0; i < 1500; i++) {
    const key = { family: 'IPv4', protocol: i % 2 === 0 ? 'TCP' : 'UDP', address: `10.97.${i >> 8}.${i & 0xff}`, port: 80 }
    bulk.push({ op: 'addService', service: { ...key, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 } })
    bulk.push({ op: 'addDestination', service: key, destination: rs(`10.245.${i >> 8}.${i & 0xff}`, 8080) })
    bulk.push({ op: 'addDestination', service: key, destination: rs(`10.246.${i >> 8}.${i & 0xff}`, 8080) })
  }
  const t0 = process.hrtime.bigint()
  const bulkResults = await kernel.apply(bulk)
  report.bulkMs = Number(process.hrtime.bigint() - t0) / 1e6
  same('bulk: 4500 ops all acked with 0', bulkResults.filter(r => r.errno !== 0).length, 0)
  const listed = await kernel.listServices()
  same('bulk: 1501 services listed', listed.length, 1501)
  same('bulk: a sample service has its two dests', byAddress(await kernel.listDestinations({ family: 'IPv4', protocol: 'UDP', address: '10.97.3.233', port: 80 })).map(d => d.address), ['10.245.3.233', '10.246.3.233'])
  w = ipvsadm()
  same('bulk: ipvsadm counts 1501 services and 3002 dests', [w.services.length, w.services.reduce((n, s) => n + s.dests.length, 0)], [1501, 3002])

  // 6. Flush.
  await kernel.flush()
  same('flush: nothing listed', await kernel.listServices(), [])
  same('flush: ipvsadm lists nothing', ipvsadm().services, [])
} catch (e) {
  check('no exception', false, { error: String(e?.stack ?? e), code: e?.code })
} finally {
  kernel?.close()
}

report.ok = !failed
console.log(JSON.stringify(report, null, 2))
process.exitCode = failed ? 1 : 0 // no process.exit(): a socket left open would show up as a hang
