// GET /healthz and GET /readyz: ready only while every shard serves and the
// queue is connected, 503 with the reason otherwise. With NSQ also the
// metrics that only NSQ has (consumer connections, latency from nsqd's
// timestamp).

import t from 'tap';
import { Client, getJson, postJson, startServer, until } from './helpers/server';
import { Nsqd } from './helpers/nsqd';
import { scrape, sum } from './helpers/metrics';

t.test('ready with every shard up; a restarting shard makes it 503 with the reason, then ready again', async (t) => {
  const server = await startServer({ shards: 2 });
  t.teardown(() => server.stop());
  t.same(await getJson(`${server.http}/healthz`), { status: 200, body: { status: 'ok' } });
  t.same(await getJson(`${server.http}/readyz`), { status: 200, body: { ready: true, checks: { server: 'ok', shards: 'ok', queue: 'ok' } } });

  t.equal((await postJson(`${server.http}/debug/crash?shard=1`, {})).body.crashed, true);
  // The shard comes back within a few hundred ms: poll without pause.
  let seen: { status: number; body: any } | null = null;
  await until(async () => {
    const r = await getJson(`${server.http}/readyz`);
    if (r.status === 503) seen = r;
    return seen !== null;
  }, '/readyz answers 503 while the shard restarts', 5_000);
  t.same(seen, { status: 503, body: { ready: false, checks: { server: 'ok', shards: 'shard 1 restarting', queue: 'ok' } } });
  t.equal((await getJson(`${server.http}/healthz`)).status, 200, 'the process still serves: alive');
  await until(async () => (await getJson(`${server.http}/readyz`)).status === 200, 'ready again');
});

t.test('NSQ: not ready while nsqd is away; consumer gauges and latency from nsqd timestamps once it is there', async (t) => {
  const nsqd = await Nsqd.create(t, { start: false });
  const server = await startServer({
    shards: 2, sets: ['queue.driver=nsq', 'queue.warmup=0', `queue.nsqd_tcp=${nsqd.tcp}`, 'queue.channel=health', 'metrics.latency_sample=1'],
  });
  t.teardown(() => server.stop());
  const down = await getJson(`${server.http}/readyz`);
  t.equal(down.status, 503);
  t.equal(down.body.checks.queue, 'no connection to nsqd for publishing');
  t.equal(sum((await scrape(server.http)).metrics, 'pusher_queue_connected'), 0);

  await nsqd.start();
  await until(async () => (await getJson(`${server.http}/readyz`)).status === 200, 'ready once nsqd is up', 15_000);
  const client = await Client.open(server.wsUrl);
  t.teardown(() => client.close());
  await client.join('n');
  for (let i = 0; i < 5; i++) t.equal((await postJson(`${server.http}/push`, { to: ['n'], content: `p${i}` })).status, 200);
  await client.waitFrames(6);
  const m = (await scrape(server.http)).metrics;
  t.equal(sum(m, 'pusher_info', { driver: 'nsq' }), 1);
  t.equal(sum(m, 'pusher_nsq_consumers_connected'), 2, 'both processor threads consume');
  t.equal(sum(m, 'pusher_processor_threads'), 2);
  t.equal(sum(m, 'pusher_queue_connected'), 1);
  t.notOk(m.has('pusher_queue_depth'), 'no depth: nsqd has it');
  t.equal(sum(m, 'pusher_pushes_accepted_total'), 5, 'acknowledged by nsqd');
  t.equal(sum(m, 'pusher_processor_messages_total'), 5, 'consumed by the processor threads');
  t.equal(sum(m, 'pusher_push_latency_seconds_count'), 5, 'latency of every push, from nsqd\'s timestamp');
  const avg = sum(m, 'pusher_push_latency_seconds_sum') / 5;
  t.ok(avg > 0 && avg < 60, `a plausible latency (${avg} s): nsqd's nanoseconds read as such`);

  await nsqd.stop('SIGKILL');
  await until(async () => (await getJson(`${server.http}/readyz`)).status === 503, 'not ready once nsqd is gone', 15_000);
});
