// Sync hot path of the iptables backend: for N services x 5 endpoints, render time, ferry's full sync
// into a throwaway netns, and a bare iptables-restore of the identical payload into a fresh netns beside
// it (ratio ferry/bare: median over rounds that alternate which runs first), for the legacy and nft
// variants; then one-endpoint-change latency (partial sync) against a full sync at 10k services, and
// process RSS. Root only.
//
//   node dist/bench/sync.js [1000,10000,50000] [--variants legacy,nft] [--nft-limit-s 180]
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { IptablesBackend } from '../pkg/proxy/iptables/backend.js'
import { syntheticState, withEndpointChanged } from '../pkg/proxy/iptables/fixtures.js'
import { renderFull } from '../pkg/proxy/iptables/render.js'
import { netnsExec, spawnExec } from '../pkg/exec/exec.js'
import { fullSyncExtras, jumps, toolName, type Variant } from '../pkg/proxy/iptables/restore.js'

const ENDPOINTS = 5
const RENDER = { family: 'IPv4' as const, clusterCIDR: '10.0.0.0/8' }

function args (): { ns: number[], variants: Variant[], nftLimitMs: number } {
  const argv = process.argv.slice(2)
  let ns = [1000, 10000, 50000]
  let variants: Variant[] = ['legacy', 'nft']
  let nftLimitMs = 180_000
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? ''
    if (a === '--variants') variants = (argv[++i] ?? '').split(',') as Variant[]
    else if (a === '--nft-limit-s') nftLimitMs = Number(argv[++i]) * 1000
    else ns = a.split(',').map(s => Number(s.trim())).filter(n => n > 0)
  }
  return { ns, variants, nftLimitMs }
}

async function sh (...argv: string[]): Promise<void> {
  const r = await spawnExec(argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
}

/** Runs a restore of `payload` in `ns`; resolves with ms, or null when it outlives `limitMs` (then killed). */
async function timedRestore (ns: string, variant: Variant, payload: string, limitMs: number): Promise<number | null> {
  const t0 = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, toolName(variant, 'IPv4', 'restore'), '-w', '5', '--noflush', '--counters'], { stdio: ['pipe', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (b: Buffer) => { err += b.toString() })
    child.stdin.on('error', () => {})
    const timer = setTimeout(() => { child.kill('SIGKILL') }, limitMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (signal === 'SIGKILL') resolve(null)
      else if (code !== 0) reject(new Error(`bare restore failed: ${err}`))
      else resolve(performance.now() - t0)
    })
    child.stdin.end(payload)
  })
}

const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MB`
const ms = (n: number | undefined): string => (n === undefined ? '-' : n.toFixed(0))
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

interface Row { n: number, variant: Variant, renderMs: number, ferryMs?: number, ferryApplyMs?: number, bareMs?: number, ratio?: number, rounds?: number, note?: string }

async function main (): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the sync bench needs root (network namespaces)')
  const { ns: sizes, variants, nftLimitMs } = args()
  const rows: Row[] = []
  const partials: string[] = []
  const rss: string[] = []
  const sfx = randomBytes(3).toString('hex')
  const made: string[] = []
  const overLimit = new Set<Variant>()
  const cleanup = async (): Promise<void> => { for (const n of made.splice(0)) await spawnExec(['ip', 'netns', 'del', n]) }
  process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
  try {
    for (const n of sizes) {
      const state = syntheticState(n, ENDPOINTS)
      let t0 = performance.now()
      // What ferry's first full sync applies into an empty netns: the render plus every jump and the canary.
      const { payload } = renderFull(state, RENDER, new Set(), fullSyncExtras(jumps('IPv4')))
      const renderMs = performance.now() - t0
      console.error(`# ${n} services: payload ${mb(payload.length)}, rendered in ${ms(renderMs)} ms`)
      for (const variant of variants) {
        if (overLimit.has(variant)) {
          rows.push({ n, variant, renderMs, note: 'skipped: a smaller N was over the limit' })
          continue
        }
        const limit = variant === 'nft' ? nftLimitMs : 30 * 60_000
        // Pairs in fresh namespaces, alternating which runs first, so drift and order cost both sides alike.
        const rounds = n <= 10000 ? 3 : 1
        const bareRuns: number[] = []
        const ferryRuns: number[] = []
        const applyRuns: number[] = []
        let be: IptablesBackend | undefined
        for (let round = 0; round < rounds && !overLimit.has(variant); round++) {
          await cleanup()
          const ferryNs = `fb-ferry-${sfx}-${round}`
          const bareNs = `fb-bare-${sfx}-${round}`
          for (const x of [ferryNs, bareNs]) { await sh('ip', 'netns', 'add', x); made.push(x) }
          const bare = async (): Promise<boolean> => {
            const bareMs = await timedRestore(bareNs, variant, payload, limit)
            if (bareMs === null) {
              overLimit.add(variant)
              rows.push({ n, variant, renderMs, note: `skipped: bare restore over ${limit / 1000} s` })
              console.error(`# ${n} ${variant}: bare restore over ${limit / 1000} s, skipped`)
              return false
            }
            bareRuns.push(bareMs)
            return true
          }
          const ferry = async (): Promise<void> => {
            be = new IptablesBackend({ ...RENDER, exec: netnsExec(ferryNs), variant })
            const t1 = performance.now()
            await be.sync(state, null)
            ferryRuns.push(performance.now() - t1)
            if (be.lastTimings?.payloadBytes !== payload.length) throw new Error('ferry applied a different payload than the bare run')
            applyRuns.push(be.lastTimings.applyMs)
          }
          if (round % 2 === 0) { if (await bare()) await ferry() } else { await ferry(); await bare() }
        }
        try {
          if (be === undefined || bareRuns.length === 0) continue
          const ratios = ferryRuns.map((f, i) => f / (bareRuns[i] ?? NaN))
          rows.push({ n, variant, renderMs, ferryMs: median(ferryRuns), ferryApplyMs: median(applyRuns), bareMs: median(bareRuns), ratio: median(ratios), rounds })
          console.error(`# ${n} ${variant}: ferry ${ferryRuns.map(ms).join('/')} ms (apply ${applyRuns.map(ms).join('/')}), bare ${bareRuns.map(ms).join('/')} ms`)

          if (n === 10000) {
            const part: number[] = []
            const partRender: number[] = []
            let cur = state
            for (let i = 0; i < 5; i++) {
              const next = withEndpointChanged(cur, 1000 + i * 7, `10.250.${i}.1`)
              t0 = performance.now()
              const r = await be.sync(next.state, new Set([next.key]))
              part.push(performance.now() - t0)
              partRender.push(be.lastTimings?.renderMs ?? NaN)
              if (r.kind !== 'partial') throw new Error('expected a partial sync')
              cur = next.state
            }
            const full: number[] = []
            for (let i = 0; i < 3; i++) {
              t0 = performance.now()
              await be.sync(cur, null)
              full.push(performance.now() - t0)
            }
            partials.push(`${variant}: one-endpoint change at 10k services: partial ${ms(median(part))} ms (render ${ms(median(partRender))} ms), ` +
              `steady-state full ${ms(median(full))} ms, full/partial ${(median(full) / median(part)).toFixed(1)}x (medians of 5 and 3)`)
            console.error(`# ${partials.at(-1) ?? ''}`)
          }
        } finally {
          await cleanup()
        }
      }
      global.gc?.()
      const m = process.memoryUsage()
      rss.push(`${n} services: RSS ${mb(m.rss)} (heap used ${mb(m.heapUsed)}) after rendering and syncing`)
    }
  } finally {
    await cleanup()
  }

  const header = ['services', 'variant', 'rounds', 'render ms', 'ferry full ms', 'ferry apply ms', 'bare restore ms', 'ferry/bare', 'apply/bare']
  const body = rows.map(r => [
    String(r.n), r.variant, r.rounds !== undefined ? String(r.rounds) : '-', ms(r.renderMs), ms(r.ferryMs), ms(r.ferryApplyMs), ms(r.bareMs),
    r.ratio !== undefined ? r.ratio.toFixed(2) : (r.note ?? '-'),
    r.ferryApplyMs !== undefined && r.bareMs !== undefined ? (r.ferryApplyMs / r.bareMs).toFixed(2) : '-',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map(b => (b[i] ?? '').length)))
  const fmt = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ') + ' |'
  console.log(`iptables sync bench: ${ENDPOINTS} endpoints per service, ClusterIP + a NodePort on every 20th`)
  console.log(fmt(header))
  console.log('|' + widths.map(w => '-'.repeat(w + 2)).join('|') + '|')
  for (const b of body) console.log(fmt(b))
  for (const l of partials) console.log(l)
  for (const l of rss) console.log(l)
  const byN = new Map<number, Map<Variant, Row>>()
  for (const r of rows) byN.set(r.n, (byN.get(r.n) ?? new Map()).set(r.variant, r))
  for (const [n, m] of byN) {
    const l = m.get('legacy')?.bareMs
    const f = m.get('nft')?.bareMs
    if (l !== undefined && f !== undefined) console.log(`${n} services: nft/legacy bare restore ${(f / l).toFixed(1)}x`)
  }
}

main().catch(e => { console.error(e); process.exitCode = 1 })
