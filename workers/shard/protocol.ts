// The client side of the wire contract: what a connection may send on /ws and
// what it gets back (gopusher's events). Runs in a shard thread.
//
// With signed joins on (auth.join_secret or auth.join_key_file) a join is
// applied only after its token was verified, which is asynchronous (jose).
// Meanwhile the connection's later frames wait, in order, and are handled
// once the join is applied (or dropped when it fails and the connection
// closes): a ping sent after a join is still answered after it. At most
// MAX_QUEUED frames wait; a client that sends more is closed (4429).

import { WsErrors, type WsErrorCode } from '../../shared/errors';
import type { JoinVerifier } from '../../shared/join-token';
import type { Logger } from '../../shared/log';
import { OK_FRAME } from '../../shared/payload';
import { S_JOINS, wsErrorSlot } from '../../shared/counters';
import type { Registry, Socket, SocketData } from './registry';

/** Frames a connection may send while its join token is verified. */
const MAX_QUEUED = 16;

export function errorFrame(code: WsErrorCode, message: string = WsErrors[code].message): string {
  return JSON.stringify({ type: 2, code, data: message });
}

/** Ends the connection with the close code the error table gives it; the reason is the error code. Counted in `counters`. */
export function closeWith(ws: Socket, code: WsErrorCode, counters: Float64Array): void {
  counters[wsErrorSlot(code)]!++;
  ws.end(WsErrors[code].close, code);
}

/**
 * Answers a join or ping with "ok", in request order: while a join waits for
 * its group's owner (see registry.ts), later answers wait behind it.
 */
function reply(ws: Socket): void {
  const ud = ws.getUserData();
  if (ud.unconfirmed > 0) ud.owed++;
  else ws.send(OK_FRAME, false, false);
}

/** The owners acknowledged these joins: send the answers they held back. */
export function confirmJoins(sockets: readonly Socket[]): void {
  for (const ws of sockets) {
    const ud = ws.getUserData();
    if (ud.closed || --ud.unconfirmed > 0) continue;
    const n = ud.owed;
    ud.owed = 0;
    if (n === 1) ws.send(OK_FRAME, false, false);
    else if (n > 1) ws.cork(() => {
      for (let i = 0; i < n; i++) ws.send(OK_FRAME, false, false);
    });
  }
}

/** A non-empty (unless optional), well-formed Unicode string within the length limit. */
function validId(v: unknown, maxLen: number, optional: boolean): v is string {
  if (v === undefined && optional) return true;
  // A lone surrogate would be re-encoded (U+FFFD) on its way through the
  // queue: pushes for one id would reach the connections of another.
  return typeof v === 'string' && (v.length > 0 || optional) && v.length <= maxLen && v.isWellFormed();
}

interface JoinData {
  card_id?: unknown;
  app_id?: unknown;
  token?: unknown;
}

export interface ProtocolOptions {
  readonly maxIdLength: number;
  /** Joins per second per connection (0 = no limit); the burst is as many. */
  readonly joinRate: number;
  /** null: joins are not signed (drop-in). */
  readonly verifier: JoinVerifier | null;
}

export class Protocol {
  /** `counters`: this shard's (shared/counters.ts): joins and WebSocket errors are counted there. */
  constructor(private readonly registry: Registry, private readonly opts: ProtocolOptions, private readonly counters: Float64Array, private readonly log: Logger) {}

  /**
   * Handles one text frame. Returns nothing: every outcome is a reply, an
   * error frame, or a close with a documented code.
   */
  frame(ws: Socket, text: string): void {
    const ud = ws.getUserData();
    if (ud.verifying) {
      if ((ud.queued ??= []).length >= MAX_QUEUED) closeWith(ws, 'PUSH_ERR_WS_RATE_LIMITED', this.counters);
      else ud.queued.push(text);
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      closeWith(ws, 'PUSH_ERR_WS_BAD_JSON', this.counters);
      return;
    }
    if (msg === null || typeof msg !== 'object' || typeof (msg as { event?: unknown }).event !== 'string') {
      closeWith(ws, 'PUSH_ERR_WS_BAD_JSON', this.counters);
      return;
    }
    const { event, data } = msg as { event: string; data?: unknown };
    switch (event) {
      case 'ping':
        reply(ws);
        return;
      case 'join':
        this.join(ws, ud, (data !== null && typeof data === 'object' ? data : {}) as JoinData);
        return;
      default:
        closeWith(ws, 'PUSH_ERR_WS_UNKNOWN_EVENT', this.counters);
    }
  }

  private join(ws: Socket, ud: SocketData, d: JoinData): void {
    const { maxIdLength, verifier } = this.opts;
    if (!validId(d.card_id, maxIdLength, false) || !validId(d.app_id, maxIdLength, true)) {
      this.counters[wsErrorSlot('PUSH_ERR_WS_JOIN_INVALID')]!++;
      ws.send(errorFrame('PUSH_ERR_WS_JOIN_INVALID'), false, false);
      return;
    }
    if (!this.takeJoin(ud)) {
      closeWith(ws, 'PUSH_ERR_WS_RATE_LIMITED', this.counters);
      return;
    }
    const card = d.card_id;
    const app = d.app_id ?? '';
    if (verifier === null) {
      this.apply(ws, ud, card, app);
      return;
    }
    const token = typeof d.token === 'string' ? d.token : ud.token;
    if (token === '') {
      closeWith(ws, 'PUSH_ERR_WS_TOKEN_MISSING', this.counters);
      return;
    }
    ud.verifying = true;
    verifier.verify(token, card, app).then(
      (refusal) => this.verified(ws, ud, card, app, refusal),
      (err: Error) => {
        this.log.error('join token check failed', { code: 'PUSH_ERR_WS_INTERNAL', error: err.message });
        this.verified(ws, ud, card, app, 'PUSH_ERR_WS_INTERNAL');
      },
    );
  }

  /** Token bucket: joinRate joins a second, as many at once. */
  private takeJoin(ud: SocketData): boolean {
    const rate = this.opts.joinRate;
    if (rate === 0) return true;
    const now = Date.now();
    ud.joinBudget = Math.min(rate, ud.joinBudget + ((now - ud.joinAt) * rate) / 1000);
    ud.joinAt = now;
    if (ud.joinBudget < 1) return false;
    ud.joinBudget -= 1;
    return true;
  }

  private verified(ws: Socket, ud: SocketData, card: string, app: string, refusal: WsErrorCode | null): void {
    ud.verifying = false;
    // The client may have gone while its token was checked: a closed uWS socket must not be touched.
    if (ud.closed) return;
    if (refusal !== null) {
      closeWith(ws, refusal, this.counters);
      return;
    }
    ws.cork(() => {
      this.apply(ws, ud, card, app);
      // Frames that waited, in order, until one of them starts another verification.
      const queued = ud.queued;
      while (queued !== null && queued.length > 0 && !ud.verifying && !ud.closed) this.frame(ws, queued.shift()!);
    });
  }

  private apply(ws: Socket, ud: SocketData, card: string, app: string): void {
    const { registry } = this;
    this.counters[S_JOINS]!++;
    if (ud.card !== card) {
      if (ud.card !== '' && !registry.leave(ws, ud.card)) ud.unconfirmed++;
      ud.card = card;
      if (!registry.join(ws, card)) ud.unconfirmed++;
    }
    ud.app = app;
    reply(ws);
  }
}
