// Recovery end to end: real server (2 shards), real ws clients. A join with
// "recover" gets offset and epoch on every push frame; a join with "since"
// gets exactly what it missed, in order, then live pushes, even while pushes
// race the rejoin; what cannot be recovered says recovered:false. Plain
// gopusher-style clients see no change.

import t, { type Test } from 'tap';
import { ownerOf } from '../shared/hash';
import { cpuHog } from './helpers/load';
import { Client, getJson, postJson, startServer, stats, until, type Running } from './helpers/server';
import { SECRET, token } from './helpers/security';

interface Frame {
  type: number;
  data: string;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
}

interface Since {
  offset: number;
  epoch: string;
}

let server: Running;

t.before(async () => {
  server = await startServer({ shards: 2, sets: ['history.size=1000'] });
});
t.teardown(() => server.stop());

/** The `n`-th card with this prefix that shard `owner` owns. */
function owned(owner: number, prefix: string, n = 0): string {
  for (let i = 0; ; i++) if (ownerOf(`${prefix}-${i}`, 2) === owner && n-- === 0) return `${prefix}-${i}`;
}

function parsed(c: Client, from = 0): Frame[] {
  return c.frames.slice(from).map((f) => JSON.parse(f) as Frame);
}

/** Sends a join with recovery and resolves with its reply (the first frame after it that says "recovered"). */
async function joinRecovering(c: Client, card: string, since?: Since, app?: string, joinToken?: string): Promise<Frame> {
  const from = c.frames.length;
  c.send({ event: 'join', data: { card_id: card, recover: true, ...(since ? { since } : {}), ...(app ? { app_id: app } : {}), ...(joinToken ? { token: joinToken } : {}) } });
  let reply: Frame | undefined;
  await until(async () => (reply = parsed(c, from).find((f) => f.recovered !== undefined)) !== undefined, `join reply for ${card}`);
  return reply!;
}

async function push(card: string, content: string, appID?: string): Promise<void> {
  const res = await postJson(`${server.http}/push`, { to: [card], content, ...(appID ? { appID } : {}) });
  if (res.status !== 200) throw new Error(`push failed: ${JSON.stringify(res)}`);
}

/** Index of the connection's latest join reply. */
function lastReply(c: Client): number {
  const all = parsed(c);
  for (let i = all.length - 1; i >= 0; i--) if (all[i]!.recovered !== undefined) return i;
  return -1;
}

/** Pushes after the connection's latest join reply (replayed, then live), parsed. */
function pushes(c: Client): Frame[] {
  return parsed(c, lastReply(c) + 1);
}

async function waitFor(c: Client, what: (f: Frame[]) => boolean, label: string): Promise<void> {
  await until(async () => what(parsed(c)), label);
}

t.test('a plain join still gets {"type":1,"data":…} byte for byte, beside a recovering member of the same card', async (t) => {
  const card = 'mixed';
  const plain = await Client.open(server.wsUrl);
  await plain.join(card);
  const rec = await Client.open(server.wsUrl);
  const reply = await joinRecovering(rec, card);
  t.match(reply, { type: 1, data: 'ok', recovered: false, offset: 0, epoch: /^[\w-]+$/ }, 'a first recovering join: position 0, nothing to recover');
  await push(card, 'héllo "x"');
  await plain.waitFrames(2);
  t.equal(plain.frames[1], '{"type":1,"data":"héllo \\"x\\""}', 'plain: exactly gopusher\'s frame');
  await rec.waitFrames(2);
  t.equal(rec.frames[1], `{"type":1,"data":"héllo \\"x\\"","offset":1,"epoch":"${reply.epoch}"}`, 'recovering: offset and epoch after data');
  await Promise.all([plain.close(), rec.close()]);
});

t.test('disconnect, pushes, rejoin with since: exactly the missed ones in order, then live ones', async (t) => {
  for (const owner of [0, 1]) {
    const card = owned(owner, 'gap');
    const a = await Client.open(server.wsUrl);
    const r0 = await joinRecovering(a, card);
    await push(card, 'one');
    await waitFor(a, (f) => f.length === 2, 'first push');
    const last = parsed(a)[1]!;
    t.same(last, { type: 1, data: 'one', offset: r0.offset! + 1, epoch: r0.epoch }, `owner ${owner}: live push with its position`);
    await a.close();
    // A push answered 200 is queued, not yet delivered: a plain member shows when it was.
    const witness = await Client.open(server.wsUrl);
    await witness.join(card);
    for (const c of ['two', 'three', 'four']) await push(card, c);
    await witness.waitFrames(4);
    await witness.close();
    const b = await Client.open(server.wsUrl);
    const r1 = await joinRecovering(b, card, { offset: last.offset!, epoch: last.epoch! });
    t.same(r1, { type: 1, data: 'ok', recovered: true, offset: last.offset! + 3, epoch: last.epoch }, 'recovered, at the newest offset');
    await push(card, 'five');
    await waitFor(b, (f) => f.length === 5, 'missed and live');
    t.same(pushes(b).map((f) => [f.data, f.offset]), [['two', 2], ['three', 3], ['four', 4], ['five', 5]], 'missed ones in order, then the live one');
    await b.close();
  }
});

t.test('pushes racing rejoins: across every reconnect, each push exactly once, in order', async (t) => {
  cpuHog(t);
  // Groups owned by either shard; connections land on either shard.
  const cards = [owned(0, 'race', 0), owned(0, 'race', 1), owned(1, 'race', 0), owned(1, 'race', 1)];
  const sent = new Map(cards.map((c) => [c, [] as string[]]));
  // The first joins, before any push: every push then has an offset from 1.
  const first = await Promise.all(cards.map(async (card) => {
    const c = await Client.open(server.wsUrl);
    return { c, reply: await joinRecovering(c, card) };
  }));
  let stop = false;
  // One sequential sender per card: the order they were accepted is the order sent.
  const senders = cards.map(async (card) => {
    for (let i = 0; !stop; i++) {
      await push(card, `${card}:${i}`);
      sent.get(card)!.push(`${card}:${i}`);
    }
  });
  const rounds = 30;
  const received = await Promise.all(cards.map(async (card, k) => {
    const got: Frame[] = [];
    let since: Since | undefined;
    let c: Client | null = null;
    for (let round = 0; ; round++) {
      // A new connection, or (every third round) a rejoin on the same one.
      if (round > 0 && round % 3 !== 2) {
        await c!.close();
        c = await Client.open(server.wsUrl);
      }
      const reply = round === 0 ? first[k]!.reply : await joinRecovering(c!, card, since);
      c ??= first[k]!.c;
      if (since !== undefined && !reply.recovered) throw new Error(`round ${round}: not recovered: ${JSON.stringify(reply)} since ${JSON.stringify(since)}`);
      const at = lastReply(c);
      if (round === rounds - 1) return { c, at, got };
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
      // What came after the reply so far; what comes later, the next join gets again.
      const frames = parsed(c, at + 1);
      got.push(...frames);
      const last = frames.at(-1);
      since = last !== undefined ? { offset: last.offset!, epoch: last.epoch! } : { offset: reply.offset!, epoch: reply.epoch! };
    }
  }));
  stop = true;
  await Promise.all(senders);
  for (const [i, card] of cards.entries()) {
    const { c, at, got } = received[i]!;
    const total = sent.get(card)!.length;
    // The rest, live, on the last connection.
    await until(async () => (parsed(c).at(-1)?.offset ?? 0) >= total, `${card}: the last push`);
    got.push(...parsed(c, at + 1));
    t.same(got.map((f) => f.offset), Array.from({ length: total }, (_, k) => k + 1), `${card}: offsets 1..${total}, none missing or twice`);
    t.same(got.map((f) => f.data), sent.get(card), `${card}: every push in the order sent`);
    t.equal(new Set(got.map((f) => f.epoch)).size, 1, `${card}: one epoch`);
    await c.close();
  }
});

t.test('several connections of one card, on both shards: every one gets the same positions', async (t) => {
  const card = 'tabs';
  const before = await stats(server);
  const tabs = await Promise.all(Array.from({ length: 16 }, () => Client.open(server.wsUrl)));
  const replies = await Promise.all(tabs.map((c) => joinRecovering(c, card)));
  const after = await stats(server);
  after.shards.forEach((s, i) => t.ok(s.clients > before.shards[i]!.clients, `shard ${i} holds some`));
  t.equal(new Set(replies.map((r) => `${r.offset}/${r.epoch}`)).size, 1, 'one position for all');
  for (const c of ['a', 'b', 'c']) await push(card, c);
  await Promise.all(tabs.map((c) => waitFor(c, (f) => f.length === 4, 'three pushes')));
  const base = replies[0]!.offset!;
  for (const c of tabs) t.same(parsed(c, 1), ['a', 'b', 'c'].map((d, k) => ({ type: 1, data: d, offset: base + k + 1, epoch: replies[0]!.epoch })));
  // Half of them go away, miss two, and come back with since.
  const away = tabs.slice(0, 8);
  await Promise.all(away.map((c) => c.close()));
  await push(card, 'd');
  await push(card, 'e');
  await Promise.all(tabs.slice(8).map((c) => waitFor(c, (f) => f.length === 6, 'd and e')));
  const back = await Promise.all(away.map(async () => {
    const c = await Client.open(server.wsUrl);
    return { c, reply: await joinRecovering(c, card, { offset: base + 3, epoch: replies[0]!.epoch! }) };
  }));
  await Promise.all(back.map(({ c }) => waitFor(c, (f) => f.length === 3, 'missed two')));
  for (const { c, reply } of back) {
    t.equal(reply.recovered, true);
    t.same(pushes(c).map((f) => [f.data, f.offset]), [['d', base + 4], ['e', base + 5]]);
  }
  await Promise.all([...tabs.slice(8), ...back.map((b) => b.c)].map((c) => c.close()));
});

t.test('a join that moves a connection to another card recovers that card', async (t) => {
  const x = owned(0, 'move-x');
  const y = owned(1, 'move-y');
  const other = await Client.open(server.wsUrl);
  const ry = await joinRecovering(other, y);
  await push(y, 'y1');
  await push(y, 'y2');
  await waitFor(other, (f) => f.length === 3, 'y pushes');
  await other.close();
  const c = await Client.open(server.wsUrl);
  await joinRecovering(c, x);
  await push(y, 'y3');
  const reply = await joinRecovering(c, y, { offset: ry.offset! + 1, epoch: ry.epoch! });
  await push(x, 'x-after-leaving');
  await push(y, 'y4');
  await waitFor(c, (f) => f.some((g) => g.data === 'y4'), 'live y push');
  t.equal(reply.recovered, true);
  t.same(pushes(c).map((f) => f.data), ['y2', 'y3', 'y4'], 'y\'s missed pushes then live ones; nothing of x after the move');
  await c.close();
});

t.test('app_id: missed pushes for another app are left out, as live ones are', async (t) => {
  const card = 'apps-history';
  const c = await Client.open(server.wsUrl);
  const r = await joinRecovering(c, card, undefined, 'ios');
  await c.close();
  await push(card, 'for web', 'web');
  await push(card, 'for ios', 'ios');
  await push(card, 'for all');
  const d = await Client.open(server.wsUrl);
  const reply = await joinRecovering(d, card, { offset: r.offset!, epoch: r.epoch! }, 'ios');
  await waitFor(d, (f) => f.length === 3, 'two pushes');
  t.equal(reply.recovered, true);
  t.same(pushes(d).map((f) => [f.data, f.offset]), [['for ios', r.offset! + 2], ['for all', r.offset! + 3]], 'offsets still count every push to the card');
  await d.close();
});

t.test('an unknown epoch, or an offset beyond the newest: recovered:false and the current position', async (t) => {
  const card = 'wrong';
  const c = await Client.open(server.wsUrl);
  const r = await joinRecovering(c, card);
  await push(card, 'x');
  await waitFor(c, (f) => f.length === 2, 'push');
  const bad = await joinRecovering(c, card, { offset: 1, epoch: 'not-an-epoch' });
  t.same(bad, { type: 1, data: 'ok', recovered: false, offset: r.offset! + 1, epoch: r.epoch });
  const ahead = await joinRecovering(c, card, { offset: r.offset! + 5, epoch: r.epoch! });
  t.equal(ahead.recovered, false);
  const same = await joinRecovering(c, card, { offset: r.offset! + 1, epoch: r.epoch! });
  t.same(same, { type: 1, data: 'ok', recovered: true, offset: r.offset! + 1, epoch: r.epoch }, 'nothing missed: recovered, nothing replayed');
  await push(card, 'y');
  await waitFor(c, (f) => f.at(-1)?.data === 'y', 'live');
  t.equal(parsed(c).filter((f) => f.data === 'x').length, 1, 'no replay of what it had');
  await c.close();
});

t.test('history overflow and TTL: recovered:false; idle cards are forgotten', async (t: Test) => {
  const small = await startServer({ shards: 2, sets: ['history.size=4', 'history.ttl=1'] });
  t.teardown(() => small.stop());
  const card = owned(1, 'small');
  // A plain member keeps the card's record (and epoch) alive however long pushes pause.
  const keeper = await Client.open(small.wsUrl);
  await keeper.join(card);
  // Pushed and delivered: the keeper (a plain member of the card) got it.
  const pushTo = async (card: string, content: string): Promise<void> => {
    const seen = keeper.frames.length;
    t.equal((await postJson(`${small.http}/push`, { to: [card], content })).status, 200);
    await keeper.waitFrames(seen + 1);
  };
  const a = await Client.open(small.wsUrl);
  const r = await joinRecovering(a, card);
  await a.close();
  for (let i = 0; i < 4; i++) await pushTo(card, `fits-${i}`);
  const b = await Client.open(small.wsUrl);
  const fits = await joinRecovering(b, card, { offset: r.offset!, epoch: r.epoch! });
  t.equal(fits.recovered, true, 'four missed, four kept');
  await waitFor(b, (f) => f.length === 5, 'replay');
  await b.close();
  for (let i = 0; i < 5; i++) await pushTo(card, `over-${i}`);
  const c = await Client.open(small.wsUrl);
  const over = await joinRecovering(c, card, { offset: fits.offset!, epoch: fits.epoch! });
  t.same(over, { type: 1, data: 'ok', recovered: false, offset: fits.offset! + 5, epoch: fits.epoch }, 'five missed, four kept: not recovered');
  await c.close();

  await pushTo(card, 'soon stale');
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  const d = await Client.open(small.wsUrl);
  const stale = await joinRecovering(d, card, { offset: over.offset!, epoch: over.epoch! });
  t.equal(stale.recovered, false, 'the missed push is older than history.ttl');
  t.equal(stale.epoch, over.epoch, 'a card with a member keeps its epoch');
  await Promise.all([d.close(), keeper.close()]);
  const historyCards = async (): Promise<number> => (await stats(small)).shards.reduce((n, s) => n + s.historyCards, 0);
  await until(async () => (await historyCards()) === 0, 'the card without members is forgotten after ttl', 5_000);
  const e = await Client.open(small.wsUrl);
  const gone = await joinRecovering(e, card, { offset: over.offset!, epoch: over.epoch! });
  t.equal(gone.recovered, false);
  t.not(gone.epoch, over.epoch, 'a forgotten card starts a new epoch');
  t.equal(gone.offset, 0);
  await e.close();
});

t.test('the owner shard crashes: a new epoch, recovered:false; members elsewhere get the new positions live', async (t) => {
  const crashy = await startServer({ shards: 2 });
  t.teardown(() => crashy.stop());
  const card = owned(0, 'crash');
  const clients = await Promise.all(Array.from({ length: 8 }, () => Client.open(crashy.wsUrl)));
  const replies = await Promise.all(clients.map((c) => joinRecovering(c, card)));
  const epoch = replies[0]!.epoch!;
  t.equal((await postJson(`${crashy.http}/push`, { to: [card], content: 'before' })).status, 200);
  await Promise.all(clients.map((c) => waitFor(c, (f) => f.length === 2, 'before')));
  t.same((await postJson(`${crashy.http}/debug/crash?shard=0`, {})).body, { crashed: true });
  await until(async () => (await stats(crashy)).restarts[0] === 1, 'shard 0 exited').catch((e) => { console.error('DBGOUT', crashy.output()); throw e; });
  // Back: the owner answers for its card again (/stats answers for a restarting shard too).
  await until(async () => (await getJson(`${crashy.http}/isOnline?cardID=${card}`)).status === 200, 'shard 0 restarted');
  const survivors = clients.filter((c) => c.closeCode === null);
  t.ok(clients.every((c) => c.closeCode === null || c.closeCode === 1011), 'the crashed shard\'s connections closed with 1011');
  t.ok(survivors.length > 0, `${survivors.length} of 8 connections were on shard 1 and stayed`);

  const back = await Client.open(crashy.wsUrl);
  const reply = await joinRecovering(back, card, { offset: replies[0]!.offset! + 1, epoch });
  t.equal(reply.recovered, false, 'history lost with the owner');
  t.not(reply.epoch, epoch, 'a new epoch');
  t.equal((await postJson(`${crashy.http}/push`, { to: [card], content: 'after' })).status, 200);
  for (const c of [...survivors, back]) {
    await waitFor(c, (f) => f.at(-1)?.data === 'after', 'after');
    t.same(parsed(c).at(-1), { type: 1, data: 'after', offset: reply.offset! + 1, epoch: reply.epoch }, 'the new epoch\'s positions, also on the surviving shard');
  }
  await Promise.all([...survivors, back].map((c) => c.close()));
});

t.test('bad recovery fields: PUSH_ERR_WS_JOIN_INVALID, the connection stays open and keeps its group', async (t) => {
  const c = await Client.open(server.wsUrl);
  await c.join('keeps');
  const bad: unknown[] = [
    { card_id: 'x', recover: 'yes' },
    { card_id: 'x', since: 5 },
    { card_id: 'x', since: { offset: -1, epoch: 'e' } },
    { card_id: 'x', since: { offset: 1.5, epoch: 'e' } },
    { card_id: 'x', since: { offset: 1 } },
    { card_id: 'x', since: { offset: 1, epoch: 7 } },
    { card_id: 'x', since: null },
  ];
  for (const data of bad) {
    const n = c.frames.length;
    c.send({ event: 'join', data });
    await c.waitFrames(n + 1);
    t.match(JSON.parse(c.frames[n]!), { type: 2, code: 'PUSH_ERR_WS_JOIN_INVALID' }, JSON.stringify(data));
  }
  await push('keeps', 'still here');
  await waitFor(c, (f) => f.at(-1)?.data === 'still here', 'a push to the group it kept');
  t.equal(c.frames.at(-1), '{"type":1,"data":"still here"}', 'still a plain member');
  t.equal(c.closeCode, null);
  await c.close();
});

t.test('signed joins: a verified join recovers too, and a ping sent behind it is answered after its missed pushes', async (t) => {
  const signed = await startServer({ shards: 2, sets: [`auth.join_secret=${SECRET}`] });
  t.teardown(() => signed.stop());
  const card = owned(0, 'signed');
  const pushTo = async (content: string): Promise<void> => {
    t.equal((await postJson(`${signed.http}/push`, { to: [card], content })).status, 200);
  };
  const witness = await Client.open(signed.wsUrl);
  witness.send({ event: 'join', data: { card_id: card, token: await token({ sub: card }) } });
  await witness.waitFrames(1);
  const a = await Client.open(signed.wsUrl);
  const first = await joinRecovering(a, card, undefined, undefined, await token({ sub: card }));
  await a.close();
  await pushTo('m1');
  await pushTo('m2');
  await witness.waitFrames(3);
  const b = await Client.open(signed.wsUrl);
  b.send({ event: 'join', data: { card_id: card, token: await token({ sub: card }), since: { offset: first.offset, epoch: first.epoch } } });
  b.send({ event: 'ping' });
  await b.waitFrames(4);
  const got = parsed(b);
  t.match(got[0], { data: 'ok', recovered: true, offset: first.offset! + 2 });
  t.same(got.slice(1, 3).map((f) => [f.data, f.offset]), [['m1', first.offset! + 1], ['m2', first.offset! + 2]], 'the missed pushes');
  t.same(got[3], { type: 1, data: 'ok' }, 'then the ping\'s answer');
  await Promise.all([b.close(), witness.close()]);
});
