// A body over gateway.max_body gets a 413 that every client can read: the
// server answers as soon as it knows, then reads and drops the rest of the
// body (bounded in bytes and time) instead of closing under a client that is
// still sending, which Node's fetch reports as EPIPE instead of the answer.

import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { DRAIN_MAX_BYTES } from '../src/api/http/connection';
import { startServer, type Running } from './helpers/server';

const MAX_BODY = 4096;
const BIG = JSON.stringify({ to: ['c1'], content: 'x'.repeat(4 * 1024 * 1024) });

let server: Running;

t.before(async () => {
  server = await startServer({ shards: 1, sets: [`gateway.max_body=${MAX_BODY}`] });
});

t.teardown(() => server.stop());

async function fetchOutcome(body: string | ReadableStream<Uint8Array>, init: RequestInit = {}): Promise<string> {
  try {
    const res = await fetch(`${server.http}/push`, { method: 'POST', body, ...init });
    return `${res.status} ${((await res.json()) as { error: string }).error}`;
  } catch (err) {
    return (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
  }
}

t.test('fetch with a 4 MB body: 413 PUSH_ERR_BODY_TOO_LARGE in 20 of 20 tries', async (t) => {
  const outcomes: string[] = [];
  for (let i = 0; i < 20; i++) outcomes.push(await fetchOutcome(BIG));
  t.same(outcomes, Array(20).fill('413 PUSH_ERR_BODY_TOO_LARGE'));
});

t.test('fetch streaming a 4 MB chunked body: 413 in 10 of 10 tries', async (t) => {
  const outcomes: string[] = [];
  for (let i = 0; i < 10; i++) {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let k = 0; k < 64; k++) c.enqueue(new Uint8Array(64 * 1024).fill(0x78));
        c.close();
      },
    });
    outcomes.push(await fetchOutcome(stream, { duplex: 'half' } as RequestInit));
  }
  t.same(outcomes, Array(10).fill('413 PUSH_ERR_BODY_TOO_LARGE'));
});

function hasCurl(): boolean {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

t.test('curl with a 4 MB body: 413 in 5 of 5 tries', { skip: hasCurl() ? false : 'curl is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pusher-body-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'big.json');
  writeFileSync(file, BIG);
  const codes: string[] = [];
  for (let i = 0; i < 5; i++) {
    const { stdout } = await promisify(execFile)('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', `@${file}`, `${server.http}/push`]);
    codes.push(stdout);
  }
  t.same(codes, Array(5).fill('413'));
});

interface Flood {
  /** The server's answer, as far as it arrived. */
  answer: string;
  /** Body bytes the client had handed to its socket when the server closed. */
  sent: number;
  closed: boolean;
}

/** Declares a 100 MB body and sends `chunk` bytes every `everyMs` (0: as fast as the socket takes them) until the server closes. */
function flood(chunk: number, everyMs: number): Promise<Flood> {
  return new Promise((resolve) => {
    const socket = connect({ port: server.httpPort, host: '127.0.0.1' });
    const out: Flood = { answer: '', sent: 0, closed: false };
    const data = Buffer.alloc(chunk, 0x78);
    let timer: NodeJS.Timeout | null = null;
    const gone = (): void => {
      if (out.closed) return;
      out.closed = true;
      if (timer !== null) clearTimeout(timer);
      socket.destroy();
      resolve(out);
    };
    const send = (): void => {
      while (!out.closed && !socket.destroyed && out.sent < 100e6) {
        out.sent += chunk;
        const more = socket.write(data);
        if (everyMs > 0) {
          timer = setTimeout(send, everyMs);
          return;
        }
        if (!more) {
          socket.once('drain', send);
          return;
        }
      }
    };
    socket.on('data', (d: Buffer) => (out.answer += d.toString('latin1')));
    socket.on('error', gone);
    socket.on('close', gone);
    socket.on('connect', () => {
      socket.write(`POST /push HTTP/1.1\r\nHost: test\r\nContent-Length: 100000000\r\n\r\n`);
      send();
    });
  });
}

t.test(`drain bound in bytes: a client that keeps sending is cut off after ${DRAIN_MAX_BYTES} bytes`, async (t) => {
  const r = await flood(256 * 1024, 0);
  t.match(r.answer, /^HTTP\/1\.1 413 /, 'it got the 413 first');
  t.match(r.answer, /Connection: close/);
  t.equal(r.closed, true, 'then the server closed');
  t.ok(r.sent > DRAIN_MAX_BYTES, `it could send the bound (${r.sent} bytes sent)`);
  t.ok(r.sent < 100e6, 'but not the 100 MB it declared');
});

t.test('drain bound in time: a slow sender is cut off after 5 s', async (t) => {
  // 320 KB/s: 5 s of it stays far below the byte bound, so the time bound acts.
  const r = await flood(32 * 1024, 100);
  t.match(r.answer, /^HTTP\/1\.1 413 /, 'it got the 413 first');
  t.equal(r.closed, true, 'then the server closed');
  t.ok(r.sent < DRAIN_MAX_BYTES, `before the byte bound (${r.sent} bytes sent)`);
});

t.test('Expect: 100-continue: 100 for a body within the limit, a 413 instead for one over it', async (t) => {
  const exchange = (length: number, body: string): Promise<string> => new Promise((resolve) => {
    const socket = connect({ port: server.httpPort, host: '127.0.0.1' });
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      // Send the body only when invited, as curl does.
      if (got === 'HTTP/1.1 100 Continue\r\n\r\n') socket.write(body);
      if (/\r\n\r\n[^]*\}$/.test(got)) socket.end();
    });
    socket.on('close', () => resolve(got));
    socket.on('error', () => undefined);
    socket.write(`POST /push HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: ${length}\r\n\r\n`);
  });
  const small = JSON.stringify({ to: ['c1'], content: 'hi' });
  const ok = await exchange(small.length, small);
  t.match(ok, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/, '100, then 200');
  const big = await exchange(MAX_BODY + 1, '');
  t.match(big, /^HTTP\/1\.1 413 /, 'no 100: a 413 straight away');
  t.match(big, /PUSH_ERR_BODY_TOO_LARGE/);
});
