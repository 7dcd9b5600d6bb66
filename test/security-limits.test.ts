// Limits that keep one client or address from hurting the rest, each reached
// and recovered: WebSocket connections in total and per address (with a
// trusted proxy's X-Forwarded-For), gateway connections, bytes of request
// bodies being received, pushes per batch (HTTP and gRPC, a huge gRPC batch
// included), a batch the queue could never hold, large batches checked in
// chunks and still all or nothing.

import t from 'tap';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Client, ROOT, postJson, startServer, until, type Running } from './helpers/server';
import { refusedUpgrade } from './helpers/security';
import { scrape, sum } from './helpers/metrics';

const RpcClient = (grpc.loadPackageDefinition(protoLoader.loadSync(join(ROOT, 'proto', 'rpc.proto'), { keepCase: true, longs: Number })) as any).proto.Rpc as typeof grpc.Client;

function opens(url: string, opts = {}): Promise<boolean> {
  return Client.open(url, opts).then((c) => {
    void c.close();
    return true;
  }, () => false);
}

t.test('WebSocket connections: in total, per address, behind a trusted proxy; recovered when clients leave', async (t) => {
  const s = await startServer({ grpc: false, sets: ['server.max_connections=6', 'server.max_connections_per_address=2', 'server.trusted_proxies=127.0.0.2'] });
  t.teardown(() => s.stop());
  t.match(s.output(), /maxConnections=6/);
  const held: Client[] = [];
  const spoof = { headers: { 'x-forwarded-for': '198.51.100.1' } };
  held.push(await Client.open(s.wsUrl), await Client.open(s.wsUrl, spoof));
  let r = await refusedUpgrade(s.wsUrl, spoof);
  t.same([r.status, r.body.error], [429, 'PUSH_ERR_ADDRESS_LIMIT'], 'a third from 127.0.0.1: X-Forwarded-For from an untrusted peer is ignored');

  const proxied = (client: string): object => ({ localAddress: '127.0.0.2', headers: { 'x-forwarded-for': `203.0.113.9, ${client}` } });
  held.push(await Client.open(s.wsUrl, proxied('198.51.100.1')), await Client.open(s.wsUrl, proxied('198.51.100.1')));
  r = await refusedUpgrade(s.wsUrl, proxied('198.51.100.1'));
  t.same([r.status, r.body.error], [429, 'PUSH_ERR_ADDRESS_LIMIT'], 'behind the trusted proxy, the client named in X-Forwarded-For is counted');
  held.push(await Client.open(s.wsUrl, proxied('198.51.100.2')), await Client.open(s.wsUrl, proxied('198.51.100.3')));

  r = await refusedUpgrade(s.wsUrl, proxied('198.51.100.4'));
  t.same([r.status, r.body.error, r.body.code], [503, 'PUSH_ERR_TOO_MANY_CONNECTIONS', 14], 'the seventh connection of all shards is refused');
  t.equal((await fetch(`${s.http}/system`)).status, 200, 'the gateway still answers');
  const m = (await scrape(s.http)).metrics;
  t.equal(sum(m, 'pusher_ws_upgrades_refused_total', { code: 'PUSH_ERR_ADDRESS_LIMIT' }), 2, 'refused upgrades are counted by code');
  t.equal(sum(m, 'pusher_ws_upgrades_refused_total', { code: 'PUSH_ERR_TOO_MANY_CONNECTIONS' }), 1);

  await held.shift()!.close();
  await until(() => opens(s.wsUrl, proxied('198.51.100.4')), 'a connection is accepted again once one left');
  await held.shift()!.close();
  t.ok(await opens(s.wsUrl), 'and 127.0.0.1 may connect again');
  for (const c of held) await c.close();
});

function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => resolve(sock));
    sock.once('error', reject);
  });
}

/** What the server sent until `re` matched (then the socket is destroyed). */
function readUntil(sock: Socket, re: RegExp): Promise<string> {
  let text = '';
  return new Promise((resolve) => {
    sock.on('data', (d: Buffer) => {
      text += d.toString();
      if (re.test(text)) {
        sock.destroy();
        resolve(text);
      }
    });
    sock.once('close', () => resolve(text));
  });
}

function readAll(sock: Socket): Promise<string> {
  let text = '';
  sock.on('data', (d: Buffer) => (text += d.toString()));
  return new Promise((resolve) => sock.once('close', () => resolve(text)));
}

t.test('gateway: connections at once, and bytes of bodies being received', async (t) => {
  const s = await startServer({ shards: 1, grpc: false, sets: ['gateway.max_connections=2', 'gateway.max_body=65536', 'gateway.max_body_total=100000'] });
  t.teardown(() => s.stop());
  const head = (n: number): string => `POST /push HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${n}\r\n\r\n`;
  const body = JSON.stringify({ to: ['nobody'], content: 'x'.repeat(59_000) });

  // Connection a holds most of the budget with a body that has not all arrived.
  const a = await rawConnect(s.httpPort);
  const aText = readAll(a);
  a.write(head(body.length) + body.slice(0, 100));
  await new Promise((r) => setTimeout(r, 200));
  const b = await rawConnect(s.httpPort);
  const bText = readUntil(b, /PUSH_ERR_/);
  b.write(head(body.length) + body.slice(0, 100));
  // A third connection over gateway.max_connections = 2.
  const c = await rawConnect(s.httpPort);
  const cText = await readAll(c);
  t.match(cText, /^HTTP\/1\.1 503 .*Connection: close.*PUSH_ERR_TOO_MANY_CONNECTIONS/s, 'a third connection is answered 503 and closed');
  t.match(await bText, /^HTTP\/1\.1 503 .*PUSH_ERR_OVERLOADED/s, 'a second large body does not fit gateway.max_body_total: 503, closed');
  a.end(body.slice(100));
  t.match(await aText, /^HTTP\/1\.1 200 /, 'the first body completes');
  const after = await postJson(`${s.http}/push`, { to: ['nobody'], content: 'x'.repeat(59_000) });
  t.equal(after.status, 200, 'bytes are given back: a large body fits again');
  const m = (await scrape(s.http)).metrics;
  t.equal(sum(m, 'pusher_http_errors_total', { code: 'PUSH_ERR_TOO_MANY_CONNECTIONS' }), 1, 'the connection over the limit is counted');
  t.equal(sum(m, 'pusher_http_errors_total', { code: 'PUSH_ERR_OVERLOADED' }), 1);
});

/** A PushBatchRequest of `n` pushes, each `push` (already encoded), as bytes. */
function batchBytes(n: number, push: Buffer): Buffer {
  const one = Buffer.concat([Buffer.from([0x0a, push.length]), push]);
  return Buffer.concat(Array.from({ length: n }, () => one));
}

function rawBatch(client: grpc.Client, bytes: Buffer): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => client.makeUnaryRequest('/proto.Rpc/PushBatch', (b: Buffer) => b, (b: Buffer) => b, bytes, (err) => resolve(err)));
}

t.test('pushes per batch (HTTP and gRPC), batches the queue could never hold, huge gRPC batches, chunked checks', async (t) => {
  const s: Running = await startServer({ sets: ['push.max_batch=3000', 'queue.capacity_bytes=200000', 'grpc.max_message=1048576'] });
  const rpc: any = new RpcClient(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  const raw = new grpc.Client(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(async () => {
    rpc.close();
    raw.close();
    await s.stop();
  });
  const c = await Client.open(s.wsUrl);
  await c.join('c1');
  const push = (content = 'x', to = 'nobody'): object => ({ to: [to], content });

  let r = await postJson(`${s.http}/push/batch`, { pushes: Array.from({ length: 3001 }, () => push()) });
  t.same([r.status, r.body.error], [400, 'PUSH_ERR_BATCH_TOO_LARGE'], 'HTTP: over push.max_batch');
  r = await postJson(`${s.http}/push/batch`, { pushes: Array.from({ length: 10 }, () => push('y'.repeat(30_000))) });
  t.same([r.status, r.body.error], [400, 'PUSH_ERR_BATCH_TOO_LARGE'], 'HTTP: more bytes than queue.capacity_bytes can ever hold');
  t.match(r.body.message, /queue\.capacity_bytes/);

  const err = await new Promise<grpc.ServiceError>((resolve) => rpc.PushBatch({ pushes: Array.from({ length: 3001 }, () => push()) }, (e: grpc.ServiceError) => resolve(e)));
  t.same([err?.code, err?.metadata.get('pusher-error-code')], [grpc.status.INVALID_ARGUMENT, ['PUSH_ERR_BATCH_TOO_LARGE']], 'gRPC: over push.max_batch');
  // 400,000 empty pushes: 800 KB. Only 3,001 are split off before it is refused.
  const huge = await rawBatch(raw, batchBytes(400_000, Buffer.alloc(0)));
  t.same([huge?.code, huge?.metadata.get('pusher-error-code')], [grpc.status.INVALID_ARGUMENT, ['PUSH_ERR_BATCH_TOO_LARGE']], 'gRPC: 400,000 empty pushes');
  const tooBig = await rawBatch(raw, Buffer.alloc(1_100_000, 0));
  t.equal(tooBig?.code, grpc.status.RESOURCE_EXHAUSTED, 'gRPC: a message over grpc.max_message');

  // 3,000 pushes of ~60 bytes (~180 KB): checked over several event-loop turns, all accepted.
  const many = Array.from({ length: 2999 }, (_, i) => push(`m${i}`.padEnd(50, '.')));
  r = await postJson(`${s.http}/push/batch`, { pushes: [...many, push('last', 'c1')] });
  t.same([r.status, r.body.accepted], [200, 3000], 'HTTP: a full batch is accepted');
  await c.waitFrames(2);
  const ok = await new Promise<any>((resolve) => rpc.PushBatch({ pushes: [...many, push('grpc-last', 'c1')] }, (e: unknown, reply: unknown) => resolve(e ?? reply)));
  t.equal(ok.accepted, 3000, 'gRPC: a full batch is accepted');
  await c.waitFrames(3);
  // A bad push at the very end of a large batch: nothing of it is queued.
  r = await postJson(`${s.http}/push/batch`, { pushes: [...many.map(() => push('bad-batch', 'c1')), push('', '')] });
  t.same([r.status, r.body.error], [400, 'PUSH_ERR_BAD_ID'], 'HTTP: the last push is bad');
  t.match(r.body.message, /pushes\[2999\]/);
  t.equal((await postJson(`${s.http}/push`, push('fence', 'c1'))).status, 200);
  await c.waitFrames(4);
  t.same(c.data(1), ['last', 'grpc-last', 'fence'], 'all or nothing across chunks');
  await c.close();
});
