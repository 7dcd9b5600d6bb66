// Broadcast end to end: POST /broadcast, /broadcast/batch and gRPC Broadcast,
// BroadcastBatch against the real server (2 shards) with real ws clients on
// both shards; then through a real nsqd, whose message body is checked as an
// old (gopusher) consumer would read it.

import t, { type Test } from 'tap';
import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as nsq from 'nsqjs';
import { Nsqd } from './helpers/nsqd';
import { Client, ROOT, postJson, startServer, stats, until, type Running } from './helpers/server';

const RpcClient = (grpc.loadPackageDefinition(protoLoader.loadSync(join(ROOT, 'proto', 'rpc.proto'), { keepCase: true, longs: Number, defaults: true })) as any).proto.Rpc as typeof grpc.Client;
const PushRequest = protobuf.loadSync(join(ROOT, 'proto', 'rpc.proto')).lookupType('proto.PushRequest');
// gopusher's PushRequest: fields 1..4 only.
const GopusherPushRequest = protobuf.Root.fromJSON({
  nested: { proto: { nested: { PushRequest: { fields: {
    from: { type: 'string', id: 1 }, to: { rule: 'repeated', type: 'string', id: 2 }, appID: { type: 'string', id: 3 }, content: { type: 'string', id: 4 },
  } } } } },
}).lookupType('proto.PushRequest');

interface Fleet {
  a: Client[];
  b: Client[];
  none: Client[];
  unjoined: Client[];
}

/** Connections of app a and app b, joined without an app_id, and not joined, on both shards. */
async function fleet(t: Test, s: Running): Promise<Fleet> {
  const open = (n: number): Promise<Client[]> => Promise.all(Array.from({ length: n }, () => Client.open(s.wsUrl)));
  const f: Fleet = { a: await open(12), b: await open(6), none: await open(4), unjoined: await open(2) };
  await Promise.all([
    ...f.a.map((c, i) => c.join(`a-${i % 5}`, 'a')),
    ...f.b.map((c, i) => c.join(`b-${i}`, 'b')),
    ...f.none.map((c, i) => c.join(`n-${i}`)),
  ]);
  const per = (await stats(s)).shards.map((x) => x.clients);
  t.ok(per.every((n) => n > 0), `connections on both shards: ${per.join(', ')}`);
  t.teardown(() => Promise.all([...f.a, ...f.b, ...f.none, ...f.unjoined].map((c) => c.close())));
  return f;
}

/** Frames after the join's "ok" (or all frames of an unjoined connection). */
function after(c: Client, joined = true): string[] {
  return c.frames.slice(joined ? 1 : 0);
}

/** Waits until every connection of `group` has `n` frames past its join, then lets others' (wrong) frames arrive. */
async function settle(groups: Client[][], n: number): Promise<void> {
  for (const g of groups) await Promise.all(g.map((c) => c.waitFrames(n + 1)));
  await new Promise((r) => setTimeout(r, 200));
}

t.test('HTTP: a broadcast reaches every connection of its app on every shard and none of another; appID "" reaches every joined one', async (t) => {
  const s = await startServer({ shards: 2 });
  t.teardown(() => s.stop());
  const f = await fleet(t, s);
  t.same(await postJson(`${s.http}/broadcast`, { from: 'ops', appID: 'a', content: 'to "a"' }), { status: 200, body: { code: 0, message: 'ok' } });
  await settle([f.a], 1);
  for (const c of f.a) t.same(after(c), ['{"type":1,"data":"to \\"a\\""}'], 'app a: gopusher\'s frame, once');
  for (const c of [...f.b, ...f.none]) t.same(after(c), [], 'other apps and no app: nothing');
  for (const c of f.unjoined) t.same(after(c, false), [], 'not joined: nothing');

  t.equal((await postJson(`${s.http}/broadcast`, { content: 'to all' })).status, 200);
  await settle([f.a], 2);
  await settle([f.b, f.none], 1);
  for (const c of [...f.b, ...f.none]) t.same(after(c), ['{"type":1,"data":"to all"}']);
  for (const c of f.a) t.same(after(c).at(-1), '{"type":1,"data":"to all"}');
  for (const c of f.unjoined) t.same(after(c, false), [], 'not joined: nothing');
  const delivered = (await stats(s)).shards.reduce((n, x) => n + x.delivered, 0);
  t.equal(delivered, f.a.length * 2 + f.b.length + f.none.length, 'counted as delivered frames');

  // A connection that joins again with another app_id moves to that app's broadcasts.
  const mover = f.a[0]!;
  await mover.join('moved', 'b');
  const seen = mover.frames.length;
  t.equal((await postJson(`${s.http}/broadcast`, { appID: 'a', content: 'a only' })).status, 200);
  t.equal((await postJson(`${s.http}/broadcast`, { appID: 'b', content: 'b only' })).status, 200);
  await settle([f.a.slice(1)], 3);
  await settle([f.b], 2);
  for (const c of f.b) t.same(after(c).at(-1), '{"type":1,"data":"b only"}');
  for (const c of f.a.slice(1)) t.same(after(c).at(-1), '{"type":1,"data":"a only"}');
  await mover.waitFrames(seen + 1);
  await new Promise((r) => setTimeout(r, 200));
  t.same(mover.frames.slice(seen), ['{"type":1,"data":"b only"}'], 'the moved connection gets b\'s broadcast and not a\'s');
});

t.test('batches (HTTP and gRPC) keep their order; gRPC Broadcast; a recovering connection gets broadcasts without a position', async (t) => {
  const s = await startServer({ shards: 2 });
  t.teardown(() => s.stop());
  const rpc: any = new RpcClient(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(() => rpc.close());
  const call = (method: string, req: unknown): Promise<any> => new Promise((resolve, reject) => {
    rpc[method](req, { deadline: Date.now() + 10_000 }, (err: Error | null, reply: unknown) => (err ? reject(err) : resolve(reply)));
  });
  const clients = await Promise.all(Array.from({ length: 8 }, () => Client.open(s.wsUrl)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await Promise.all(clients.slice(1).map((c, i) => c.join(`k-${i}`, 'app')));
  const rec = clients[0]!;
  rec.send({ event: 'join', data: { card_id: 'k-rec', app_id: 'app', recover: true } });
  await rec.waitFrames(1);
  t.match(JSON.parse(rec.frames[0]!), { recovered: false, offset: 0 });

  const batch = await postJson(`${s.http}/broadcast/batch`, { broadcasts: [{ appID: 'app', content: '1' }, { content: '2' }, { appID: 'other', content: 'x' }] });
  t.same(batch, { status: 200, body: { code: 0, message: 'ok', accepted: 3 } });
  t.same(await call('Broadcast', { appID: 'app', content: '3' }), { code: 0, message: 'ok' });
  t.same(await call('BroadcastBatch', { broadcasts: [{ appID: 'app', content: '4' }, { appID: '', content: '5' }] }), { code: 0, message: 'ok', accepted: 2 });
  await Promise.all(clients.map((c) => c.waitFrames(6)));
  await new Promise((r) => setTimeout(r, 200));
  for (const c of clients) t.same(c.data(1), ['1', '2', '3', '4', '5'], 'every one, in the order accepted, nothing of another app');
  t.equal(rec.frames[1], '{"type":1,"data":"1"}', 'broadcasts are not numbered: no offset or epoch');
});

t.test('bad broadcasts get the documented codes', async (t) => {
  const s = await startServer({ shards: 1, sets: ['push.max_content=16', 'push.max_id_length=8'] });
  t.teardown(() => s.stop());
  const witness = await Client.open(s.wsUrl);
  t.teardown(() => witness.close());
  await witness.join('w');
  const cases: [string, unknown, string][] = [
    ['/broadcast', [], 'PUSH_ERR_INVALID_REQUEST'],
    ['/broadcast', { content: 5 }, 'PUSH_ERR_INVALID_REQUEST'],
    ['/broadcast', { content: 'x'.repeat(17) }, 'PUSH_ERR_CONTENT_TOO_LARGE'],
    ['/broadcast', { appID: 'x'.repeat(9), content: 'x' }, 'PUSH_ERR_BAD_ID'],
    ['/broadcast', '{not json', 'PUSH_ERR_BAD_JSON'],
    ['/broadcast/batch', { broadcasts: [] }, 'PUSH_ERR_EMPTY_BATCH'],
    ['/broadcast/batch', { broadcasts: {} }, 'PUSH_ERR_INVALID_REQUEST'],
    ['/broadcast/batch', { broadcasts: [{ content: 'ok' }, { content: 1 }] }, 'PUSH_ERR_INVALID_REQUEST'],
    ['/push', { to: ['c'], content: 'x', broadcast: true }, 'PUSH_ERR_INVALID_REQUEST'],
    ['/push', { to: ['c'], content: 'x', broadcast: 'yes' }, 'PUSH_ERR_INVALID_REQUEST'],
  ];
  for (const [path, body, code] of cases) {
    const res = await postJson(`${s.http}${path}`, body);
    t.equal(res.status, 400, `${path} ${JSON.stringify(body)}: 400`);
    t.equal(res.body.error, code, `${path} ${JSON.stringify(body)}: ${code}`);
  }
  const msg = (await postJson(`${s.http}/broadcast/batch`, { broadcasts: [{ content: 'ok' }, { content: 1 }] })).body.message;
  t.match(msg, /^broadcasts\[1\]: /, 'a batch names the broadcast at fault');
  t.equal((await postJson(`${s.http}/broadcast`, { content: 'fine' })).status, 200);
  await witness.waitFrames(2);
  t.same(witness.data(1), ['fine'], 'only the good broadcast was queued (the batch with a bad one queued nothing)');
});

t.test('NSQ: a broadcast is one PushRequest message (field 5 set, "to" empty) that old consumers deliver to no one', async (t) => {
  const nsqd = await Nsqd.create(t);
  const topic = 'pusher';
  await nsqd.createChannel(topic, 'node');
  await nsqd.createChannel(topic, 'old-consumer');
  const s = await startServer({ shards: 2, sets: ['queue.driver=nsq', 'queue.warmup=0', `queue.nsqd_tcp=${nsqd.tcp}`, `queue.topic=${topic}`, 'queue.channel=node'] });
  t.teardown(() => s.stop());
  const f = await fleet(t, s);
  await until(async () => (await stats(s)).queue.connected === true, 'the nsq queue is connected');

  // An old consumer: reads the same topic on its own channel, with gopusher's PushRequest.
  const bodies: Buffer[] = [];
  const reader = new nsq.Reader(topic, 'old-consumer', { nsqdTCPAddresses: [nsqd.tcp] });
  reader.on('message', (m) => {
    bodies.push(m.body);
    m.finish();
  });
  reader.connect();
  t.teardown(() => reader.close());

  t.equal((await postJson(`${s.http}/broadcast`, { from: 'ops', appID: 'a', content: 'over nsq' })).status, 200);
  // nsqd does not order messages across the processors' connections (README, Delivery guarantees): one at a time.
  await settle([f.a], 1);
  t.equal((await postJson(`${s.http}/broadcast/batch`, { broadcasts: [{ content: 'all over nsq' }] })).status, 200);
  await settle([f.a], 2);
  await settle([f.b, f.none], 1);
  for (const c of f.a) t.same(c.data(1), ['over nsq', 'all over nsq']);
  for (const c of [...f.b, ...f.none]) t.same(c.data(1), ['all over nsq']);
  for (const c of f.unjoined) t.same(c.frames, []);

  await until(async () => bodies.length === 2, 'the old consumer read both messages');
  const decoded = PushRequest.toObject(PushRequest.decode(bodies[0]!), { defaults: true });
  t.same(decoded, { from: 'ops', to: [], appID: 'a', content: 'over nsq', broadcast: true }, 'the NSQ body: a PushRequest with broadcast = true');
  const old = GopusherPushRequest.toObject(GopusherPushRequest.decode(bodies[0]!), { defaults: true });
  t.same(old, { from: 'ops', to: [], appID: 'a', content: 'over nsq' }, 'gopusher\'s PushRequest skips field 5 and sees no recipient');
});
