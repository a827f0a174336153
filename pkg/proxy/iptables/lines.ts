// An append-only list of text lines that joins every few thousand lines into one flat chunk. Rendering
// a large ruleset makes about a million short-lived strings; joining them in small batches lets them die
// young, which on this project's hosts is 2-3x faster than keeping all of them for one final join.
const CHUNK = 4096

export class Lines {
  private readonly chunks: string[] = []
  private pending: string[] = []
  /** Lines pushed so far. */
  count = 0

  push (line: string): void {
    this.pending.push(line)
    this.count++
    if (this.pending.length === CHUNK) {
      this.chunks.push(this.pending.join('\n'))
      this.pending = []
    }
  }

  /** All lines joined with '\n' (no trailing newline); '' when empty. */
  join (): string {
    if (this.pending.length > 0) {
      this.chunks.push(this.pending.join('\n'))
      this.pending = []
    }
    return this.chunks.join('\n')
  }
}
