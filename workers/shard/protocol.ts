// The client side of the wire contract: what a connection may send on /ws and
// what it gets back (gopusher's events, and the opt-in recovery fields of
// join: recover, since). Runs in a shard thread.
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
import { OK_FRAME, positionedText, recoveryReply } from '../../shared/payload';
import { S_JOINS, wsErrorSlot } from '../../shared/counters';
import type { AppTopics } from './app-topics';
import { Seam, type Held, type Registry, type Socket, type SocketData } from './registry';

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

/** A join is waiting for its owner: what is answered after it waits too. */
function hold(ud: SocketData): void {
  ud.unconfirmed++;
  ud.held ??= [];
}

/**
 * Answers a join or ping with "ok", in request order: while a join waits for
 * its group's owner (see registry.ts), later answers wait behind it.
 */
function reply(ws: Socket): void {
  const held = ws.getUserData().held;
  if (held !== null) held.push(OK_FRAME);
  else ws.send(OK_FRAME, false, false);
}

/** A recovery answer: the join's reply, then the missed pushes in order. */
function sendSeam(ws: Socket, seam: Seam): void {
  const r = seam.result!;
  ws.send(recoveryReply(r.recovered, r.offset, r.epoch), false, false);
  for (let i = 0; i < r.payloads.length; i++) ws.send(positionedText(r.payloads[i]!, r.offsets[i]!, r.epoch), false, false);
}

function sendHeld(ws: Socket, held: readonly Held[]): void {
  for (const h of held) {
    if (h instanceof Seam) sendSeam(ws, h);
    else ws.send(h, false, false);
  }
}

/** The owners acknowledged these joins: send what was held back behind them. */
export function confirmJoins(sockets: readonly Socket[]): void {
  for (const ws of sockets) {
    const ud = ws.getUserData();
    if (ud.closed || --ud.unconfirmed > 0) continue;
    const held = ud.held!;
    ud.held = null;
    if (held.length === 1 && !(held[0] instanceof Seam)) ws.send(held[0]!, false, false);
    else if (held.length > 0) ws.cork(() => sendHeld(ws, held));
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
  recover?: unknown;
  since?: unknown;
}

/** Where a recovering join stands: since.offset (-1: none) and since.epoch. */
interface Recovery {
  readonly since: number;
  readonly epoch: string;
}

/** A join's recovery: null without one, undefined when `recover` or `since` is malformed. */
function recoveryOf(d: JoinData, maxLen: number): Recovery | null | undefined {
  if (d.recover !== undefined && typeof d.recover !== 'boolean') return undefined;
  const v = d.since;
  if (v === undefined) return d.recover === true ? { since: -1, epoch: '' } : null;
  if (v === null || typeof v !== 'object') return undefined;
  const { offset, epoch } = v as { offset?: unknown; epoch?: unknown };
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return undefined;
  if (typeof epoch !== 'string' || epoch.length > maxLen) return undefined;
  return { since: offset, epoch };
}

export interface ProtocolOptions {
  readonly maxIdLength: number;
  /** Joins per second per connection (0 = no limit); the burst is as many. */
  readonly joinRate: number;
  /** null: joins are not signed (drop-in). */
  readonly verifier: JoinVerifier | null;
}

export class Protocol {
  /** `counters`: this shard's (shared/counters.ts): joins and WebSocket errors are counted there. `apps`: broadcast topics. */
  constructor(
    private readonly registry: Registry,
    private readonly apps: AppTopics,
    private readonly opts: ProtocolOptions,
    private readonly counters: Float64Array,
    private readonly log: Logger,
  ) {}

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
    const recovery = recoveryOf(d, maxIdLength);
    if (!validId(d.card_id, maxIdLength, false) || !validId(d.app_id, maxIdLength, true) || recovery === undefined) {
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
      this.apply(ws, ud, card, app, recovery);
      return;
    }
    const token = typeof d.token === 'string' ? d.token : ud.token;
    if (token === '') {
      closeWith(ws, 'PUSH_ERR_WS_TOKEN_MISSING', this.counters);
      return;
    }
    ud.verifying = true;
    verifier.verify(token, card, app).then(
      (refusal) => this.verified(ws, ud, card, app, recovery, refusal),
      (err: Error) => {
        this.log.error('join token check failed', { code: 'PUSH_ERR_WS_INTERNAL', error: err.message });
        this.verified(ws, ud, card, app, recovery, 'PUSH_ERR_WS_INTERNAL');
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

  private verified(ws: Socket, ud: SocketData, card: string, app: string, recovery: Recovery | null, refusal: WsErrorCode | null): void {
    ud.verifying = false;
    // The client may have gone while its token was checked: a closed uWS socket must not be touched.
    if (ud.closed) return;
    if (refusal !== null) {
      closeWith(ws, refusal, this.counters);
      return;
    }
    ws.cork(() => {
      this.apply(ws, ud, card, app, recovery);
      // Frames that waited, in order, until one of them starts another verification.
      const queued = ud.queued;
      while (queued !== null && queued.length > 0 && !ud.verifying && !ud.closed) this.frame(ws, queued.shift()!);
    });
  }

  private apply(ws: Socket, ud: SocketData, card: string, app: string, recovery: Recovery | null): void {
    const { registry } = this;
    this.counters[S_JOINS]!++;
    this.apps.join(ws, ud.card !== '' ? ud.app : null, app);
    // A join with recovery always registers again, even in the same group: the
    // owner must answer it atomically with a membership change.
    if (ud.card === card && recovery === null && !ud.recover) {
      ud.app = app;
      reply(ws);
      return;
    }
    if (ud.card !== '' && !registry.leave(ws, ud.card)) hold(ud);
    ud.card = card;
    ud.app = app;
    ud.recover = recovery !== null;
    ud.seam = null;
    const seam = recovery === null ? null : new Seam(ws, { card, app, since: recovery.since, epoch: recovery.epoch });
    if (!registry.join(ws, card, seam)) hold(ud);
    if (seam === null) reply(ws);
    else if (ud.held !== null) ud.held.push(seam);
    else ws.cork(() => sendSeam(ws, seam));
  }
}
