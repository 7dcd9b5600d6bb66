// Queueing in nsqd (queue.driver = nsq): while a node is stopped, pushes other
// nodes accept pile up in its channel, and it delivers them all once it runs again.

import t from 'tap';
import { Nsqd } from './helpers/nsqd';
import { Client, postJson, startServer, stats, until } from './helpers/server';

const TOPIC = 'pusher';
const N = 200;

t.test('pushes accepted while a node is stopped wait in its channel and are delivered when it is back', async (t) => {
  const nsqd = await Nsqd.create(t);
  const sets = (channel: string): string[] => ['queue.driver=nsq', 'queue.warmup=0', `queue.nsqd_tcp=${nsqd.tcp}`, `queue.topic=${TOPIC}`, `queue.channel=${channel}`];
  // node-b's channel exists from its first run; then node-b stops (cleanly).
  const first = await startServer({ sets: sets('node-b') });
  t.teardown(() => first.stop());
  await until(async () => (await nsqd.channel(TOPIC, 'node-b')) !== null, 'node-b subscribed');
  t.equal(await first.stop('SIGTERM'), 0, 'node-b stopped with exit code 0');
  // Another node, on its own channel, keeps accepting pushes.
  const a = await startServer({ sets: sets('node-a') });
  t.teardown(() => a.stop());

  const results = await Promise.all(Array.from({ length: N }, (_, i) => postJson(`${a.http}/push`, { to: [`q${i % 4}`], content: `queued-${i}` })));
  t.same(results.filter((r) => r.status !== 200), [], `all ${N} pushes accepted`);
  const waiting = await nsqd.channel(TOPIC, 'node-b');
  t.equal(waiting?.depth, N, `node-b's channel holds all ${N}`);

  // Hold delivery in nsqd until node-b's clients are back: a push for an
  // offline recipient is dropped, as in gopusher.
  await nsqd.pauseChannel(TOPIC, 'node-b');
  const b = await startServer({ sets: sets('node-b') });
  t.teardown(() => b.stop());
  const clients = await Promise.all([0, 1, 2, 3].map(() => Client.open(b.wsUrl)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await Promise.all(clients.map((c, i) => c.join(`q${i}`)));
  await until(async () => (await stats(b)).queue.connected === true, 'node-b consumes');
  t.equal((await nsqd.channel(TOPIC, 'node-b'))?.depth, N, 'still queued while paused');

  await nsqd.unpauseChannel(TOPIC, 'node-b');
  await Promise.all(clients.map((c) => c.waitFrames(1 + N / 4, 15_000)));
  for (const [i, c] of clients.entries()) {
    t.same(c.data(1).sort(), Array.from({ length: N / 4 }, (_, k) => `queued-${4 * k + i}`).sort(), `q${i} got its ${N / 4} pushes`);
  }
  await until(async () => {
    const ch = await nsqd.channel(TOPIC, 'node-b');
    return ch !== null && ch.depth === 0 && ch.in_flight_count === 0;
  }, 'node-b finished every message');
});

t.test('a node on a channel nsqd has never seen: a push accepted during its warm-up reaches a member that joined (the channel exists before the first publish)', async (t) => {
  const nsqd = await Nsqd.create(t);
  // Another node's channel exists: nsqd copies messages to it, and to no channel created later.
  // (A topic without any channel keeps its messages for the first one.)
  t.equal((await fetch(`${nsqd.http}/topic/create?topic=${TOPIC}`, { method: 'POST' })).status, 200);
  t.equal((await fetch(`${nsqd.http}/channel/create?topic=${TOPIC}&channel=other-node`, { method: 'POST' })).status, 200);
  const server = await startServer({ sets: ['queue.driver=nsq', 'queue.warmup=2', `queue.nsqd_tcp=${nsqd.tcp}`, `queue.topic=${TOPIC}`, 'queue.channel=brand-new'] });
  t.teardown(() => server.stop());
  await until(async () => (await fetch(`${server.http}/readyz`)).status === 200, 'ready');
  t.not(await nsqd.channel(TOPIC, 'brand-new'), null, 'the channel exists once the node takes pushes');
  const c = await Client.open(server.wsUrl);
  t.teardown(() => c.close());
  await c.join('fresh');
  t.equal((await postJson(`${server.http}/push`, { to: ['fresh'], content: 'during the warm-up' })).status, 200);
  t.equal((await stats(server)).queue.connected, false, 'still warming up: not consuming yet');
  await c.waitFrames(2, 15_000);
  t.same(c.data(1), ['during the warm-up']);
});
