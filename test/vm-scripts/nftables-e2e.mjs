// nftables mode on the VM's kernel (Debian 12's 6.1, older than the host's): the real ferryd on a
// manifest directory with --proxy-mode nftables, pods in network namespaces, real traffic. What 6.1 adds
// over the host suite: the first load's map elements over nf_tables netlink, and the deferred deletion
// of chains a partial sync flushed (before 6.2 a chain whose last map reference was just removed can
// still look referenced: NFTABLES.md §1.11). Prints "CHECK ok|fail NAME :: detail" lines.
import { rm, writeFile } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { join } from 'node:path'

const DIST = process.env.FERRY_DIST ?? '/ferry/dist'
const { Lab, LAB } = await import(`${DIST}/pkg/lab/lab.js`)
const { startFerryd } = await import(`${DIST}/pkg/lab/ferryd.js`)
const { check, sleep, until, svc, slice, webLab, runChecks } = await import('./vm-lib.mjs')

const WEB = ['10.244.0.11', '10.244.0.12', '10.244.0.13'].map(ip => ({ ip }))
const perService = /^\s*chain (svc|aff|ep)-/m

const { lab, client, dir } = await webLab(Lab, 'ferry-nft-')
let ferryd
await runChecks(async () => {
  await writeFile(join(dir, 'web.yaml'), svc('web', '10.96.0.10') + '---\n' + slice('web-1', 'web', WEB))
  await writeFile(join(dir, 'sticky.yaml'), svc('sticky', '10.96.0.30', { sticky: true }) + '---\n' + slice('sticky-1', 'sticky', WEB))
  const args = ['--manifests', dir, '--node-name', 'lab-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '100ms', '--sync-period', '3s', '--log-level', 'debug']
  ferryd = startFerryd(lab, ['--proxy-mode', 'nftables', ...args])
  const t0 = Date.now()
  await ferryd.waitReady(180_000)
  check('ready in nftables mode', /"msg":"proxy mode","mode":"nftables"/.test(ferryd.logs()), `ready after ${Date.now() - t0} ms`)
  const first = ferryd.logs().split('\n').find(l => l.includes('"msg":"nftables synced"')) ?? ''
  check('the first full sync loaded its elements over netlink', /"kind":"full".*"elementBatches":[1-9]/.test(first), first)
  const nft = (...a) => lab.sh(['nft', ...a])
  check('the kernel holds the dispatch elements', /10\.96\.0\.10 \. tcp \. 80 : goto/.test(await nft('list', 'map', 'ip', 'ferry', 'service-ips')))

  const spread = await lab.spread('http://10.96.0.10/', 30, client.ns)
  check('pod -> ClusterIP reaches every endpoint', [...spread.keys()].sort().join(',') === 'web-1,web-2,web-3', JSON.stringify([...spread]))
  const sticky = await lab.spread('http://10.96.0.30/', 12, client.ns)
  check('ClientIP affinity sticks to one endpoint', sticky.size === 1, JSON.stringify([...sticky]))
  check('the sticky Service has its own chains', perService.test(await nft('list', 'chains', 'ip')))

  // Affinity off: the partial sync flushes the Service's chains and drops the map's reference to them.
  await writeFile(join(dir, 'sticky.yaml'), svc('sticky', '10.96.0.30') + '---\n' + slice('sticky-1', 'sticky', WEB))
  const spreadOff = await until(async () => (await lab.spread('http://10.96.0.30/', 24, client.ns)).size === 3, 60_000)
  check('without affinity the Service spreads again', spreadOff)
  await sleep(1500)
  // A later change: its sync first deletes the flushed chains, in their own transaction.
  await writeFile(join(dir, 'web.yaml'), svc('web', '10.96.0.10') + '---\n' + slice('web-1', 'web', WEB.slice(0, 2)))
  const gone = await until(async () => !perService.test(await nft('list', 'chains', 'ip')), 60_000)
  check('the flushed chains are deleted by a later transaction on this kernel', gone, (await nft('list', 'chains', 'ip')).split('\n').filter(l => perService.test(l)).join(' '))
  const webTwo = await until(async () => (await lab.spread('http://10.96.0.10/', 24, client.ns)).size === 2, 60_000)
  check('the endpoint change applied', webTwo)
  const metrics = (await ferryd.http('/metrics')).body
  const failures = metrics.split('\n').filter(l => /^kubeproxy_sync_proxy_rules_nftables_(sync|cleanup)_failures_total\{/.test(l))
  // prom-client prints a labelled counter once it counted: no line, or a zero, means no failure.
  check('no sync or chain deletion failed', failures.every(l => / 0$/.test(l)) && !/sync failed|stale chains failed/.test(ferryd.logs()), failures.join(' '))

  // A firewall reload: the table is rebuilt within the sync period, its elements over netlink again.
  const before = ferryd.logs().length
  await nft('flush', 'ruleset')
  const rebuilt = await until(async () => /10\.96\.0\.10 \. tcp \. 80 : goto/.test(await nft('list', 'map', 'ip', 'ferry', 'service-ips')), 60_000)
  const again = ferryd.logs().slice(before).split('\n').find(l => l.includes('"msg":"nftables synced"') && l.includes('"kind":"full"')) ?? ''
  check('a flushed ruleset is rebuilt, its elements over netlink', rebuilt && /"elementBatches":[1-9]/.test(again), again)
  const after = await lab.spread('http://10.96.0.10/', 24, client.ns)
  check('traffic flows after the rebuild', after.size === 2, JSON.stringify([...after]))

  await ferryd.stop()
  const cleanup = spawn('ip', ['netns', 'exec', lab.nodeNs, 'node', `${DIST}/cmd/ferryd.js`, '--cleanup'], { stdio: 'inherit' })
  const code = await new Promise(resolve => cleanup.on('exit', resolve))
  const tables = await nft('list', 'tables')
  check('ferryd --cleanup removes the table', code === 0 && !/ferry/.test(tables), `code ${code} | ${tables}`)
}, async () => {
  await ferryd?.stop().catch(() => {})
  await lab.close().catch(() => {})
  await rm(dir, { recursive: true, force: true })
})
