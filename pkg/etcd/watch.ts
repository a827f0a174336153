// One raw etcd Watch stream over a key prefix, from a given revision, settled exactly once: 'compacted'
// when that revision is gone (the caller lists again), 'stopped' after stop(), a rejection when etcd
// cancels the watch or the stream fails or ends. Whatever ends it, the stream is cancelled.
//
// Why not etcd3's Watcher: it resumes from the last *header* revision (not the last event delivered),
// turns compaction into a generic "error" event, and keeps reconnect timers alive after cancel.
import type { IDuplexStream, IEvent, IWatchRequest, IWatchResponse } from 'etcd3'
import { prefixRangeEnd } from './keys.js'

export type WatchEnd = 'compacted' | 'stopped'

/** What opens a Watch stream: an etcd3 client, or the bare client of the source's first list. */
export interface WatchOpener {
  readonly watchClient: { watch: () => Promise<IDuplexStream<IWatchRequest, IWatchResponse>> }
}

export interface PrefixWatchOptions {
  prefix: string
  fromRevision: number
  /** Ask etcd for empty responses now and then, so an idle watcher still learns the revision. */
  progressNotify?: boolean | undefined
  /** etcd accepted the watch (a good moment to reset a backoff). */
  created?: (() => void) | undefined
  /** Every response that does not end the watch, in order; `events` is empty for a progress notification. */
  events: (events: IEvent[], res: IWatchResponse) => void
}

export interface PrefixWatch {
  /** Resolves 'compacted' or 'stopped'; rejects when etcd cancels the watch or the stream errors or ends. */
  readonly done: Promise<WatchEnd>
  /** Ends the watch: `done` resolves 'stopped' (a no-op once it has settled). Safe before the stream exists. */
  stop: () => void
}

/** Opens the stream and watches `prefix` from `fromRevision`. */
export function watchPrefix (client: WatchOpener, o: PrefixWatchOptions): PrefixWatch {
  let stop: (() => void) | undefined
  let stopEarly = false
  const done = (async (): Promise<WatchEnd> => {
    const stream: IDuplexStream<IWatchRequest, IWatchResponse> = await client.watchClient.watch()
    return await new Promise<WatchEnd>((resolve, reject) => {
      let settled = false
      const finish = (fn: () => void): void => {
        if (settled) return
        settled = true
        try { stream.cancel() } catch {}
        fn()
      }
      stop = () => { finish(() => { resolve('stopped') }) }
      if (stopEarly) { stop(); return }
      stream.on('data', (res: IWatchResponse) => {
        if (settled) return
        if (res.compact_revision !== undefined && res.compact_revision !== '0' && res.compact_revision !== '') {
          finish(() => { resolve('compacted') })
          return
        }
        if (res.canceled) {
          finish(() => { reject(new Error(`watch canceled by etcd: ${res.cancel_reason !== '' ? res.cancel_reason : 'no reason given'}`)) })
          return
        }
        if (res.created) o.created?.()
        o.events(res.events, res)
      })
      stream.on('error', (err: Error) => { finish(() => { reject(err) }) })
      stream.on('end', () => { finish(() => { reject(new Error('watch stream ended')) }) })
      stream.write({
        create_request: {
          key: Buffer.from(o.prefix),
          range_end: prefixRangeEnd(o.prefix),
          start_revision: o.fromRevision,
          ...(o.progressNotify === true ? { progress_notify: true } : {}),
        },
      })
    })
  })()
  return {
    done,
    stop: () => { if (stop !== undefined) stop(); else stopEarly = true },
  }
}
