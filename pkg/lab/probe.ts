// HTTP probes from inside a network namespace, with fresh connections, telling a REJECT from a DROP.
import type { Exec } from '../exec/exec.js'

export type GetResult = { ok: true, body: string } | { ok: false, error: string, ms: number }

/** One GET with curl inside `ns`: the body, or 'refused', 'timeout' or curl's exit code and message. */
export async function httpGet (exec: Exec, ns: string, url: string, timeoutS = 2): Promise<GetResult> {
  const t0 = Date.now()
  const r = await exec(['ip', 'netns', 'exec', ns, 'curl', '-gsS', '--max-time', String(timeoutS), url])
  if (r.code === 0) return { ok: true, body: r.stdout.trim() }
  const error = r.code === 7 ? 'refused' : r.code === 28 ? 'timeout' : `curl exit ${r.code}: ${r.stderr.trim()}`
  return { ok: false, error, ms: Date.now() - t0 }
}

/** `n` GETs in a row; how many answers each pod gave (keyed by the body's first word, or `error:<why>`). */
export async function spread (get: () => Promise<GetResult>, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const r = await get()
    const key = r.ok ? (r.body.split(' ')[0] ?? '') : `error:${r.error}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return counts
}
