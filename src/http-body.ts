// Reads a uWS request body into one Buffer, bounded by a size limit: the
// whole size is checked from Content-Length up front, and again as chunks
// arrive (no unbounded growth, no Buffer.concat per chunk).

import type { HttpResponse } from 'uWebSockets.js';

export const BODY_TOO_LARGE = Symbol('body too large');

/**
 * Calls `done(body)` once the body is complete, `done(BODY_TOO_LARGE)` as soon
 * as it is known to exceed `limit`. `lengthHeader` is the request's
 * Content-Length (read before any await: HttpRequest dies with the handler).
 * Chunks are copied: uWS reuses their memory after the callback.
 */
export function readBody(res: HttpResponse, lengthHeader: string, limit: number, done: (body: Buffer | typeof BODY_TOO_LARGE) => void): void {
  const declared = lengthHeader === '' ? -1 : Number(lengthHeader);
  if (declared > limit) {
    done(BODY_TOO_LARGE);
    return;
  }
  let buf = Buffer.allocUnsafe(declared >= 0 ? declared : 1024);
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
