// queue.driver = nsq against a real nsqd: pushes over HTTP, bodies a gopusher
// producer publishes straight to nsqd, and garbage, which is finished and
// counted, never redelivered.

import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import t from 'tap';
import { Nsqd, Nsqlookupd } from './helpers/nsqd';
import { Client, ROOT, postJson, startServer, stats, until } from './helpers/server';

const TOPIC = 'pusher';
const CHANNEL = 'delivery-test';
const PushRequest = protobuf.loadSync(join(ROOT, 'proto', 'rpc.proto')).lookupType('proto.PushRequest');

t.test('HTTP pushes and gopusher-produced bodies are delivered through nsqd; garbage is finished once', async (t) => {
  // nsqd with its own defaults: it refuses a 1 ms output buffer timeout, and the consumer goes unbuffered.
  const nsqd = await Nsqd.create(t, { stock: true });
  const server = await startServer({ sets: ['queue.driver=nsq', 'queue.warmup=0', `queue.nsqd_tcp=${nsqd.tcp}`, `queue.topic=${TOPIC}`, `queue.channel=${CHANNEL}`] });
  t.teardown(() => server.stop());
  const client = await Client.open(server.wsUrl);
  t.teardown(() => client.close());
  await client.join('c1');
  // The consumer connects on its own schedule: wait until nsqd sees it.
  await until(async () => (await stats(server)).queue.connected === true, 'the nsq queue is connected');

  const res = await postJson(`${server.http}/push`, { from: 'test', to: ['c1'], content: 'over http' });
  t.same(res, { status: 200, body: { code: 0, message: 'ok' } });
  await client.waitFrames(2);
  t.equal(client.data(1)[0], 'over http');

  await nsqd.pub(TOPIC, PushRequest.encode(PushRequest.create({ from: 'gopusher', to: ['c1'], content: 'from a gopusher producer' })).finish());
  await client.waitFrames(3);
  t.equal(client.data(1)[1], 'from a gopusher producer');

  // 'g' is field 12 with wire type 7: no protobuf decoder accepts it.
  await nsqd.pub(TOPIC, Buffer.from('garbage: not a PushRequest'));
  await until(async () => (await stats(server)).processors.undecodable === 1, 'the garbage is counted as undecodable');
  await until(async () => {
    const ch = await nsqd.channel(TOPIC, CHANNEL);
    return ch !== null && ch.depth === 0 && ch.in_flight_count === 0;
  }, 'the channel is empty with nothing in flight');
  const ch = (await nsqd.channel(TOPIC, CHANNEL))!;
  t.equal(ch.message_count, 3, 'three messages went through the channel');
  t.equal(ch.requeue_count, 0, 'none was requeued');
  t.equal(ch.timeout_count, 0, 'none timed out');
  t.equal(ch.deferred_count, 0, 'none waits for a retry');
  t.match(server.output(), /PUSH_ERR_BAD_MESSAGE/, 'the undecodable body is logged with its code');
  t.match(server.output(), /warn processor: nsqd refuses queue.output_buffer_timeout; consuming unbuffered.*code=PUSH_ERR_QUEUE_CONFIG/, 'a stock nsqd: the consumer says it goes unbuffered');

  // Still flowing afterwards, and the garbage did not come back.
  await postJson(`${server.http}/push`, { to: ['c1'], content: 'after the garbage' });
  await client.waitFrames(4);
  t.equal(client.data(1)[2], 'after the garbage');
  t.equal((await stats(server)).processors.undecodable, 1);
});

t.test('only lookupd_http configured: nsqd is discovered for publishing and consuming', async (t) => {
  const lookupd = await Nsqlookupd.create(t);
  const nsqd = await Nsqd.create(t, { lookupd });
  const server = await startServer({ sets: ['queue.driver=nsq', 'queue.warmup=0', 'queue.nsqd_tcp=', `queue.lookupd_http=${lookupd.http}`, `queue.topic=${TOPIC}`, `queue.channel=${CHANNEL}`] });
  t.teardown(() => server.stop());
  const client = await Client.open(server.wsUrl);
  t.teardown(() => client.close());
  await client.join('c2');
  // nsqd registers with nsqlookupd, then the producer finds it through /nodes;
  // the consumer finds it through /lookup once the topic exists (after this push).
  await until(async () => (await postJson(`${server.http}/push`, { to: ['c2'], content: 'discovered' })).status === 200, 'a push is accepted', 15_000);
  await client.waitFrames(2, 15_000);
  t.equal(client.data(1)[0], 'discovered');
  t.match(server.output(), new RegExp(`publishing to nsqd nsqd=${nsqd.tcp.replace(/\./g, '\\.')}`));
});
