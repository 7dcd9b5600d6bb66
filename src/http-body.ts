// Reads a uWS request body, bounded by a size limit: the whole size is
// checked from Content-Length up front, and again as chunks arrive (no
// unbounded growth, no Buffer.concat per chunk).

import type { HttpResponse } from 'uWebSockets.js';

export const BODY_TOO_LARGE = Symbol('body too large');

/**
 * Calls `done(body)` once the body is complete, `done(BODY_TOO_LARGE)` as soon
 * as it is known to exceed `limit`. `lengthHeader` is the request's
 * Content-Length (read before any await: HttpRequest dies with the handler).
 *
 * `body` is valid only during `done()`: a body that arrives in one chunk (the
 * usual push) is a view of uWS's own memory, which uWS reuses after the
 * callback, so it is passed without a copy; longer bodies are gathered in a
 * buffer of their own.
 */
export function readBody(res: HttpResponse, lengthHeader: string, limit: number, done: (body: Buffer | typeof BODY_TOO_LARGE) => void): void {
  const declared = lengthHeader === '' ? -1 : Number(lengthHeader);
  if (declared > limit) {
    done(BODY_TOO_LARGE);
    return;
  }
  let buf: Buffer | null = null;
  let len = 0;
  let finished = false;
  res.onData((chunk, isLast) => {
    if (finished) return;
    const n = chunk.byteLength;
    if (len + n > limit) {
      finished = true;
      done(BODY_TOO_LARGE);
      return;
    }
    if (isLast && buf === null) {
      finished = true;
      done(Buffer.from(chunk));
      return;
    }
    if (buf === null) buf = Buffer.allocUnsafe(declared >= 0 ? declared : 1024);
    if (len + n > buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(limit, Math.max(buf.length * 2, len + n)));
      buf.copy(bigger, 0, 0, len);
      buf = bigger;
    }
    Buffer.from(chunk).copy(buf, len);
    len += n;
    if (isLast) {
      finished = true;
      done(buf.subarray(0, len));
    }
  });
}
