// Push sender (a child process): offers pushes at a fixed rate (token bucket
// refilled every ~1 ms) or as fast as its window of requests in flight allows,
// bounded by a count and a duration; each push's content carries its send time.
// Reports sent / accepted / failed once a second. Recording (chaos), each push
// also carries its id, and its send time, answer time and outcome are written
// to a file at the end.

import { encodeId, encodeStamp, nowUs } from './content';
import { Column, PushStatus, writeColumns } from './chaos-log';
import type { ParentToChild, SenderStart, SenderToParent } from './messages';
import type { Push, Transport, TransportEvents } from './transport';
import { HttpTransport } from './sender-http';
import { GrpcTransport } from './sender-grpc';

/** A rate-limited sender that fell behind sends at most this much backlog at once (then drops the debt). */
const MAX_BACKLOG_S = 0.1;
const CLOSE_TIMEOUT_MS = 15_000;
/** Pause after the server says its queue is full (503, RESOURCE_EXHAUSTED): hammering it only burns its CPU. */
const FULL_BACKOFF_MS = 5;
const FULL = /HTTP 503|RESOURCE_EXHAUSTED/;

let cfg: SenderStart;
let transport: Transport;
let t0 = 0;
let deadline = 0;
let groups = 0;
/** Pushes this sender started (its local push counter) and the rate debt skipped when behind. */
let sent = 0;
let skipped = 0;
let finished = false;
let pumpQueued = false;
let timerArmed = false;
let backoffUntil = 0;
const totals = { sent: 0, acked: 0, failed: 0, expected: 0 };
const tick = { sent: 0, acked: 0, failed: 0, expected: 0 };
const errors = new Set<string>();
/** Recording: one row per push, indexed by this sender's push counter; id = index + senders * row. */
let recording = false;
const rec = { id: new Column(), sendUs: new Column(), ackUs: new Column(), status: new Column() };

function settle(tag: number, pushes: number, status: number): void {
  if (!recording || tag < 0) return;
  const now = nowUs();
  for (let k = tag; k < tag + pushes; k++) {
    rec.ackUs.set(k, now);
    rec.status.set(k, status);
  }
}

function post(msg: SenderToParent): void {
  process.send!(msg);
}

const events: TransportEvents = {
  ack(pushes, expected, tag) {
    tick.acked += pushes;
    tick.expected += expected;
    totals.acked += pushes;
    totals.expected += expected;
    settle(tag, pushes, PushStatus.acked);
  },
  fail(pushes, reason, tag) {
    tick.failed += pushes;
    totals.failed += pushes;
    settle(tag, pushes, reason.startsWith('HTTP ') ? PushStatus.refused : PushStatus.connectionError);
    if (errors.size < 5) errors.add(reason);
    if (FULL.test(reason)) backoffUntil = performance.now() + FULL_BACKOFF_MS;
  },
  wake() {
    if (pumpQueued || finished) return;
    pumpQueued = true;
    setImmediate(pump);
  },
};

function groupSize(g: number): number {
  // A broadcast reaches every connection (the holders join without app_id unless --app-mix).
  if (cfg.path === 'http-broadcast') return cfg.connections;
  return Math.min(cfg.groupSize, cfg.connections - g * cfg.groupSize);
}

function pump(): void {
  pumpQueued = false;
  if (finished) return;
  const now = performance.now();
  const limit = cfg.count > 0 ? cfg.count : Infinity;
  if (now >= deadline || sent >= limit) {
    finish();
    return;
  }
  let due = limit;
  if (cfg.rate > 0) {
    due = Math.min(limit, (cfg.rate * (now - t0)) / 1000 - skipped);
    const backlog = due - sent;
    if (backlog > cfg.rate * MAX_BACKLOG_S) {
      // Recording, the offered load stays exact: what falls behind is a push that failed.
      if (recording) notSent(Math.min(limit - sent, Math.floor(backlog - cfg.rate * MAX_BACKLOG_S)));
      else skipped += backlog - cfg.rate * MAX_BACKLOG_S;
      due = sent + cfg.rate * MAX_BACKLOG_S;
    }
  }
  const sentUs = nowUs();
  const content = encodeStamp(sentUs);
  while (now >= backoffUntil && transport.room() > 0 && due - sent >= Math.min(cfg.batch, limit - sent)) {
    const n = Math.min(cfg.batch, limit - sent);
    const pushes: Push[] = new Array(n);
    let expected = 0;
    for (let i = 0; i < n; i++) {
      const id = cfg.index + cfg.senders * (sent + i);
      const g = id % groups;
      pushes[i] = { card: `c${g}`, content: recording ? content + encodeId(id) : content };
      expected += groupSize(g);
      if (recording) record(id, sentUs, PushStatus.unanswered);
    }
    transport.send(pushes, expected, sent);
    sent += n;
    tick.sent += n;
    totals.sent += n;
  }
  transport.flush();
  // One timer at a time refills the bucket and checks the deadline; answers
  // that open the window wake the pump sooner.
  if (!timerArmed) {
    timerArmed = true;
    setTimeout(onTimer, 1);
  }
}

function record(id: number, sentUs: number, status: number): void {
  rec.id.push(id);
  rec.sendUs.push(sentUs);
  rec.ackUs.push(0);
  rec.status.push(status);
}

function notSent(n: number): void {
  const at = nowUs();
  for (let i = 0; i < n; i++) record(cfg.index + cfg.senders * (sent + i), at, PushStatus.notSent);
  sent += n;
  tick.sent += n;
  tick.failed += n;
  totals.sent += n;
  totals.failed += n;
}

function onTimer(): void {
  timerArmed = false;
  pump();
}

function report(): void {
  post({ t: 'tick', ...tick });
  tick.sent = tick.acked = tick.failed = tick.expected = 0;
}

function finish(): void {
  if (finished) return;
  finished = true;
  transport.close(CLOSE_TIMEOUT_MS).then(() => {
    clearInterval(timer);
    if (recording) writeColumns(cfg.recordFile!, rec);
    report();
    process.send!({ t: 'done', ...totals, errors: [...errors] }, () => process.exit(0));
  }, (err: Error) => {
    process.stderr.write(`sender: close failed: ${err.message}\n`);
    process.exit(1);
  });
}

const timer = setInterval(report, 1000);

process.on('message', (msg: ParentToChild) => {
  if (msg.t === 'start') {
    cfg = msg as SenderStart;
    groups = Math.ceil(cfg.connections / cfg.groupSize);
    recording = cfg.recordFile !== null;
    transport = cfg.path === 'http' || cfg.path === 'http-batch' || cfg.path === 'http-broadcast'
      ? new HttpTransport(cfg.httpUrl, cfg.path === 'http-batch', cfg.conns, cfg.inflight, cfg.reconnect, events, cfg.apiKey, cfg.path === 'http-broadcast')
      : new GrpcTransport(cfg.grpcAddr, cfg.path, cfg.conns, cfg.inflight, events, cfg.apiKey);
    t0 = performance.now();
    deadline = t0 + cfg.durationMs;
    pump();
  } else if (msg.t === 'stop') {
    deadline = 0;
    events.wake();
  }
});
process.on('disconnect', () => process.exit(0));
