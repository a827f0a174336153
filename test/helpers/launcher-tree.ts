// A throwaway tree for the sh launchers' tests: a copy of the repo's bin/<name>, and an empty
// dist/<sub> when asked, removed at the test's teardown.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export interface LauncherTree {
  readonly root: string
  /** The copied launcher, at root/bin/<name>. */
  readonly launcher: string
  /** root/dist/<sub>, made empty; root/dist when no sub-folder was asked for (not made). */
  readonly dist: string
}

export function launcherTree (t: { teardown: (fn: () => void) => void }, name: string, prefix: string, distSub?: string): LauncherTree {
  const root = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }) })
  mkdirSync(join(root, 'bin'))
  const dist = distSub === undefined ? join(root, 'dist') : join(root, 'dist', distSub)
  if (distSub !== undefined) mkdirSync(dist, { recursive: true })
  const launcher = join(root, 'bin', name)
  copyFileSync(resolve(import.meta.dirname, '../../bin', name), launcher)
  return { root, launcher, dist }
}
