// The running kernel's version, for behaviour that changed between releases.
import { release } from 'node:os'

/** "5.10.0-28-cloud-amd64" → [5, 10]; [0, 0] when unreadable. */
export function kernelVersion (text: string = release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(text)
  return m === null ? [0, 0] : [Number(m[1]), Number(m[2])]
}

/** Whether `text` (default: this kernel) is at least major.minor. */
export function kernelAtLeast (major: number, minor: number, text?: string): boolean {
  const [a, b] = kernelVersion(text)
  return a > major || (a === major && b >= minor)
}
