// `ferryctl get svc -o name | head -1`: the reader closes the pipe and the next write fails with EPIPE.
// Node ignores SIGPIPE, so that surfaced as an unhandled 'error' event: a stack trace on stderr. kubectl,
// like any Go program, is killed by SIGPIPE there; ferryctl ends as quietly, with the status a shell
// shows for that death, so `set -o pipefail` scripts see the same as with kubectl.

/** 128 + SIGPIPE (13). */
export const BROKEN_PIPE_EXIT = 141

/** Ends the process with BROKEN_PIPE_EXIT when a write to any of `streams` meets a closed pipe. */
export function exitOnBrokenPipe (streams: readonly NodeJS.WritableStream[], exit: (code: number) => void = code => process.exit(code)): void {
  for (const s of streams) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e // anything else stays an uncaught error, as without this listener
      exit(BROKEN_PIPE_EXIT)
    })
  }
}
