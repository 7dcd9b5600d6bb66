// workers/processor/nsqjs-tuning.ts replaces nsqjs internals (frame parsing,
// message hand-off, respond, a batch FIN). Here a tuned Reader consumes from
// two real nsqds at once, so batches mix connections, and answers the way the
// processors do: finishAll for most, REQ with a delay for some. nsqd's own
// counters say whether every answer reached it, on the right connection.

import type { Message } from 'nsqjs';
import { Reader } from 'nsqjs';
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
