// Connection holder (a child process): opens its share of the WebSocket
// connections (more when the parent raises the count), joins each to its
// card_id, then measures every push frame it receives (latency from the send
// time in the content) and reports to the parent once a second. One process holds at most ~19,900 sockets (20,000
// open files), so the orchestrator forks several. For the chaos scenario it
// also reconnects whatever closes and records each connection's life and the
// push ids it received (chaos-log.ts).

import WebSocket from 'ws';
import { Histogram } from './histogram';
import { decodeId, decodeStamp, frameOf, nowUs } from './content';
import { Column, writeColumns } from './chaos-log';
import type { HolderStart, HolderTick, HolderToParent, ParentToChild } from './messages';

const OK_FRAME_LENGTH = '{"type":1,"data":"ok"}'.length;
const MAX_ATTEMPTS = 5;
const RETRY_DELAY_MS = 200;
/**
 * Reconnecting (chaos): a joined connection that closes is reopened after
 * REOPEN_MIN_MS plus up to REOPEN_SPREAD_MS at random, so that thousands of
 * clients do not come back in the same millisecond; a failed attempt is
 * retried after RETRY_DELAY_MS doubled per attempt, at most RETRY_MAX_MS,
 * times 0.5-1.5 at random.
 */
const REOPEN_MIN_MS = 100;
const REOPEN_SPREAD_MS = 900;
const RETRY_MAX_MS = 2_000;
/**
 * A join unanswered this long is sent again (gopusher ignores a join that
 * arrives before it registered the connection); after JOIN_TRIES the
 * connection is dropped and retried as a failed attempt.
 */
const JOIN_RETRY_MS = 1_000;
const JOIN_TRIES = 5;

/** A connection with the fixed-shape state the shared handlers need. */
class BenchSocket extends WebSocket {
  index = 0;
  attempt = 0;
  joined = false;
  /** Opened again after an earlier connection of this slot had joined (not part of the connect phase's count). */
  reopen = false;
  /** Its row in the session columns once joined (recording), else -1. */
  session = -1;
  /** When the last join was sent (0: not yet), and how many were. */
  joinSentAt = 0;
  joinTries = 0;
}

let cfg: HolderStart;
const hist = new Histogram();
const sockets: (BenchSocket | null)[] = [];
let nextIndex = 0;
let connecting = 0;
let joined = 0;
let failed = 0;
let closed = 0;
let delivered = 0;
let other = 0;
let stopping = false;
/** The count last reported as joined (-1: none yet). */
let reportedCount = -1;
const errors = new Set<string>();
/**
 * Recording (chaos): one row per joined connection (its global index, join
 * time, close time or 0 while open, in µs since the epoch) and one per push
 * frame received (the connection's row, the push id, the receive time).
 */
let recording = false;
const sessions = { slot: new Column(), joinUs: new Column(), closeUs: new Column() };
const receipts = { session: new Column(), id: new Column(), atUs: new Column() };

function send(msg: HolderToParent): void {
  process.send!(msg);
}

function cardOf(i: number): string {
  return `c${Math.floor(i / cfg.groupSize)}`;
}

/** Spreads app_ids by weight, deterministically by connection index. */
function appOf(i: number): string | undefined {
  const apps = cfg.apps;
  if (apps.length === 0) return undefined;
  const total = apps.reduce((n, a) => n + a.weight, 0);
  let x = ((i * 2654435761) >>> 0) / 2 ** 32 * total;
  for (const a of apps) {
    x -= a.weight;
    if (x < 0) return a.app;
  }
  return apps[apps.length - 1]!.app;
}

function open(slot: number, attempt: number, reopen = false): void {
  if (stopping) return;
  const index = cfg.first + slot;
  const local = cfg.localAddresses;
  const ws = new BenchSocket(cfg.urls[index % cfg.urls.length]!, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: 15_000,
    ...(local.length > 0 ? { localAddress: local[index % local.length]! } : {}),
  });
  ws.index = slot;
  ws.attempt = attempt;
  ws.reopen = reopen;
  sockets[slot] = ws;
  ws.on('open', onOpen);
  ws.on('message', onMessage);
  ws.on('error', onError);
  ws.on('close', onClose);
}

// ws calls handlers with `this` as the socket: shared handlers, no per-connection closures.
function onOpen(this: WebSocket): void {
  sendJoin(this as BenchSocket);
}

function sendJoin(ws: BenchSocket): void {
  const index = cfg.first + ws.index;
  const app = appOf(index);
  const data = app === undefined ? { card_id: cardOf(index) } : { card_id: cardOf(index), app_id: app };
  ws.joinSentAt = Date.now();
  ws.joinTries++;
  ws.send(JSON.stringify({ event: 'join', data }));
}

/** Joins unanswered for JOIN_RETRY_MS are sent again; one timer for all connections. */
function retryJoins(): void {
  const now = Date.now();
  for (const ws of sockets) {
    if (ws === null || ws.joined || ws.joinSentAt === 0 || now - ws.joinSentAt < JOIN_RETRY_MS || ws.readyState !== WebSocket.OPEN) continue;
    if (ws.joinTries >= JOIN_TRIES) ws.terminate();
    else sendJoin(ws);
  }
}

function onMessage(this: WebSocket, data: Buffer): void {
  const ws = this as BenchSocket;
  if (ws.joined) {
    const stamp = decodeStamp(data);
    if (stamp < 0) {
      other++;
      return;
    }
    const now = nowUs();
    hist.record(now - stamp);
    delivered++;
    if (recording) {
      receipts.session.push(ws.session);
      receipts.id.push(decodeId(data));
      receipts.atUs.push(now);
    }
    return;
  }
  if (frameOf(data, OK_FRAME_LENGTH)) {
    ws.joined = true;
    joined++;
    if (recording) {
      ws.session = sessions.slot.push(cfg.first + ws.index);
      sessions.joinUs.push(nowUs());
      sessions.closeUs.push(0);
    }
    if (!ws.reopen) settled();
  } else {
    other++;
    if (errors.size < 5) errors.add(data.toString());
  }
}

function onError(err: Error): void {
  if (errors.size < 5) errors.add(err.message);
}

function onClose(this: WebSocket): void {
  const ws = this as BenchSocket;
  if (stopping) return;
  if (ws.joined) {
    joined--;
    closed++;
    if (ws.session >= 0) sessions.closeUs.set(ws.session, nowUs());
    if (cfg.reconnect) setTimeout(open, REOPEN_MIN_MS + Math.random() * REOPEN_SPREAD_MS, ws.index, 0, true);
    return;
  }
  const { index, attempt, reopen } = ws;
  if (cfg.reconnect) {
    setTimeout(open, Math.min(RETRY_MAX_MS, RETRY_DELAY_MS * 2 ** attempt) * (0.5 + Math.random()), index, attempt + 1, reopen);
    return;
  }
  if (attempt + 1 < MAX_ATTEMPTS) {
    setTimeout(open, RETRY_DELAY_MS * (attempt + 1), index, attempt + 1);
    return;
  }
  failed++;
  settled();
}

/** One attempt finished for good (joined or failed): start the next connection. */
function settled(): void {
  connecting--;
  pump();
  reportIfDone();
}

/** Tells the parent once every connection of the current count joined or failed for good. */
function reportIfDone(): void {
  if (reportedCount !== cfg.count && joined + failed + closed >= cfg.count) {
    reportedCount = cfg.count;
    send({ t: 'joined', count: cfg.count, joined, failed });
  }
}

function pump(): void {
  while (connecting < cfg.concurrency && nextIndex < cfg.count && !stopping) {
    connecting++;
    open(nextIndex++, 0);
  }
}

function tick(then?: () => void): void {
  const msg: HolderTick = {
    t: 'tick', joined, failed, closed, delivered, hist: hist.toSparse(), sum: hist.sum, max: hist.max, other,
  };
  if (then === undefined) send(msg);
  else process.send!(msg, then);
  hist.reset();
  delivered = 0;
  other = 0;
}

function stop(): void {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  clearInterval(joinTimer);
  if (errors.size > 0) process.stderr.write(`holder ${process.pid}: ${[...errors].join(' | ')}\n`);
  if (recording) writeColumns(cfg.recordFile!, { ...sessions, ...receipts });
  // Let the last tick reach the parent before the IPC channel goes.
  tick(() => {
    for (const ws of sockets) ws?.terminate();
    process.exit(0);
  });
}

const timer = setInterval(() => tick(), 1000);
const joinTimer = setInterval(retryJoins, JOIN_RETRY_MS / 2);

process.on('message', (msg: ParentToChild) => {
  if (msg.t === 'start') {
    cfg = msg as HolderStart;
    recording = cfg.recordFile !== null;
    pump();
    reportIfDone();
  } else if (msg.t === 'grow') {
    cfg.count = msg.count;
    pump();
    reportIfDone();
  } else if (msg.t === 'stop') stop();
});
// Never outlive the orchestrator.
process.on('disconnect', () => process.exit(0));
