// Delivery (workers/shard/delivery.ts), in-process: the processor and the
// peer shards are far ends of real MessageChannels, members are FakeSockets.

import t from 'tap';
import { once } from 'node:events';
import { Registry } from '../workers/shard/registry';
import { Delivery } from '../workers/shard/delivery';
import { OwnerBatch } from '../workers/processor/owner-batch';
import { F_ACK, F_FORWARD, F_FORWARD_ACK, type AckFrame, type DeliverBatch, type ForwardBatch, type Payloads, type PeerFrame } from '../shared/frames';
import { renderPush } from '../shared/payload';
import { S_DELIVERED, S_DROPPED, S_LATENCY, S_SLOW_CLOSED, S_UNDELIVERED, shardCounters } from '../shared/counters';
import { FakeSocket } from './helpers/fake-socket';
import { link, type Link, type Teardown } from './helpers/ports';
import { attachPeer, cardOf, makeRegistry, update } from './helpers/shard-wiring';

const P0 = renderPush('zero');
const P1 = renderPush('one ✓');
const P2 = renderPush('two');

interface Shard {
  readonly reg: Registry;
  readonly delivery: Delivery;
  /** Links to the peers, by index (undefined for self). */
  readonly peers: (Link<PeerFrame> | undefined)[];
  /** The processor's link: acks arrive at its far end. */
  readonly proc: Link<AckFrame>;
}

function shard(t: Teardown, index: number, shards: number): Shard {
  const { reg, history } = makeRegistry(index, shards);
  const delivery = new Delivery(reg, shardCounters(), history, () => 0);
  const peers: (Link<PeerFrame> | undefined)[] = [];
  for (let s = 0; s < shards; s++) {
    if (s === index) {
      peers.push(undefined);
      continue;
    }
    const k = link<PeerFrame>(t);
    attachPeer(reg, s, k.near, delivery);
    peers.push(k);
  }
  return { reg, delivery, peers, proc: link<AckFrame>(t) };
}

/** A batch: each message is [payload, app, ...cards]. */
function build(seq: number, messages: [string, string, ...string[]][]): DeliverBatch {
  const b = new OwnerBatch();
  for (const [payload, app, ...cards] of messages) {
    b.nextMessage();
    for (const card of cards) b.add(card, payload, app);
  }
  return b.build(seq);
}

/** The delivery counters of a shard's buffer. */
function counts(d: Delivery): { delivered: number; undelivered: number; dropped: number } {
  const c = d.counters;
  return { delivered: c[S_DELIVERED]!, undelivered: c[S_UNDELIVERED]!, dropped: c[S_DROPPED]! };
}

function join(reg: Registry, card: string, app = ''): FakeSocket {
  const s = new FakeSocket(app);
  s.data.card = card;
  reg.join(s.ws, card);
  return s;
}

/** Sets peer `from`'s member counts on the owner, as its update would. */
function remote(reg: Registry, from: number, cards: string[], counts: number[]): void {
  reg.applyMembers(from, update(0, cards, counts));
}

/** The forwards that reached peer link `k` so far. */
async function forwards(k: Link<PeerFrame>): Promise<ForwardBatch[]> {
  await k.fromCode();
  return k.take().filter((f): f is ForwardBatch => f.t === F_FORWARD);
}

/** card -> payload texts of a forward. */
function byCard(p: Payloads): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  p.cards.forEach((card, k) => {
    out[card] = Array.from(p.msgs.subarray(p.offs[k]!, p.offs[k + 1]!), (m) => {
      const start = m === 0 ? 0 : p.ends[m - 1]!;
      return Buffer.from(p.buf, start, p.ends[m]! - start).toString('utf8');
    });
  });
  return out;
}

t.test('local delivery: one corked write per socket for several payloads, app filter, counters, ack', async (t) => {
  const sh = shard(t, 0, 1);
  const a = cardOf(0, 1, 'a');
  const b = cardOf(0, 1, 'b');
  const nobody = cardOf(0, 1, 'nobody');
  const all = join(sh.reg, a);
  const x = join(sh.reg, a, 'x');
  const y = join(sh.reg, b, 'y');
  const batch = build(3, [[P0, '', a, b, nobody], [P1, 'x', a], [P2, 'y', a, b]]);
  sh.delivery.deliver(batch, sh.proc.near);

  t.same(all.corks, [[P0]], "app '' gets only payloads for every app, inside one cork");
  t.same(x.corks, [[P0, P1]], "app x gets payloads for '' and x, in one cork");
  t.same(y.sent, [P0, P2], 'app y');
  t.same(y.corks, [[P0, P2]]);
  t.equal(all.binary + x.binary + y.binary, 0, 'text frames');
  t.same(counts(sh.delivery), { delivered: 5, undelivered: 1, dropped: 0 }, 'the delivery to a group with no member anywhere is undelivered');
  t.same(await sh.proc.fromCode(), [{ t: F_ACK, seq: 3 }], 'acknowledged to the processor at once (nothing forwarded)');
});

t.test('a single payload for a socket is written without cork; dropped sends are counted', async (t) => {
  const sh = shard(t, 0, 1);
  const a = cardOf(0, 1, 'a');
  const s = join(sh.reg, a);
  const full = join(sh.reg, a);
  full.result = 2; // over max_backpressure
  sh.delivery.deliver(build(0, [[P0, '', a]]), sh.proc.near);
  t.same(s.sent, [P0]);
  t.same(s.corks, [], 'not corked');
  t.same(counts(sh.delivery), { delivered: 1, undelivered: 0, dropped: 1 });
  sh.delivery.deliver(build(1, [[P1, '', a]]), sh.proc.near);
  t.same(counts(sh.delivery), { delivered: 2, undelivered: 0, dropped: 2 });
  t.equal(sh.delivery.counters[S_SLOW_CLOSED], 1, 'the slow client is counted once, however many frames it dropped');
});

t.test('sampled pushes: the latency of each payload written here is observed once', async (t) => {
  const sh = shard(t, 0, 1);
  const a = cardOf(0, 1, 'a');
  const nobody = cardOf(0, 1, 'nobody');
  join(sh.reg, a);
  join(sh.reg, a);
  const at = performance.timeOrigin + performance.now() - 3_000;
  const b = new OwnerBatch();
  b.nextMessage();
  b.add(a, P0, '');
  b.sample(at);
  b.nextMessage();
  b.add(nobody, P1, '');
  b.sample(at);
  b.nextMessage();
  b.add(a, P2, '');
  const batch = b.build(0);
  t.same([...batch.samples!], [0, at, 1, at], 'the batch carries payload index and accept time of each sampled message');
  sh.delivery.deliver(batch, sh.proc.near);
  const c = sh.delivery.counters;
  const { at: first, bounds } = S_LATENCY;
  t.equal(c[first + bounds.length + 2], 1, 'one observation: the payload written to two sockets, not the one with no member');
  t.ok(c[first + bounds.length + 1]! >= 3, 'its sum is at least the 3 s since acceptance');
  const below = bounds.findIndex((le) => le >= 3);
  t.equal([...c.subarray(first, first + below)].reduce((x, y) => x + y, 0), 0, 'no bucket below 3 s holds it');
});

t.test('the owner forwards to the peers holding members and acks only when they all acked', async (t) => {
  const sh = shard(t, 0, 3);
  const [, p1, p2] = sh.peers as [undefined, Link<PeerFrame>, Link<PeerFrame>];
  const a = cardOf(0, 3, 'a');
  const b = cardOf(0, 3, 'b');
  const c = cardOf(0, 3, 'c');
  const here = join(sh.reg, c);
  remote(sh.reg, 1, [a], [1]);
  remote(sh.reg, 2, [a, b], [2, 1]);
  await p1.fromCode();
  await p2.fromCode();
  p1.take();
  p2.take();

  sh.delivery.deliver(build(9, [[P0, '', a, b, c], [P1, '', a], [P2, 'y', b]]), sh.proc.near);
  t.same(here.sent, [P0], 'local member served');
  const f1 = await forwards(p1);
  const f2 = await forwards(p2);
  t.equal(f1.length, 1, 'one forward to peer 1');
  t.equal(f2.length, 1, 'one forward to peer 2');
  t.same(f1[0]!.cards, [a], 'peer 1 gets only the group it holds members of');
  t.same(byCard(f1[0]!), { [a]: [P0, P1] });
  t.same(f2[0]!.cards, [a, b]);
  t.same(byCard(f2[0]!), { [a]: [P0, P1], [b]: [P0, P2] });
  t.same(f2[0]!.apps, ['', '', 'y'], 'apps travel with the payloads');
  t.same(counts(sh.delivery).undelivered, 0, 'groups with remote members are not undelivered');

  t.same(await sh.proc.fromCode(), [], 'not acknowledged before the forwards');
  p2.far.postMessage({ t: F_FORWARD_ACK, id: f2[0]!.id });
  p2.far.postMessage({ t: F_FORWARD_ACK, id: f2[0]!.id }); // a repeat counts once
  await p2.toCode();
  t.same(await sh.proc.fromCode(), [], 'one of two forwards acknowledged');
  p1.far.postMessage({ t: F_FORWARD_ACK, id: f1[0]!.id });
  await p1.toCode();
  t.same(await sh.proc.fromCode(), [{ t: F_ACK, seq: 9 }], 'acknowledged once every forward was');
});

t.test('peerGone counts that peer\'s forwards as done; other peers still count', async (t) => {
  const sh = shard(t, 0, 3);
  const [, p1, p2] = sh.peers as [undefined, Link<PeerFrame>, Link<PeerFrame>];
  const a = cardOf(0, 3, 'a');
  remote(sh.reg, 1, [a], [1]);
  remote(sh.reg, 2, [a], [1]);
  await p1.fromCode();
  await p2.fromCode();
  p1.take();
  p2.take();
  sh.delivery.deliver(build(1, [[P0, '', a]]), sh.proc.near);
  sh.delivery.deliver(build(2, [[P1, '', a]]), sh.proc.near);
  const f1 = await forwards(p1);
  t.equal((await forwards(p2)).length, 2);
  sh.delivery.peerGone(1);
  t.same(await sh.proc.fromCode(), [], 'peer 2 has not acknowledged');
  p2.far.postMessage({ t: F_FORWARD_ACK, id: 999 }); // unknown: ignored
  await p2.toCode();
  sh.delivery.peerGone(2);
  t.same(await sh.proc.fromCode(), [{ t: F_ACK, seq: 1 }, { t: F_ACK, seq: 2 }], 'both peers gone: both tasks acknowledged');
  p1.far.postMessage({ t: F_FORWARD_ACK, id: f1[0]!.id }); // late ack of a forward already counted
  await p1.toCode();
  t.same(await sh.proc.fromCode(), [{ t: F_ACK, seq: 1 }, { t: F_ACK, seq: 2 }], 'no second ack');

  // After the peer's reset (its counts dropped) nothing is forwarded to it.
  sh.reg.dropPeer(1);
  sh.delivery.deliver(build(3, [[P2, '', a]]), sh.proc.near);
  t.equal((await forwards(p1)).length, 0, 'dropped peer gets nothing');
  t.equal((await forwards(p2)).length, 1);
});

t.test('forwarded(): a member shard delivers to its members and acks the owner', async (t) => {
  const sh = shard(t, 1, 2);
  const p0 = sh.peers[0]!;
  const a = cardOf(0, 2, 'a');
  const b = cardOf(0, 2, 'b');
  const m = join(sh.reg, a, 'x');
  await p0.fromCode();
  p0.take();
  const batch = build(0, [[P0, '', a, b], [P1, 'x', a], [P2, 'y', a]]);
  const frame: ForwardBatch = { ...batch, t: F_FORWARD, id: 17, pos: null };
  p0.far.postMessage(frame, [frame.buf]);
  await p0.toCode();
  t.same(m.corks, [[P0, P1]], 'its payloads, app-filtered, in one cork');
  t.same(await p0.fromCode(), [{ t: F_FORWARD_ACK, id: 17 }], 'acknowledged on the owner port');
  t.same(counts(sh.delivery), { delivered: 2, undelivered: 0, dropped: 0 }, 'a forward counts no undelivered (not the owner)');
  t.same(await sh.proc.fromCode(), [], 'no processor ack for a forward');
});

t.test('two shards over a real channel: owner delivers, forwards, member acks, owner acks the processor', async (t) => {
  const owner = shard(t, 0, 2);
  let joined!: () => void;
  const confirmed = new Promise<void>((resolve) => { joined = resolve; });
  const { reg: member, history: memberHistory } = makeRegistry(1, 2, () => joined());
  const memberDelivery = new Delivery(member, shardCounters(), memberHistory, () => 0);
  const k = link<PeerFrame>(t);
  // A real second shard in place of the test-held link.
  attachPeer(owner.reg, 1, k.near, owner.delivery);
  attachPeer(member, 0, k.far, memberDelivery);
  const a = cardOf(0, 2, 'a');
  const there = join(member, a);
  const here = join(owner.reg, a);
  await confirmed; // the owner applied the member's count
  t.equal(owner.reg.groupSize(a), 2);
  const acked = once(owner.proc.far, 'message');
  owner.delivery.deliver(build(5, [[P0, '', a], [P1, '', a]]), owner.proc.near);
  t.same(here.corks, [[P0, P1]]);
  t.same(await acked, [{ t: F_ACK, seq: 5 }]);
  t.same(there.corks, [[P0, P1]], 'the member shard delivered before the ack');
});
