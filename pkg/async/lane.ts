// One task at a time, in call order: each starts once the one before it settled, whatever its outcome.
// Backends use it so syncs and cleanups never interleave their kernel I/O.
export class Lane {
  private tail: Promise<unknown> = Promise.resolve()

  async run<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn)
    this.tail = run.catch(() => {})
    return await run
  }
}
