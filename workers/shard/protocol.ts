// The client side of the wire contract: what a connection may send on /ws and
// what it gets back (gopusher's events). Runs in a shard thread.

import { WsErrors, type WsErrorCode } from '../../shared/errors';
import { OK_FRAME } from '../../shared/payload';
import { S_JOINS, wsErrorSlot } from '../../shared/counters';
import type { Registry, Socket } from './registry';

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

function validId(v: unknown, maxLen: number, optional: boolean): v is string {
  if (v === undefined && optional) return true;
  return typeof v === 'string' && (v.length > 0 || optional) && v.length <= maxLen;
}

/**
 * Handles one text frame. Returns nothing: every outcome is a reply, an error
 * frame, or a close with a documented code.
 */
export function handleFrame(ws: Socket, text: string, registry: Registry, maxIdLength: number, counters: Float64Array): void {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    closeWith(ws, 'PUSH_ERR_WS_BAD_JSON', counters);
    return;
  }
  if (msg === null || typeof msg !== 'object' || typeof (msg as { event?: unknown }).event !== 'string') {
    closeWith(ws, 'PUSH_ERR_WS_BAD_JSON', counters);
    return;
  }
  const { event, data } = msg as { event: string; data?: unknown };
  switch (event) {
    case 'ping':
      reply(ws);
      return;
    case 'join': {
      const d = (data !== null && typeof data === 'object' ? data : {}) as { card_id?: unknown; app_id?: unknown };
      if (!validId(d.card_id, maxIdLength, false) || !validId(d.app_id, maxIdLength, true)) {
        counters[wsErrorSlot('PUSH_ERR_WS_JOIN_INVALID')]!++;
        ws.send(errorFrame('PUSH_ERR_WS_JOIN_INVALID'), false, false);
        return;
      }
      counters[S_JOINS]!++;
      const ud = ws.getUserData();
      if (ud.card !== d.card_id) {
        if (ud.card !== '' && !registry.leave(ws, ud.card)) ud.unconfirmed++;
        ud.card = d.card_id;
        if (!registry.join(ws, ud.card)) ud.unconfirmed++;
      }
      ud.app = d.app_id ?? '';
      reply(ws);
      return;
    }
    default:
      closeWith(ws, 'PUSH_ERR_WS_UNKNOWN_EVENT', counters);
  }
}
