// The `pusher` command (bin/pusher.js): help, exit codes, errors on stderr;
// start, push and stats against a real server; tokens it mints, joined with.

import t from 'tap';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, freePort, ROOT, startServer, until } from './helpers/server';

const BIN = join(ROOT, 'bin', 'pusher.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function pusher(args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, PUSHER_URL: '', PUSHER_API_KEY: '', ...opts.env } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.stdin.end(opts.stdin ?? '');
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('help, version and usage errors', async (t) => {
  const helps = [['--help'], ['-h'], ['help'], ['push', '--help'], ['start', '--help']];
  for (const [i, r] of (await Promise.all(helps.map((args) => pusher(args)))).entries()) {
    t.equal(r.code, 0, `pusher ${helps[i]!.join(' ')}`);
    t.match(r.stdout, /^usage: pusher <command> \[options\]/);
    t.match(r.stdout, /push --to CARD\[,CARD\.\.\.\] \[--app APP\]/);
    t.equal(r.stderr, '');
  }
  t.match((await pusher(['--version'])).stdout, /^\d+\.\d+\.\d+\n$/);
  const usage = [
    [[], 'a command is needed'],
    [['fly'], 'unknown command "fly"'],
    [['push', 'hello'], 'push needs --to'],
    [['push', '--to', 'a'], 'push needs the CONTENT'],
    [['push', '--to', 'a', 'x', 'y'], 'unexpected argument "y"'],
    [['stats', '--bogus'], "Unknown option '--bogus'"],
    [['stats', '--url', 'ftp://x'], '--url must be an http:// or https:// URL'],
  ] as const;
  const runs = await Promise.all(usage.map(([args]) => pusher([...args])));
  for (const [i, [args, message]] of usage.entries()) {
    const r = runs[i]!;
    t.equal(r.code, 2, `pusher ${args.join(' ')}: exit 2`);
    t.equal(r.stdout, '');
    t.match(r.stderr, `pusher: ${message}`);
    t.match(r.stderr, 'run "pusher --help"');
  }
});

t.test('push and stats against a server; refusals and an unreachable server exit 1', async (t) => {
  const server = await startServer({ shards: 2 });
  t.teardown(() => server.stop());
  const a = await Client.open(server.wsUrl);
  const b = await Client.open(server.wsUrl);
  t.teardown(() => a.close());
  t.teardown(() => b.close());
  await a.join('alice', 'web');
  await b.join('bob');
  const url = ['--url', server.http];

  const ok = await pusher(['push', '--to', 'alice,bob', '--app', 'web', ...url, 'hello, world']);
  t.same(ok, { code: 0, stdout: 'ok: pushed to alice, bob\n', stderr: '' });
  await a.waitFrames(2);
  t.same(a.data(1), ['hello, world']);
  const piped = await pusher(['push', '--to', 'bob', '-'], { env: { PUSHER_URL: server.http }, stdin: 'from stdin\n' });
  t.equal(piped.code, 0, 'PUSHER_URL, content from stdin');
  await b.waitFrames(2);
  t.same(b.data(1), ['from stdin'], 'bob is not in app web: only the second push');

  const refused = await pusher(['push', '--to', 'a,', ...url, 'x']);
  t.equal(refused.code, 1);
  t.equal(refused.stdout, '');
  t.match(refused.stderr, /^pusher: PUSH_ERR_BAD_ID: "to"\[1\] must be a non-empty, well-formed Unicode string .* \(HTTP 400\)\n$/);

  const stats = await pusher(['stats', ...url]);
  t.equal(stats.code, 0);
  t.match(stats.stdout, /^connections 2 {3}groups 2 {3}delivered 2 {3}undelivered 0 {3}dropped 0\n/);
  t.match(stats.stdout, /\nshard +connections +groups +delivered +undelivered +dropped +restarts\n0 +\d/);
  t.match(stats.stdout, /\nqueue memory: connected, accepted 2, depth 0, in flight 0\n/);
  const json = await pusher(['stats', '--json', ...url]);
  t.equal(JSON.parse(json.stdout).queue.accepted, 2, '--json: the /stats answer');

  const port = await freePort();
  const gone = await pusher(['stats', '--url', `http://127.0.0.1:${port}`]);
  t.equal(gone.code, 1);
  t.equal(gone.stderr, `pusher: cannot reach http://127.0.0.1:${port}: ECONNREFUSED\n`);
});

t.test('API keys on: --key and $PUSHER_API_KEY are sent; without one, 401 and exit 1', async (t) => {
  const key = 'cli-test-key-0123456789';
  const server = await startServer({ shards: 1, sets: [`auth.api_keys=${key}`] });
  t.teardown(() => server.stop());
  const c = await Client.open(server.wsUrl);
  t.teardown(() => c.close());
  await c.join('carol');
  const url = ['--url', server.http];
  t.same(await pusher(['push', '--to', 'carol', '--key', key, ...url, 'keyed']), { code: 0, stdout: 'ok: pushed to carol\n', stderr: '' });
  t.equal((await pusher(['stats', ...url], { env: { PUSHER_API_KEY: key } })).code, 0, '$PUSHER_API_KEY');
  const refused = await pusher(['push', '--to', 'carol', ...url, 'unkeyed']);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^pusher: PUSH_ERR_UNAUTHORIZED: .*\(HTTP 401\)\n$/);
  await c.waitFrames(2);
  t.same(c.data(1), ['keyed'], 'only the keyed push arrived');
});

t.test('pusher token mints join tokens the server accepts (HS256 from flag, env or config; ES256 from a private key)', async (t) => {
  const secret = 'cli-join-secret-0123456789abcdef0123456789';
  const server = await startServer({ shards: 1, sets: [`auth.join_secret=${secret}`] });
  t.teardown(() => server.stop());
  const joinWith = async (card: string, token: string): Promise<string | number> => {
    const c = await Client.open(server.wsUrl);
    c.send({ event: 'join', data: { card_id: card, token } });
    const reply = await Promise.race([c.waitFrames(1).then(() => c.frames[0]!), c.closed]);
    await c.close();
    return reply;
  };
  const mint = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> => {
    const r = await pusher(['token', ...args], { env });
    t.equal(r.code, 0, `token ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  t.equal(await joinWith('dave', await mint(['--card', 'dave', '--secret', secret])), '{"type":1,"data":"ok"}', '--secret');
  t.equal(await joinWith('dave', await mint(['--card', 'dave'], { PUSHER_JOIN_SECRET: secret })), '{"type":1,"data":"ok"}', '$PUSHER_JOIN_SECRET');
  t.equal(await joinWith('dave', await mint(['--card', 'dave', '--set', `auth.join_secret=${secret}`])), '{"type":1,"data":"ok"}', 'the configuration\'s auth.join_secret');
  t.not(await joinWith('erin', await mint(['--card', 'dave', '--secret', secret])), '{"type":1,"data":"ok"}', 'a token for another card is refused');
  t.not(await joinWith('dave', await mint(['--card', 'dave', '--secret', `${secret}x`])), '{"type":1,"data":"ok"}', 'a token signed with another secret is refused');

  const dir = mkdtempSync(join(tmpdir(), 'pusher-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(join(dir, 'public.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'private.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const es = await startServer({ shards: 1, sets: [`auth.join_key_file=${join(dir, 'public.pem')}`] });
  t.teardown(() => es.stop());
  const c = await Client.open(es.wsUrl);
  t.teardown(() => c.close());
  c.send({ event: 'join', data: { card_id: 'frank', app_id: 'web', token: await mint(['--card', 'frank', '--app', 'web', '--ttl', '5m', '--private-key', join(dir, 'private.pem')]) } });
  await c.waitFrames(1);
  t.equal(c.frames[0], '{"type":1,"data":"ok"}', 'ES256 with --private-key');

  const none = await pusher(['token', '--card', 'x']);
  t.equal(none.code, 2);
  t.match(none.stderr, /^pusher: no secret: give --secret/);
  const badTtl = await pusher(['token', '--card', 'x', '--secret', secret, '--ttl', 'soon']);
  t.equal(badTtl.code, 2);
  t.match(badTtl.stderr, /^pusher: --ttl must be a duration/);
});

t.test('pusher start runs the server until SIGTERM; a bad configuration exits 2', async (t) => {
  const bad = await pusher(['start', '--set', 'server.ws_port=0']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^pusher: PUSH_ERR_CONFIG: server\.ws_port must be an integer from 1 to 65535/);

  const [ws, http] = [await freePort(), await freePort()];
  const proc = spawn(process.execPath, [BIN, 'start', '--config', join(ROOT, 'config.ini'), '--set', 'server.host=127.0.0.1', '--set', `server.ws_port=${ws}`,
    '--set', `gateway.port=${http}`, '--set', 'grpc.addr=off', '--set', 'server.shards=1', '--set', 'processor.threads=1'], { cwd: ROOT });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
  t.teardown(() => proc.kill('SIGKILL'));
  await until(async () => out.includes('pusher ready'), 'pusher start says ready');
  t.match(out, `demo=http://127.0.0.1:${http}/demo`, 'the ready line names the demo page');
  const c = await Client.open(`ws://127.0.0.1:${ws}/ws`);
  await c.join('started');
  await c.close();
  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 after SIGTERM');
});
