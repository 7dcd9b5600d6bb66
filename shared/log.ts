// One line per event on stdout, used by the main thread and by every worker
// (worker stdout is piped to the main thread's stdout by Node, so lines from
// all threads share one stream). Two formats (log.format):
//   text: `<iso time> <level> <thread>: <message> key=value ...`
//   json: `{"time":"<iso>","level":"info","thread":"main","msg":"...","code":"PUSH_ERR_...","fields":{...}}`
//         (code only when the event has one; fields only when there are others)

export const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];
export const FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof FORMATS)[number];

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

function textLine(time: string, lvl: LogLevel, name: string, msg: string, fields?: LogFields): string {
  let line = `${time} ${lvl} ${name}: ${msg.replace(/\n/g, ' ')}`;
  if (fields !== undefined) {
    for (const key in fields) {
      const v = fields[key];
      if (v !== undefined && v !== null) line += ` ${key}=${format(v)}`;
    }
  }
  return line;
}

function jsonLine(time: string, lvl: LogLevel, name: string, msg: string, fields?: LogFields): string {
  let code: string | undefined;
  let rest: Record<string, string | number | boolean> | undefined;
  if (fields !== undefined) {
    for (const key in fields) {
      const v = fields[key];
      if (v === undefined || v === null) continue;
      if (key === 'code' && typeof v === 'string') code = v;
      else (rest ??= {})[key] = v;
    }
  }
  // JSON.stringify escapes newlines: one event, one line.
  return JSON.stringify({ time, level: lvl, thread: name, msg, code, fields: rest });
}

export function createLogger(name: string, level: LogLevel, fmt: LogFormat = 'text'): Logger {
  const min = RANK[level];
  const line = fmt === 'json' ? jsonLine : textLine;
  const write = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[lvl] < min) return;
    process.stdout.write(line(new Date().toISOString(), lvl, name, msg, fields) + '\n');
  };
  return {
    level,
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
