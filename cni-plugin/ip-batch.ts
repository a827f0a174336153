// `ip -batch -` input built from argument lists, so a name is always one word whatever it holds. Linux
// allows any byte in an interface name but NUL, "/", ":" and white space; iproute2's batch reader
// (lib/utils.c getcmdline, makeargs) splits a line on " \t\r\n", reads a word that starts with ' or " up to
// the same quote (no escapes), joins a line ending in a backslash to the next, and cuts every line at its
// first "#", inside quotes too. So a word is quoted when it must be, and a word no spelling can carry (a
// "#", a newline, a NUL, or both quote kinds where quotes are needed) makes the whole batch run as one `ip`
// per command instead, with the same stop at the first failure.
// Keywords are the callers' part: a name always follows "dev" or "name", never stands alone, or ip reads
// "help" (or "h", "up", "mtu"...) as the keyword.

/** One ip command without the leading "ip": ['link', 'set', 'dev', name, 'up']. */
export type IpCommand = readonly string[]

/** Bytes the batch reader never gives back inside a word, quoted or not. */
const NEVER = /[#\n\0]/

/** The word spelled for the batch reader, or null when no spelling reads back as it. */
export function batchWord (word: string): string | null {
  if (NEVER.test(word)) return null
  // Plain unless it holds a separator, starts with a quote, or ends in a backslash (a continuation when last).
  if (word !== '' && !/[ \t\r]/.test(word) && !/^['"]/.test(word) && !word.endsWith('\\')) return word
  if (!word.includes('"')) return `"${word}"`
  if (!word.includes("'")) return `'${word}'`
  return null
}

/** The batch's text, one line per command; null when a word cannot be carried (run them one by one). */
export function renderBatch (commands: readonly IpCommand[]): string | null {
  const lines: string[] = []
  for (const cmd of commands) {
    const words: string[] = []
    for (const w of cmd) {
      const s = batchWord(w)
      if (s === null) return null
      words.push(s)
    }
    lines.push(words.join(' '))
  }
  return lines.join('\n') + '\n'
}

/** Where a batch runs: argv of one `ip … -batch -`, and argv of one command alone (the fallback). */
export interface IpTarget {
  readonly batch: readonly string[]
  readonly single: (cmd: IpCommand) => string[]
}

/** ip in this process's netns. */
export const HOST_IP: IpTarget = { batch: ['ip', '-batch', '-'], single: cmd => ['ip', ...cmd] }
