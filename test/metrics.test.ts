// GET /metrics: what the shard, processor and main threads count, in one
// exposition that Prometheus's own promtool accepts; counters outlive a
// crashed shard; the push latency histogram.

import t from 'tap';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ownerOf } from '../shared/hash';
import { Client, postJson, ROOT, startServer, stats, until } from './helpers/server';
import { perShard, scrape, sum } from './helpers/metrics';
import { promtoolCheck } from './helpers/prometheus';

const RpcClient = (grpc.loadPackageDefinition(protoLoader.loadSync(join(ROOT, 'proto', 'rpc.proto'), { keepCase: true })) as any).proto.Rpc as typeof grpc.Client;

t.test('the threads\' numbers in one exposition, checked by promtool', async (t) => {
  const server = await startServer({ shards: 2, sets: ['metrics.latency_sample=1'] });
  t.teardown(() => server.stop());
  const a = await Client.open(server.wsUrl);
  const b = await Client.open(server.wsUrl);
  // One owner shard for both groups: each push reaches their shards as one piece (see the latency count below).
  t.equal(ownerOf('alice', 2), ownerOf('dave', 2));
  await a.join('alice');
  await b.join('dave', 'web');
  for (let i = 0; i < 10; i++) {
    t.equal((await postJson(`${server.http}/push`, { to: ['alice', 'dave', 'nobody'], content: `m${i}` })).status, 200);
  }
  await a.waitFrames(11);
  await b.waitFrames(11);
  // Errors of each kind: a WebSocket frame that is not JSON, an invalid join,
  // HTTP bad JSON and an unknown route, a refused gRPC push.
  const bad = await Client.open(server.wsUrl);
  bad.send('not json');
  t.equal(await bad.closed, 4000);
  a.send({ event: 'join', data: {} });
  await a.waitFrames(12);
  t.equal((await fetch(`${server.http}/push`, { method: 'POST', body: '{' })).status, 400);
  t.equal((await fetch(`${server.http}/nope`)).status, 404);
  const rpc: any = new RpcClient(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(() => rpc.close());
  const status = await new Promise<number>((resolve) => rpc.Push({ to: [], content: 'x' }, (err: grpc.ServiceError | null) => resolve(err?.code ?? 0)));
  t.equal(status, grpc.status.INVALID_ARGUMENT);

  const { text, metrics: m, type } = await scrape(server.http);
  t.match(type, /^text\/plain; version=0\.0\.4/, 'Prometheus text format');
  const check = await promtoolCheck(text);
  t.same(check, { code: 0, output: '' }, 'promtool check metrics: no problem');

  t.equal(sum(m, 'pusher_info', { driver: 'memory' }), 1);
  t.equal(perShard(m, 'pusher_connections').length, 2, 'connections per shard');
  t.equal(sum(m, 'pusher_connections'), 2);
  t.equal(sum(m, 'pusher_groups'), 2, 'alice and dave (nobody has no connection)');
  t.equal(sum(m, 'pusher_joins_total'), 2, 'the invalid join is not a join');
  t.equal(sum(m, 'pusher_pushes_accepted_total'), 10);
  t.equal(sum(m, 'pusher_pushes_delivered_total'), 20);
  t.equal(sum(m, 'pusher_pushes_undelivered_total'), 10, 'the deliveries to "nobody"');
  t.equal(sum(m, 'pusher_pushes_dropped_total'), 0);
  t.equal(sum(m, 'pusher_ws_errors_total', { code: 'PUSH_ERR_WS_BAD_JSON' }), 1);
  t.equal(sum(m, 'pusher_ws_errors_total', { code: 'PUSH_ERR_WS_JOIN_INVALID' }), 1);
  t.equal(sum(m, 'pusher_ws_errors_total'), 2);
  t.equal(sum(m, 'pusher_http_errors_total', { code: 'PUSH_ERR_BAD_JSON' }), 1);
  t.equal(sum(m, 'pusher_http_errors_total', { code: 'PUSH_ERR_NOT_FOUND' }), 1);
  t.equal(sum(m, 'pusher_grpc_errors_total', { code: 'PUSH_ERR_EMPTY_TO' }), 1);
  t.equal(sum(m, 'pusher_queue_depth'), 0);
  t.equal(sum(m, 'pusher_queue_in_flight'), 0);
  t.equal(sum(m, 'pusher_queue_connected'), 1);
  t.equal(sum(m, 'pusher_processor_threads'), 2);
  t.equal(sum(m, 'pusher_processor_messages_total'), 10);
  t.equal(sum(m, 'pusher_processor_routed_total'), 30, 'three card_ids per push');
  const batches = sum(m, 'pusher_processor_batches_total');
  t.ok(batches >= 1 && batches <= 10);
  t.equal(sum(m, 'pusher_processor_batch_messages_count'), batches, 'one batch size per batch');
  t.equal(sum(m, 'pusher_processor_batch_messages_sum'), 10);
  t.equal(sum(m, 'pusher_shard_up'), 2);
  t.equal(sum(m, 'pusher_shard_restarts_total'), 0);
  // Every push sampled (latency_sample = 1): observed once per shard that
  // wrote it (alice and dave may be on one shard or on two). Per owner's
  // piece, in fact: groups of different owners would be observed once each,
  // even on one shard; here they share one.
  const count = sum(m, 'pusher_push_latency_seconds_count');
  const shardsWriting = perShard(m, 'pusher_pushes_delivered_total').filter((n) => n > 0).length;
  t.equal(count, 10 * shardsWriting, 'one observation per push and shard that wrote it; none for "nobody"');
  t.equal(sum(m, 'pusher_push_latency_seconds_bucket', { le: '+Inf' }), count);
  t.ok(sum(m, 'pusher_push_latency_seconds_sum') > 0);

  const s = await stats(server);
  t.equal(s.shards.reduce((n, x) => n + x.delivered, 0), 20, '/stats reads the same counters');
  t.equal(s.queue.accepted, 10);
});

t.test('a crashed shard: its counters count on, its gauges drop, restarts are counted', async (t) => {
  const server = await startServer({ shards: 2 });
  t.teardown(() => server.stop());
  const clients: Client[] = [];
  for (let i = 0; i < 8; i++) {
    const c = await Client.open(server.wsUrl);
    await c.join(`c${i}`);
    clients.push(c);
  }
  await postJson(`${server.http}/push/batch`, { pushes: clients.map((_, i) => ({ to: [`c${i}`], content: 'before' })) });
  await Promise.all(clients.map((c) => c.waitFrames(2)));
  const before = (await scrape(server.http)).metrics;
  const conns = perShard(before, 'pusher_connections');
  const victim = conns[0]! >= conns[1]! ? 0 : 1;
  t.ok(conns[victim]! > 0, 'the shard to crash holds connections');
  const delivered = perShard(before, 'pusher_pushes_delivered_total')[victim]!;
  t.ok(delivered > 0);

  t.equal((await postJson(`${server.http}/debug/crash?shard=${victim}`, {})).body.crashed, true);
  await until(async () => {
    const m = (await scrape(server.http)).metrics;
    return perShard(m, 'pusher_shard_restarts_total')[victim] === 1 && perShard(m, 'pusher_shard_up')[victim] === 1;
  }, 'the shard is back');
  const after = (await scrape(server.http)).metrics;
  t.equal(perShard(after, 'pusher_connections')[victim], 0, 'its connections are gone');
  t.equal(perShard(after, 'pusher_pushes_delivered_total')[victim], delivered, 'its delivered counter kept its value: no counter reset for Prometheus');
  t.equal(sum(after, 'pusher_ws_errors_total', { code: 'PUSH_ERR_WS_INTERNAL' }), conns[victim], 'each connection it closed with 1011 is counted');
  t.equal(sum(after, 'pusher_connections'), 8 - conns[victim]!);
});
