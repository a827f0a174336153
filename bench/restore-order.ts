// Does the order of an iptables-restore payload change what the restore costs? For N services x 5
// endpoints, ferry's own full-sync payload (chains declared in descending name order, then the rules
// chain by chain) against the same lines in three other orders: iptables-save's (declared ascending, then
// the rules), dependency-first (each chain declared and written just before the first chain that
// jumps to it) and streamed (what a restore fed while the source still loads would get: per batch of 50
// services, their chains declared and written; the top-level rules last). Each is timed as a whole `iptables-legacy-restore --noflush --counters` process in a
// fresh netns, once with --test (parse only, no commit) and once for real; rounds rotate which order
// goes first; ratios are against ferry's order in the same round. Root only.
//
//   node dist/bench/restore-order.js [10000] [--rounds 3]
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { spawnExec } from '../pkg/exec/exec.js'
import { syntheticState } from '../pkg/proxy/iptables/fixtures.js'
import { isPerServiceChain } from '../pkg/proxy/iptables/names.js'
import { renderFull } from '../pkg/proxy/iptables/render.js'
import { fullSyncExtras, jumps } from '../pkg/proxy/iptables/restore.js'

const ENDPOINTS = 5
const RENDER = { family: 'IPv4' as const, clusterCIDR: '10.0.0.0/8' }
type Order = 'ferry' | 'save' | 'dependency-first' | 'streamed'
const ORDERS: readonly Order[] = ['ferry', 'save', 'dependency-first', 'streamed']
/** Services per batch in the streamed order: one file of the start-up bench's 200. */
const BATCH = 50

/** The payload's nat table split into its parts, the rest kept as text around it. */
interface NatParts { readonly before: string, readonly after: string, readonly declared: string[], readonly rules: Map<string, string[]>, readonly other: string[] }

function splitNat (payload: string): NatParts {
  const start = payload.indexOf('*nat\n') + '*nat\n'.length
  const end = payload.indexOf('\nCOMMIT', start)
  const declared: string[] = []
  const rules = new Map<string, string[]>()
  const other: string[] = []
  for (const l of payload.slice(start, end).split('\n')) {
    if (l.startsWith(':')) {
      const c = l.slice(1, l.indexOf(' '))
      declared.push(c)
      rules.set(c, [])
    } else if (l.startsWith('-A ')) {
      rules.get(l.slice(3, l.indexOf(' ', 3)))?.push(l)
    } else if (l !== '') {
      other.push(l) // jumps from the built-in chains: kept after the chains they name
    }
  }
  return { before: payload.slice(0, start), after: payload.slice(end + 1), declared, rules, other }
}

const JUMP = / -j (\S+)/

/** The chains and targets `chain`'s rules jump to, in rule order. */
function jumpTargets (p: NatParts, chain: string): string[] {
  return (p.rules.get(chain) ?? []).flatMap(l => JUMP.exec(l)?.[1] ?? [])
}

function reorder (p: NatParts, order: Order): string {
  const lines: string[] = []
  if (order === 'save') {
    const asc = [...p.declared].sort()
    for (const c of asc) lines.push(`:${c} - [0:0]`)
    for (const c of asc) lines.push(...(p.rules.get(c) ?? []))
  } else if (order === 'streamed') {
    // As a restore fed while the source loads: the top-level chains declared first; then per batch of
    // services (in service order), their chains declared in descending name order and their rules;
    // the top-level rules last.
    const top = p.declared.filter(c => !isPerServiceChain(c))
    for (const c of top) lines.push(`:${c} - [0:0]`)
    const done = new Set<string>(top)
    const group = (c: string, into: string[]): void => {
      if (done.has(c) || !p.rules.has(c)) return
      done.add(c)
      into.push(c)
      for (const target of jumpTargets(p, c)) group(target, into)
    }
    let batch: string[] = []
    let services = 0
    const flush = (): void => {
      const asc = [...batch].sort()
      for (const c of [...asc].reverse()) lines.push(`:${c} - [0:0]`)
      for (const c of asc) lines.push(...(p.rules.get(c) ?? []))
      batch = []
      services = 0
    }
    for (const c of top) {
      for (const target of jumpTargets(p, c)) {
        if (done.has(target)) continue
        group(target, batch)
        if (++services === BATCH) flush()
      }
    }
    flush()
    for (const c of p.declared) if (!done.has(c)) group(c, batch)
    flush()
    for (const c of top) lines.push(...(p.rules.get(c) ?? []))
  } else {
    // Depth first over the jumps: a chain's targets are declared and written before the chain itself.
    const done = new Set<string>()
    const emit = (c: string): void => {
      if (done.has(c)) return
      done.add(c)
      for (const target of jumpTargets(p, c)) if (p.rules.has(target)) emit(target)
      lines.push(`:${c} - [0:0]`, ...(p.rules.get(c) ?? []))
    }
    for (const c of p.declared) emit(c)
  }
  return p.before + [...lines, ...p.other].join('\n') + '\n' + p.after
}

async function sh (...argv: string[]): Promise<void> {
  const r = await spawnExec(argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
}

/** One whole restore process in a fresh netns, in ms. */
async function timed (ns: string, payload: string, test: boolean): Promise<number> {
  await sh('ip', 'netns', 'add', ns)
  try {
    const t0 = performance.now()
    await new Promise<void>((resolve, reject) => {
      const argv = ['netns', 'exec', ns, 'iptables-legacy-restore', '-w', '5', '--noflush', '--counters', ...(test ? ['--test'] : [])]
      const child = spawn('ip', argv, { stdio: ['pipe', 'ignore', 'pipe'] })
      let err = ''
      child.stderr.on('data', (b: Buffer) => { err += b.toString() })
      child.stdin.on('error', () => {})
      child.on('close', code => { if (code === 0) resolve(); else reject(new Error(`restore failed: ${err.slice(0, 2000)}`)) })
      child.stdin.end(payload)
    })
    return performance.now() - t0
  } finally {
    await spawnExec(['ip', 'netns', 'del', ns])
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

async function main (): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the restore-order bench needs root (network namespaces)')
  const argv = process.argv.slice(2)
  let n = 10000
  let rounds = 3
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? ''
    if (a === '--rounds') rounds = Number(argv[++i])
    else n = Number(a)
  }
  const state = syntheticState(n, ENDPOINTS)
  const ferry = renderFull(state, RENDER, new Set(), fullSyncExtras(jumps('IPv4'))).payload
  const parts = splitNat(ferry)
  const payloads = new Map<Order, string>(ORDERS.map(o => [o, o === 'ferry' ? ferry : reorder(parts, o)]))
  for (const p of payloads.values()) if (p.length !== ferry.length) throw new Error('a reordered payload lost lines')
  const sfx = randomBytes(3).toString('hex')
  const ms = new Map<string, number[]>()
  const ratios = new Map<string, number[]>()
  for (let r = 0; r < rounds; r++) {
    for (const test of [true, false]) {
      const got = new Map<Order, number>()
      // Rotate the order of the orders, so none always runs first on a cold cache.
      for (let k = 0; k < ORDERS.length; k++) {
        const o = ORDERS[(k + r) % ORDERS.length] as Order
        got.set(o, await timed(`fy-ro-${sfx}`, payloads.get(o) ?? '', test))
      }
      for (const o of ORDERS) {
        const key = `${o}/${test ? 'parse' : 'restore'}`
        const v = got.get(o) ?? NaN
        ms.set(key, [...(ms.get(key) ?? []), v])
        ratios.set(key, [...(ratios.get(key) ?? []), v / (got.get('ferry') ?? NaN)])
      }
    }
    console.error(`# round ${r} done`)
  }
  const lines = ferry.split('\n').length
  console.log(`restore order bench: ${n} services x ${ENDPOINTS} endpoints, ${lines} lines; iptables-legacy-restore --noflush --counters into a fresh netns, ${rounds} rounds, medians`)
  console.log('| order | parse only (--test) ms | x ferry\'s order | whole restore ms | x ferry\'s order |')
  console.log('|---|---|---|---|---|')
  for (const o of ORDERS) {
    const cell = (kind: string): string => `${median(ms.get(`${o}/${kind}`) ?? []).toFixed(0)} | ${median(ratios.get(`${o}/${kind}`) ?? []).toFixed(2)}`
    console.log(`| ${o} | ${cell('parse')} | ${cell('restore')} |`)
  }
}

main().catch(e => { console.error(e); process.exitCode = 1 })
