// Registry (workers/shard/registry.ts), in-process: peers are the far ends of
// real MessageChannels (the test plays the other shards, or a second Registry
// does), sockets are FakeSockets.

import t from 'tap';
import { shardCounters } from '../shared/counters';
import { Registry, type Socket } from '../workers/shard/registry';
import { confirmJoins, Protocol } from '../workers/shard/protocol';
import { createLogger } from '../shared/log';
import { F_MEMBERS, F_MEMBERS_ACK, type MembersUpdate, type PeerFrame } from '../shared/frames';
import { OK_FRAME } from '../shared/payload';
import { FakeSocket } from './helpers/fake-socket';
import { link, turn, type Link, type Teardown } from './helpers/ports';
import { attachPeer, cardOf, makeRegistry, update } from './helpers/shard-wiring';
import type { TemplatedApp } from 'uWebSockets.js';
import { AppTopics } from '../workers/shard/app-topics';

function registry(index: number, shards: number): { reg: Registry; confirmed: Socket[][] } {
  const confirmed: Socket[][] = [];
  const { reg } = makeRegistry(index, shards, (sockets) => confirmed.push([...sockets]));
  return { reg, confirmed };
}

function peer(t: Teardown, reg: Registry, index: number): Link<PeerFrame> {
  const k = link<PeerFrame>(t);
  attachPeer(reg, index, k.near);
  return k;
}

function members(frames: readonly PeerFrame[]): MembersUpdate[] {
  return frames.filter((f): f is MembersUpdate => f.t === F_MEMBERS);
}

const ws = (): Socket => new FakeSocket().ws;

t.test('a join on the owner shard is confirmed at once, nothing sent', async (t) => {
  const { reg } = registry(0, 2);
  const p1 = peer(t, reg, 1);
  await p1.fromCode();
  p1.take(); // the attach sync
  const a = cardOf(0, 2);
  t.equal(reg.join(ws(), a), true);
  t.same(await p1.fromCode(), [], 'no member update for an owned group');
  t.equal(reg.owned, 1);
  t.equal(reg.groupSize(a), 1);
});

t.test('joins for groups owned elsewhere: one update per owner per turn, confirmed on its ack', async (t) => {
  const { reg, confirmed } = registry(1, 3);
  const p0 = peer(t, reg, 0);
  const p2 = peer(t, reg, 2);
  await p0.fromCode();
  await p2.fromCode();
  p0.take();
  p2.take();
  const a0 = cardOf(0, 3, 'a');
  const b0 = cardOf(0, 3, 'b');
  const c2 = cardOf(2, 3, 'c');
  const w = [ws(), ws(), ws(), ws()];
  t.same([reg.join(w[0]!, a0), reg.join(w[1]!, a0), reg.join(w[2]!, b0), reg.join(w[3]!, c2)], [false, false, false, false], 'not confirmed now');

  const to0 = members(await p0.fromCode());
  const to2 = members(await p2.fromCode());
  t.equal(to0.length, 1, 'one frame to owner 0 for three joins');
  t.match(to0[0], { t: F_MEMBERS, sync: false, cards: [a0, b0], counts: [2, 1] });
  t.equal(to2.length, 1);
  t.match(to2[0], { t: F_MEMBERS, sync: false, cards: [c2], counts: [1] });
  t.same(confirmed, [], 'nothing confirmed before the owners acknowledged');

  p0.far.postMessage({ t: F_MEMBERS_ACK, id: to0[0]!.id + 1000 }); // unknown id: ignored
  p2.far.postMessage({ t: F_MEMBERS_ACK, id: to0[0]!.id }); // owner 0's id from owner 2: ignored
  await p0.toCode();
  await p2.toCode();
  t.same(confirmed, []);
  p0.far.postMessage({ t: F_MEMBERS_ACK, id: to0[0]!.id });
  await p0.toCode();
  t.same(confirmed, [[w[0], w[1], w[2]]], 'owner 0 acknowledged: its three joins');
  p2.far.postMessage({ t: F_MEMBERS_ACK, id: to2[0]!.id });
  await p2.toCode();
  t.same(confirmed, [[w[0], w[1], w[2]], [w[3]]]);
});

t.test('a leave reports the new count (0 when none left); joins of later turns get their own update', async (t) => {
  const { reg } = registry(1, 2);
  const p0 = peer(t, reg, 0);
  await p0.fromCode();
  p0.take();
  const a0 = cardOf(0, 2);
  const x = ws();
  const y = ws();
  reg.join(x, a0);
  reg.join(y, a0);
  t.match(members(await p0.fromCode()), [{ cards: [a0], counts: [2] }]);
  p0.take();
  reg.leave(x, a0);
  t.match(members(await p0.fromCode()), [{ cards: [a0], counts: [1] }]);
  p0.take();
  reg.leave(y, a0);
  reg.leave(y, a0); // twice: no effect
  t.match(members(await p0.fromCode()), [{ cards: [a0], counts: [0] }]);
  t.equal(reg.local.has(a0), false);
});

t.test("while the owner's port is null, joins are confirmed at once; attaching it syncs them", async (t) => {
  const { reg, confirmed } = registry(1, 3);
  const a0 = cardOf(0, 3, 'a');
  const b0 = cardOf(0, 3, 'b');
  const c2 = cardOf(2, 3, 'c');
  const d1 = cardOf(1, 3, 'd');
  t.equal(reg.join(ws(), a0), true);
  t.equal(reg.join(ws(), a0), true);
  t.equal(reg.join(ws(), b0), true);
  t.equal(reg.join(ws(), c2), true);
  t.equal(reg.join(ws(), d1), true);
  await turn();
  t.same(confirmed, [], 'nothing left to confirm later');

  const p0 = peer(t, reg, 0);
  const sync0 = members(await p0.fromCode());
  t.equal(sync0.length, 1);
  t.match(sync0[0], { sync: true, cards: [a0, b0], counts: [2, 1] }, 'every local member of the groups shard 0 owns');
  const p2 = peer(t, reg, 2);
  t.match(members(await p2.fromCode()), [{ sync: true, cards: [c2], counts: [1] }]);
});

t.test('attachPeer sends a sync even when there is nothing to tell; re-attaching closes the old port', async (t) => {
  const { reg, confirmed } = registry(0, 2);
  const first = peer(t, reg, 1);
  t.match(members(await first.fromCode()), [{ sync: true, cards: [], counts: [] }]);
  const a1 = cardOf(1, 2);
  const w = ws();
  t.equal(reg.join(w, a1), false);
  const closed = new Promise((resolve) => first.far.once('close', resolve));
  const second = peer(t, reg, 1); // re-attached in the same turn as the join
  await closed;
  t.pass('the old port was closed');
  const sync = members(await second.fromCode());
  t.match(sync, [{ sync: true, cards: [a1], counts: [1] }], 'the join went out in the sync, and only there');
  t.same(confirmed, []);
  second.far.postMessage({ t: F_MEMBERS_ACK, id: sync[0]!.id });
  await second.toCode();
  t.same(confirmed, [[w]], 'the join is confirmed by the ack of the sync');
});

t.test('applyMembers acknowledges each update with its id', async (t) => {
  const { reg } = registry(0, 2);
  const p1 = peer(t, reg, 1);
  await p1.fromCode();
  p1.take();
  const a0 = cardOf(0, 2);
  p1.far.postMessage(update(42, [a0], [3]));
  await p1.toCode();
  const acks = await p1.fromCode();
  t.same(acks, [{ t: F_MEMBERS_ACK, id: 42, seams: [] }]);
  t.equal(reg.groupSize(a0), 3);
});

t.test('dropPeer confirms joins waiting for that owner and forgets its members', async (t) => {
  const { reg, confirmed } = registry(1, 3);
  const p0 = peer(t, reg, 0);
  await p0.fromCode();
  p0.take();
  const a0 = cardOf(0, 3, 'a');
  const sent = ws();
  reg.join(sent, a0);
  t.equal(members(await p0.fromCode()).length, 1, 'update sent, not acknowledged');
  const unsent = ws();
  reg.join(unsent, cardOf(0, 3, 'b')); // still waiting for this turn's update
  reg.dropPeer(0);
  t.same(confirmed, [[sent], [unsent]], 'both confirmed at once');
  t.equal(reg.peers[0], null);
  p0.take();
  t.same(await p0.fromCode(), [], 'and nothing sent to the dead peer');

  // As owner: a peer's counts go away with it.
  const owner = registry(0, 3).reg;
  const x0 = cardOf(0, 3, 'x');
  const y0 = cardOf(0, 3, 'y');
  owner.applyMembers(1, update(1, [x0], [2]));
  owner.applyMembers(2, update(1, [x0, y0], [1, 3]));
  t.equal(owner.groupSize(x0), 3);
  t.equal(owner.groupSize(y0), 3);
  t.equal(owner.owned, 2);
  owner.dropPeer(1);
  t.equal(owner.groupSize(x0), 1, "peer 1's members gone");
  t.equal(owner.owned, 2);
  owner.dropPeer(2);
  t.equal(owner.groupSize(x0), -1);
  t.equal(owner.groupSize(y0), -1);
  t.equal(owner.owned, 0);
  t.equal(owner.remote.size, 0);
});

t.test('owned and groupSize count local and remote members together', async (t) => {
  const { reg } = registry(0, 2);
  const a0 = cardOf(0, 2, 'a');
  const b0 = cardOf(0, 2, 'b');
  const c1 = cardOf(1, 2, 'c');
  const setCount = (card: string, count: number): void => reg.applyMembers(1, update(1, [card], [count]));
  const w = ws();
  t.equal(reg.groupSize(a0), -1, 'no such group');
  reg.join(w, a0);
  t.equal(reg.owned, 1);
  setCount(a0, 2);
  t.equal(reg.owned, 1, 'the same group');
  t.equal(reg.groupSize(a0), 3);
  reg.leave(w, a0);
  t.equal(reg.owned, 1, 'still has remote members');
  t.equal(reg.groupSize(a0), 2);
  setCount(a0, 0);
  t.equal(reg.owned, 0);
  t.equal(reg.groupSize(a0), -1);
  setCount(b0, 1);
  t.equal(reg.owned, 1, 'remote members only');
  reg.join(ws(), b0);
  t.equal(reg.owned, 1);
  t.equal(reg.groupSize(b0), 2);
  setCount(b0, 0);
  t.equal(reg.owned, 1, 'local member left');
  t.equal(reg.groupSize(b0), 1);
  setCount(b0, 0);
  t.equal(reg.owned, 1, 'a repeated absolute count changes nothing');
  reg.join(ws(), c1);
  t.equal(reg.owned, 1, 'a group owned elsewhere is not counted');
});

t.test('two registries over a real channel: the owner learns of the join before it is confirmed', async (t) => {
  const shards = 2;
  const a = registry(0, shards);
  const b = registry(1, shards);
  const k = link<PeerFrame>(t);
  attachPeer(a.reg, 1, k.near);
  attachPeer(b.reg, 0, k.far);
  const card = cardOf(0, shards);
  const w = ws();
  let sizeAtConfirm = -2;
  const confirmedB = new Promise<void>((resolve) => {
    b.confirmed.push = (...s: Socket[][]): number => {
      sizeAtConfirm = a.reg.groupSize(card);
      resolve();
      return Array.prototype.push.apply(b.confirmed, s);
    };
  });
  t.equal(b.reg.join(w, card), false);
  await confirmedB;
  t.equal(sizeAtConfirm, 1, 'the owner counted the member when the join was confirmed');
  t.equal(a.reg.owned, 1);
  t.equal(b.reg.owned, 0);
  b.reg.leave(w, card);
  await k.fromCode();
  await k.toCode();
  await turn();
  await k.toCode();
  t.equal(a.reg.groupSize(card), -1);
  t.equal(a.reg.owned, 0);
});

t.test('"ok" answers wait for the owner: a ping after a pending join is answered after it, in order', async (t) => {
  const { reg } = makeRegistry(1, 2, confirmJoins);
  const apps = new AppTopics({ publish: () => true } as unknown as TemplatedApp);
  const p0 = peer(t, reg, 0);
  await p0.fromCode();
  p0.take();
  const s = new FakeSocket();
  const protocol = new Protocol(reg, apps, { maxIdLength: 64, joinRate: 0, verifier: null }, shardCounters(), createLogger('test', 'silent'));
  protocol.frame(s.ws, JSON.stringify({ event: 'join', data: { card_id: cardOf(0, 2) } }));
  protocol.frame(s.ws, JSON.stringify({ event: 'ping' }));
  t.same(s.sent, [], 'no ok before the owner acknowledged');
  const sent = members(await p0.fromCode());
  p0.far.postMessage({ t: F_MEMBERS_ACK, id: sent[0]!.id, seams: [] });
  await p0.toCode();
  t.same(s.sent, [OK_FRAME, OK_FRAME], 'both answers, once confirmed');
  t.same(s.corks, [[OK_FRAME, OK_FRAME]], 'in one corked write');
  protocol.frame(s.ws, JSON.stringify({ event: 'ping' }));
  t.equal(s.sent.length, 3, 'later answers go at once');
});
