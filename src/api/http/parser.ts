// Incremental HTTP/1.1 request parser for the gateway: request line and
// headers, then the body as framed by Content-Length or chunked transfer
// coding. It keeps from the headers only what the gateway uses, and refuses
// what would make framing ambiguous (both framings, two different lengths,
// bare CR or LF) instead of guessing.

/** Request line plus headers, in bytes: over it the request is refused (431). */
const MAX_HEAD = 16 * 1024;
/** Header lines in one head (431 above). */
const MAX_HEADERS = 100;
/** A chunk-size line (with extensions) or one trailer line. */
const MAX_LINE = 1024;

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);

/** tchar (RFC 9110 5.6.2), by char code. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

function isToken(s: string, from: number, to: number): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

/** origin-form (visible ASCII from "/"), or "*" (OPTIONS *). */
function isTarget(s: string, from: number, to: number): boolean {
  if (to - from === 1 && s.charCodeAt(from) === 0x2a) return true;
  if (from >= to || s.charCodeAt(from) !== 0x2f) return false;
  for (let i = from + 1; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
/** A CR not before LF, an LF not after CR, or a NUL: each lets two parsers split a head differently. */
const STRAY = /\r(?!\n)|(?<!\r)\n|\0/;
const CHUNK_SIZE = /^[0-9A-Fa-f]{1,12}[ \t]*(?:;.*)?$/;

export interface RequestHead {
  /** As sent (methods are case-sensitive). */
  readonly method: string;
  /** Request target up to "?". */
  readonly path: string;
  /** After "?", or "". */
  readonly query: string;
  /** The Origin header ('' when none): browsers send it on cross-origin requests. */
  readonly origin: string;
  /** The Content-Type header ('' when none). */
  readonly contentType: string;
  /** The Authorization header ('' when none). */
  readonly authorization: string;
  /** X-Forwarded-For, several joined with ", " ('' when none); trusted only from server.trusted_proxies. */
  readonly forwardedFor: string;
  /** The client will not reuse the connection: `Connection: close`, or HTTP/1.0 without keep-alive. */
  readonly close: boolean;
  /** `Expect: 100-continue`: the client waits for an interim answer before sending the body. */
  readonly expectContinue: boolean;
}

export type HttpRefusal = 'PUSH_ERR_BAD_HTTP' | 'PUSH_ERR_HEADERS_TOO_LARGE';
/** Why a body is not read: over gateway.max_body, or over what all bodies together may hold. */
export type BodyRefusal = 'PUSH_ERR_BODY_TOO_LARGE' | 'PUSH_ERR_OVERLOADED';

/**
 * Bytes that bodies being gathered over several reads may hold, all
 * connections together (gateway.max_body_total). A body that arrives in one
 * read is passed as a view of it and holds nothing here.
 */
export class BodyBudget {
  held = 0;

  constructor(readonly max: number) {}

  take(n: number): boolean {
    if (this.held + n > this.max) return false;
    this.held += n;
    return true;
  }

  give(n: number): void {
    this.held -= n;
  }
}

/** What the parser reports, in input order. */
export interface ParserSink {
  /** A head was read; `hasBody`: a body follows (body() or refused() comes next). */
  head(head: RequestHead, hasBody: boolean): void;
  /**
   * The request's whole body (empty when it has none), at most the limit.
   * It may be a view of the connection's read buffer: copy what outlives the call.
   */
  body(body: Buffer): void;
  /** The body is refused (over the limit, or no memory for it): its bytes are now read and dropped; nothing after it is parsed. */
  refused(code: BodyRefusal): void;
  /** `n` bytes of an over-limit body were dropped; `ended` when its last byte was. */
  drop(n: number, ended: boolean): void;
  /** Malformed input: parsing stops for good. */
  error(code: HttpRefusal, message: string): void;
}

const enum State { Head, Length, ChunkSize, ChunkData, ChunkEnd, Trailers, Stopped }

/** Thrown inside feed() and turned into one sink.error(). */
class Malformed extends Error {
  constructor(readonly code: HttpRefusal, message: string) {
    super(message);
  }
}

export class RequestParser {
  private state = State.Head;
  /** Unparsed bytes of a head or line split across reads (small: bounded by MAX_HEAD / MAX_LINE). */
  private carry: Buffer | null = null;
  /** Body bytes still to come: of the whole body (Content-Length) or of the current chunk. */
  private remaining = 0;
  /** A body gathered over several reads, and its filled length. */
  private buf: Buffer | null = null;
  private len = 0;
  /** Bytes of `buf` taken from the budget. */
  private held = 0;
  private dropping = false;
  private trailerBytes = 0;
  /** Body length of the head just parsed; -1: chunked. */
  private declared = 0;

  constructor(private readonly sink: ParserSink, private readonly limit: number, private readonly budget: BodyBudget) {}

  private get halted(): boolean {
    return this.state === State.Stopped;
  }

  /** Part of a request head was read, and not all of it yet. */
  get partialHead(): boolean {
    return this.state === State.Head && this.carry !== null;
  }

  /** Ignores all further input (the connection is closing after an answer). */
  stop(): void {
    this.state = State.Stopped;
    this.carry = null;
    this.release();
  }

  /** Drops the body buffer and gives its bytes back to the budget. */
  private release(): void {
    this.buf = null;
    this.budget.give(this.held);
    this.held = 0;
  }

  /** A buffer of `size` bytes for the body, holding the first `keep` bytes of the current one; null when the budget is spent. */
  private grow(size: number, keep: number): Buffer | null {
    if (!this.budget.take(size)) return null;
    const bigger = Buffer.allocUnsafe(size);
    if (this.buf !== null && keep > 0) this.buf.copy(bigger, 0, 0, keep);
    this.budget.give(this.held);
    this.held = size;
    this.buf = bigger;
    return bigger;
  }

  private refuse(code: BodyRefusal): void {
    this.dropping = true;
    this.release();
    this.sink.refused(code);
  }

  feed(data: Buffer): void {
    if (this.state === State.Stopped) return;
    let input = data;
    if (this.carry !== null) {
      input = Buffer.concat([this.carry, data]);
      this.carry = null;
    }
    try {
      let off = 0;
      // step() may stop the parser (a sink call can): checked on every turn.
      while (off < input.length && !this.halted) off = this.step(input, off);
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      this.stop();
      this.sink.error(err.code, err.message);
    }
  }

  /** Consumes from `off` in the current state; returns the new offset (input.length when it needs more). */
  private step(input: Buffer, off: number): number {
    switch (this.state) {
      case State.Head: return this.readHead(input, off);
      case State.Length: return this.readLength(input, off);
      case State.ChunkSize: return this.readChunkSize(input, off);
      case State.ChunkData: return this.readChunkData(input, off);
      case State.ChunkEnd: return this.readChunkEnd(input, off);
      case State.Trailers: return this.readTrailer(input, off);
      default: return input.length;
    }
  }

  private keep(input: Buffer, off: number, max: number, code: HttpRefusal, what: string): number {
    if (input.length - off > max) throw new Malformed(code, `${what} is longer than ${max} bytes`);
    this.carry = Buffer.from(input.subarray(off));
    return input.length;
  }

  private readHead(input: Buffer, off: number): number {
    // Empty lines before a request line are ignored (RFC 9112 2.2): some
    // clients send a CRLF after a body.
    while (input.length - off >= 2 && input[off] === 0x0d && input[off + 1] === 0x0a) off += 2;
    if (off === input.length) return off;
    const end = input.indexOf(CRLFCRLF, off);
    if (end < 0 || end - off > MAX_HEAD) {
      return this.keep(input, off, MAX_HEAD, 'PUSH_ERR_HEADERS_TOO_LARGE', 'request line and headers');
    }
    const text = input.toString('latin1', off, end);
    const head = this.parseHead(text);
    const next = end + 4;
    const length = this.declared;
    this.sink.head(head, length !== 0);
    if (length >= 0) return this.startLength(input, next, length);
    this.startChunked();
    return next;
  }

  /** Parses a head; leaves its body length (-1: chunked) in `declared`. Allocates little: it runs per request. */
  private parseHead(text: string): RequestHead {
    if (STRAY.test(text)) throw new Malformed('PUSH_ERR_BAD_HTTP', 'bare CR, bare LF or NUL in the request head');
    let lineEnd = text.indexOf('\r\n');
    if (lineEnd < 0) lineEnd = text.length;
    const sp1 = text.indexOf(' ');
    const sp2 = sp1 < 0 ? -1 : text.indexOf(' ', sp1 + 1);
    if (sp1 <= 0 || sp2 < 0 || sp2 > lineEnd || !isToken(text, 0, sp1) || !isTarget(text, sp1 + 1, sp2)) {
      throw new Malformed('PUSH_ERR_BAD_HTTP', 'request line must be "METHOD /target HTTP/1.1"');
    }
    const http10 = lineEnd - sp2 === 9 && text.startsWith('HTTP/1.0', sp2 + 1);
    if (!http10 && !(lineEnd - sp2 === 9 && text.startsWith('HTTP/1.1', sp2 + 1))) {
      throw new Malformed('PUSH_ERR_BAD_HTTP', `unsupported HTTP version "${text.slice(sp2 + 1, lineEnd)}"`);
    }

    let length = 0;
    let lengthSeen = false;
    let chunked = false;
    let origin = '';
    let contentType = '';
    let authorization = '';
    let forwardedFor = '';
    let close = http10;
    let expectContinue = false;
    let count = 0;
    for (let pos = lineEnd + 2; pos < text.length;) {
      let e = text.indexOf('\r\n', pos);
      if (e < 0) e = text.length;
      const colon = text.indexOf(':', pos);
      if (colon <= pos || colon > e) throw new Malformed('PUSH_ERR_BAD_HTTP', 'header line without a "name:"');
      if (++count > MAX_HEADERS) throw new Malformed('PUSH_ERR_HEADERS_TOO_LARGE', `more than ${MAX_HEADERS} headers`);
      if (!isToken(text, pos, colon)) throw new Malformed('PUSH_ERR_BAD_HTTP', 'header name is not a token (or a folded line)');
      // Only the names the gateway uses are looked at; their lengths filter first.
      const n = colon - pos;
      if (n === 6 || n === 10 || (n >= 12 && n <= 15) || n === 17) {
        const key = text.slice(pos, colon).toLowerCase();
        const value = text.slice(colon + 1, e).trim();
        if (key === 'content-length') {
          if (!/^\d{1,15}$/.test(value)) throw new Malformed('PUSH_ERR_BAD_HTTP', 'Content-Length must be a decimal number');
          const v = Number(value);
          if (lengthSeen && v !== length) throw new Malformed('PUSH_ERR_BAD_HTTP', 'two different Content-Length headers');
          length = v;
          lengthSeen = true;
        } else if (key === 'transfer-encoding') {
          if (chunked || value.toLowerCase() !== 'chunked') throw new Malformed('PUSH_ERR_BAD_HTTP', 'Transfer-Encoding other than "chunked"');
          chunked = true;
        } else if (key === 'origin') {
          origin = value;
        } else if (key === 'content-type') {
          contentType = value;
        } else if (key === 'authorization') {
          authorization = value;
        } else if (key === 'x-forwarded-for') {
          forwardedFor = forwardedFor === '' ? value : `${forwardedFor}, ${value}`;
        } else if (key === 'connection') {
          for (const token of value.toLowerCase().split(',')) {
            const t = token.trim();
            if (t === 'close') close = true;
            else if (t === 'keep-alive' && http10) close = false;
          }
        } else if (key === 'expect') {
          expectContinue = value.toLowerCase() === '100-continue';
        }
      }
      pos = e + 2;
    }
    if (chunked && lengthSeen) throw new Malformed('PUSH_ERR_BAD_HTTP', 'both Transfer-Encoding and Content-Length');
    this.declared = chunked ? -1 : length;
    const q = text.indexOf('?', sp1 + 1);
    const hasQuery = q >= 0 && q < sp2;
    return {
      method: text.slice(0, sp1),
      path: text.slice(sp1 + 1, hasQuery ? q : sp2),
      query: hasQuery ? text.slice(q + 1, sp2) : '',
      origin, contentType, authorization, forwardedFor, close, expectContinue,
    };
  }

  private startLength(input: Buffer, off: number, length: number): number {
    if (length === 0) {
      this.sink.body(EMPTY);
      return off;
    }
    this.remaining = length;
    this.len = 0;
    this.state = State.Length;
    if (length > this.limit) {
      this.refuse('PUSH_ERR_BODY_TOO_LARGE');
    } else if (input.length - off >= length) {
      // The usual push: the whole body is in this read, passed without a copy.
      this.state = State.Head;
      this.sink.body(input.subarray(off, off + length));
      return off + length;
    } else if (this.grow(length, 0) === null) {
      this.refuse('PUSH_ERR_OVERLOADED');
    }
    return off;
  }

  private readLength(input: Buffer, off: number): number {
    const n = Math.min(this.remaining, input.length - off);
    this.remaining -= n;
    if (this.dropping) {
      this.dropped(n, this.remaining === 0);
      return off + n;
    }
    input.copy(this.buf!, this.len, off, off + n);
    this.len += n;
    if (this.remaining === 0) this.finishBody();
    return off + n;
  }

  private startChunked(): void {
    this.state = State.ChunkSize;
    this.release();
    this.len = 0;
    this.trailerBytes = 0;
  }

  private line(input: Buffer, off: number, what: string): { text: string; next: number } | null {
    const e = input.indexOf(CRLF, off);
    if (e < 0 || e - off > MAX_LINE) {
      this.keep(input, off, MAX_LINE, 'PUSH_ERR_BAD_HTTP', what);
      return null;
    }
    return { text: input.toString('latin1', off, e), next: e + 2 };
  }

  private readChunkSize(input: Buffer, off: number): number {
    const l = this.line(input, off, 'chunk-size line');
    if (l === null) return input.length;
    if (!CHUNK_SIZE.test(l.text)) throw new Malformed('PUSH_ERR_BAD_HTTP', 'malformed chunk-size line');
    const size = parseInt(l.text, 16);
    if (size === 0) {
      this.state = State.Trailers;
      return l.next;
    }
    if (!this.dropping && this.len + size > this.limit) this.refuse('PUSH_ERR_BODY_TOO_LARGE');
    if (!this.dropping) {
      const need = this.len + size;
      if ((this.buf === null || this.buf.length < need) && this.grow(Math.min(this.limit, Math.max(need, (this.buf?.length ?? 0) * 2)), this.len) === null) {
        this.refuse('PUSH_ERR_OVERLOADED');
      }
    }
    this.remaining = size;
    this.state = State.ChunkData;
    return l.next;
  }

  private readChunkData(input: Buffer, off: number): number {
    const n = Math.min(this.remaining, input.length - off);
    this.remaining -= n;
    if (this.dropping) this.dropped(n, false);
    else {
      input.copy(this.buf!, this.len, off, off + n);
      this.len += n;
    }
    if (this.remaining === 0) this.state = State.ChunkEnd;
    return off + n;
  }

  private readChunkEnd(input: Buffer, off: number): number {
    if (input.length - off < 2) return this.keep(input, off, 2, 'PUSH_ERR_BAD_HTTP', 'chunk end');
    if (input[off] !== 0x0d || input[off + 1] !== 0x0a) throw new Malformed('PUSH_ERR_BAD_HTTP', 'chunk data not followed by CRLF');
    this.state = State.ChunkSize;
    return off + 2;
  }

  private readTrailer(input: Buffer, off: number): number {
    const l = this.line(input, off, 'trailer line');
    if (l === null) return input.length;
    this.trailerBytes += l.next - off;
    if (this.trailerBytes > MAX_HEAD) throw new Malformed('PUSH_ERR_HEADERS_TOO_LARGE', `trailers are longer than ${MAX_HEAD} bytes`);
    if (l.text !== '') return l.next;
    if (this.dropping) this.dropped(0, true);
    else this.finishBody();
    return l.next;
  }

  private dropped(n: number, ended: boolean): void {
    if (ended) this.stop();
    this.sink.drop(n, ended);
  }

  private finishBody(): void {
    const body = this.buf === null ? EMPTY : this.buf.subarray(0, this.len);
    const held = this.held;
    this.buf = null;
    this.held = 0;
    this.state = State.Head;
    // The handler copies what it keeps (ParserSink.body): the bytes are free once it returns.
    try {
      this.sink.body(body);
    } finally {
      this.budget.give(held);
    }
  }
}
