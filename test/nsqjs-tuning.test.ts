// workers/processor/nsqjs-tuning.ts replaces nsqjs internals (frame parsing,
// message hand-off, respond, a batch FIN). Here a tuned Reader consumes from
// two real nsqds at once, so batches mix connections, and answers the way the
// processors do: finishAll for most, REQ with a delay for some. nsqd's own
// counters say whether every answer reached it, on the right connection.
// Then the parser's edges (from a review that compared it with stock nsqjs):
// a throwing listener, a corrupt frame size, a compressed connection.

import type { Message } from 'nsqjs';
import { NSQDConnection, Reader } from 'nsqjs';
import t from 'tap';
import { finishAll } from '../workers/processor/nsqjs-tuning';
import { Nsqd } from './helpers/nsqd';
import { until } from './helpers/server';

const TOPIC = 'tuning';
const CHANNEL = 'c';
const PER_NSQD = 3_000;

t.test('a tuned Reader FINs batches across two nsqds, requeues on request, and nsqd sees every answer', async (t) => {
  const nsqds = [await Nsqd.create(t), await Nsqd.create(t)];
  for (const n of nsqds) await n.createChannel(TOPIC, CHANNEL);
  // Bodies "<nsqd>:<i>", large enough that frames straddle socket reads.
  const pad = 'x'.repeat(300);
  await Promise.all(nsqds.map(async (n, k) => {
    for (let i = 0; i < PER_NSQD; i += 100) {
      const body = Array.from({ length: 100 }, (_, j) => `${k}:${i + j}:${pad}`).join('\n');
      const res = await fetch(`${n.http}/mpub?topic=${TOPIC}`, { method: 'POST', body });
      if (!res.ok) throw new Error(`mpub: ${res.status}`);
    }
  }));

  const reader = new Reader(TOPIC, CHANNEL, {
    nsqdTCPAddresses: nsqds.map((n) => n.tcp), maxInFlight: 1_000, outputBufferTimeout: 1, lookupdPollInterval: 1, maxAttempts: 0,
  });
  t.teardown(() => reader.close());
  /** Deliveries per body, and the attempts each one came with. */
  const seen = new Map<string, number[]>();
  let batch: Message[] = [];
  let mixed = 0;
  reader.on('message', (m) => {
    const body = m.body.toString();
    const key = body.slice(0, body.indexOf(':', 2));
    seen.set(key, [...(seen.get(key) ?? []), m.attempts]);
    if (batch.length === 0) setImmediate(settle);
    batch.push(m);
  });
  // Every 10th body is requeued once (50 ms), as a failed batch would be; the rest finished together.
  const settle = (): void => {
    const msgs = batch;
    batch = [];
    if (new Set(msgs.map((m) => m.connection)).size > 1) mixed++;
    const fin: Message[] = [];
    for (const m of msgs) {
      const body = m.body.toString();
      const i = Number(body.slice(2, body.indexOf(':', 2)));
      if (i % 10 === 0 && m.attempts === 1) m.requeue(50, false);
      else fin.push(m);
    }
    finishAll(fin);
    // Answered once only: a second finishAll writes nothing (nsqd would answer E_FIN_FAILED and close).
    finishAll(fin);
  };
  reader.connect();

  await until(async () => {
    const chans = await Promise.all(nsqds.map((n) => n.channel(TOPIC, CHANNEL)));
    return chans.every((c) => c !== null && c.depth === 0 && c.in_flight_count === 0 && c.deferred_count === 0) && seen.size === 2 * PER_NSQD;
  }, 'both channels empty, nothing in flight or deferred', 60_000);

  t.equal(seen.size, 2 * PER_NSQD, 'every body was received');
  const wrong: string[] = [];
  for (const [key, attempts] of seen) {
    const want = Number(key.slice(2)) % 10 === 0 ? '1,2' : '1';
    if (attempts.join() !== want) wrong.push(`${key}: attempts ${attempts.join()}`);
  }
  t.same(wrong, [], 'each requeued body came again once (attempts 1, 2), every other one once');
  for (const n of nsqds) {
    const c = (await n.channel(TOPIC, CHANNEL))!;
    t.equal(c.requeue_count, PER_NSQD / 10, 'nsqd counted each REQ');
    t.equal(c.timeout_count, 0, 'no message waited for its timeout (every FIN arrived)');
    t.notMatch(n.output(), /E_FIN_FAILED|E_INVALID/, 'no answer nsqd refused');
  }
  t.ok(mixed > 0, `some batches held messages of both nsqds (${mixed})`);
});

/** An nsqd frame: size, type, payload. */
function frame(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b.writeInt32BE(4 + payload.length, 0);
  b.writeInt32BE(type, 4);
  payload.copy(b, 8);
  return b;
}

/** A message frame: timestamp, attempts 1, a 16-byte id, body "body-<i>". */
function messageFrame(i: number): Buffer {
  const p = Buffer.alloc(26 + 8);
  p.writeUInt16BE(1, 8);
  p.write(String(i).padStart(16, '0'), 10, 'latin1');
  p.write(`body-${String(i).padStart(3, '0')}`, 26, 'latin1');
  return frame(2, p);
}

/** A subscribed connection without a socket, fed by hand. */
function subscribedConnection(): NSQDConnection {
  const conn = new NSQDConnection('127.0.0.1', 1, 't', 'c', {});
  conn.statemachine.goto('READY_RECV');
  // Closing it (the ERROR state) destroys this instead of a socket.
  (conn as unknown as { conn: unknown }).conn = { destroyed: true, destroy(): void {} };
  return conn;
}

t.test('a throwing message listener costs no frame: the rest of the chunk is read with the next one', async (t) => {
  const conn = subscribedConnection();
  const got: string[] = [];
  const errors: string[] = [];
  conn.on('error', (err: Error) => errors.push(err.message));
  conn.on('message', (m: Message) => {
    got.push(m.body.toString());
    if (got.length === 2) throw new Error('listener failed');
  });
  const stream = Buffer.concat([0, 1, 2, 3, 4].map(messageFrame));
  // First chunk: messages 0, 1, 2 and part of 3.
  const cut = 3 * messageFrame(0).length + 10;
  t.throws(() => conn.receiveData(stream.subarray(0, cut)), /listener failed/);
  conn.receiveData(stream.subarray(cut));
  t.same(got, ['body-000', 'body-001', 'body-002', 'body-003', 'body-004'], 'every frame read once, in order');
  t.same(errors, [], 'no garbage read as an nsqd error');
});

t.test('a frame size too small for a frame type closes the connection instead of looping', async (t) => {
  const conn = subscribedConnection();
  const errors: string[] = [];
  conn.on('error', (err: Error) => errors.push(err.message));
  const bad = Buffer.alloc(8);
  bad.writeInt32BE(-8, 0);
  conn.receiveData(Buffer.concat([messageFrame(0), bad, messageFrame(1)]));
  t.same(errors, ['nsqd sent a frame of size -8']);
  t.equal(conn.statemachine.current_state_name, 'CLOSED');
});

t.test('a Reader with deflate still receives every message (IDENTIFY and compressed bytes in one chunk)', async (t) => {
  const nsqd = await Nsqd.create(t);
  await nsqd.createChannel('deflate', 'c');
  for (let i = 0; i < 20; i++) await nsqd.pub('deflate', Buffer.from(`m${i}`));
  // deflate is an nsqjs Reader option the server never sets (not in src/types/nsqjs.d.ts).
  const reader = new Reader('deflate', 'c', { nsqdTCPAddresses: [nsqd.tcp], maxInFlight: 10, maxAttempts: 0, lookupdPollInterval: 1, deflate: true } as never);
  t.teardown(() => reader.close());
  // What nsqd sends within 30 ms is handed over as one chunk, so the IDENTIFY
  // answer (which turns compression on) and the first compressed bytes
  // always share one (over a real socket they do only sometimes).
  const receive = NSQDConnection.prototype.receiveData;
  const held = new Map<NSQDConnection, Buffer[]>();
  NSQDConnection.prototype.receiveData = function (this: NSQDConnection, data: Buffer): void {
    const q = held.get(this);
    if (q !== undefined) {
      q.push(data);
      return;
    }
    held.set(this, [data]);
    setTimeout(() => {
      const chunks = held.get(this)!;
      held.delete(this);
      receive.call(this, Buffer.concat(chunks));
    }, 30);
  };
  t.teardown(() => {
    NSQDConnection.prototype.receiveData = receive;
  });
  let got = 0;
  reader.on('message', (m) => {
    got++;
    setImmediate(() => finishAll([m]));
  });
  reader.connect();
  await until(async () => got === 20, '20 messages over deflate');
  t.equal(got, 20);
});
