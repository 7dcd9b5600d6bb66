// A real nsqd (and nsqlookupd) for tests, built by scripts/nsqd.sh on first
// use (NSQ v1.3.0 from the Go module, ~20 s once, instant after). Each runs on
// free ports with a temp data dir; nsqd can be stopped (SIGTERM flushes memory
// and in-flight messages to disk) and started again on the same ports and dir.
// The test's teardown always kills them and removes the dir.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, until } from './server';

/** The part of a tap Test these helpers need. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** The nsqd flags README recommends for pusher. */
export const RECOMMENDED_FLAGS = ['--mem-queue-size=0', '--min-output-buffer-timeout=1ms'];

const binaries = new Map<string, string>();

function binary(name: 'nsqd' | 'nsqlookupd'): string {
  let path = binaries.get(name);
  if (path === undefined) {
    path = execFileSync(join(ROOT, 'scripts', 'nsqd.sh'), ['path', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    binaries.set(name, path);
  }
  return path;
}

/** One nsqd or nsqlookupd process that can be stopped and started again with the same arguments. */
class Daemon {
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private out = '';

  constructor(private readonly name: 'nsqd' | 'nsqlookupd', private readonly args: readonly string[], private readonly pingUrl: string) {}

  get running(): boolean {
    return this.proc !== null;
  }

  output(): string {
    return this.out;
  }

  async start(): Promise<void> {
    if (this.proc !== null) throw new Error(`${this.name} is already running`);
    const proc = spawn(binary(this.name), this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    let gone = false;
    this.exited = new Promise((resolve) => proc.once('exit', () => {
      gone = true;
      resolve();
    }));
    this.proc = proc;
    await until(async () => {
      if (gone) throw new Error(`${this.name} exited during start-up:\n${this.out}`);
      return fetch(this.pingUrl).then((r) => r.ok, () => false);
    }, `${this.name} answers ${this.pingUrl}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (proc === null) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await this.exited;
  }
}

export interface ChannelStats {
  depth: number;
  in_flight_count: number;
  deferred_count: number;
  message_count: number;
  requeue_count: number;
  timeout_count: number;
}

export class Nsqd {
  private readonly daemon: Daemon;

  private constructor(readonly tcpPort: number, readonly httpPort: number, readonly dataDir: string, lookupdTcp: string | null, stock: boolean) {
    const args = [
      `--tcp-address=127.0.0.1:${tcpPort}`, `--http-address=127.0.0.1:${httpPort}`, `--data-path=${dataDir}`, '--broadcast-address=127.0.0.1',
    ];
    if (lookupdTcp !== null) args.push(`--lookupd-tcp-address=${lookupdTcp}`);
    // README's recommended flags: every acknowledged message on disk (survives
    // SIGKILL), and short output buffering allowed (low latency).
    if (!stock) args.push(...RECOMMENDED_FLAGS);
    this.daemon = new Daemon('nsqd', args, `${this.http}/ping`);
  }

  /**
   * Allocates ports and a data dir; starts nsqd unless `start` is false.
   * `stock`: nsqd's own defaults instead of README's recommended flags.
   */
  static async create(t: Teardown, opts: { start?: boolean; lookupd?: Nsqlookupd; stock?: boolean } = {}): Promise<Nsqd> {
    const n = new Nsqd(await freePort(), await freePort(), mkdtempSync(join(tmpdir(), 'pusher-nsqd-')), opts.lookupd?.tcp ?? null, opts.stock === true);
    t.teardown(async () => {
      await n.stop('SIGKILL');
      rmSync(n.dataDir, { recursive: true, force: true });
    });
    if (opts.start !== false) await n.start();
    return n;
  }

  get tcp(): string {
    return `127.0.0.1:${this.tcpPort}`;
  }

  get http(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get running(): boolean {
    return this.daemon.running;
  }

  output(): string {
    return this.daemon.output();
  }

  /** Starts nsqd (on the same ports and data dir as before) and waits for /ping. */
  start(): Promise<void> {
    return this.daemon.start();
  }

  /** SIGTERM: nsqd writes what it holds in memory and in flight to the data dir. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return this.daemon.stop(signal);
  }

  /** A channel's numbers from /stats, or null while it does not exist. */
  async channel(topic: string, channel: string): Promise<ChannelStats | null> {
    const res = await fetch(`${this.http}/stats?format=json&topic=${encodeURIComponent(topic)}&channel=${encodeURIComponent(channel)}`);
    // Go encodes "no topics" as null.
    const body = (await res.json()) as { topics: null | { topic_name: string; channels: ({ channel_name: string } & ChannelStats)[] }[] };
    const t = (body.topics ?? []).find((x) => x.topic_name === topic);
    return t?.channels.find((c) => c.channel_name === channel) ?? null;
  }

  /** Publishes one raw body, as any NSQ producer (gopusher's included) would. */
  pub(topic: string, body: Uint8Array): Promise<void> {
    return this.post(`/pub?topic=${encodeURIComponent(topic)}`, body);
  }

  async createChannel(topic: string, channel: string): Promise<void> {
    await this.post(`/topic/create?topic=${encodeURIComponent(topic)}`);
    await this.post(`/channel/create?topic=${encodeURIComponent(topic)}&channel=${encodeURIComponent(channel)}`);
  }

  /** nsqd keeps a paused channel's messages (depth grows) and sends none to its consumers. */
  pauseChannel(topic: string, channel: string): Promise<void> {
    return this.post(`/channel/pause?topic=${encodeURIComponent(topic)}&channel=${encodeURIComponent(channel)}`);
  }

  unpauseChannel(topic: string, channel: string): Promise<void> {
    return this.post(`/channel/unpause?topic=${encodeURIComponent(topic)}&channel=${encodeURIComponent(channel)}`);
  }

  private async post(path: string, body?: Uint8Array): Promise<void> {
    const res = await fetch(`${this.http}${path}`, { method: 'POST', ...(body === undefined ? {} : { body }) });
    if (!res.ok) throw new Error(`nsqd POST ${path}: ${res.status} ${await res.text()}`);
  }
}

export class Nsqlookupd {
  private readonly daemon: Daemon;

  private constructor(readonly tcpPort: number, readonly httpPort: number) {
    this.daemon = new Daemon('nsqlookupd', [
      `--tcp-address=127.0.0.1:${tcpPort}`, `--http-address=127.0.0.1:${httpPort}`, '--broadcast-address=127.0.0.1',
    ], `http://127.0.0.1:${httpPort}/ping`);
  }

  static async create(t: Teardown): Promise<Nsqlookupd> {
    const l = new Nsqlookupd(await freePort(), await freePort());
    t.teardown(() => l.daemon.stop('SIGKILL'));
    await l.daemon.start();
    return l;
  }

  get tcp(): string {
    return `127.0.0.1:${this.tcpPort}`;
  }

  get http(): string {
    return `127.0.0.1:${this.httpPort}`;
  }
}
