// A TCP connection's read deadline, as miekg/dns sets one before each message it reads (DNS.md §5.2): the
// whole message must be in by then, so bytes trickling in do not move it. Node's socket timeout cannot do
// this: any activity restarts it. One timer per connection, re-aimed only when it fires, so moving the
// deadline on every query costs a clock read, not a timer.

export class ReadDeadline {
  /** When the wait ends, on the `now` clock; 0 while nothing is awaited. */
  private due = 0
  private timer: NodeJS.Timeout | undefined
  private timerAt = 0
  private closed = false

  constructor (private readonly expire: () => void, private readonly now: () => number = () => performance.now()) {}

  /** The next message must arrive whole within `ms` from now. */
  start (ms: number): void {
    // A reply finished after the connection closed must not leave a timer holding the process.
    if (this.closed) return
    this.due = this.now() + ms
    // A timer that fires no later than the new deadline re-aims itself then.
    if (this.timer !== undefined && this.timerAt <= this.due) return
    clearTimeout(this.timer)
    this.schedule(ms)
  }

  /** No message is awaited (replies are owed, the client ended its side, or our writes are backed up). */
  stop (): void { this.due = 0 }

  /** The connection is gone: drop the timer, for good. */
  close (): void {
    this.closed = true
    this.due = 0
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule (ms: number): void {
    this.timerAt = this.now() + ms
    this.timer = setTimeout(this.fire, ms)
  }

  private readonly fire = (): void => {
    this.timer = undefined
    if (this.due === 0) return
    const left = this.due - this.now()
    if (left > 0) { this.schedule(left); return }
    this.due = 0
    this.expire()
  }
}
