// HTTP/1.1 over a raw TCP socket, for what fetch can't do: pipelining several
// requests in one write, malformed requests, and watching the connection close.

import { connect } from 'node:net';

export interface Answer {
  status: number;
  /** Header names lowercased. */
  headers: Record<string, string>;
  body: string;
}

export interface RawResult {
  /** Every answer in arrival order, interim (1xx) ones included. */
  answers: Answer[];
  /** The final (non-1xx) answers. */
  finals: Answer[];
  /** The server closed the connection (FIN or reset). */
  closed: boolean;
  /** A socket error (ECONNRESET, EPIPE), if any. */
  error: string | null;
  timedOut: boolean;
}

export function get(path: string, headers: Record<string, string> = {}): string {
  return `GET ${path} HTTP/1.1\r\nHost: test\r\n${lines(headers)}\r\n`;
}

export function post(path: string, body: string, headers: Record<string, string> = {}): string {
  return `POST ${path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${lines(headers)}\r\n${body}`;
}

function lines(headers: Record<string, string>): string {
  return Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
}

/** Parses as many complete answers as `buf` holds; returns them and the bytes used. */
function parseAnswers(buf: Buffer): { answers: Answer[]; used: number } {
  const answers: Answer[] = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const [statusLine, ...rest] = buf.toString('latin1', off, end).split('\r\n');
    const status = Number(statusLine!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of rest) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    const length = status < 200 || status === 204 ? 0 : Number(headers['content-length'] ?? 0);
    if (end + 4 + length > buf.length) break;
    answers.push({ status, headers, body: buf.toString('utf8', end + 4, end + 4 + length) });
    off = end + 4 + length;
  }
  return { answers, used: off };
}

export interface PipelineOptions {
  /** Resolve once this many final answers arrived (default: wait for the close or the timeout). */
  finals?: number;
  /** Half-close (FIN) after the last write. */
  halfClose?: boolean;
  /** Write each part this many ms after the previous one (default: all parts in one write). */
  gapMs?: number;
  timeoutMs?: number;
}

/** Writes `parts` on one connection and collects the answers. */
export function pipeline(port: number, parts: (string | Buffer)[], opts: PipelineOptions = {}): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
    const result: RawResult = { answers: [], finals: [], closed: false, error: null, timedOut: false };
    let pending = Buffer.alloc(0);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => {
      result.timedOut = true;
      finish();
    }, opts.timeoutMs ?? 10_000);
    socket.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      const { answers, used } = parseAnswers(pending);
      pending = pending.subarray(used);
      for (const a of answers) {
        result.answers.push(a);
        if (a.status >= 200) result.finals.push(a);
      }
      if (opts.finals !== undefined && result.finals.length >= opts.finals) finish();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      result.error = err.code ?? err.message;
    });
    socket.on('end', () => {
      result.closed = true;
      finish();
    });
    socket.on('close', () => {
      result.closed = true;
      finish();
    });
    socket.on('connect', async () => {
      if (opts.gapMs === undefined) socket.write(Buffer.concat(parts.map((p) => Buffer.from(p))));
      else {
        for (const [i, p] of parts.entries()) {
          if (i > 0) await new Promise((r) => setTimeout(r, opts.gapMs));
          if (!done) socket.write(p);
        }
      }
      if (opts.halfClose === true && !done) socket.end();
    });
  });
}
