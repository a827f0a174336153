// Build step (after tsc; `npm run build` runs it): ferry-cni and ferryd each as ONE CommonJS file,
// dist/cni-plugin/ferry-cni.cjs and dist/cmd/ferryd.cjs, which bin/ferry-cni and bin/ferryd prefer. Node's
// ESM loader resolves, reads and links modules one by one: ~15-25 ms of CPU for ferry-cni's ~20 (a fresh
// process per CNI call), ~60 ms for the ~200 that ferryd loads before its source starts. One script with
// every module inside costs one read and one compile. Each module is transpiled from its .ts source to
// CommonJS (TypeScript's transpileModule: no type check, tsc has done that) and wrapped in a function that
// runs on its first require, so lazy import()s stay lazy. Only ferry's own relative imports are bundled;
// packages and node: builtins are required as usual, a package marked __esModule with its module.exports as
// the default export, as Node's ESM loader gives it. `import.meta.url` becomes the URL of the module's
// own file in dist/, so createRequire() and worker paths resolve as in the ESM tree.
//
// Then, for ferry-cni only, a V8 start-up snapshot of the same code with every module already run
// (`node --build-snapshot`): ferry-cni.blob, started as `node --snapshot-blob ferry-cni.blob`, skips
// compiling the bundle and loading node:child_process, node:crypto and the rest (~6-11 ms of an ADD here).
// A blob only works with the very node binary that built it, so the build also hard-links that binary as
// ferry-cni.node and names its path in ferry-cni.snapshot: bin/ferry-cni uses the blob only while that path
// is still the same file (`-ef`), and after a node upgrade falls back to the bundle until the next build.
// No hard link possible (another file system): no snapshot. (ferryd's packages are required at start-up,
// which a snapshot of Node 20 cannot hold.)
//
//   node dist/cmd/bundle.js [--out-dir DIST] [--no-snapshot]
import { spawnSync } from 'node:child_process'
import { linkSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CNI_ENTRY = 'cni-plugin/main.ts'
/** What is bundled: the entry, and the bundle's path under dist/ (beside the entry's own .js). */
const TARGETS = [
  { entry: CNI_ENTRY, out: 'cni-plugin/ferry-cni.cjs' },
  { entry: 'cmd/ferryd.ts', out: 'cmd/ferryd.cjs' },
] as const

interface Module { readonly id: string, readonly code: string, readonly deps: Readonly<Record<string, string>> }

/** The module's relative specifiers ('./x.js') mapped to bundle ids ('cni-plugin/x.ts'). */
function relativeDeps (id: string, source: string): Record<string, string> {
  const deps: Record<string, string> = {}
  for (const f of ts.preProcessFile(source, true, true).importedFiles) {
    if (!f.fileName.startsWith('.')) continue
    const target = join(dirname(id), f.fileName).replace(/\.js$/, '.ts')
    deps[f.fileName] = target
  }
  return deps
}

function transpile (id: string, source: string): string {
  const out = ts.transpileModule(source, {
    fileName: id,
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false, removeComments: true },
  })
  const errors = (out.diagnostics ?? []).filter(d => d.category === ts.DiagnosticCategory.Error)
  if (errors.length > 0) throw new Error(`${id}: ${ts.flattenDiagnosticMessageText(errors[0]?.messageText ?? '', '\n')}`)
  return out.outputText
}

/** `import.meta.url` of module `id` from a bundle in dist/`outDir`: the URL of the module's own .js there. */
function metaUrl (id: string, outDir: string): string {
  const rel = relative(outDir, id.replace(/\.ts$/, '.js'))
  return `require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(rel)})).href`
}

/**
 * Every module reachable from the entry through relative imports (type-only ones included: they are never
 * run). `outDir`: the bundle's folder under dist/, which `import.meta.url` is made relative to.
 */
export function collect (root: string, entry: string, outDir = dirname(entry)): Module[] {
  const seen = new Map<string, Module>()
  const visit = (id: string): void => {
    if (seen.has(id)) return
    const source = readFileSync(join(root, id), 'utf8')
    const deps = relativeDeps(id, source)
    seen.set(id, { id, code: transpile(id, source.replaceAll('import.meta.url', metaUrl(id, outDir))), deps })
    for (const d of Object.values(deps)) visit(d)
  }
  visit(entry)
  return [...seen.values()]
}

/**
 * The bundle's text: a module table, a tiny require over it, and the entry run at once; or, for the snapshot
 * builder, every other module run now and the entry run when the snapshot is started.
 */
export function render (modules: readonly Module[], entry: string, snapshot = false): string {
  const parts = ['\'use strict\';', '// Generated by cmd/bundle.ts from ferry\'s sources: do not edit.', 'const defs = {']
  for (const m of modules) {
    parts.push(`${JSON.stringify(m.id)}: [${JSON.stringify(m.deps)}, function (exports, require, module) {\n${m.code}\n}],`)
  }
  parts.push('};', `const cache = {};
function external (spec) {
  const m = require(spec);
  return m !== null && typeof m === 'object' && m.__esModule === true ? { __proto__: m, default: m } : m;
}
function load (id) {
  const hit = cache[id];
  if (hit !== undefined) return hit.exports;
  const [deps, fn] = defs[id];
  const module = cache[id] = { exports: {} };
  fn.call(module.exports, module.exports, (spec) => deps[spec] === undefined ? external(spec) : load(deps[spec]), module);
  return module.exports;
}`)
  const run = `load(${JSON.stringify(entry)});`
  if (!snapshot) parts.push(run)
  else {
    parts.push(`for (const id of Object.keys(defs)) if (id !== ${JSON.stringify(entry)}) load(id);`,
      `require('node:v8').startupSnapshot.setDeserializeMainFunction(() => { ${run} });`)
  }
  return parts.join('\n') + '\n'
}

function writeAtomic (path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text)
  renameSync(`${path}.tmp`, path) // a plugin run meanwhile sees the old file or the new one, never half
}

/** Builds ferry-cni.blob with this node and pins the binary; returns why not, or null when done. */
function buildSnapshot (outDir: string, modules: readonly Module[]): string | null {
  const names = { entry: join(outDir, 'ferry-cni-snapshot.cjs'), blob: join(outDir, 'ferry-cni.blob'), node: join(outDir, 'ferry-cni.node'), stamp: join(outDir, 'ferry-cni.snapshot') }
  // Old stamp first: while the new blob is written, the launcher uses the bundle.
  rmSync(names.stamp, { force: true })
  const node = realpathSync(process.execPath)
  writeFileSync(names.entry, render(modules, CNI_ENTRY, true))
  const r = spawnSync(node, ['--snapshot-blob', `${names.blob}.tmp`, '--build-snapshot', names.entry], { encoding: 'utf8' })
  rmSync(names.entry, { force: true })
  if (r.status !== 0) { rmSync(`${names.blob}.tmp`, { force: true }); return `node --build-snapshot failed (${String(r.status)}): ${r.stderr.trim()}` }
  renameSync(`${names.blob}.tmp`, names.blob)
  rmSync(names.node, { force: true })
  try { linkSync(node, names.node) } catch (e) {
    rmSync(names.blob, { force: true })
    return `cannot hard-link ${node} into ${outDir} (${e instanceof Error ? e.message : String(e)})`
  }
  writeAtomic(names.stamp, `${node}\n`)
  return null
}

function main (): void {
  const argv = process.argv.slice(2)
  const at = argv.indexOf('--out-dir')
  const dist = at >= 0 ? resolve(argv[at + 1] ?? '') : join(ROOT, 'dist')
  for (const { entry, out: file } of TARGETS) {
    const modules = collect(ROOT, entry, dirname(file))
    const text = render(modules, entry)
    const out = join(dist, file)
    writeAtomic(out, text)
    console.error(`${basename(file, '.cjs')} bundle: ${modules.length} modules, ${text.length} bytes -> ${relative(process.cwd(), out)}`)
    if (entry !== CNI_ENTRY || argv.includes('--no-snapshot')) continue
    const outDir = dirname(out)
    const why = buildSnapshot(outDir, modules)
    console.error(why === null ? `ferry-cni snapshot: ${relative(process.cwd(), join(outDir, 'ferry-cni.blob'))}` : `ferry-cni snapshot skipped: ${why}`)
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main()
