// Lane: tasks run one at a time in call order, and a failed task neither stops the lane nor leaks into the next.
import t from 'tap'
import { Lane } from '../../pkg/async/lane.js'

t.test('one at a time, in order, failures contained', async t => {
  const lane = new Lane()
  const log: string[] = []
  let running = 0
  const task = (name: string, ms: number, fail = false) => async (): Promise<string> => {
    running++
    t.equal(running, 1, `${name} runs alone`)
    log.push(`start ${name}`)
    await new Promise(resolve => setTimeout(resolve, ms))
    log.push(`end ${name}`)
    running--
    if (fail) throw new Error(`${name} failed`)
    return name
  }
  const a = lane.run(task('a', 20))
  const b = lane.run(task('b', 1, true))
  const c = lane.run(task('c', 5))
  t.equal(await a, 'a')
  await t.rejects(b, /b failed/)
  t.equal(await c, 'c', 'the task after a failure still runs')
  t.same(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
})
