// The bench as a load tester's tool: `npm run bench -- --help`, its option
// parsing, frames as gopusher sends them (ending in "\n"), and --target
// against a running server.

import t from 'tap';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptions } from '../bench/options';
import { decodeStamp, encodeStamp, frameOf } from '../bench/content';
import { ROOT, startServer } from './helpers/server';

const RUN = join(ROOT, 'dist', 'bench', 'run.js');

function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [RUN, ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('--help prints the usage and exits 0; a bad option exits 2 with the usage on stderr', async (t) => {
  const [help, short, bad] = await Promise.all([bench(['--help']), bench(['push', '-h']), bench(['push', '--rate', 'fast'])]);
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: npm run bench -- <scenario> \[options\]\n/);
  t.match(help.stdout, /--target http:\/\/h:p,ws:\/\/h:p\/ws/);
  t.equal(help.stderr, '');
  t.equal(short.code, 0);
  t.equal(short.stdout, help.stdout);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^--rate needs an integer ≥ 0, got fast\nusage: npm run bench/);
});

t.test('options on parseArgs: defaults, repeated flags, nsqd flags after --nsqd-arg', async (t) => {
  const o = parseOptions(['push', '--driver', 'nsq', '--nsqd-arg', '--mem-queue-size=100000', '--set', 'a.b=1', '--set', 'c.d=2', '--path', 'http-batch', '--quick']);
  t.match(o, { scenario: 'push', quick: true, duration: 8, driver: 'nsq', path: 'http-batch', batch: 100, inflight: 1, sets: ['a.b=1', 'c.d=2'], nsqdArgs: ['--mem-queue-size=100000'] });
  t.match(parseOptions(['connections', '--steps', '100,200']), { connections: 200, steps: [100, 200] });
  t.match(parseOptions(['connections', '--steps', '100,200', '--connections', '300']), { connections: 300, steps: [100, 200, 300] });
  t.throws(() => parseOptions(['push', '--path', 'carrier-pigeon']), /--path must be one of http, http-batch/);
  t.throws(() => parseOptions(['push', 'extra']), /unexpected argument "extra"/);
  t.throws(() => parseOptions(['fly']), /unknown scenario "fly"/);
});

t.test('frames as gopusher writes them (a trailing newline) are read like ours', async (t) => {
  const stamp = 1_700_000_000_000_000;
  const frame = `{"type":1,"data":"${encodeStamp(stamp)}"}`;
  t.equal(decodeStamp(Buffer.from(frame)), stamp);
  t.equal(decodeStamp(Buffer.from(`${frame}\n`)), stamp, 'gopusher\'s frame');
  t.equal(decodeStamp(Buffer.from(`${frame} `)), -1, 'anything else after it is not a push frame');
  const ok = '{"type":1,"data":"ok"}';
  t.ok(frameOf(Buffer.from(`${ok}\n`), ok.length), 'gopusher\'s join answer');
  t.notOk(frameOf(Buffer.from(`${ok}x`), ok.length));
});

t.test('--target measures a server that runs elsewhere', async (t) => {
  const server = await startServer({ shards: 2 });
  t.teardown(() => server.stop());
  const r = await bench(['push', '--target', `${server.http},${server.wsUrl}`, '--connections', '40', '--duration', '2', '--rate', '200']);
  t.equal(r.code, 0, r.stderr);
  const result = /^result: (\S+)$/m.exec(r.stdout)?.[1];
  t.ok(result, 'writes a result file');
  t.teardown(() => {
    rmSync(result!, { force: true });
    rmSync(result!.replace(/\.json$/, '.svg'), { force: true });
  });
  const headline = JSON.parse(r.stdout.split('\n')[0]!) as { sentPerS: number; lost: number; failed: number };
  t.ok(headline.sentPerS > 0);
  t.equal(headline.failed, 0);
  t.equal(headline.lost, 0, 'every accepted push arrived');
});
