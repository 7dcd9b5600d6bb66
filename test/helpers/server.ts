// Starts the real server (compiled, as `npm start` runs it) in a child process
// on free ports, and gives tests real clients: `ws` for WebSocket, fetch for HTTP.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { freePort } from '../../bench/ports';

// One port picker for the tests and the bench.
export { freePort };

export const ROOT = join(__dirname, '..', '..');
export const MAIN = join(ROOT, 'dist', 'src', 'main.js');

export interface Running {
  readonly proc: ChildProcess;
  readonly wsPort: number;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly http: string;
  readonly wsUrl: string;
  /** Everything the process printed so far. */
  output(): string;
  /** Resolves with the exit code once the process ended. */
  readonly exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  shards?: number;
  /** The WebSocket port (a restarted server keeps its clients' address); free by default. */
  wsPort?: number;
  sets?: string[];
  grpc?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Spawns the server and waits for its "pusher ready" line. */
export async function startServer(opts: StartOptions = {}): Promise<Running> {
  const [wsPort, httpPort, grpcPort] = [opts.wsPort ?? await freePort(), await freePort(), await freePort()];
  const args = [
    MAIN, '--config', join(ROOT, 'config.ini'),
    '--set', 'server.host=127.0.0.1',
    '--set', `server.ws_port=${wsPort}`,
    '--set', `gateway.port=${httpPort}`,
    '--set', `grpc.addr=${opts.grpc === false ? 'off' : `127.0.0.1:${grpcPort}`}`,
    '--set', `server.shards=${opts.shards ?? 2}`,
    '--set', 'processor.threads=2',
    '--set', 'debug.crash_route=true',
  ];
  for (const s of opts.sets ?? []) args.push('--set', s);
  const proc = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const onData = (): void => {
      if (out.includes('pusher ready')) {
        proc.stdout!.off('data', onData);
        resolve();
      }
    };
    proc.stdout!.on('data', onData);
    exited.then((code) => reject(new Error(`server exited (${code}) before ready:\n${out}`)));
  });
  const running: Running = {
    proc, wsPort, httpPort, grpcPort, exited,
    http: `http://127.0.0.1:${httpPort}`,
    wsUrl: `ws://127.0.0.1:${wsPort}/ws`,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  return running;
}

/** A WebSocket client that records every text frame and its close. */
export class Client {
  readonly frames: string[] = [];
  closeCode: number | null = null;
  closeReason = '';
  readonly closed: Promise<number>;
  private waiters: { n: number; resolve: () => void }[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.frames.push(data.toString());
      this.waiters = this.waiters.filter((w) => {
        if (this.frames.length >= w.n) w.resolve();
        return this.frames.length < w.n;
      });
    });
    this.closed = new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      resolve(code);
    }));
  }

  static async open(url: string, opts: WebSocket.ClientOptions = {}): Promise<Client> {
    const ws = new WebSocket(url, opts);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Client(ws);
  }

  send(data: unknown): void {
    this.ws.send(typeof data === 'string' ? data : JSON.stringify(data));
  }

  /** Resolves once `n` frames have arrived in total. */
  waitFrames(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.frames.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} frames, have ${this.frames.length}: ${this.frames.join(' ')}`)), timeoutMs);
      this.waiters.push({ n, resolve: () => { clearTimeout(timer); resolve(); } });
    });
  }

  /** Sends a join and waits for its "ok". */
  async join(cardId: string, appId?: string): Promise<void> {
    const n = this.frames.length + 1;
    this.send({ event: 'join', data: appId === undefined ? { card_id: cardId } : { card_id: cardId, app_id: appId } });
    await this.waitFrames(n);
    const reply = this.frames[n - 1];
    if (reply !== '{"type":1,"data":"ok"}') throw new Error(`join ${cardId} got ${reply}`);
  }

  /** Frames after the first `skip`, parsed. */
  data(skip = 0): string[] {
    return this.frames.slice(skip).map((f) => (JSON.parse(f) as { data: string }).data);
  }

  close(): Promise<number> {
    this.ws.close();
    return this.closed;
  }
}

export async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

export interface ShardStats {
  clients: number;
  groups: number;
  localGroups: number;
  delivered: number;
  undelivered: number;
  dropped: number;
  historyCards: number;
  historyBytes: number;
}

export async function stats(s: Running): Promise<{ shards: ShardStats[]; restarts: number[]; queue: any; processors: any }> {
  return (await getJson(`${s.http}/stats`)).body;
}

/** Polls `check` until it returns true (for state that only a query can observe). */
export async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs the server with exactly these arguments, without waiting for ready, until it exits (for start-up failures). */
export async function runToExit(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** Holds `port` on 127.0.0.1 with a plain net server (no SO_REUSEPORT) until the returned close() is called. */
export async function occupyPort(port: number): Promise<() => Promise<void>> {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
  return () => new Promise<void>((resolve) => holder.close(() => resolve()));
}
