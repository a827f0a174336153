// Setup shared by the e2e tests that run compiled ferry code (dist/) in child processes inside throwaway
// network namespaces (`ip netns exec fy… node <script>`): a netlink socket belongs to its creating
// thread's netns, so the test process never enters one. They need root and a build.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

export const run = promisify(execFile)
/** The stdout of `argv[0] argv[1..]`; rejects on a non-zero exit. */
export const sh = async (...argv: string[]): Promise<string> => (await run(argv[0] ?? '', argv.slice(1))).stdout
export const json = async <T>(...argv: string[]): Promise<T> => JSON.parse(await sh(...argv)) as T

export interface NetnsChildKit {
  /** Absolute path of dist/, passed to the child scripts. */
  readonly dist: string
  /** A fresh temp directory for the child scripts. */
  readonly dir: string
  /** Writes `text` to `<dir>/<name>` and returns its path. */
  script: (name: string, text: string) => string
  /** Removes `dir`; call it last in the test's teardown. */
  cleanup: () => void
}

/**
 * Ends the calling test file unless it runs as root (a skip) with `dist/<built>` present (a failure naming
 * `npm run build`), then makes the temp directory `<tmp>/<dirPrefix>…` for its child scripts.
 */
export function netnsChildKit (built: string, dirPrefix: string): NetnsChildKit {
  if (process.getuid?.() !== 0) {
    t.plan(0, 'needs root')
    process.exit(0)
  }
  const dist = resolve('dist')
  if (!existsSync(join(dist, built))) {
    t.fail(`dist/${built} missing: run \`npm run build\` first`)
    process.exit(1)
  }
  const dir = mkdtempSync(join(tmpdir(), dirPrefix))
  return {
    dist,
    dir,
    script: (name, text) => {
      const path = join(dir, name)
      writeFileSync(path, text)
      return path
    },
    cleanup: () => { rmSync(dir, { recursive: true, force: true }) },
  }
}
