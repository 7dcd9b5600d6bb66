// What an nsqd stop loses: publishes to a real nsqd and consumes from it at
// once, stops nsqd mid-stream (SIGTERM or SIGKILL), starts it again on the
// same data dir, and counts messages nsqd acknowledged (MPUB OK) that the
// consumer never received. Repeats for --cycles, each on a fresh data dir.
//
//   npm run build && node dist/bench/nsqd-kill.js --signal SIGKILL --nsqd-arg --mem-queue-size=0
//
// The producer is the server's own (src/queue/nsq-writer.ts), the consumer an
// nsqjs Reader like the server's (workers/processor/nsq-consumer.ts), finishing each message once received: a
// message the consumer got is one the server would deliver. A cycle ends when
// every acknowledged message arrived, or when nsqd holds nothing more for the
// channel; what is missing then is lost. NSQD_BIN_DIR picks another nsqd
// build (scripts/nsqd.sh). One JSON line per cycle on stdout, then a summary.
//
// Options: --signal SIGKILL|SIGTERM, --cycles N, --batch B and --inflight F
// (MPUB size, MPUBs in flight), --kill-after MIN-MAX (ms of publishing),
// --nsqd-arg FLAG (repeatable), --output-buffer-size N and
// --output-buffer-timeout MS (the consumer's IDENTIFY), --grep RE (nsqd log
// lines to print per cycle), --log-dir DIR (nsqd's log of a cycle that lost).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Reader } from 'nsqjs';
import { encodeMpub, NsqWriter } from '../src/queue/nsq-writer';
import { ROOT } from './server-proc';
import { freePort } from './ports';

interface Opts {
  signal: NodeJS.Signals;
  cycles: number;
  /** Messages per MPUB, and MPUBs in flight. */
  batch: number;
  inflight: number;
  /** nsqd is stopped after a random time in [killMin, killMax) ms of publishing. */
  killMin: number;
  killMax: number;
  nsqdArgs: string[];
  /** Keep nsqd's output (for instrumented builds) and print its lines matching this. */
  grep: RegExp | null;
  /**
   * The consumer's IDENTIFY output_buffer_size (-1: nsqd writes every message
   * at once) and output_buffer_timeout (ms), or null for nsqd's defaults
   * (16 KiB, 250 ms): how long a message nsqd took off its queue may wait in
   * nsqd's memory before it is written to the consumer.
   */
  outputBufferSize: number | null;
  outputBufferTimeout: number | null;
  /** Where to write nsqd's whole output for a cycle that lost messages. */
  logDir: string | null;
}

function parse(argv: string[]): Opts {
  const o: Opts = { signal: 'SIGKILL', cycles: 10, batch: 100, inflight: 2, killMin: 1000, killMax: 2000, nsqdArgs: [], grep: null, outputBufferSize: null, outputBufferTimeout: null, logDir: null };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--signal': o.signal = v as NodeJS.Signals; i++; break;
      case '--cycles': o.cycles = Number(v); i++; break;
      case '--batch': o.batch = Number(v); i++; break;
      case '--inflight': o.inflight = Number(v); i++; break;
      case '--kill-after': [o.killMin, o.killMax] = v!.split('-').map(Number) as [number, number]; i++; break;
      case '--nsqd-arg': o.nsqdArgs.push(v!); i++; break;
      case '--grep': o.grep = new RegExp(v!); i++; break;
      case '--output-buffer-size': o.outputBufferSize = Number(v); i++; break;
      case '--output-buffer-timeout': o.outputBufferTimeout = Number(v); i++; break;
      case '--log-dir': o.logDir = v!; i++; break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  o.killMax = Math.max(o.killMax ?? o.killMin, o.killMin + 1);
  return o;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class Nsqd {
  proc: ChildProcess | null = null;
  out = '';
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly bin: string, readonly tcp: number, readonly http: number, readonly dir: string, private readonly extra: string[]) {}

  async start(): Promise<void> {
    const args = [`--tcp-address=127.0.0.1:${this.tcp}`, `--http-address=127.0.0.1:${this.http}`, `--data-path=${this.dir}`, ...this.extra];
    const proc = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    this.proc = proc;
    for (let i = 0; i < 500; i++) {
      if (await fetch(`http://127.0.0.1:${this.http}/ping`).then((r) => r.ok, () => false)) return;
      await sleep(20);
    }
    throw new Error(`nsqd did not start:\n${this.out}`);
  }

  async stop(signal: NodeJS.Signals): Promise<void> {
    this.proc?.kill(signal);
    this.proc = null;
    await this.exited;
  }
}

/** Publishes numbered bodies `m-<n>` in MPUBs until stopped; `acked` holds every n nsqd answered OK. */
class Publisher {
  readonly acked = new Set<number>();
  private next = 0;
  private out = 0;
  private stopped = false;
  private writer: NsqWriter | null = null;

  constructor(private readonly port: number, private readonly o: Opts, private readonly topic: string) {}

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const w: NsqWriter = new NsqWriter('127.0.0.1', this.port, { heartbeatInterval: 5, idleTimeout: 15 }, {
        ready: () => {
          resolve();
          this.fill();
        },
        closed: (reason) => {
          this.stopped = true;
          reject(new Error(reason));
        },
      });
      this.writer = w;
      w.connect();
    });
  }

  private fill(): void {
    while (!this.stopped && this.out < this.o.inflight) {
      const ns: number[] = [];
      const bodies: Buffer[] = [];
      let bytes = 0;
      for (let i = 0; i < this.o.batch; i++) {
        const n = this.next++;
        const b = Buffer.from(`m-${n}`);
        ns.push(n);
        bodies.push(b);
        bytes += b.length;
      }
      this.out++;
      this.writer!.publish(encodeMpub(this.topic, bodies, bytes), (err) => {
        this.out--;
        if (err === null) for (const n of ns) this.acked.add(n);
        // Next turn: a burst of answers refills at once.
        setImmediate(() => this.fill());
      });
    }
  }

  stop(): void {
    this.stopped = true;
    this.writer?.close();
  }
}

interface ChannelStats {
  depth: number;
  in_flight_count: number;
  deferred_count: number;
}

async function channelStats(http: number, topic: string, channel: string): Promise<ChannelStats | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${http}/stats?format=json&topic=${topic}&channel=${channel}`);
    const body = (await res.json()) as { topics: null | { topic_name: string; depth: number; channels: ({ channel_name: string } & ChannelStats)[] }[] };
    const t = (body.topics ?? []).find((x) => x.topic_name === topic);
    const c = t?.channels.find((x) => x.channel_name === channel);
    // Messages still in the topic's own queue are on their way to the channel.
    return t === undefined || c === undefined ? null : { ...c, depth: c.depth + t.depth };
  } catch {
    return null;
  }
}

async function cycle(o: Opts, bin: string, index: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'nsqd-kill-'));
  const nsqd = new Nsqd(bin, await freePort(), await freePort(), dir, o.nsqdArgs);
  const topic = 'kill';
  const received = new Set<number>();
  let deliveries = 0;
  let lastReceipt = Date.now();
  let reader: Reader | null = null;
  try {
    await nsqd.start();
    // Channel before the first publish, so no message is published before it exists.
    await fetch(`http://127.0.0.1:${nsqd.http}/channel/create?topic=${topic}&channel=c`, { method: 'POST' });
    reader = new Reader(topic, 'c', {
      nsqdTCPAddresses: [`127.0.0.1:${nsqd.tcp}`], maxInFlight: 2500, lookupdPollInterval: 1, maxAttempts: 0,
      messageTimeout: 30_000, heartbeatInterval: 5, idleTimeout: 15,
      ...(o.outputBufferSize === null ? {} : { outputBufferSize: o.outputBufferSize }),
      ...(o.outputBufferTimeout === null ? {} : { outputBufferTimeout: o.outputBufferTimeout }),
    });
    let connected!: () => void;
    const up = new Promise<void>((r) => (connected = r));
    reader.on('nsqd_connected', () => connected());
    reader.on('error', () => undefined);
    reader.on('message', (m) => {
      deliveries++;
      lastReceipt = Date.now();
      received.add(Number(m.body.toString('latin1').slice(2)));
      m.finish();
    });
    reader.connect();
    await up;

    const pub = new Publisher(nsqd.tcp, o, topic);
    await pub.start();
    await sleep(o.killMin + Math.random() * (o.killMax - o.killMin));
    const t0 = Date.now();
    await nsqd.stop(o.signal);
    const stopMs = Date.now() - t0;
    pub.stop();
    const acked = pub.acked.size;
    const receivedBefore = received.size;
    await nsqd.start();
    // Done when the consumer saw everything acknowledged, or when nsqd holds
    // nothing more for the channel (no depth, nothing in flight or deferred)
    // and nothing arrived for a second: what is missing then is gone. The
    // consumer's old connection died with nsqd, so nothing sits in flight on a
    // dead connection waiting for msg_timeout.
    const deadline = Date.now() + 60_000;
    for (;;) {
      await sleep(100);
      if ([...pub.acked].every((n) => received.has(n))) break;
      const c = await channelStats(nsqd.http, topic, 'c');
      if (c !== null && c.depth === 0 && c.in_flight_count === 0 && c.deferred_count === 0 && Date.now() - lastReceipt > 1000) break;
      if (Date.now() > deadline) throw new Error(`cycle ${index}: nsqd still holds messages after 60 s: ${JSON.stringify(c)}`);
    }
    const lost = [...pub.acked].filter((n) => !received.has(n)).sort((a, b) => a - b);
    if (lost.length > 0 && o.logDir !== null) writeFileSync(join(o.logDir, `nsqd-kill-cycle-${index}.log`), nsqd.out);
    const r: Record<string, unknown> = {
      cycle: index, signal: o.signal, acked, receivedBeforeStop: receivedBefore, redeliveredOrLate: received.size - receivedBefore,
      duplicates: deliveries - received.size, lost: lost.length, lostSample: lost.slice(0, 10), stopMs,
    };
    if (o.grep !== null) r.nsqd = nsqd.out.split('\n').filter((l) => o.grep!.test(l));
    return r;
  } finally {
    reader?.close();
    await nsqd.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const bin = join(execFileSync(join(ROOT, 'scripts', 'nsqd.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim(), 'nsqd');
  const totals = { cycles: 0, acked: 0, lost: 0, duplicates: 0, cyclesWithLoss: 0 };
  for (let i = 1; i <= o.cycles; i++) {
    const r = await cycle(o, bin, i);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    totals.cycles++;
    totals.acked += r.acked as number;
    totals.lost += r.lost as number;
    totals.duplicates += r.duplicates as number;
    if ((r.lost as number) > 0) totals.cyclesWithLoss++;
  }
  process.stdout.write(`${JSON.stringify({ summary: true, signal: o.signal, nsqdArgs: o.nsqdArgs, outputBufferSize: o.outputBufferSize, outputBufferTimeout: o.outputBufferTimeout, batch: o.batch, inflight: o.inflight, ...totals })}\n`);
  // nsqjs keeps timers after close().
  process.exit(0);
}

main().catch((err: Error) => {
  process.stderr.write(`nsqd-kill: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
