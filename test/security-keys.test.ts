// Push API keys (auth.api_keys, auth.api_keys_file): every route but the
// welcome one needs `Authorization: Bearer <key>`, gRPC the same metadata;
// wrong or missing → 401 / UNAUTHENTICATED with PUSH_ERR_UNAUTHORIZED. Keys
// from a file rotate on SIGHUP. And gateway.rate_limit: 429 + Retry-After.

import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Client, ROOT, startServer, until, type Running } from './helpers/server';

const RpcClient = (grpc.loadPackageDefinition(protoLoader.loadSync(join(ROOT, 'proto', 'rpc.proto'), { keepCase: true })) as any).proto.Rpc as typeof grpc.Client;

async function call(s: Running, method: string, path: string, key?: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${s.http}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

function grpcPush(rpc: any, key?: string): Promise<grpc.ServiceError | null> {
  const md = new grpc.Metadata();
  if (key !== undefined) md.set('authorization', `Bearer ${key}`);
  return new Promise((resolve) => rpc.Push({ to: ['c1'], content: 'g' }, md, (err: grpc.ServiceError | null) => resolve(err)));
}

const ROUTES: [string, string, unknown?][] = [
  ['POST', '/push', { to: ['c1'], content: 'x' }],
  ['POST', '/push/batch', { pushes: [{ to: ['c1'], content: 'x' }] }],
  ['GET', '/stats'], ['GET', '/system'], ['GET', '/isOnline?cardID=c1'], ['GET', '/group?cardID=c1'],
];

t.test('API keys from a list and a file; rotation on SIGHUP; gRPC metadata', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pusher-keys-'));
  const file = join(dir, 'keys');
  writeFileSync(file, '# rotated by ops\nfile-key-1\n\n');
  const s = await startServer({ sets: ['auth.api_keys=list-key', `auth.api_keys_file=${file}`] });
  const rpc: any = new RpcClient(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(async () => {
    rpc.close();
    await s.stop();
  });
  t.match(s.output(), /pusher ready .*auth=api_keys/);
  const c = await Client.open(s.wsUrl);
  await c.join('c1');

  for (const [method, path, body] of ROUTES) {
    for (const key of [undefined, 'wrong-key', 'list-ke']) {
      const r = await call(s, method, path, key, body);
      t.same([r.status, r.body.error, r.body.code], [401, 'PUSH_ERR_UNAUTHORIZED', 16], `${method} ${path} with ${key ?? 'no key'}`);
    }
    t.equal((await call(s, method, path, 'list-key', body)).status, 200, `${method} ${path} with the listed key`);
    t.equal((await call(s, method, path, 'file-key-1', body)).status, 200, `${method} ${path} with the file's key`);
  }
  const denied = await call(s, 'GET', '/stats');
  t.equal(denied.headers.get('www-authenticate'), 'Bearer realm="pusher"');
  t.equal((await call(s, 'GET', '/')).status, 200, 'the welcome route stays open');
  const res = await fetch(`${s.http}/push`, { method: 'POST', headers: { authorization: 'Basic bGlzdC1rZXk6' }, body: '{"to":["c1"]}' });
  t.equal(res.status, 401, 'only the Bearer scheme');

  t.equal((await grpcPush(rpc))?.code, grpc.status.UNAUTHENTICATED, 'gRPC without metadata');
  const wrong = await grpcPush(rpc, 'nope');
  t.same([wrong?.code, wrong?.metadata.get('pusher-error-code')], [grpc.status.UNAUTHENTICATED, ['PUSH_ERR_UNAUTHORIZED']], 'gRPC with a wrong key');
  t.equal(await grpcPush(rpc, 'file-key-1'), null, 'gRPC with a key');

  // On one keep-alive connection: a key accepted once is not accepted after it was rotated out.
  writeFileSync(file, 'file-key-2\n');
  s.proc.kill('SIGHUP');
  await until(async () => s.output().includes('API keys re-read'), 'the keys file is re-read');
  t.equal((await call(s, 'POST', '/push', 'file-key-1', { to: ['c1'], content: 'old' })).status, 401, 'the rotated-out key is refused');
  t.equal((await call(s, 'POST', '/push', 'file-key-2', { to: ['c1'], content: 'new' })).status, 200, 'the new key works without a restart');
  t.equal((await call(s, 'POST', '/push', 'list-key', { to: ['c1'], content: 'list' })).status, 200, 'listed keys stay');
  t.equal((await grpcPush(rpc, 'file-key-1'))?.code, grpc.status.UNAUTHENTICATED, 'gRPC too');

  // A file that can't be read: the keys in force stay.
  writeFileSync(file, 'file-key-3\n', { mode: 0o000 });
  const { rmSync } = await import('node:fs');
  rmSync(file);
  s.proc.kill('SIGHUP');
  await until(async () => s.output().includes('PUSH_ERR_API_KEYS_RELOAD'), 'the failed re-read is logged');
  t.equal((await call(s, 'POST', '/push', 'file-key-2', { to: ['c1'], content: 'kept' })).status, 200, 'a failed re-read keeps the keys');
  await c.close();
});

t.test('gateway.rate_limit: 429 with Retry-After, per key; recovers', async (t) => {
  const s = await startServer({ shards: 1, sets: ['gateway.rate_limit=2', 'auth.api_keys=k1,k2'] });
  t.teardown(() => s.stop());
  // At once: even on a busy box they arrive well within the seconds 18 more tokens would take.
  const results = await Promise.all(Array.from({ length: 20 }, () => call(s, 'GET', '/system', 'k1')));
  const limited = results.filter((r) => r.status === 429);
  t.ok(limited.length >= 10 && results.filter((r) => r.status === 200).length >= 2, `a burst of 2 passes, the rest are refused (${limited.length} of 20)`);
  t.same([limited[0]!.body.error, limited[0]!.headers.get('retry-after')], ['PUSH_ERR_RATE_LIMITED', '1']);
  t.equal((await call(s, 'GET', '/system', 'k2')).status, 200, 'another key has its own budget');
  t.equal((await call(s, 'GET', '/')).status, 200, 'the welcome route is not limited');
  await new Promise((r) => setTimeout(r, 1100));
  t.equal((await call(s, 'GET', '/system', 'k1')).status, 200, 'accepted again a second later');
});

t.test('gateway.rate_limit counts wrong keys against their address: guessing is limited too (HTTP and gRPC)', async (t) => {
  const s = await startServer({ shards: 1, sets: ['gateway.rate_limit=2', 'auth.api_keys=k1'] });
  t.teardown(() => s.stop());
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => call(s, 'GET', '/stats', `guess${i}`)));
  const codes = results.map((r) => r.body.error as string);
  t.ok(codes.filter((c) => c === 'PUSH_ERR_RATE_LIMITED').length >= 10, `most of a burst of wrong keys is refused with 429 (${codes.filter((c) => c === 'PUSH_ERR_RATE_LIMITED').length} of 20)`);
  t.ok(codes.includes('PUSH_ERR_UNAUTHORIZED'), 'the first ones are told the key is wrong');
  t.equal((await call(s, 'GET', '/stats', 'k1')).status, 200, 'a right key has its own budget');
  const rpc: any = new RpcClient(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(() => rpc.close());
  const errs = await Promise.all(Array.from({ length: 20 }, (_, i) => grpcPush(rpc, `guess${i}`)));
  t.ok(errs.filter((e) => e?.code === grpc.status.RESOURCE_EXHAUSTED).length >= 10, 'gRPC: RESOURCE_EXHAUSTED for most of them');
});
