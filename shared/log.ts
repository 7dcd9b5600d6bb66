// One line per event: `<iso time> <level> <thread>: <message> key=value ...`.
// Used by the main thread and by every worker (worker stdout is piped to the
// main thread's stdout by Node, so lines from all threads share one stream).

export const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

function format(value: string | number | boolean): string {
  if (typeof value !== 'string') return String(value);
  // Quote only when needed so a line stays one line and splits on spaces.
  return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
}

export function createLogger(name: string, level: LogLevel): Logger {
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[lvl] < min) return;
    let line = `${new Date().toISOString()} ${lvl} ${name}: ${msg.replace(/\n/g, ' ')}`;
    if (fields !== undefined) {
      for (const key in fields) {
        const v = fields[key];
        if (v !== undefined && v !== null) line += ` ${key}=${format(v)}`;
      }
    }
    process.stdout.write(line + '\n');
  };
  return {
    level,
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
