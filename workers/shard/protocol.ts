// The client side of the wire contract: what a connection may send on /ws and
// what it gets back (gopusher's events, and the opt-in recovery fields of
// join). Runs in a shard thread.

import { WsErrors, type WsErrorCode } from '../../shared/errors';
import { OK_FRAME, positionedText, recoveryReply } from '../../shared/payload';
import type { AppTopics } from './app-topics';
import { Seam, type Held, type Registry, type Socket, type SocketData } from './registry';

/** What handleFrame needs of its shard. */
export interface Wire {
  readonly registry: Registry;
  readonly apps: AppTopics;
  readonly maxIdLength: number;
}

export function errorFrame(code: WsErrorCode, message: string = WsErrors[code].message): string {
  return JSON.stringify({ type: 2, code, data: message });
}

/** Ends the connection with the close code the error table gives it; the reason is the error code. */
export function closeWith(ws: Socket, code: WsErrorCode): void {
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

function validId(v: unknown, maxLen: number, optional: boolean): v is string {
  if (v === undefined && optional) return true;
  return typeof v === 'string' && (v.length > 0 || optional) && v.length <= maxLen;
}

interface JoinData {
  card_id?: unknown;
  app_id?: unknown;
  recover?: unknown;
  since?: unknown;
}

/** `since` as {offset, epoch}: null when absent, undefined when malformed. */
function sinceOf(v: unknown, maxLen: number): { offset: number; epoch: string } | null | undefined {
  if (v === undefined) return null;
  if (v === null || typeof v !== 'object') return undefined;
  const { offset, epoch } = v as { offset?: unknown; epoch?: unknown };
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return undefined;
  if (typeof epoch !== 'string' || epoch.length > maxLen) return undefined;
  return { offset, epoch };
}

function join(ws: Socket, d: JoinData, wire: Wire): void {
  const { registry, apps, maxIdLength } = wire;
  const since = sinceOf(d.since, maxIdLength);
  if (!validId(d.card_id, maxIdLength, false) || !validId(d.app_id, maxIdLength, true)
    || since === undefined || (d.recover !== undefined && typeof d.recover !== 'boolean')) {
    ws.send(errorFrame('PUSH_ERR_WS_JOIN_INVALID'), false, false);
    return;
  }
  const ud = ws.getUserData();
  const card = d.card_id;
  const app = d.app_id ?? '';
  const recover = since !== null || d.recover === true;
  apps.join(ws, ud.card !== '' ? ud.app : null, app);
  // A join with recovery always registers again, even in the same group: the
  // owner must answer it atomically with a membership change.
  if (ud.card === card && !recover && !ud.recover) {
    ud.app = app;
    reply(ws);
    return;
  }
  if (ud.card !== '' && !registry.leave(ws, ud.card)) hold(ud);
  ud.card = card;
  ud.app = app;
  ud.recover = recover;
  ud.seam = null;
  const seam = recover ? new Seam(ws, { card, app, since: since?.offset ?? -1, epoch: since?.epoch ?? '' }) : null;
  if (!registry.join(ws, card, seam)) hold(ud);
  if (seam === null) reply(ws);
  else if (ud.held !== null) ud.held.push(seam);
  else ws.cork(() => sendSeam(ws, seam));
}

/**
 * Handles one text frame. Returns nothing: every outcome is a reply, an error
 * frame, or a close with a documented code.
 */
export function handleFrame(ws: Socket, text: string, wire: Wire): void {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    closeWith(ws, 'PUSH_ERR_WS_BAD_JSON');
    return;
  }
  if (msg === null || typeof msg !== 'object' || typeof (msg as { event?: unknown }).event !== 'string') {
    closeWith(ws, 'PUSH_ERR_WS_BAD_JSON');
    return;
  }
  const { event, data } = msg as { event: string; data?: unknown };
  switch (event) {
    case 'ping':
      reply(ws);
      return;
    case 'join':
      join(ws, (data !== null && typeof data === 'object' ? data : {}) as JoinData, wire);
      return;
    default:
      closeWith(ws, 'PUSH_ERR_WS_UNKNOWN_EVENT');
  }
}
