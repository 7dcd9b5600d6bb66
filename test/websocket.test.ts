// The WebSocket contract end to end: real server (2 shards), real ws clients,
// pushes over real HTTP.

import t from 'tap';
import { Client, getJson, postJson, startServer, stats, until, type Running } from './helpers/server';

let server: Running;

t.before(async () => {
  server = await startServer({ shards: 2 });
});
t.teardown(async () => {
  await server.stop();
});

async function openJoined(n: number, card: (i: number) => string, app?: (i: number) => string): Promise<Client[]> {
  const clients = await Promise.all(Array.from({ length: n }, () => Client.open(server.wsUrl)));
  await Promise.all(clients.map((c, i) => c.join(card(i), app?.(i))));
  return clients;
}

async function closeAll(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

t.test('ping answers ok', async (t) => {
  const c = await Client.open(server.wsUrl);
  c.send({ event: 'ping' });
  await c.waitFrames(1);
  t.same(JSON.parse(c.frames[0]!), { type: 1, data: 'ok' });
  await c.close();
});

t.test('a group spread over every shard receives one push', async (t) => {
  const before = await stats(server);
  const clients = await openJoined(32, () => 'spread');
  const after = await stats(server);
  // SO_REUSEPORT spreads connections by hash of the source port: with 32
  // connections on 2 shards, each shard holds some (all on one: p = 2^-31).
  after.shards.forEach((s, i) => t.ok(s.clients - before.shards[i]!.clients > 0, `shard ${i} holds members`));
  t.equal((await getJson(`${server.http}/group?cardID=spread`)).body.clientNum, 32);

  const res = await postJson(`${server.http}/push`, { from: 'x', to: ['spread'], content: 'to everyone' });
  t.same(res, { status: 200, body: { code: 0, message: 'ok' } });
  await Promise.all(clients.map((c) => c.waitFrames(2)));
  for (const c of clients) t.same(c.data(1), ['to everyone']);
  await closeAll(clients);
});

t.test('one push to two groups reaches both, and no one else', async (t) => {
  const a = await openJoined(3, () => 'two-a');
  const b = await openJoined(3, () => 'two-b');
  const other = await openJoined(1, () => 'two-other');
  await postJson(`${server.http}/push`, { to: ['two-a', 'two-b'], content: 'both' });
  await postJson(`${server.http}/push`, { to: ['two-other'], content: 'marker' });
  await Promise.all([...a, ...b].map((c) => c.waitFrames(2)));
  await other[0]!.waitFrames(2);
  for (const c of [...a, ...b]) t.same(c.data(1), ['both']);
  t.same(other[0]!.data(1), ['marker'], 'the third group got only its own push');
  await closeAll([...a, ...b, ...other]);
});

t.test('pushes to one group arrive in the order they were accepted', async (t) => {
  const clients = await openJoined(4, () => 'ordered');
  const n = 200;
  for (let i = 0; i < n; i++) {
    const res = await postJson(`${server.http}/push`, { to: ['ordered'], content: String(i) });
    t.equal(res.status, 200);
  }
  await Promise.all(clients.map((c) => c.waitFrames(n + 1)));
  const expected = Array.from({ length: n }, (_, i) => String(i));
  for (const c of clients) t.same(c.data(1), expected);
  await closeAll(clients);
});

t.test('appID filter: only connections that joined with that app_id', async (t) => {
  const clients = await openJoined(6, () => 'apps', (i) => (i % 2 === 0 ? 'web' : 'ios'));
  await postJson(`${server.http}/push`, { to: ['apps'], appID: 'ios', content: 'ios only' });
  await postJson(`${server.http}/push`, { to: ['apps'], content: 'all apps' });
  await Promise.all(clients.map((c, i) => c.waitFrames(i % 2 === 0 ? 2 : 3)));
  // Per-group order is kept, so a web client's first pushed frame is "all apps".
  clients.forEach((c, i) => t.same(c.data(1), i % 2 === 0 ? ['all apps'] : ['ios only', 'all apps'], `client ${i}`));
  await closeAll(clients);
});

t.test('several connections of one card_id all receive', async (t) => {
  const tabs = await openJoined(5, () => 'many-tabs');
  await postJson(`${server.http}/push`, { to: ['many-tabs'], content: 'hi' });
  await Promise.all(tabs.map((c) => c.waitFrames(2)));
  for (const c of tabs) t.same(c.data(1), ['hi']);
  await closeAll(tabs);
});

t.test('joining again moves the connection to the new group', async (t) => {
  const [c] = await openJoined(1, () => 'move-from');
  const stay = await openJoined(1, () => 'move-from');
  await c!.join('move-to');
  t.equal((await getJson(`${server.http}/group?cardID=move-from`)).body.clientNum, 1);
  t.equal((await getJson(`${server.http}/group?cardID=move-to`)).body.clientNum, 1);
  await postJson(`${server.http}/push`, { to: ['move-from'], content: 'old group' });
  await postJson(`${server.http}/push`, { to: ['move-to'], content: 'new group' });
  await stay[0]!.waitFrames(2);
  await c!.waitFrames(3);
  t.same(c!.data(2), ['new group'], 'the moved connection got only the new group push');
  t.same(stay[0]!.data(1), ['old group']);
  await closeAll([c!, ...stay]);
});

t.test('isOnline and group follow joins and closes; /system counts', async (t) => {
  const card = 'presence';
  t.same((await getJson(`${server.http}/isOnline?cardID=${card}`)).body, { result: 'no' });
  t.same((await getJson(`${server.http}/group?cardID=${card}`)).body, { clientNum: -1 });
  const sys0 = (await getJson(`${server.http}/system`)).body;

  const clients = await openJoined(6, () => card);
  t.same((await getJson(`${server.http}/isOnline?cardID=${card}`)).body, { result: 'yes' });
  t.same((await getJson(`${server.http}/group?cardID=${card}`)).body, { clientNum: 6 });
  const sys1 = (await getJson(`${server.http}/system`)).body;
  t.equal(sys1.clientNum - sys0.clientNum, 6);
  t.equal(sys1.groupNum - sys0.groupNum, 1);
  t.equal(sys1.cpuNum > 0, true);
  t.equal(sys1.goroutineNum, 1 + 2 + 2, 'threads: main + 2 shards + 2 processors');

  await clients[0]!.close();
  await until(async () => (await getJson(`${server.http}/group?cardID=${card}`)).body.clientNum === 5, 'group shrinks to 5');
  await closeAll(clients.slice(1));
  await until(async () => (await getJson(`${server.http}/isOnline?cardID=${card}`)).body.result === 'no', 'card goes offline');
  t.same((await getJson(`${server.http}/group?cardID=${card}`)).body, { clientNum: -1 });
});

t.test('a push to an offline card_id is accepted and counted undelivered', async (t) => {
  const before = await stats(server);
  const sum = (s: typeof before): number => s.shards.reduce((n, x) => n + x.undelivered, 0);
  const res = await postJson(`${server.http}/push`, { to: ['nobody-here'], content: 'lost' });
  t.equal(res.status, 200);
  await until(async () => sum(await stats(server)) === sum(before) + 1, 'undelivered counted');
});
