// The gRPC service against the real server: a @grpc/grpc-js client loaded from
// proto/rpc.proto, real WebSocket clients, and the HTTP gateway for comparison.

import t, { type Test } from 'tap';
import * as http2 from 'node:http2';
import { dirname, join } from 'node:path';
import * as protobuf from 'protobufjs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { PushService } from '../src/api/push-service';
import { ApiKeys } from '../src/api/api-keys';
import { RateLimit } from '../src/api/rate-limit';
import { GrpcServer } from '../src/api/grpc';
import { createLogger } from '../shared/log';
import { Client, freePort, getJson, occupyPort, ROOT, startServer, type Running, type StartOptions } from './helpers/server';

const LOAD = { keepCase: true, longs: Number, defaults: true };
const PushRequest = protobuf.loadSync(join(ROOT, 'proto', 'rpc.proto')).lookupType('proto.PushRequest');
const RpcClient = (grpc.loadPackageDefinition(protoLoader.loadSync(join(ROOT, 'proto', 'rpc.proto'), LOAD)) as any).proto.Rpc as typeof grpc.Client;

/** A server plus a gRPC client to it, both stopped at teardown. */
async function setup(tt: Test, opts: StartOptions = {}): Promise<{ s: Running; rpc: any }> {
  const s = await startServer(opts);
  const rpc: any = new RpcClient(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  tt.teardown(async () => {
    rpc.close();
    // Assertions can't run after the test ended; a crash or an unclean exit fails it as a throw.
    const alive = s.proc.exitCode === null;
    const code = await s.stop();
    if (!alive || code !== 0) throw new Error(`server ${alive ? `exited ${code} on SIGTERM` : 'died during the test'}:\n${s.output()}`);
  });
  return { s, rpc };
}

function unary(rpc: any, method: string, req: unknown, deadline?: number): Promise<any> {
  return new Promise((resolve, reject) => {
    rpc[method](req, { deadline: deadline ?? Date.now() + 10_000 }, (err: grpc.ServiceError | null, reply: unknown) => (err ? reject(err) : resolve(reply)));
  });
}

/** Writes every batch on one PushStream, half-closes it, and resolves with the reply. */
function pushStream(rpc: any, batches: unknown[][]): Promise<any> {
  return new Promise((resolve, reject) => {
    const call = rpc.PushStream((err: grpc.ServiceError | null, reply: unknown) => (err ? reject(err) : resolve(reply)));
    for (const pushes of batches) call.write({ pushes });
    call.end();
  });
}

/** Asserts that `p` fails with gRPC status `status` and trailer pusher-error-code `code`. */
async function rejectsWith(tt: Test, p: Promise<unknown>, status: grpc.status, code: string): Promise<void> {
  const err = await p.then(() => null, (e: grpc.ServiceError) => e);
  tt.ok(err, `${code}: the call fails`);
  tt.equal(err?.code, status, `${code}: gRPC status ${grpc.status[status]}`);
  tt.same(err?.metadata.get('pusher-error-code'), [code], `${code}: pusher-error-code trailer`);
}

async function joined(s: Running, card: string): Promise<Client> {
  const c = await Client.open(s.wsUrl);
  await c.join(card);
  return c;
}

t.test('Push, queries, batches and reflection on one server', async (t) => {
  const { s, rpc } = await setup(t);
  const a = await joined(s, 'c1');
  const b = await joined(s, 'c2');
  const b2 = await joined(s, 'c2');
  t.teardown(() => Promise.all([a.close(), b.close(), b2.close()]));

  await t.test('Push delivers to every connection of the addressed groups', async (t) => {
    t.same(await unary(rpc, 'Push', { from: 'x', to: ['c1', 'c2'], content: 'hello' }), { code: 0, message: 'ok' });
    await Promise.all([a.waitFrames(2), b.waitFrames(2), b2.waitFrames(2)]);
    for (const c of [a, b, b2]) t.same(c.data(1), ['hello']);
  });

  await t.test('System, IsOnline and Group answer as the HTTP gateway does', async (t) => {
    // Outside cluster mode the HTTP answers have gopusher's fields only; a
    // client built from today's proto sees the cluster fields' proto3 default.
    const single = { nodes: 0, nodesAnswered: 0 };
    const sys = await unary(rpc, 'System', {});
    t.same(sys, { ...(await getJson(`${s.http}/system`)).body, ...single });
    t.equal(sys.clientNum, 3);
    for (const card of ['c1', 'c2', 'nobody']) {
      t.same(await unary(rpc, 'IsOnline', { cardID: card }), { ...(await getJson(`${s.http}/isOnline?cardID=${card}`)).body, ...single }, `IsOnline ${card}`);
      t.same(await unary(rpc, 'Group', { cardID: card }), { ...(await getJson(`${s.http}/group?cardID=${card}`)).body, ...single }, `Group ${card}`);
    }
    t.same(await unary(rpc, 'Group', { cardID: 'c2' }), { clientNum: 2, ...single });
    t.same(await unary(rpc, 'Group', { cardID: 'nobody' }), { clientNum: -1, ...single });
    t.same(await unary(rpc, 'Group', { cardID: 'c2', scope: 'node' }), { clientNum: 2, ...single }, 'scope node: the same outside cluster mode');
    await rejectsWith(t, unary(rpc, 'System', { scope: 'everywhere' }), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_BAD_SCOPE');
    t.same(Object.keys((await getJson(`${s.http}/system?scope=node`)).body), ['cpuNum', 'goroutineNum', 'clientNum', 'groupNum'], 'HTTP: gopusher\'s fields only');
    t.equal((await getJson(`${s.http}/group?cardID=c1&scope=all`)).body.error, 'PUSH_ERR_BAD_SCOPE');
  });

  await t.test('IsOnline and Group without cardID are INVALID_ARGUMENT, as HTTP answers 400', async (t) => {
    await rejectsWith(t, unary(rpc, 'IsOnline', {}), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_MISSING_CARD_ID');
    await rejectsWith(t, unary(rpc, 'Group', { cardID: '' }), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_MISSING_CARD_ID');
    t.equal((await getJson(`${s.http}/group?cardID=`)).status, 400);
  });

  await t.test('PushBatch delivers every push it acknowledged', async (t) => {
    const start = a.frames.length;
    const pushes = Array.from({ length: 40 }, (_, i) => ({ to: ['c1'], content: `batch-${i}` }));
    const reply = await unary(rpc, 'PushBatch', { pushes });
    t.same(reply, { code: 0, message: 'ok', accepted: 40 });
    await a.waitFrames(start + reply.accepted);
    t.same(a.data(start).sort(), pushes.map((p) => p.content).sort());
  });

  await t.test('PushStream delivers every push it acknowledged', async (t) => {
    const [startA, startB] = [a.frames.length, b.frames.length];
    const batches = Array.from({ length: 5 }, (_, m) => Array.from({ length: 30 }, (_, i) => ({ to: ['c1', 'c2'], content: `s-${m}-${i}` })));
    const reply = await pushStream(rpc, batches);
    t.same(reply, { code: 0, message: 'ok', accepted: 150 });
    await Promise.all([a.waitFrames(startA + reply.accepted), b.waitFrames(startB + reply.accepted)]);
    const sent = batches.flat().map((p) => p.content).sort();
    t.same(a.data(startA).sort(), sent);
    t.same(b.data(startB).sort(), sent);
  });

  await t.test('PushStream stops at the first bad message; what came before is delivered', async (t) => {
    const start = a.frames.length;
    const good = [{ to: ['c1'], content: 'before' }];
    await rejectsWith(t, pushStream(rpc, [good, [{ to: [''], content: 'bad' }], good]), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_BAD_ID');
    await a.waitFrames(start + 1);
    t.same(a.data(start), ['before']);
  });

  await t.test('empty batches are INVALID_ARGUMENT', async (t) => {
    await rejectsWith(t, unary(rpc, 'PushBatch', { pushes: [] }), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_EMPTY_BATCH');
    await rejectsWith(t, pushStream(rpc, []), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_EMPTY_BATCH');
    await rejectsWith(t, pushStream(rpc, [[]]), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_EMPTY_BATCH');
  });

  await t.test('a call whose deadline passed while its request was on the way queues nothing', async (t) => {
    // Raw HTTP/2, since a grpc-js client refuses to send a call whose deadline
    // has passed: the headers carry a 20 ms deadline, the request message
    // follows 200 ms later, so the server gets the call already expired.
    const before = a.frames.length;
    const body = PushRequest.encode(PushRequest.create({ to: ['c1'], content: 'too late' })).finish();
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    const session = http2.connect(`http://127.0.0.1:${s.grpcPort}`);
    t.teardown(() => session.close());
    const req = session.request({ ':method': 'POST', ':path': '/proto.Rpc/Push', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '20m' });
    const status = new Promise<string | undefined>((resolve) => {
      req.on('trailers', (trailers) => resolve(String(trailers['grpc-status'])));
      req.on('response', (headers) => {
        if (headers['grpc-status'] !== undefined) resolve(String(headers['grpc-status']));
      });
      req.on('close', () => resolve(undefined));
    });
    req.resume();
    await new Promise((r) => setTimeout(r, 200));
    req.end(frame);
    t.equal(await status, String(grpc.status.DEADLINE_EXCEEDED), 'DEADLINE_EXCEEDED');
    // A push queued anyway would reach c1 (client a) before this fence.
    await unary(rpc, 'Push', { to: ['c1'], content: 'fence' });
    await a.waitFrames(before + 1);
    t.same(a.data(before), ['fence'], 'the expired push was not queued');
  });

  await t.test('server reflection lists proto.Rpc (v1 and v1alpha)', async (t) => {
    const dir = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto', 'grpc', 'reflection');
    for (const version of ['v1', 'v1alpha']) {
      const def = protoLoader.loadSync(join(dir, version, 'reflection.proto'), { keepCase: true });
      const Reflection = (grpc.loadPackageDefinition(def) as any).grpc.reflection[version].ServerReflection as typeof grpc.Client;
      const client: any = new Reflection(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
      const names = await new Promise<string[]>((resolve, reject) => {
        const call = client.ServerReflectionInfo();
        call.once('data', (res: any) => resolve(res.list_services_response.service.map((x: { name: string }) => x.name)));
        call.once('error', reject);
        call.write({ list_services: '' });
        call.end();
      });
      client.close();
      t.ok(names.includes('proto.Rpc'), `${version}: ${names.join(', ')}`);
    }
  });
});

t.test('validation errors are INVALID_ARGUMENT', async (t) => {
  const { rpc } = await setup(t, { sets: ['push.max_content=16', 'push.max_id_length=8'] });
  const bad: [string, unknown][] = [
    ['PUSH_ERR_EMPTY_TO', { to: [], content: 'x' }],
    ['PUSH_ERR_CONTENT_TOO_LARGE', { to: ['c1'], content: 'x'.repeat(17) }],
    ['PUSH_ERR_BAD_ID', { to: ['c1', ''], content: 'x' }],
    ['PUSH_ERR_BAD_ID', { to: ['123456789'], content: 'x' }],
    ['PUSH_ERR_BAD_ID', { to: ['c1'], appID: '123456789', content: 'x' }],
  ];
  for (const [code, req] of bad) {
    await rejectsWith(t, unary(rpc, 'Push', req), grpc.status.INVALID_ARGUMENT, code);
    await rejectsWith(t, unary(rpc, 'PushBatch', { pushes: [{ to: ['c1'], content: 'ok' }, req] }), grpc.status.INVALID_ARGUMENT, code);
  }
});

t.test('a batch larger than the queue can ever hold is INVALID_ARGUMENT, not "retry later"', async (t) => {
  const { rpc } = await setup(t, { sets: ['queue.capacity=1'] });
  const two = [{ to: ['c1'], content: 'a' }, { to: ['c1'], content: 'b' }];
  await rejectsWith(t, unary(rpc, 'PushBatch', { pushes: two }), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_BATCH_TOO_LARGE');
  await rejectsWith(t, pushStream(rpc, [two]), grpc.status.INVALID_ARGUMENT, 'PUSH_ERR_BATCH_TOO_LARGE');
});

t.test('GrpcServer: a failed bind rejects with PUSH_ERR_PORT_IN_USE; close() is safe twice', async (t) => {
  const port = await freePort();
  t.teardown(await occupyPort(port));
  const server = new GrpcServer({ host: '127.0.0.1', port }, {} as PushService, createLogger('test', 'silent'), {
    apiKeys: new ApiKeys([], ''), rateLimit: new RateLimit(0), tls: null, maxMessage: 4 << 20, maxBatch: 10,
  });
  await t.rejects(server.start(), { name: 'StartupError', code: 'PUSH_ERR_PORT_IN_USE' });
  await server.close();
  await server.close();
});

t.test('SIGTERM with a PushStream open: the stream is answered and the server exits 0', async (t) => {
  const s = await startServer();
  const rpc: any = new RpcClient(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(async () => {
    rpc.close();
    await s.stop('SIGKILL');
  });
  const c = await joined(s, 'c1');
  const answered = new Promise<grpc.ServiceError | null>((resolve) => {
    const call = rpc.PushStream((err: grpc.ServiceError | null) => resolve(err));
    call.write({ pushes: [{ to: ['c1'], content: 'open' }] });
  });
  await c.waitFrames(2);
  t.equal(await s.stop('SIGTERM'), 0);
  const err = await answered;
  t.equal(err?.code, grpc.status.UNAVAILABLE);
  t.same(err?.metadata.get('pusher-error-code'), ['PUSH_ERR_SHUTTING_DOWN']);
});
