// A minimal writer for the "newc" cpio format, the one the kernel unpacks as an initramfs. The test
// VM gets its per-run files (the ferry tree, the test script) as a second archive appended to the
// cached base image; the kernel unpacks concatenated archives one after the other, so a later entry
// replaces an earlier file of the same name.
//
// Layout per entry: a 110-byte ASCII header ("070701" and 13 eight-digit hex fields), the NUL-ended
// name padded to 4 bytes, then the data padded to 4 bytes. "TRAILER!!!" ends the archive.

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000

export class NewcArchive {
  private readonly chunks: Buffer[] = []
  private readonly dirs = new Set<string>()
  private ino = 1
  private size = 0

  /** A directory, and any missing parents before it (the kernel does not create parents itself). */
  dir (path: string, mode = 0o755, mtime = 0): void {
    const p = clean(path)
    if (p === '' || this.dirs.has(p)) return
    this.parents(p, mtime)
    this.dirs.add(p)
    this.entry(p, S_IFDIR | (mode & 0o7777), Buffer.alloc(0), mtime, 2)
  }

  file (path: string, data: Buffer | string, mode = 0o644, mtime = 0): void {
    const p = clean(path)
    this.parents(p, mtime)
    this.entry(p, S_IFREG | (mode & 0o7777), typeof data === 'string' ? Buffer.from(data) : data, mtime, 1)
  }

  symlink (path: string, target: string, mtime = 0): void {
    const p = clean(path)
    this.parents(p, mtime)
    this.entry(p, S_IFLNK | 0o777, Buffer.from(target), mtime, 1)
  }

  /** The archive so far, closed with its trailer. The writer must not be used afterwards. */
  finish (): Buffer {
    this.entry('TRAILER!!!', 0, Buffer.alloc(0), 0, 1)
    return Buffer.concat(this.chunks, this.size)
  }

  private parents (p: string, mtime: number): void {
    const slash = p.lastIndexOf('/')
    if (slash > 0) this.dir(p.slice(0, slash), 0o755, mtime)
  }

  private entry (name: string, mode: number, data: Buffer, mtime: number, nlink: number): void {
    const fields = [this.ino++, mode, 0, 0, nlink, mtime, data.length, 0, 0, 0, 0, Buffer.byteLength(name) + 1, 0]
    const header = '070701' + fields.map(hex8).join('') + name + '\0'
    this.push(Buffer.from(header))
    this.pad()
    this.push(data)
    this.pad()
  }

  private push (b: Buffer): void {
    if (b.length === 0) return
    this.chunks.push(b)
    this.size += b.length
  }

  private pad (): void {
    const n = (4 - (this.size % 4)) % 4
    if (n > 0) this.push(Buffer.alloc(n))
  }
}

function hex8 (n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`)
  return n.toString(16).padStart(8, '0')
}

/** "a/b/c" from "/a//b/./c/": archive names are relative, with no "." or ".." parts. */
function clean (path: string): string {
  const parts: string[] = []
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') throw new Error(`cpio path must not contain "..": ${path}`)
    parts.push(part)
  }
  return parts.join('/')
}
