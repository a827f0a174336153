// Structured logs: one JSON object per line on stderr (journald keeps them as they are).
export type Level = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug: (msg: string, fields?: Record<string, unknown>) => void
  info: (msg: string, fields?: Record<string, unknown>) => void
  warn: (msg: string, fields?: Record<string, unknown>) => void
  error: (msg: string, fields?: Record<string, unknown>) => void
  /** A named child logger for one component. */
  child: (component: string) => Logger
}

export interface LogOptions {
  level?: Level
  format?: 'json' | 'text'
  write?: (line: string) => void
}

export function createLogger (opts: LogOptions = {}, component?: string): Logger {
  const min = ORDER[opts.level ?? 'info']
  const write = opts.write ?? ((line: string) => { process.stderr.write(line + '\n') })
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < min) return
    const rec: Record<string, unknown> = { time: new Date().toISOString(), level, ...(component !== undefined ? { component } : {}), msg }
    if (fields !== undefined) {
      for (const [k, v] of Object.entries(fields)) rec[k] = v instanceof Error ? serializeError(v) : v
    }
    if (opts.format === 'text') {
      const extra = Object.entries(rec).filter(([k]) => !['time', 'level', 'component', 'msg'].includes(k))
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
      write(`${String(rec.time)} ${level.toUpperCase()} ${component ?? '-'} ${msg}${extra !== '' ? ' ' + extra : ''}`)
    } else write(JSON.stringify(rec))
  }
  return {
    debug: (m, f) => { emit('debug', m, f) },
    info: (m, f) => { emit('info', m, f) },
    warn: (m, f) => { emit('warn', m, f) },
    error: (m, f) => { emit('error', m, f) },
    child: (c) => createLogger(opts, component !== undefined ? `${component}.${c}` : c),
  }
}

function serializeError (e: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { message: e.message }
  const code = (e as { code?: unknown }).code
  if (code !== undefined) out.code = code
  return out
}

/** A logger that drops everything, for tests and library defaults. */
export const silentLogger: Logger = createLogger({ write: () => {} })
