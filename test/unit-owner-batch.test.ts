// OwnerBatch (workers/processor/owner-batch.ts): the layout of the
// DeliverBatch it builds (see Payloads in shared/frames.ts); route() passing
// latency samples on to it.

import t from 'tap';
import { OwnerBatch } from '../workers/processor/owner-batch';
import { route } from '../workers/processor/router';
import { F_DELIVER, type Payloads } from '../shared/frames';
import { renderPush } from '../shared/payload';
import { protoType } from '../shared/proto';
import { ownerOf } from '../shared/hash';
import { createLogger } from '../shared/log';

function payload(p: Payloads, m: number): string {
  const start = m === 0 ? 0 : p.ends[m - 1]!;
  return Buffer.from(p.buf, start, p.ends[m]! - start).toString('utf8');
}

/** card -> its payloads, as a shard reads them. */
function byCard(p: Payloads): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  p.cards.forEach((card, k) => {
    out[card] = Array.from(p.msgs.subarray(p.offs[k]!, p.offs[k + 1]!), (m) => payload(p, m));
  });
  return out;
}

t.test('build(): payloads once each, deliveries grouped by card in push order', async (t) => {
  const p0 = renderPush('first');
  const p1 = renderPush('second');
  const p3 = renderPush('héllo ✓ 😀 "quoted"'); // multi-byte UTF-8
  const b = new OwnerBatch();
  b.nextMessage();
  b.add('a', p0, '');
  b.add('b', p0, '');
  b.nextMessage();
  b.add('b', p1, 'app1');
  b.add('a', p1, 'app1');
  b.add('c', p1, 'app1');
  b.nextMessage(); // a message with no recipient on this shard: not stored
  b.nextMessage();
  b.add('a', p3, 'x');

  const f = b.build(7);
  t.equal(f.t, F_DELIVER);
  t.equal(f.seq, 7);
  t.same(f.cards, ['a', 'b', 'c'], 'each card once, in first-seen order');
  t.same(Array.from(f.offs), [0, 3, 5, 6], 'cards.length + 1 offsets');
  t.same(Array.from(f.msgs), [0, 1, 2, 0, 1, 1], 'payload indexes per card, push order within a card');
  t.same(f.apps, ['', 'app1', 'x'], 'one app per payload');
  const sizes = [p0, p1, p3].map((s) => Buffer.byteLength(s, 'utf8'));
  t.same(Array.from(f.ends), [sizes[0], sizes[0]! + sizes[1]!, sizes[0]! + sizes[1]! + sizes[2]!], 'ends are UTF-8 byte offsets');
  t.equal(f.buf.byteLength, sizes[0]! + sizes[1]! + sizes[2]!, 'the buffer holds exactly the payload bytes');
  t.same([0, 1, 2].map((m) => payload(f, m)), [p0, p1, p3], 'the exact payload bytes');
  t.same(byCard(f), { a: [p0, p1, p3], b: [p0, p1], c: [p1] });
});

t.test('build() again (a re-send to a restarted shard) gives a fresh buffer with the same content', async (t) => {
  const b = new OwnerBatch();
  b.nextMessage();
  b.add('a', renderPush('x'), '');
  const first = b.build(1);
  structuredClone(first.buf, { transfer: [first.buf] }); // what postMessage does to it
  t.equal(first.buf.byteLength, 0, 'the first buffer was transferred away');
  const second = b.build(1);
  t.same(byCard(second), { a: [renderPush('x')] });
});

t.test('an empty message does not take a payload slot', async (t) => {
  const b = new OwnerBatch();
  b.nextMessage();
  b.nextMessage();
  b.add('z', 'P', '');
  b.nextMessage();
  const f = b.build(0);
  t.same(Array.from(f.ends), [1]);
  t.same(Array.from(f.msgs), [0]);
  t.same(f.apps, ['']);
});

t.test('route(): sampled messages reach the batches of the shards their recipients are on, past bad bodies', async (t) => {
  const encode = (to: string[], content: string): Buffer => Buffer.from(protoType('PushRequest').encode({ from: '', to, appID: '', content }).finish());
  // Two card_ids with different owners among 2 shards.
  const cards = ['a', 'b', 'c', 'd', 'e'];
  const x = cards.find((c) => ownerOf(c, 2) === 0)!;
  const y = cards.find((c) => ownerOf(c, 2) === 1)!;
  const bodies = [encode([x], 'm0'), Buffer.from([0xff, 0xff]), encode([x, y], 'm2'), encode([y], 'm3')];
  // Messages 1 (undecodable), 2 and 3 are sampled.
  const routed = route(bodies, 2, createLogger('test', 'silent'), Float64Array.from([1, 100, 2, 200, 3, 300]));
  t.equal(routed.undecodable, 1);
  const [s0, s1] = [routed.parts[0]!.build(1), routed.parts[1]!.build(1)];
  t.same([...s0.samples!], [1, 200], 'shard 0: its payload 1 is message 2');
  t.same([...s1.samples!], [0, 200, 1, 300], 'shard 1: messages 2 and 3');
  t.equal(route([encode([x], 'm')], 2, createLogger('test', 'silent')).parts[0]!.build(1).samples, null, 'no samples: null');
});
