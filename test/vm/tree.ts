// Which of the repository's files go into the VM as /ferry: what the daemon needs to run there
// (package.json, bin/, dist/ and the production dependencies), not the dev tooling. The production
// set comes from package-lock.json (every package not flagged `dev`), which is what
// `npm ls --omit=dev` would list, without starting npm.
import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs'
import { join } from 'node:path'
import type { NewcArchive } from './cpio.js'

interface LockPackage { dev?: boolean }
interface Lockfile { packages?: Record<string, LockPackage> }

/** Top-level entries copied when present; dist/ exists only after `npm run build`. */
const ROOT_ENTRIES = ['package.json', 'bin', 'dist']

/** Files in node_modules that nothing executes: types, source maps, docs. */
const SKIP_IN_MODULES = /\.(d\.[cm]?ts|map|md|markdown)$/i

/** Production package directories (relative to `root`), outermost first. */
export function productionPackages (root: string): string[] {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lockfile
  const out: string[] = []
  for (const [path, pkg] of Object.entries(lock.packages ?? {})) {
    if (path === '' || pkg.dev === true) continue
    out.push(path)
  }
  return out.sort()
}

export interface TreeStats { files: number, bytes: number }

/** Adds the ferry tree at `root` to `archive` under `prefix` (e.g. "ferry"). Follows symlinks. */
export function addTree (archive: NewcArchive, root: string, prefix: string): TreeStats {
  const stats: TreeStats = { files: 0, bytes: 0 }
  for (const entry of ROOT_ENTRIES) {
    const st = statOrNull(join(root, entry))
    if (st !== null) walk(archive, join(root, entry), `${prefix}/${entry}`, st, false, stats)
  }
  // Nested packages (a/node_modules/b) lie inside their parent's directory and come with it.
  const packages = productionPackages(root)
  const top = packages.filter(p => !packages.some(q => q !== p && p.startsWith(q + '/')))
  for (const pkg of top) {
    const st = statOrNull(join(root, pkg))
    if (st !== null) walk(archive, join(root, pkg), `${prefix}/${pkg}`, st, true, stats)
  }
  return stats
}

function walk (archive: NewcArchive, src: string, dst: string, st: Stats, inModules: boolean, stats: TreeStats): void {
  const mtime = Math.floor(st.mtimeMs / 1000)
  if (st.isDirectory()) {
    archive.dir(dst, st.mode, mtime)
    for (const name of readdirSync(src).sort()) {
      if (inModules && skipModuleEntry(src, name)) continue
      const child = statOrNull(join(src, name))
      if (child !== null) walk(archive, join(src, name), `${dst}/${name}`, child, inModules, stats)
    }
  } else if (st.isFile()) {
    if (inModules && SKIP_IN_MODULES.test(src)) return
    const data = readFileSync(src)
    archive.file(dst, data, st.mode, mtime)
    stats.files++
    stats.bytes += data.length
  }
}

/** .bin holds links to dev tools; prebuilds for other platforms never load on linux-x64. */
function skipModuleEntry (dir: string, name: string): boolean {
  if (name === '.bin' || name === '.package-lock.json') return true
  return dir.endsWith('/prebuilds') && name !== 'linux-x64'
}

function statOrNull (path: string): Stats | null {
  try {
    return statSync(path)
  } catch {
    return null // a dangling link, or an optional package that was not installed
  }
}
