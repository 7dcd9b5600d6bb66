// The load generator's processes and their numbers: forks the connection
// holders and the push senders, merges their per-second reports with the
// server's /stats and /proc samples into one series, and prints a progress
// line per second.

import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Histogram } from './histogram';
import { cpuPercent, sampleProc, type ProcSample } from './proc-stats';
import type { AppShare, HolderToParent, SenderDone, SenderStart, SenderToParent } from './messages';
import type { ServerHandle } from './server-proc';

/** One second of the run. Latencies in ms; null where nothing was measured. */
export interface Interval {
  t: number;
  phase: string;
  sent: number;
  acked: number;
  failed: number;
  /** Push frames the holders received. */
  delivered: number;
  /** Frames the server says it wrote (its /stats "delivered" delta). */
  serverDelivered: number | null;
  p50: number | null;
  p99: number | null;
  max: number | null;
  conns: number;
  serverRssMb: number | null;
  /** % of one core. */
  serverCpu: number | null;
  /** % of one core, for --driver nsq with the bench's own nsqd. */
  nsqdCpu: number | null;
  generatorCpu: number | null;
}

interface Kid {
  proc: ChildProcess;
  last: ProcSample | null;
}

interface HolderKid extends Kid {
  joined: number;
  failed: number;
  closed: number;
  settled: Promise<void>;
}

const HOLDER_JS = join(__dirname, 'holder.js');
const SENDER_JS = join(__dirname, 'sender.js');
/** Connection attempts in flight per holder. */
const CONNECT_CONCURRENCY = 200;

export interface ServerCounters {
  delivered: number;
  undelivered: number;
  dropped: number;
  clients: number;
}

export async function serverCounters(httpUrl: string): Promise<ServerCounters | null> {
  try {
    const res = await fetch(`${httpUrl}/stats`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { shards?: ServerCounters[] };
    const out: ServerCounters = { delivered: 0, undelivered: 0, dropped: 0, clients: 0 };
    for (const s of body.shards ?? []) {
      out.delivered += s.delivered;
      out.undelivered += s.undelivered;
      out.dropped += s.dropped;
      out.clients += s.clients;
    }
    return out;
  } catch {
    // A busy or external server may not answer in time: that second has no server numbers.
    return null;
  }
}

export class Fleet {
  readonly series: Interval[] = [];
  /** Latency of every push received during the sending and drain phases. */
  readonly hist = new Histogram();
  readonly totals = { sent: 0, acked: 0, failed: 0, expected: 0, delivered: 0, other: 0 };
  readonly senderErrors = new Set<string>();
  phase = 'start';
  private readonly holders: HolderKid[] = [];
  private readonly senders: Kid[] = [];
  private readonly tickHist = new Histogram();
  private readonly tick = { sent: 0, acked: 0, failed: 0, delivered: 0 };
  private readonly t0 = performance.now();
  private readonly timer: NodeJS.Timeout;
  private serverLast: ProcSample | null;
  private nsqdLast: ProcSample | null;
  private statsLast: ServerCounters | null = null;
  private statsNow: ServerCounters | null = null;

  constructor(private readonly server: ServerHandle, private readonly label: string, private readonly nsqdPid: number | null = null) {
    this.serverLast = server.pid === null ? null : sampleProc(server.pid);
    this.nsqdLast = nsqdPid === null ? null : sampleProc(nsqdPid);
    this.timer = setInterval(() => this.onSecond(), 1000);
    void this.pollStats();
  }

  get conns(): number {
    return this.holders.reduce((n, h) => n + h.joined, 0);
  }

  get closed(): number {
    return this.holders.reduce((n, h) => n + h.closed, 0);
  }

  /** Forks `processes` holders sharing `n` connections; resolves when every connection joined or failed. */
  async startHolders(n: number, processes: number, groupSize: number, apps: AppShare[], localAddresses: string[]): Promise<{ joined: number; failed: number; seconds: number }> {
    const started = performance.now();
    let first = 0;
    for (let p = 0; p < processes; p++) {
      const count = Math.floor(n / processes) + (p < n % processes ? 1 : 0);
      const proc = fork(HOLDER_JS, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      let onSettled!: () => void;
      const kid: HolderKid = { proc, last: null, joined: 0, failed: 0, closed: 0, settled: new Promise((r) => (onSettled = r)) };
      proc.on('message', (msg: HolderToParent) => {
        if (msg.t === 'joined') {
          kid.joined = msg.joined;
          kid.failed = msg.failed;
          onSettled();
          return;
        }
        kid.joined = msg.joined;
        kid.failed = msg.failed;
        kid.closed = msg.closed;
        this.tick.delivered += msg.delivered;
        this.totals.delivered += msg.delivered;
        this.totals.other += msg.other;
        this.tickHist.addSparse(msg.hist, msg.sum, msg.max);
      });
      proc.once('exit', () => onSettled());
      proc.send({ t: 'start', url: this.server.wsUrl, first, count, groupSize, apps, localAddresses, concurrency: CONNECT_CONCURRENCY });
      this.holders.push(kid);
      first += count;
    }
    const bound = 60_000 + n * 5;
    const timeout = new Promise<void>((r) => setTimeout(r, bound).unref());
    await Promise.race([Promise.all(this.holders.map((h) => h.settled)), timeout]);
    return {
      joined: this.conns,
      failed: this.holders.reduce((k, h) => k + h.failed, 0) + Math.max(0, n - this.conns - this.holders.reduce((k, h) => k + h.failed, 0)),
      seconds: (performance.now() - started) / 1000,
    };
  }

  /** Forks the senders, each with its share of rate and count; resolves with their totals when all are done. */
  async runSenders(base: Omit<SenderStart, 't' | 'index' | 'rate' | 'count'>, rate: number, count: number): Promise<void> {
    const done: Promise<void>[] = [];
    for (let i = 0; i < base.senders; i++) {
      const proc = fork(SENDER_JS, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const kid: Kid = { proc, last: null };
      this.senders.push(kid);
      done.push(new Promise((resolve) => {
        proc.on('message', (msg: SenderToParent) => {
          if (msg.t === 'tick') {
            this.tick.sent += msg.sent;
            this.tick.acked += msg.acked;
            this.tick.failed += msg.failed;
            return;
          }
          this.collect(msg);
          resolve();
        });
        proc.once('exit', () => resolve());
      }));
      const share = (total: number): number => Math.floor(total / base.senders) + (i < total % base.senders ? 1 : 0);
      proc.send({ ...base, t: 'start', index: i, rate: rate === 0 ? 0 : Math.max(1, share(rate)), count: count === 0 ? 0 : share(count) });
    }
    await Promise.all(done);
  }

  private collect(msg: SenderDone): void {
    this.totals.sent += msg.sent;
    this.totals.acked += msg.acked;
    this.totals.failed += msg.failed;
    this.totals.expected += msg.expected;
    for (const e of msg.errors) this.senderErrors.add(e);
  }

  /** Waits until the holders received `expected` frames, or nothing arrived for `quietMs`, bounded by `maxMs`. */
  async drain(expected: number, quietMs: number, maxMs: number): Promise<void> {
    const end = performance.now() + maxMs;
    let last = this.totals.delivered;
    let lastChange = performance.now();
    while (this.totals.delivered < expected && performance.now() < end && performance.now() - lastChange < quietMs) {
      await new Promise((r) => setTimeout(r, 100));
      if (this.totals.delivered !== last) {
        last = this.totals.delivered;
        lastChange = performance.now();
      }
    }
    // One more report interval, so frames counted by the holders but not yet reported arrive.
    await new Promise((r) => setTimeout(r, 1100));
  }

  /** Stops every child (holders send a last report first) and the ticker. */
  async close(): Promise<void> {
    const kids: Kid[] = [...this.holders, ...this.senders];
    await Promise.all(kids.map((k) => new Promise<void>((resolve) => {
      if (k.proc.exitCode !== null || k.proc.signalCode !== null) {
        resolve();
        return;
      }
      const timer = setTimeout(() => k.proc.kill('SIGKILL'), 10_000);
      k.proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      if (k.proc.connected) k.proc.send({ t: 'stop' });
      else k.proc.kill('SIGTERM');
    })));
    this.onSecond();
    clearInterval(this.timer);
  }

  private async pollStats(): Promise<void> {
    this.statsNow = await serverCounters(this.server.httpUrl);
  }

  private onSecond(): void {
    const t = Math.round((performance.now() - this.t0) / 100) / 10;
    const h = this.tickHist;
    const ms = (us: number): number => Math.round(us) / 1000;
    let serverRssMb: number | null = null;
    let serverCpu: number | null = null;
    if (this.server.pid !== null) {
      const s = sampleProc(this.server.pid);
      if (s !== null && this.serverLast !== null) {
        serverRssMb = Math.round(s.rssBytes / 1048576);
        serverCpu = Math.round(cpuPercent(this.serverLast, s));
      }
      this.serverLast = s;
    }
    let nsqdCpu: number | null = null;
    if (this.nsqdPid !== null) {
      const s = sampleProc(this.nsqdPid);
      if (s !== null && this.nsqdLast !== null) nsqdCpu = Math.round(cpuPercent(this.nsqdLast, s));
      this.nsqdLast = s;
    }
    let generatorCpu = 0;
    for (const k of [...this.holders, ...this.senders]) {
      if (k.proc.pid === undefined) continue;
      const s = sampleProc(k.proc.pid);
      if (s !== null && k.last !== null) generatorCpu += cpuPercent(k.last, s);
      k.last = s;
    }
    let serverDelivered: number | null = null;
    if (this.statsNow !== null && this.statsLast !== null) serverDelivered = this.statsNow.delivered - this.statsLast.delivered;
    if (this.statsNow !== null) this.statsLast = this.statsNow;
    this.statsNow = null;
    void this.pollStats();
    const iv: Interval = {
      t, phase: this.phase, ...this.tick, serverDelivered,
      p50: h.count === 0 ? null : ms(h.quantile(0.5)),
      p99: h.count === 0 ? null : ms(h.quantile(0.99)),
      max: h.count === 0 ? null : ms(h.max),
      conns: this.conns, serverRssMb, serverCpu, nsqdCpu, generatorCpu: Math.round(generatorCpu),
    };
    this.series.push(iv);
    if (this.phase === 'run' || this.phase === 'drain') this.hist.add(h);
    h.reset();
    this.tick.sent = this.tick.acked = this.tick.failed = this.tick.delivered = 0;
    const k = (v: number): string => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : `${v}`);
    process.stderr.write(`[${this.label} ${iv.phase} ${t.toFixed(0)}s] sent ${k(iv.sent)}/s acked ${k(iv.acked)}/s delivered ${k(iv.delivered)}/s`
      + (serverDelivered !== null ? ` (server ${k(serverDelivered)}/s)` : '')
      + ` p50 ${iv.p50 ?? '-'}ms p99 ${iv.p99 ?? '-'}ms max ${iv.max ?? '-'}ms conns ${iv.conns}`
      + (serverCpu !== null ? ` srv cpu ${serverCpu}% rss ${serverRssMb}MB` : '') + (nsqdCpu !== null ? ` nsqd cpu ${nsqdCpu}%` : '') + ` gen cpu ${iv.generatorCpu}%\n`);
  }
}
