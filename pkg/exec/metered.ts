// A streamed stdin payload that measures itself while the process pulls it: how long producing the
// pieces took (the render, interleaved with the child's parsing) and how many characters went out, and
// the generator's return value once it is drained. Both proxy backends feed their restore this way.
export class MeteredPieces<R> implements Iterable<string> {
  /** Time spent inside the producer, in the clock's unit. */
  produceMs = 0
  chars = 0
  /** The producer's return value; undefined until the consumer read every piece. */
  result: R | undefined

  constructor (private readonly source: Iterator<string, R>, private readonly now: () => number = () => performance.now()) {}

  * [Symbol.iterator] (): Generator<string, void, undefined> {
    for (;;) {
      const s = this.now()
      const next = this.source.next()
      this.produceMs += this.now() - s
      if (next.done === true) { this.result = next.value; return }
      this.chars += next.value.length
      yield next.value
    }
  }
}
