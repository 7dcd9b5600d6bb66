// TLS without a proxy ([tls] cert, key): wss://, https:// and gRPC over TLS
// with a self-signed certificate made here; a missing or unusable file stops
// start-up with one line and exit 2. And the ready line and the start-up
// warning about auth.

import t from 'tap';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:https';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Client, ROOT, runToExit, startServer, until } from './helpers/server';
import { selfSigned } from './helpers/security';

const RpcClient = (grpc.loadPackageDefinition(protoLoader.loadSync(join(ROOT, 'proto', 'rpc.proto'), { keepCase: true })) as any).proto.Rpc as typeof grpc.Client;

function httpsJson(url: string, ca: Buffer, method = 'GET', body?: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('wss://, https:// and gRPC over TLS', async (t) => {
  const tls = selfSigned();
  const ca = readFileSync(tls.cert);
  const s = await startServer({ sets: [`tls.cert=${tls.cert}`, `tls.key=${tls.key}`] });
  const rpc: any = new RpcClient(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createSsl(ca));
  t.teardown(async () => {
    rpc.close();
    await s.stop();
    rmSync(tls.dir, { recursive: true });
  });
  t.match(s.output(), /pusher ready .*tls=on/);
  const c = await Client.open(`wss://127.0.0.1:${s.wsPort}/ws`, { ca });
  await c.join('c1');
  const https = `https://127.0.0.1:${s.httpPort}`;
  t.same(await httpsJson(`${https}/push`, ca, 'POST', '{"to":["c1"],"content":"over https"}'), { status: 200, body: { code: 0, message: 'ok' } });
  await new Promise<void>((resolve, reject) => rpc.Push({ to: ['c1'], content: 'over grpc+tls' }, (e: Error | null) => (e ? reject(e) : resolve())));
  await c.waitFrames(3);
  t.same(c.data(1), ['over https', 'over grpc+tls'], 'pushes over https and gRPC+TLS reach a wss:// client');

  await t.rejects(Client.open(`ws://127.0.0.1:${s.wsPort}/ws`), 'plain ws:// is not served');
  await t.rejects(fetch(`http://127.0.0.1:${s.httpPort}/`), 'plain http:// is not served');
  const plain: any = new RpcClient(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  const err = await new Promise<grpc.ServiceError | null>((resolve) => plain.System({}, { deadline: Date.now() + 3000 }, resolve));
  plain.close();
  t.ok(err !== null, `plaintext gRPC fails (${err?.code})`);
  await c.close();
});

t.test('a missing or unusable TLS or key file stops start-up with one line, exit 2', async (t) => {
  const tls = selfSigned();
  t.teardown(() => rmSync(tls.dir, { recursive: true }));
  writeFileSync(join(tls.dir, 'garbage'), 'not a key\n');
  const cases: [string, string[], RegExp][] = [
    ['missing certificate', [`tls.cert=${tls.dir}/nope.pem`, `tls.key=${tls.key}`], /^pusher: PUSH_ERR_CONFIG: tls\.cert .*nope\.pem: ENOENT\n$/],
    ['key is not the certificate\'s', [`tls.cert=${tls.cert}`, `tls.key=${tls.cert}`], /^pusher: PUSH_ERR_CONFIG: tls\.cert .* are not a usable PEM certificate and its key/],
    ['certificate without key', [`tls.cert=${tls.cert}`], /^pusher: PUSH_ERR_CONFIG: .*tls\.cert and tls\.key must be set together/],
    ['short join secret', ['auth.join_secret=short'], /^pusher: PUSH_ERR_CONFIG: .*auth\.join_secret must be at least 32 characters/],
    ['missing join key file', [`auth.join_key_file=${tls.dir}/nope.pem`], /^pusher: PUSH_ERR_CONFIG: auth\.join_key_file .*: ENOENT\n$/],
    ['join key file that is not a key', [`auth.join_key_file=${tls.dir}/garbage`], /^pusher: PUSH_ERR_CONFIG: auth\.join_key_file .*garbage: /],
    ['missing API keys file', [`auth.api_keys_file=${tls.dir}/nope`], /^pusher: PUSH_ERR_CONFIG: auth\.api_keys_file .*: ENOENT\n$/],
  ];
  for (const [what, sets, line] of cases) {
    const r = await runToExit(['--set', 'server.ws_port=1', ...sets.flatMap((x) => ['--set', x])]);
    t.equal(r.code, 2, `${what}: exit 2`);
    t.match(r.stderr, line, what);
  }
});

t.test('ready line and the warning about auth on a non-loopback address', async (t) => {
  const local = await startServer({ shards: 1, grpc: false });
  t.match(local.output(), /pusher ready .*auth=off tls=off/);
  t.notMatch(local.output(), /PUSH_ERR_AUTH_OFF/, 'no warning on loopback');
  await local.stop();
  const open = await startServer({ shards: 1, grpc: false, sets: ['server.host=0.0.0.0'] });
  // The warning is logged just after the ready line, and may come in a later chunk.
  const authWarnings = (): string[] => open.output().split('\n').filter((l) => l.includes('PUSH_ERR_AUTH_OFF'));
  await until(async () => authWarnings().length > 0, 'the auth warning', 5_000).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  const warnings = authWarnings();
  t.equal(warnings.length, 1, 'one warning');
  t.match(warnings[0], /listening on 0\.0\.0\.0 .*auth\.join_secret \(or auth\.join_key_file\) and auth\.api_keys \(or auth\.api_keys_file\)/);
  await open.stop();
});
