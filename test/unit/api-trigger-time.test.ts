// The one parser of endpoints.kubernetes.io/last-change-trigger-time, shared by the proxy and DNS.
import t from 'tap'
import { TRIGGER_TIME_ANNOTATION, lastChangeTriggerTime, parseRFC3339 } from '../../pkg/api/trigger-time.js'

t.test('RFC 3339 as Go reads it; anything else is undefined', async t => {
  const cases: Array<[string, number | undefined]> = [
    ['2026-01-01T00:00:00Z', Date.UTC(2026, 0, 1)],
    ['2026-01-01T00:00:00.123456789Z', Date.UTC(2026, 0, 1, 0, 0, 0, 123)], // what the controller writes
    ['2026-01-01T02:00:00.5+02:00', Date.UTC(2026, 0, 1, 0, 0, 0, 500)],
    ['2024-02-29T23:59:59Z', Date.UTC(2024, 1, 29, 23, 59, 59)],
    ['2026-01-01', undefined],
    ['2026-01-01T00:00:00', undefined], // no zone: Date.parse would read local time
    ['Thu, 01 Jan 2026 00:00:00 GMT', undefined],
    ['2026-01-01t00:00:00z', undefined],
    ['2026-02-29T00:00:00Z', undefined], // Date.parse rolls it over to March 1
    ['2026-13-01T00:00:00Z', undefined],
    ['2026-01-01T24:00:00Z', undefined],
    ['2026-01-01T00:00:60Z', undefined],
    ['2026-01-01T00:00:00+24:00', undefined],
    ['2026-01-01T00:00:00.1234567890Z', undefined],
    ['yesterday', undefined],
    ['', undefined],
  ]
  for (const [s, want] of cases) t.equal(parseRFC3339(s), want, JSON.stringify(s))
})

t.test('read from the annotation; absent is undefined', async t => {
  t.equal(lastChangeTriggerTime({ name: 'a', annotations: { [TRIGGER_TIME_ANNOTATION]: '1970-01-01T00:00:01Z' } }), 1000)
  t.equal(lastChangeTriggerTime({ name: 'a', annotations: { other: '1970-01-01T00:00:01Z' } }), undefined)
  t.equal(lastChangeTriggerTime({ name: 'a' }), undefined)
})
