// ShardLinks (workers/processor/shard-links.ts), in-process: each "shard" is
// the far end of a real MessageChannel; the test reads the frames it gets and
// acknowledges them, and checks when the processor's tasks settle.

import t from 'tap';
import { once } from 'node:events';
import { ShardLinks, ShardWaitError, type Part } from '../workers/processor/shard-links';
import { OwnerBatch } from '../workers/processor/owner-batch';
import { F_ACK, F_DELIVER, F_REPLAY_END, F_SKIP, type ProcessorFrame } from '../shared/frames';
import { link, watch, type Link, type Teardown } from './helpers/ports';

function part(card: string): OwnerBatch {
  const b = new OwnerBatch();
  b.nextMessage();
  b.add(card, `{"type":1,"data":"${card}"}`, '');
  return b;
}

/** Parts for `shards` shards with a batch for each listed shard. */
function parts(shards: number, ...to: number[]): Part[] {
  const p: Part[] = new Array(shards);
  for (const s of to) p[s] = part(`card-${s}`);
  return p;
}

function links(t: Teardown, shards: number, waitMs = 10_000): ShardLinks {
  const l = new ShardLinks(shards, waitMs);
  t.teardown(() => l.close());
  return l;
}

function attach(t: Teardown, l: ShardLinks, shard: number, firstSeq = 0): Link<ProcessorFrame> {
  const k = link<ProcessorFrame>(t);
  l.attach(shard, k.near, firstSeq);
  return k;
}

/** A compact view of what a shard received: D<seq> batch, S<seq> skip, END. */
function kinds(frames: readonly ProcessorFrame[]): string[] {
  return frames.map((f) => (f.t === F_DELIVER ? `D${f.seq}` : f.t === F_SKIP ? `S${f.seq}` : f.t === F_REPLAY_END ? 'END' : '?'));
}

function ack(k: Link<ProcessorFrame>, seq: number): void {
  k.far.postMessage({ t: F_ACK, seq });
}

t.test('a task resolves only when every shard that got a batch acknowledged it (40 shards)', async (t) => {
  const n = 40;
  const l = links(t, n);
  const shards = Array.from({ length: n }, (_, s) => attach(t, l, s));
  for (const k of shards) await k.fromCode();
  for (const k of shards) t.same(kinds(k.take()), ['END'], 'a fresh attach with nothing to replay');

  const all = Array.from({ length: n }, (_, s) => s);
  const task = watch(l.send(0, parts(n, ...all)));
  for (let s = 0; s < n; s++) {
    const got = await shards[s]!.fromCode();
    t.equal(got.length, 1);
    t.equal(got[0]!.t === F_DELIVER && got[0]!.cards[0], `card-${s}`, `shard ${s} got its own batch`);
  }
  for (let s = 0; s < n - 1; s++) {
    ack(shards[s]!, 0);
    ack(shards[s]!, 0); // a repeated ack counts once
  }
  for (let s = 0; s < n - 1; s++) await shards[s]!.toCode();
  t.equal(task.state, 'pending', 'shards 0..38 acknowledged: still waiting for 39');
  t.equal(l.pending, 1);
  ack(shards[n - 1]!, 0);
  await shards[n - 1]!.toCode();
  t.equal(task.state, 'resolved', 'resolved after the last shard acknowledged');
  t.equal(l.pending, 0);
});

t.test('shards without a batch get a skip; a task with no batch resolves at once', async (t) => {
  const l = links(t, 3);
  const shards = [0, 1, 2].map((s) => attach(t, l, s));
  for (const k of shards) {
    await k.fromCode();
    k.take();
  }
  const task = watch(l.send(5, parts(3, 0, 2)));
  const none = watch(l.send(6, []));
  t.same(kinds(await shards[0]!.fromCode()), ['D5', 'S6']);
  t.same(kinds(await shards[1]!.fromCode()), ['S5', 'S6']);
  t.same(kinds(await shards[2]!.fromCode()), ['D5', 'S6']);
  t.equal(none.state, 'resolved', 'nothing to acknowledge');
  ack(shards[1]!, 5); // from a shard that only got a skip: ignored
  ack(shards[0]!, 5);
  await shards[1]!.toCode();
  await shards[0]!.toCode();
  t.equal(task.state, 'pending', 'shard 2 has not acknowledged');
  ack(shards[2]!, 5);
  await shards[2]!.toCode();
  t.equal(task.state, 'resolved');
});

t.test('a shard whose port closes is not done: the new port gets the unacknowledged batches and skips, in order', async (t) => {
  const l = links(t, 3);
  const s0 = attach(t, l, 0);
  const s1 = attach(t, l, 1);
  const s2 = attach(t, l, 2);

  const t0 = watch(l.send(0, parts(3, 0, 1))); // shard 0 never acknowledges
  const t1 = watch(l.send(1, parts(3, 1))); // nothing for shard 0, before firstSeq
  const t2 = watch(l.send(2, parts(3, 0, 2))); // shard 0 never acknowledges
  const t3 = watch(l.send(3, parts(3, 0, 2))); // shard 0 acknowledges, shard 2 does not
  ack(s1, 0);
  ack(s1, 1);
  ack(s2, 2);
  ack(s0, 3);
  await s0.toCode();
  await s1.toCode();
  await s2.toCode();
  t.same(kinds(s0.take()), ['END', 'D0', 'S1', 'D2', 'D3']);
  t.same([t0.state, t1.state, t2.state, t3.state], ['pending', 'resolved', 'pending', 'pending']);

  const closed = once(s0.near, 'close');
  s0.far.close(); // the shard thread died
  await closed;
  t.same([t0.state, t2.state], ['pending', 'pending'], 'a closed port is not an acknowledgement');

  const t4 = watch(l.send(4, parts(3, 0))); // while shard 0 has no port
  const t5 = watch(l.send(5, parts(3, 1)));
  ack(s1, 5);
  await s1.toCode();
  t.equal(t5.state, 'resolved');

  const again = attach(t, l, 0, 2); // restarted, delivers in order from task 2
  const replay = await again.fromCode();
  t.same(kinds(replay), ['D0', 'D2', 'S3', 'D4', 'S5', 'END'],
    'unacknowledged batches (0 is late) and skips for tasks since firstSeq with nothing left for it, in seq order, then the end');
  const d2 = replay[1]!;
  t.equal(d2.t === F_DELIVER && d2.cards[0], 'card-0', 're-sent batch is the same batch');
  t.equal(d2.t === F_DELIVER && Buffer.from(d2.buf).toString(), '{"type":1,"data":"card-0"}', 'with its payload bytes');

  ack(again, 0);
  ack(again, 2);
  ack(again, 4);
  await again.toCode();
  t.same([t0.state, t2.state, t3.state, t4.state], ['resolved', 'resolved', 'pending', 'resolved'], 'the new shard acknowledged; task 3 still waits for shard 2');
  ack(s2, 3);
  await s2.toCode();
  t.equal(t3.state, 'resolved');
  t.equal(l.pending, 0);
});

t.test('tasks created before a shard has a port are sent when it attaches', async (t) => {
  const l = links(t, 2);
  const s1 = attach(t, l, 1);
  const t0 = watch(l.send(0, parts(2, 0)));
  const t1 = watch(l.send(1, parts(2, 1)));
  const t2 = watch(l.send(2, []));
  t.same(kinds(await s1.fromCode()), ['END', 'S0', 'D1', 'S2']);
  const s0 = attach(t, l, 0);
  t.same(kinds(await s0.fromCode()), ['D0', 'S1', 'S2', 'END']);
  ack(s0, 0);
  ack(s1, 1);
  await s0.toCode();
  await s1.toCode();
  t.same([t0.state, t1.state, t2.state], ['resolved', 'resolved', 'resolved']);
});

t.test('a shard that stays away longer than waitMs fails the tasks waiting for it', async (t) => {
  const l = links(t, 2, 50);
  const s0 = attach(t, l, 0);
  const s1 = attach(t, l, 1);
  const waits0 = watch(l.send(0, parts(2, 0, 1)));
  const only1 = watch(l.send(1, parts(2, 1)));
  ack(s1, 0);
  await s1.toCode();
  const closed = once(s0.near, 'close');
  s0.far.close();
  await closed;
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.equal(waits0.state, 'rejected');
  t.ok(waits0.error instanceof ShardWaitError, 'with ShardWaitError');
  t.equal(only1.state, 'pending', 'a task not waiting for shard 0 is untouched');
  ack(s1, 1);
  await s1.toCode();
  t.equal(only1.state, 'resolved');
  t.equal(l.pending, 0);
});

t.test('a task with no port ever for its shard fails after waitMs', async (t) => {
  const l = links(t, 1, 50);
  const task = watch(l.send(0, parts(1, 0)));
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.equal(task.state, 'rejected');
  t.ok(task.error instanceof ShardWaitError);
});

t.test('a shard back within waitMs keeps its tasks', async (t) => {
  const l = links(t, 1, 50);
  const s0 = attach(t, l, 0);
  const task = watch(l.send(0, parts(1, 0)));
  const closed = once(s0.near, 'close');
  s0.far.close();
  await closed;
  const again = attach(t, l, 0, 0);
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.equal(task.state, 'pending', 'not failed: the shard came back');
  t.same(kinds(await again.fromCode()), ['D0', 'END']);
  ack(again, 0);
  await again.toCode();
  t.equal(task.state, 'resolved');
});
