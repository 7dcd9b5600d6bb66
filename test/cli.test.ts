// The `pusher` command (bin/pusher.js): help, exit codes, errors on stderr;
// start, push and stats against a real server.

import t from 'tap';
import { spawn } from 'node:child_process';
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
