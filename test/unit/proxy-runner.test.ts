import t from 'tap'
import { FakeClock } from '../../pkg/proxy/fake-clock.js'
import { BoundedFrequencyRunner, realClock } from '../../pkg/proxy/runner.js'

const MIN = 1000
const MAX = 60_000

interface Harness {
  clock: FakeClock
  runner: BoundedFrequencyRunner
  /** Clock time at the start of each run. */
  starts: number[]
  errors: unknown[]
  /** Highest number of runs in flight at once. */
  maxActive: () => number
}

/** A runner whose fn records its start time and, if `hold` is set, waits until released. */
function harness (o: { fn?: (clock: FakeClock) => Promise<void>, min?: number, max?: number, burst?: number } = {}): Harness {
  const clock = new FakeClock()
  const starts: number[] = []
  const errors: unknown[] = []
  let active = 0
  let maxActive = 0
  const runner = new BoundedFrequencyRunner({
    name: 'test',
    minIntervalMs: o.min ?? MIN,
    maxIntervalMs: o.max ?? MAX,
    ...(o.burst !== undefined ? { burst: o.burst } : {}),
    clock,
    onError: e => { errors.push(e) },
    fn: async () => {
      starts.push(clock.now())
      active++
      maxActive = Math.max(maxActive, active)
      try { await o.fn?.(clock) } finally { active-- }
    },
  })
  return { clock, runner, starts, errors, maxActive: () => maxActive }
}

/** A promise the test resolves by hand. */
function deferred (): { promise: Promise<void>, resolve: () => void, reject: (e: unknown) => void } {
  let resolve = (): void => {}
  let reject = (_e: unknown): void => {}
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

/** fn that takes `ms` of (fake) time. */
const takes = (ms: number) => async (clock: FakeClock): Promise<void> => {
  await new Promise<void>(resolve => clock.setTimeout(resolve, ms))
}

t.test('periodic run every maxInterval without requests', async t => {
  const h = harness()
  h.runner.start()
  await h.clock.advance(MAX - 1)
  t.same(h.starts, [])
  await h.clock.advance(1)
  t.same(h.starts, [MAX])
  await h.clock.advance(MAX)
  t.same(h.starts, [MAX, 2 * MAX])
  await h.runner.stop()
})

t.test('nothing runs before start(); a request made before start is served at once after it', async t => {
  const h = harness()
  h.runner.run()
  await h.clock.advance(10 * MAX)
  t.same(h.starts, [])
  h.runner.start()
  await h.clock.flush()
  t.same(h.starts, [10 * MAX])
  await h.runner.stop()
})

t.test('the first request runs immediately; later ones wait minInterval after the previous end', async t => {
  const h = harness({ fn: takes(200) })
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  t.same(h.starts, [0], 'first run at once')
  await h.clock.advance(300) // run ended at 200
  h.runner.run()
  await h.clock.advance(899)
  t.same(h.starts, [0], 'not before 200 + minInterval')
  await h.clock.advance(1)
  t.same(h.starts, [0, 1200])
  // A request long after the last run is served at once.
  await h.clock.advance(5000)
  h.runner.run()
  await h.clock.flush()
  t.same(h.starts, [0, 1200, 6200])
  t.equal(h.runner.runCount, 2, 'third run still in flight')
  await h.clock.advance(200)
  t.equal(h.runner.runCount, 3)
  await h.runner.stop()
})

t.test('requests coalesce into one run', async t => {
  const h = harness()
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  for (let i = 0; i < 100; i++) h.runner.run()
  await h.clock.advance(MIN)
  t.same(h.starts, [0, MIN], '100 requests, one run')
  await h.clock.advance(MIN * 10)
  t.same(h.starts, [0, MIN], 'and no more until asked or maxInterval')
  await h.runner.stop()
})

t.test('a request during a run schedules exactly one more run after it; never two at once', async t => {
  const gate = deferred()
  let calls = 0
  const h = harness({ fn: async () => { if (calls++ === 0) await gate.promise } })
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  t.equal(h.runner.running, true)
  h.runner.run()
  h.runner.run()
  await h.clock.advance(5 * MIN)
  t.same(h.starts, [0], 'blocked run still in flight: no second run')
  gate.resolve()
  await h.clock.flush()
  t.equal(h.runner.running, false)
  t.same(h.starts, [0], 'minInterval counts from the end of the run (t=5000)')
  await h.clock.advance(MIN)
  t.same(h.starts, [0, 5 * MIN + MIN])
  await h.clock.advance(10 * MIN)
  t.same(h.starts.length, 2, 'the two mid-run requests coalesced into one')
  t.equal(h.maxActive(), 1)
  await h.runner.stop()
})

t.test('run() called from inside fn gets one more run', async t => {
  let self: BoundedFrequencyRunner | undefined
  let n = 0
  const h = harness({ fn: async () => { if (n++ < 2) self?.run() } })
  self = h.runner
  h.runner.start()
  h.runner.run()
  await h.clock.advance(5 * MIN)
  t.same(h.starts, [0, MIN, 2 * MIN])
  await h.runner.stop()
})

t.test('maxInterval counts from the end of the last run', async t => {
  const h = harness()
  h.runner.start()
  await h.clock.advance(30_000)
  h.runner.run()
  await h.clock.flush()
  await h.clock.advance(MAX - 1)
  t.same(h.starts, [30_000])
  await h.clock.advance(1)
  t.same(h.starts, [30_000, 30_000 + MAX])
  await h.runner.stop()
})

t.test('a stream of requested runs arms one timer each, not a new maxInterval timer after every run', async t => {
  const h = harness({ min: 0 })
  let armed = 0
  const setTimeout = h.clock.setTimeout.bind(h.clock)
  h.clock.setTimeout = (fn, ms) => { armed++; return setTimeout(fn, ms) }
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  const before = armed
  for (let i = 1; i <= 10; i++) {
    await h.clock.advance(1000)
    h.runner.run()
    await h.clock.flush()
  }
  t.equal(h.starts.length, 11)
  t.equal(armed - before, 10, 'one timer per requested run; the periodic one stayed armed')
  // It fired early once the runs had moved its due time: it looked again and ran only MAX after the last end.
  await h.clock.advance(MAX - 1)
  t.equal(h.starts.length, 11)
  await h.clock.advance(1)
  t.same(h.starts.slice(-2), [10_000, 10_000 + MAX])
  await h.runner.stop()
})

t.test('retryAfter brings the next run forward, not before minInterval', async t => {
  let fail = true
  let self: BoundedFrequencyRunner | undefined
  const h = harness({
    fn: async () => {
      if (fail) { self?.retryAfter(30_000); throw new Error('restore failed') }
    },
  })
  self = h.runner
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  t.equal(h.errors.length, 1)
  fail = false
  await h.clock.advance(29_999)
  t.same(h.starts, [0])
  await h.clock.advance(1)
  t.same(h.starts, [0, 30_000], 'retried after 30 s, well before maxInterval')
  await h.clock.advance(MAX - 1)
  t.same(h.starts, [0, 30_000], 'retry consumed: back to the periodic schedule')
  await h.clock.advance(1)
  t.same(h.starts, [0, 30_000, 90_000])

  // A retry sooner than minInterval waits for minInterval.
  h.runner.retryAfter(10)
  await h.clock.advance(MIN - 1)
  t.same(h.starts.length, 3)
  await h.clock.advance(1)
  t.same(h.starts.at(-1), 91_000, 'retry clamped to minInterval')
  // A later retry does not postpone an earlier one, and a run in between satisfies both.
  const base = h.clock.now()
  h.runner.retryAfter(5000)
  h.runner.retryAfter(20_000)
  await h.clock.advance(5000)
  t.same(h.starts.at(-1), base + 5000)
  await h.clock.advance(20_000)
  t.same(h.starts.at(-1), base + 5000, 'the 20 s retry was satisfied by the 5 s run')
  await h.runner.stop()
})

t.test('errors do not stop the runner', async t => {
  let n = 0
  const h = harness({ fn: async () => { n++; throw new Error(`boom ${n}`) } })
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  await h.clock.advance(MAX)
  await h.clock.advance(MAX)
  t.equal(h.starts.length, 3)
  t.same(h.errors.map(e => (e as Error).message), ['boom 1', 'boom 2', 'boom 3'])
  h.runner.run()
  await h.clock.advance(MIN)
  t.equal(h.starts.length, 4, 'requests still served')
  t.equal(h.runner.runCount, 4)
  await h.runner.stop()
})

t.test('a synchronous throw and a throwing onError are survived too', async t => {
  const clock = new FakeClock()
  let n = 0
  const runner = new BoundedFrequencyRunner({
    name: 'sync-throw',
    minIntervalMs: 0,
    maxIntervalMs: 100,
    clock,
    fn: () => { n++; throw new Error('sync') },
    onError: () => { throw new Error('logger broke') },
  })
  runner.start()
  runner.run()
  await clock.flush()
  await clock.advance(100)
  t.equal(n, 2)
  t.equal(runner.running, false)
  await runner.stop()
})

t.test('stop() waits for the run in flight and ends scheduling', async t => {
  const gate = deferred()
  let finished = false
  const h = harness({ fn: async () => { await gate.promise; finished = true } })
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  t.equal(h.runner.running, true)
  h.runner.run()
  let stopped = false
  const stopping = h.runner.stop().then(() => { stopped = true })
  await h.clock.flush()
  t.equal(stopped, false, 'still waiting for the run')
  gate.resolve()
  await stopping
  t.equal(finished, true, 'the in-flight run completed before stop() resolved')
  t.equal(h.clock.pendingTimers(), 0, 'no timer left behind')
  h.runner.run()
  h.runner.retryAfter(1)
  h.runner.start()
  await h.clock.advance(10 * MAX)
  t.same(h.starts, [0], 'nothing runs after stop, not even the request queued mid-run')
})

t.test('stop() with nothing in flight resolves at once', async t => {
  const h = harness()
  h.runner.start()
  await h.runner.stop()
  t.equal(h.clock.pendingTimers(), 0)
})

t.test('minInterval 0 runs each (coalesced) request as soon as the previous run ends', async t => {
  const h = harness({ min: 0, max: 1000, fn: takes(10) })
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  h.runner.run()
  await h.clock.advance(10)
  t.same(h.starts, [0, 10])
  await h.clock.advance(10)
  await h.runner.stop()
})

t.test('burst 2: a request right after an isolated run runs at once; a stream still gets one run per minInterval', async t => {
  const h = harness({ fn: takes(200), burst: 2 })
  h.runner.start()
  h.runner.run()
  await h.clock.flush()
  await h.clock.advance(300) // first run ended at 200
  h.runner.run()
  await h.clock.flush()
  t.same(h.starts, [0, 300], 'the second request is not held back')
  await h.clock.advance(300) // second run ended at 500, with 0.1 token left
  h.runner.run()
  await h.clock.advance(799)
  t.same(h.starts, [0, 300], 'the third waits for a token')
  await h.clock.advance(1)
  t.same(h.starts, [0, 300, 1400], '500 + 0.9 x minInterval')
  // A steady stream: a request every 50 ms for 20 s.
  for (let i = 0; i < 400; i++) { h.runner.run(); await h.clock.advance(50) }
  const stream = h.starts.filter(s => s > 1400)
  t.ok(stream.length <= 20000 / (MIN + 200) + 1, `one run per minInterval + run time under a stream (${stream.length} runs)`)
  for (let i = 1; i < stream.length; i++) t.ok((stream[i] as number) - (stream[i - 1] as number) >= MIN, 'runs of a stream are minInterval apart')
  // After a quiet spell of two intervals, two runs may go back to back again.
  await h.clock.advance(3000)
  const before = h.starts.length
  h.runner.run()
  await h.clock.flush()
  await h.clock.advance(250)
  h.runner.run()
  await h.clock.flush()
  t.equal(h.starts.length - before, 2, 'the burst is back')
  await h.clock.advance(200)
  await h.runner.stop()
  t.equal(h.maxActive(), 1, 'never two at once')
})

t.test('constructor validates intervals', async t => {
  const fn = async (): Promise<void> => {}
  t.throws(() => new BoundedFrequencyRunner({ name: 'x', fn, minIntervalMs: 2, maxIntervalMs: 1 }), RangeError)
  t.throws(() => new BoundedFrequencyRunner({ name: 'x', fn, minIntervalMs: -1, maxIntervalMs: 1 }), RangeError)
  t.throws(() => new BoundedFrequencyRunner({ name: 'x', fn, minIntervalMs: 0, maxIntervalMs: 0 }), RangeError)
  t.throws(() => new BoundedFrequencyRunner({ name: 'x', fn, minIntervalMs: Number.NaN, maxIntervalMs: 1 }), RangeError)
  t.ok(new BoundedFrequencyRunner({ name: 'x', fn, minIntervalMs: 0, maxIntervalMs: 1 }))
  t.throws(() => new BoundedFrequencyRunner({ name: 'x', fn, minIntervalMs: 0, maxIntervalMs: 1, burst: 0 }), RangeError)
  t.throws(() => new BoundedFrequencyRunner({ name: 'x', fn, minIntervalMs: 0, maxIntervalMs: 1, burst: 1.5 }), RangeError)
})

t.test('FakeClock', async t => {
  const c = new FakeClock(100)
  const log: string[] = []
  c.setTimeout(() => { log.push(`b@${c.now()}`) }, 20)
  c.setTimeout(() => { log.push(`a@${c.now()}`) }, 10)
  c.setTimeout(() => { log.push(`a2@${c.now()}`) }, 10)
  const h = c.setTimeout(() => { log.push('cancelled') }, 15)
  c.clearTimeout(h)
  t.equal(c.pendingTimers(), 3)
  t.equal(c.nextTimerAt(), 110)
  await c.advance(15)
  t.same(log, ['a@110', 'a2@110'], 'due timers fire in order, ties in creation order, time reads as due time')
  t.equal(c.now(), 115)
  // A timer set from a promise continuation of a fired timer still fires within the same advance if due.
  c.setTimeout(() => { void Promise.resolve().then(() => c.setTimeout(() => { log.push(`chained@${c.now()}`) }, 2)) }, 1)
  await c.advance(10)
  t.same(log, ['a@110', 'a2@110', 'chained@118', 'b@120'])
  t.equal(c.now(), 125)
  t.equal(c.nextTimerAt(), undefined)
})

t.test('realClock', async t => {
  const before = Date.now()
  t.ok(realClock.now() >= before)
  let fired = false
  const h = realClock.setTimeout(() => { fired = true }, 1)
  realClock.clearTimeout(h)
  // Wait on a later, uncleared timer of the same clock: by then the cleared one would have fired.
  let control = false
  await new Promise<void>(resolve => realClock.setTimeout(() => { control = true; resolve() }, 30))
  t.equal(control, true, 'an uncleared timer fires')
  t.equal(fired, false, 'cleared timers never fire')
})

t.test('realClock: a callback due now runs at once (setImmediate) and can be cancelled like a timer', async t => {
  const ran: string[] = []
  const cancelled = realClock.setTimeout(() => { ran.push('cancelled') }, 0)
  realClock.clearTimeout(cancelled)
  realClock.setTimeout(() => { ran.push('later') }, 5)
  realClock.setTimeout(() => { ran.push('due') }, 0)
  const timer = realClock.setTimeout(() => { ran.push('cancelled timer') }, 1)
  realClock.clearTimeout(timer)
  await new Promise(resolve => setTimeout(resolve, 30))
  t.same(ran, ['due', 'later'])
})
