// A failed sync is logged once (STYLE.md: errors logged once, at the top): the proxier reports it,
// the backend only throws. Each mode's real backend under a Proxier, its helper program failing.
import t from 'tap'
import { Registry } from 'prom-client'
import { ClusterStore } from '../../pkg/cache/store.js'
import { stdinText, type Exec, type ExecResult } from '../../pkg/exec/exec.js'
import { createLogger, type Logger } from '../../pkg/log/log.js'
import { FakeClock } from '../../pkg/proxy/fake-clock.js'
import { ProxyHealth } from '../../pkg/proxy/health.js'
import { IptablesBackend } from '../../pkg/proxy/iptables/backend.js'
import { createProxyMetrics } from '../../pkg/proxy/metrics.js'
import { NftablesBackend } from '../../pkg/proxy/nftables/backend.js'
import { FakeLinks } from '../../pkg/netlink/fake.js'
import { IpvsBackend } from '../../pkg/proxy/ipvs/backend.js'
import { IpvsCompanion } from '../../pkg/proxy/ipvs/companion-apply.js'
import { FakeIpvsKernel } from '../../pkg/proxy/ipvs/fake-kernel.js'
import { MemoryOwnershipStore } from '../../pkg/proxy/ipvs/ownership.js'
import type { RememberedClient } from '../../pkg/proxy/nftables/affinity-read.js'
import { Proxier } from '../../pkg/proxy/proxier.js'
import type { Backend } from '../../pkg/proxy/types.js'
import { NODE, slice, sliceEp, svc } from '../helpers/fixtures.js'

const OK: ExecResult = { code: 0, stdout: '', stderr: '' }

const modes: Array<{ name: string, failure: RegExp, stderr?: string, backend: (exec: Exec, log: Logger) => Backend, isApply: (argv: readonly string[]) => boolean }> = [
  {
    name: 'iptables',
    failure: /Couldn't load target/,
    backend: (exec, log) => new IptablesBackend({ family: 'IPv4', exec, log, variant: 'legacy', clusterCIDR: '10.0.0.0/8' }),
    isApply: argv => (argv[0] ?? '').endsWith('-restore'),
  },
  {
    name: 'nftables',
    failure: /Could not process rule/,
    backend: (exec, log) => new NftablesBackend({ family: 'IPv4', exec, log, countRules: async () => 1, readAffinity: async () => new Map<string, RememberedClient[]>() }),
    isApply: argv => argv[0] === 'nft' && argv[1] === '-f',
  },
  {
    // A local endpoint's change rewrites the hairpin set: the companion's `ipset restore` fails.
    name: 'ipvs',
    failure: /Kernel error received/,
    stderr: 'ipset v7.17: Error in line 1: Kernel error received: Cannot allocate memory\n',
    backend: (exec, log) => new IpvsBackend({
      family: 'IPv4', proxy: { family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2'] }, scheduler: 'rr', gracefulTerminationMs: 0,
      kernel: new FakeIpvsKernel(), links: new FakeLinks(), ownership: new MemoryOwnershipStore(), log,
      companion: new IpvsCompanion({ family: 'IPv4', clusterCIDR: '10.0.0.0/8', nodeIPs: ['192.168.0.2'], variant: 'legacy', exec, log }),
    }),
    isApply: argv => argv[0] === 'ipset' && argv[1] === 'restore',
  },
]

for (const mode of modes) {
  t.test(`${mode.name}: one log line per failed sync`, async t => {
    let failing = false
    const exec: Exec = async (argv, stdin) => {
      if (stdin !== undefined) stdinText(stdin) // read it all, as the program would
      if (failing && mode.isApply(argv)) {
        return { code: 1, stdout: '', stderr: mode.stderr ?? (mode.name === 'iptables' ? "iptables-restore v1.8.9 (legacy): Couldn't load target `X'\n\nError occurred at line: 3\n" : '/dev/stdin:1:1-9: Error: Could not process rule: Cannot allocate memory\n') }
      }
      if (argv.join(' ') === 'nft list tables') return { code: 0, stdout: 'table ip ferry\n', stderr: '' }
      if ((argv[0] ?? '').endsWith('-save')) return OK
      if (argv.includes('-C')) return { code: 1, stdout: '', stderr: 'Bad rule' }
      return OK
    }
    const lines: Array<Record<string, unknown>> = []
    const log = createLogger({ level: 'debug', write: l => { lines.push(JSON.parse(l) as Record<string, unknown>) } })
    const clock = new FakeClock(1_000_000)
    const store = new ClusterStore()
    const proxier = new Proxier({
      family: 'IPv4', nodeName: NODE, backend: mode.backend(exec, log), store, minSyncPeriodMs: 1000, syncPeriodMs: 30_000,
      metrics: createProxyMetrics(new Registry()), health: new ProxyHealth(60_000, () => clock.now()), log, clock,
    })
    store.replace([svc(), slice({ endpoints: [sliceEp('10.180.0.1', { node: true })] })])
    proxier.start()
    await clock.advance(1000)
    t.equal(proxier.failed(), false, 'the first sync lands')
    failing = true
    store.upsert(slice({ endpoints: [sliceEp('10.180.0.2', { node: true })] }))
    await clock.advance(1000)
    t.equal(proxier.failed(), true, 'the next one fails')
    const told = lines.filter(l => (l.level === 'warn' || l.level === 'error') && mode.failure.test(JSON.stringify(l)))
    t.equal(told.length, 1, `logged once: ${told.map(l => String(l.msg)).join(' | ')}`)
    t.equal(told[0]?.level, 'error')
    await proxier.stop()
  })
}
