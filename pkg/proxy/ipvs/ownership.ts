// Which virtual servers ferry created, kept across restarts so a new ferryd deletes its own leftovers
// and never an operator's. The file lives on /run (tmpfs): a reboot empties the IPVS table and the file
// together.
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Lane } from '../../async/lane.js'
import { FerryError, errorMessage } from '../../errors/errors.js'
import type { IPFamily } from './types.js'

export const DEFAULT_OWNERSHIP_PATH = '/run/ferry/ipvs-owned.json'

/**
 * Writes to one file run one after another, whichever store instance asks, so two families' views never
 * interleave their read-merge-write (one ferryd per node: no lock across processes).
 */
const lanes = new Map<string, Lane>()

/** Keys are vsKey()s ("TCP/10.96.0.1:443", "UDP/[fd00::a]:53"). */
export interface OwnershipStore {
  /** The saved set; empty when nothing was saved yet. */
  load: () => Promise<Set<string>>
  save: (keys: ReadonlySet<string>) => Promise<void>
}

/** The family a vsKey belongs to: IPv6 addresses are bracketed. */
export function keyFamily (key: string): IPFamily {
  return key.includes('[') ? 'IPv6' : 'IPv4'
}

/** For tests and for a ferryd that must not write files: forgets everything with the process. */
export class MemoryOwnershipStore implements OwnershipStore {
  keys = new Set<string>()
  saves = 0

  constructor (initial: Iterable<string> = []) {
    for (const k of initial) this.keys.add(k)
  }

  async load (): Promise<Set<string>> {
    return new Set(this.keys)
  }

  async save (keys: ReadonlySet<string>): Promise<void> {
    this.saves++
    this.keys = new Set(keys)
  }
}

/**
 * A JSON list of keys in one file, replaced atomically (a temporary file in the same directory, then
 * rename), so a crash leaves the old list or the new one, never half of either. The directory is made
 * 0700. forFamily() gives each family's reconciler a view that saves its own keys and keeps the other's.
 */
export class FileOwnershipStore implements OwnershipStore {
  readonly path: string

  constructor (path: string = DEFAULT_OWNERSHIP_PATH) {
    this.path = resolve(path)
  }

  async load (): Promise<Set<string>> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set()
      throw new FerryError('FERRY_ERR_SOURCE', `reading the IPVS ownership file ${this.path}: ${errorMessage(e)}`, { path: this.path }, { cause: e })
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (e) {
      throw new FerryError('FERRY_ERR_PARSE', `the IPVS ownership file ${this.path} is not JSON: ${errorMessage(e)}`, { path: this.path }, { cause: e })
    }
    if (!Array.isArray(parsed) || !parsed.every((k): k is string => typeof k === 'string')) {
      throw new FerryError('FERRY_ERR_PARSE', `the IPVS ownership file ${this.path} is not a list of strings`, { path: this.path })
    }
    return new Set(parsed)
  }

  async save (keys: ReadonlySet<string>): Promise<void> {
    await this.serial(async () => { await this.write(keys) })
  }

  /** A view holding one family's keys; saving it keeps the other family's keys in the file. */
  forFamily (family: IPFamily): OwnershipStore {
    return {
      load: async () => new Set([...await this.load()].filter(k => keyFamily(k) === family)),
      save: async keys => {
        await this.serial(async () => {
          let others: string[] = []
          try {
            others = [...await this.load()].filter(k => keyFamily(k) !== family)
          } catch {
            // An unreadable file is replaced: this family's keys are what we know now.
          }
          await this.write(new Set([...others, ...keys]))
        })
      },
    }
  }

  private async serial (fn: () => Promise<void>): Promise<void> {
    let lane = lanes.get(this.path)
    if (lane === undefined) { lane = new Lane(); lanes.set(this.path, lane) }
    await lane.run(fn)
  }

  private async write (keys: ReadonlySet<string>): Promise<void> {
    const dir = dirname(this.path)
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 })
      const fh = await open(tmp, 'wx', 0o600)
      try {
        await fh.writeFile(JSON.stringify([...keys].sort()) + '\n')
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, this.path)
    } catch (e) {
      await unlink(tmp).catch(() => {})
      throw new FerryError('FERRY_ERR_APPLY', `writing the IPVS ownership file ${this.path}: ${errorMessage(e)}`, { path: this.path }, { cause: e })
    }
  }
}
