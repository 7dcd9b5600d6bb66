// One keep-alive HTTP/1.1 connection of the gateway. Pipelined requests are
// all run as soon as they are read, and their answers are written in request
// order, each as soon as it and every answer before it are ready: an answer
// that comes later holds back the answers behind it, never the work. Answers
// that become ready during one callback (a read of pipelined requests and the
// promises it settles) go out in one write.

import type { Socket } from 'node:net';
import { onceATurn } from '../../../shared/once-a-turn';
import { RequestParser, type BodyBudget, type BodyRefusal, type HttpRefusal, type ParserSink, type RequestHead } from './parser';

/** Requests read and not yet answered: above it the connection stops reading. */
const MAX_PENDING = 1024;
/** Answer bytes the client has not taken yet: above it the connection stops reading. */
const MAX_UNSENT = 1024 * 1024;
/**
 * After a refused body (413, or 503 when bodies hold gateway.max_body_total) the rest of it is read and dropped, so that a client that
 * sends its whole body before reading (Node's fetch) gets the answer instead
 * of a reset; at most this many bytes...
 */
export const DRAIN_MAX_BYTES = 16 * 1024 * 1024;
/** ...and for at most this long after the answer; past either, the connection is closed. */
export const DRAIN_MAX_MS = 5_000;

const STATUS_LINE: Record<number, string> = {
  100: 'HTTP/1.1 100 Continue\r\n', 200: 'HTTP/1.1 200 OK\r\n', 204: 'HTTP/1.1 204 No Content\r\n',
  400: 'HTTP/1.1 400 Bad Request\r\n', 401: 'HTTP/1.1 401 Unauthorized\r\n', 403: 'HTTP/1.1 403 Forbidden\r\n',
  404: 'HTTP/1.1 404 Not Found\r\n', 405: 'HTTP/1.1 405 Method Not Allowed\r\n',
  413: 'HTTP/1.1 413 Payload Too Large\r\n', 415: 'HTTP/1.1 415 Unsupported Media Type\r\n', 429: 'HTTP/1.1 429 Too Many Requests\r\n',
  431: 'HTTP/1.1 431 Request Header Fields Too Large\r\n',
  500: 'HTTP/1.1 500 Internal Server Error\r\n', 503: 'HTTP/1.1 503 Service Unavailable\r\n', 504: 'HTTP/1.1 504 Gateway Timeout\r\n',
};
const CONTINUE = `${STATUS_LINE[100]}\r\n`;
/** Head of a request the parser could not read (its answer only needs to close). */
const UNREAD: RequestHead = { method: '', path: '', query: '', origin: '', contentType: '', authorization: '', forwardedFor: '', close: true, expectContinue: false };

export type Refusal = HttpRefusal | BodyRefusal;

export interface HttpHandler {
  /** A complete request: answer `x` exactly once, now or later. `body` may be a view of the read buffer. */
  request(x: Exchange, body: Buffer): void;
  /** A request the HTTP layer refuses without running it: answer `x` with `code`; the connection closes after it. */
  refuse(x: Exchange, code: Refusal, message: string): void;
  /** A connection over the limit was answered HttpServerOptions.busyAnswer and closed (for the counts). */
  busy(): void;
}

/** One request and, once given, its answer. */
export class Exchange {
  /** The answer's bytes; null while the request runs. */
  text: string | null = null;
  /** 100 Continue, sent as soon as every answer before it is out. */
  interim: string | null = null;
  /** The connection closes after this answer. */
  close: boolean;

  constructor(readonly conn: Connection, readonly head: RequestHead) {
    this.close = head.close;
  }

  /** Answers with `body` of `type` (no body for 204); `headers`: extra lines, each ending in CRLF. */
  answer(status: number, body: string, headers = '', type = 'application/json'): void {
    if (this.text !== null) return;
    this.text = format(status, body, headers, type, this.close, this.head.method === 'HEAD');
    this.conn.pump();
  }
}

// One-entry memo: a busy gateway writes the same answer over and over.
let memoStatus = 0;
let memoBody = '';
let memoHeaders = '';
let memoType = '';
let memoFlags = -1;
let memoText = '';

function format(status: number, body: string, headers: string, type: string, close: boolean, noBody: boolean): string {
  const flags = (close ? 1 : 0) | (noBody ? 2 : 0);
  if (status === memoStatus && flags === memoFlags && body === memoBody && headers === memoHeaders && type === memoType) return memoText;
  const line = STATUS_LINE[status] ?? `HTTP/1.1 ${status} Status\r\n`;
  const framing = status === 204 ? '' : `Content-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  const text = `${line}${headers}${framing}${close ? 'Connection: close\r\n' : ''}\r\n${noBody || status === 204 ? '' : body}`;
  memoStatus = status;
  memoBody = body;
  memoHeaders = headers;
  memoType = type;
  memoFlags = flags;
  memoText = text;
  return text;
}

/**
 * Connections with answers to write, written on the next tick: after the
 * current callback and its microtasks (where push answers resolve), before
 * any setImmediate work (the queue's hand-off to the processors), so that an
 * answer is not held back by it.
 */
const dirty: Connection[] = [];
const flushSoon = onceATurn(() => {
  for (let i = 0; i < dirty.length; i++) dirty[i]!.flush();
  dirty.length = 0;
}, process.nextTick);

export const enum Phase {
  /** Reading requests. */
  Open,
  /** A refused body (413, 503) is answered; the rest of it is being dropped. */
  Draining,
  /** No more requests are read; the connection ends once the answers are written. */
  Closing,
  /** end() was called: waiting for the client to close. */
  Ended,
  Closed,
}

export class Connection implements ParserSink {
  phase = Phase.Open;
  /** When the sweeper closes the connection, unless requests are running (see expired()). */
  deadline: number;
  private readonly parser: RequestParser;
  /** Unanswered requests in order, from `first`. */
  private readonly queue: Exchange[] = [];
  private first = 0;
  /** The request whose body is being read. */
  private current: Exchange | null = null;
  private out = '';
  private inDirty = false;
  private paused = false;
  private dropped = 0;
  /**
   * The gateway's note of the Authorization value it last accepted on this
   * connection, and under which key generation: the same value on the next
   * request needs no second check (it is what this client already showed).
   */
  authorized = '';
  authorizedGen = -1;
  /** Which key that value matched (ApiKeys.match). */
  authorizedKey = -1;

  constructor(
    readonly socket: Socket,
    private readonly handler: HttpHandler,
    maxBody: number,
    budget: BodyBudget,
    private readonly idleMs: number,
    /** The server's open connections: this one leaves it when closed. */
    private readonly registry: Set<Connection>,
  ) {
    this.parser = new RequestParser(this, maxBody, budget);
    this.deadline = Date.now() + idleMs;
    registry.add(this);
  }

  /** Bytes from the client. */
  onData(data: Buffer): void {
    this.parser.feed(data);
    // A request head that trickles in does not keep the connection alive; anything else read does.
    if (this.phase === Phase.Open && !this.parser.partialHead) this.deadline = Date.now() + this.idleMs;
    this.pump();
    this.throttle();
  }

  /** No more requests (the client half-closed, or the server closes): answer what was read, then end. */
  finish(): void {
    if (this.phase >= Phase.Ended) return;
    this.parser.stop();
    if (this.current !== null) {
      // Its body will not come: it is not run, and nothing is owed.
      this.queue.pop();
      this.current = null;
    }
    this.phase = Phase.Closing;
    this.pump();
  }

  onClose(): void {
    this.phase = Phase.Closed;
    this.parser.stop();
    this.registry.delete(this);
  }

  /** For the sweeper: the connection should be closed now. */
  expired(now: number): boolean {
    // Requests being run hold the connection open: their answers are on the way.
    if ((this.phase === Phase.Open || this.phase === Phase.Closing) && this.current === null && this.queue.length > this.first) return false;
    return now > this.deadline;
  }

  head(head: RequestHead, hasBody: boolean): void {
    const x = new Exchange(this, head);
    if (hasBody && head.expectContinue) x.interim = CONTINUE;
    this.queue.push(x);
    this.current = x;
  }

  body(body: Buffer): void {
    const x = this.current!;
    this.current = null;
    // The client closes after this one: whatever it sent after is not read.
    if (x.close) this.stopReading();
    this.handler.request(x, body);
  }

  refused(code: BodyRefusal): void {
    const x = this.current!;
    this.current = null;
    x.close = true;
    if (x.interim !== null) {
      // It waits for 100 Continue before sending the body: it gets the refusal instead, and no body comes.
      x.interim = null;
      this.stopReading();
    } else {
      this.phase = Phase.Draining;
      this.deadline = Date.now() + DRAIN_MAX_MS;
    }
    this.handler.refuse(x, code, '');
  }

  drop(n: number, ended: boolean): void {
    this.dropped += n;
    if (ended) {
      if (this.phase === Phase.Draining) this.phase = Phase.Closing;
      this.pump();
    } else if (this.dropped > DRAIN_MAX_BYTES) {
      this.socket.destroy();
    }
  }

  error(code: HttpRefusal, message: string): void {
    let x = this.current;
    this.current = null;
    if (x === null) {
      x = new Exchange(this, UNREAD);
      this.queue.push(x);
    }
    x.close = true;
    x.interim = null;
    this.stopReading();
    this.handler.refuse(x, code, message);
  }

  private stopReading(): void {
    this.parser.stop();
    if (this.phase === Phase.Open) this.phase = Phase.Closing;
  }

  /** Moves the answers that are ready, in order, to the output; ends the connection when it is done. */
  pump(): void {
    if (this.phase >= Phase.Ended) return;
    const q = this.queue;
    const before = this.first;
    while (this.first < q.length) {
      const x = q[this.first]!;
      if (x.interim !== null) {
        this.out += x.interim;
        x.interim = null;
      }
      if (x.text === null) break;
      this.out += x.text;
      q[this.first++] = undefined as unknown as Exchange;
      if (x.close) {
        // Nothing after a closing answer is answered (nothing after it was read).
        q.length = this.first;
        break;
      }
    }
    if (this.first === q.length) {
      // The last answer is out: the idle time starts now.
      if (this.first > before && this.phase === Phase.Open) this.deadline = Date.now() + this.idleMs;
      q.length = 0;
      this.first = 0;
    }
    if (this.out !== '' && !this.inDirty) {
      this.inDirty = true;
      dirty.push(this);
      flushSoon();
    }
    if (this.phase === Phase.Closing && this.first === q.length && this.current === null && !this.inDirty) this.end();
  }

  flush(): void {
    this.inDirty = false;
    if (this.phase >= Phase.Ended || this.out === '') return;
    this.socket.write(this.out);
    this.out = '';
    this.throttle();
    if (this.phase === Phase.Closing && this.first === this.queue.length && this.current === null) this.end();
  }

  private end(): void {
    this.phase = Phase.Ended;
    this.deadline = Date.now() + this.idleMs;
    this.socket.end();
  }

  /** Stops reading while too many requests wait for answers or the client does not take them. */
  throttle(): void {
    if (this.phase >= Phase.Ended) return;
    const busy = this.queue.length - this.first > MAX_PENDING || this.socket.writableLength > MAX_UNSENT;
    if (busy && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!busy && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }
}
