// Starts what the bench measures, on free loopback ports: the compiled pusher
// (dist/src/main.js, as test/helpers/server.ts does), the naive baseline, and
// nsqd for --driver nsq. Or describes an already running server (--target).
// The pusher and nsqd can be stopped and started again on the same ports (and
// data dir) under a running bench: the chaos scenario does.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { freePort } from './ports';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

/** A process the bench stops and starts again under a running scenario (chaos). */
export interface Restartable {
  /** Sends `signal` (SIGKILL after STOP_TIMEOUT_MS) and resolves with how it exited ("code 0", "SIGKILL"). */
  kill(signal: NodeJS.Signals): Promise<string>;
  /** Starts it again, same ports and arguments, and resolves once it answers. */
  start(): Promise<void>;
}

export interface ServerHandle {
  kind: 'pusher' | 'naive' | 'external';
  /** Process to sample (null: not ours, not sampled, or stopped). */
  readonly pid: number | null;
  httpUrl: string;
  wsUrl: string;
  /** host:port, or '' when the server has no gRPC. */
  grpcAddr: string;
  command: string[];
  /** Where --server-cpu-prof writes the .cpuprofile files, or null. */
  profileDir: string | null;
  /** The server's inspector (ws://...) when started with one (the connections scenario forces GCs through it), else null. */
  inspectUrl: string | null;
  /** The pusher the bench started (null: not restartable). */
  process: Restartable | null;
  /** The API key the gateway wants (auth.api_keys), '' for none: sent with every request the bench makes. */
  apiKey: string;
  stop(): Promise<void>;
}

/** GET `path` from the server's gateway (with its API key), as JSON. */
export async function serverJson(server: Pick<ServerHandle, 'httpUrl' | 'apiKey'>, path: string, timeoutMs = 2_000): Promise<unknown> {
  const res = await fetch(`${server.httpUrl}${path}`, {
    signal: AbortSignal.timeout(timeoutMs),
    headers: server.apiKey === '' ? {} : { authorization: `Bearer ${server.apiKey}` },
  });
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
  return res.json();
}

/** A child process whose output is kept (last 64 KB) for the error message when it dies. */
class Child {
  private out = '';
  /** How it exited: "code N" or the signal's name. */
  readonly exited: Promise<string>;

  constructor(readonly proc: ChildProcess, readonly name: string) {
    const keep = (d: Buffer): void => {
      this.out = (this.out + d.toString()).slice(-65536);
      // The server runs at log level warn: what it prints matters.
      process.stderr.write(d.toString().replace(/^(?=.)/gm, `${name}: `));
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve(signal ?? `code ${code}`)));
  }

  output(): string {
    return this.out;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<string> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill(signal);
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }
}

/** Runs `bin args` as a Child that can be stopped and started again; `ready` polls it until it answers. */
class Respawnable implements Restartable {
  child: Child;

  constructor(private readonly bin: string, readonly args: string[], private readonly name: string, private readonly readyUrl: string) {
    this.child = this.spawn();
  }

  private spawn(): Child {
    return new Child(spawn(this.bin, this.args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), this.name);
  }

  get pid(): number | null {
    const p = this.child.proc;
    return p.exitCode === null && p.signalCode === null ? p.pid ?? null : null;
  }

  ready(): Promise<void> {
    return waitHttp(this.readyUrl, this.child);
  }

  kill(signal: NodeJS.Signals): Promise<string> {
    return this.child.stop(signal);
  }

  async start(): Promise<void> {
    await this.child.stop();
    this.child = this.spawn();
    await this.ready();
  }
}

/** Polls `url` until it answers 2xx; fails early if the child exits. */
async function waitHttp(url: string, child: Child): Promise<void> {
  const end = Date.now() + READY_TIMEOUT_MS;
  let exited = false;
  child.exited.then(() => (exited = true));
  while (Date.now() < end) {
    if (exited) throw new Error(`${child.name} exited before it was ready:\n${child.output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // Not listening yet: poll again.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await child.stop();
  throw new Error(`${child.name} not ready after ${READY_TIMEOUT_MS} ms:\n${child.output()}`);
}

async function nodeArgs(profileDir: string | null, inspect: boolean): Promise<string[]> {
  // Worker threads inherit --cpu-prof and write one profile each.
  return [
    ...(profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]),
    // Node prints the inspector's address on stderr.
    ...(inspect ? [`--inspect=127.0.0.1:${await freePort()}`] : []),
  ];
}

/** The inspector address Node printed ("Debugger listening on ws://..."), once the server is ready. */
async function inspectUrl(child: Child, inspect: boolean): Promise<string | null> {
  if (!inspect) return null;
  const m = /Debugger listening on (ws:\/\/\S+)/.exec(child.output());
  if (m !== null) return m[1]!;
  await child.stop();
  throw new Error(`${child.name} started with --inspect but printed no inspector address:\n${child.output()}`);
}

export interface PusherOptions {
  shards: number;
  sets: string[];
  nsqdTcp: string | null;
  profileDir: string | null;
  inspect: boolean;
  /**
   * NSQ: queue.warmup. The bench opens its connections before it pushes, so
   * there is nothing to wait for (0), except when the server is restarted
   * under connected clients (chaos: the config's default).
   */
  nsqWarmup: number | null;
  /** Also in `sets` as auth.api_keys when not ''. */
  apiKey: string;
}

export async function startPusher(o: PusherOptions): Promise<ServerHandle> {
  const [ws, http, grpc] = [await freePort(), await freePort(), await freePort()];
  if (o.profileDir !== null) mkdirSync(o.profileDir, { recursive: true });
  const sets = [
    'server.host=127.0.0.1', `server.ws_port=${ws}`, `gateway.port=${http}`, `grpc.addr=127.0.0.1:${grpc}`, 'log.level=warn',
    ...(o.shards > 0 ? [`server.shards=${o.shards}`] : []),
    ...(o.nsqdTcp !== null ? ['queue.driver=nsq', `queue.nsqd_tcp=${o.nsqdTcp}`, ...(o.nsqWarmup !== null ? [`queue.warmup=${o.nsqWarmup}`] : [])] : []),
    ...o.sets,
  ];
  const args = [...await nodeArgs(o.profileDir, o.inspect), join(ROOT, 'dist', 'src', 'main.js'), '--config', join(ROOT, 'config.ini'), ...sets.flatMap((s) => ['--set', s])];
  const httpUrl = `http://127.0.0.1:${http}`;
  // /readyz needs no API key, and answers 200 once every shard listens and the queue is connected.
  const proc = new Respawnable(process.execPath, args, 'server', `${httpUrl}/readyz`);
  await proc.ready();
  return {
    kind: 'pusher', get pid() { return proc.pid; }, httpUrl, wsUrl: `ws://127.0.0.1:${ws}/ws`, grpcAddr: `127.0.0.1:${grpc}`,
    command: ['node', ...args.map((a) => a.replace(ROOT + '/', ''))], profileDir: o.profileDir, inspectUrl: await inspectUrl(proc.child, o.inspect),
    process: proc, apiKey: o.apiKey,
    async stop() {
      await proc.kill('SIGTERM');
    },
  };
}

export async function startNaive(profileDir: string | null, inspect: boolean): Promise<ServerHandle> {
  const port = await freePort();
  if (profileDir !== null) mkdirSync(profileDir, { recursive: true });
  const args = [...await nodeArgs(profileDir, inspect), join(ROOT, 'dist', 'bench', 'baseline-naive.js'), '--port', String(port)];
  const child = new Child(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'naive');
  const httpUrl = `http://127.0.0.1:${port}`;
  await waitHttp(`${httpUrl}/stats`, child);
  return {
    kind: 'naive', pid: child.proc.pid!, httpUrl, wsUrl: `ws://127.0.0.1:${port}/ws`, grpcAddr: '',
    command: ['node', ...args.map((a) => a.replace(ROOT + '/', ''))], profileDir, inspectUrl: await inspectUrl(child, inspect), process: null, apiKey: '',
    async stop() {
      await child.stop();
    },
  };
}

/** The main thread's debugger address of a Node process listening for an inspector at `hostPort`. */
export async function inspectorUrl(hostPort: string): Promise<string> {
  const res = await fetch(`http://${hostPort}/json/list`, { signal: AbortSignal.timeout(5000) });
  const targets = (await res.json()) as { webSocketDebuggerUrl?: string }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`no inspector target at ${hostPort}`);
  return url;
}

/** `--target http://host:port,ws://host:port/ws[,grpc://host:port]`: a server someone else runs. */
export function externalServer(target: string, pid: number | null, inspectUrl: string | null, apiKey: string): ServerHandle {
  const parts = target.split(',').map((s) => s.trim());
  const pick = (scheme: string): string => parts.find((p) => p.startsWith(scheme)) ?? '';
  const httpUrl = pick('http://');
  const wsUrl = pick('ws://');
  if (httpUrl === '' || wsUrl === '') throw new Error('--target needs http://host:port,ws://host:port/ws[,grpc://host:port]');
  return {
    kind: 'external', pid, httpUrl: httpUrl.replace(/\/$/, ''), wsUrl, grpcAddr: pick('grpc://').replace('grpc://', ''),
    command: [], profileDir: null, inspectUrl, process: null, apiKey, stop: async () => undefined,
  };
}

export interface Nsqd {
  tcp: string;
  /** http://host:port of nsqd's HTTP API. */
  http: string;
  /** null while it is stopped (chaos). */
  readonly pid: number | null;
  /** Stop and start again on the same ports and data dir. */
  process: Restartable;
  /** Stops it for good and removes its data dir. */
  stop(): Promise<void>;
}

/** nsqd on free ports with a temporary data dir (scripts/nsqd.sh builds v1.3.0 on first use). */
export async function startNsqd(extraArgs: readonly string[] = []): Promise<Nsqd> {
  const bin = execFileSync(join(ROOT, 'scripts', 'nsqd.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const [tcp, http] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-nsqd-'));
  const args = [`--tcp-address=127.0.0.1:${tcp}`, `--http-address=127.0.0.1:${http}`, `--data-path=${dataDir}`, '--log-level=warn',
    // README's recommended flags: every acknowledged message on disk (survives
    // a SIGKILL of nsqd), and the 1 ms output buffering the consumer asks for.
    // --nsqd-arg adds to them (a repeated flag: the last wins).
    '--mem-queue-size=0', '--min-output-buffer-timeout=1ms', ...extraArgs];
  const proc = new Respawnable(join(bin, 'nsqd'), args, 'nsqd', `http://127.0.0.1:${http}/ping`);
  await proc.ready();
  return {
    tcp: `127.0.0.1:${tcp}`,
    http: `http://127.0.0.1:${http}`,
    get pid() { return proc.pid; },
    process: proc,
    async stop() {
      await proc.kill('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Daemon {
  readonly pid: number | null;
  stop(): Promise<void>;
}

/** nsqlookupd (built with nsqd by scripts/nsqd.sh) on free ports. */
export async function startNsqlookupd(): Promise<Daemon & { tcp: string; http: string }> {
  const bin = execFileSync(join(ROOT, 'scripts', 'nsqd.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const [tcp, http] = [await freePort(), await freePort()];
  const child = new Child(spawn(join(bin, 'nsqlookupd'), [`--tcp-address=127.0.0.1:${tcp}`, `--http-address=127.0.0.1:${http}`, '--broadcast-address=127.0.0.1', '--log-level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] }), 'nsqlookupd');
  await waitHttp(`http://127.0.0.1:${http}/ping`, child);
  return { tcp: `127.0.0.1:${tcp}`, http: `127.0.0.1:${http}`, pid: child.proc.pid!,
    async stop() {
      await child.stop();
    },
  };
}

/** A single-member etcd (Debian's etcd-server; scripts/cluster-deps.sh installs it) on free ports with a temporary data dir. */
export async function startEtcd(): Promise<Daemon & { endpoint: string }> {
  const [client, peer] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-etcd-'));
  const c = `http://127.0.0.1:${client}`;
  const p = `http://127.0.0.1:${peer}`;
  const proc = spawn('etcd', ['--name', 'bench', `--data-dir=${dataDir}`, `--listen-client-urls=${c}`, `--advertise-client-urls=${c}`,
    `--listen-peer-urls=${p}`, `--initial-advertise-peer-urls=${p}`, `--initial-cluster=bench=${p}`, '--log-level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.once('error', (err) => process.stderr.write(`etcd: ${err.message} (scripts/cluster-deps.sh installs it)\n`));
  const child = new Child(proc, 'etcd');
  await waitHttp(`${c}/health`, child);
  return {
    endpoint: `127.0.0.1:${client}`, pid: child.proc.pid!,
    async stop() {
      await child.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
