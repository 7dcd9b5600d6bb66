// The load generator's processes and their numbers: forks the connection
// holders and the push senders, merges their per-second reports with the
// server's /stats and /proc samples into one series, and prints a progress
// line per second.

import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { nowUs } from './content';
import { Histogram } from './histogram';
import { cpuPercent, sampleProc, type ProcSample } from './proc-stats';
import type { AppShare, HolderToParent, SenderDone, SenderStart, SenderToParent } from './messages';
import { serverJson, type ServerHandle } from './server-proc';

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
  /** The server's user + system CPU seconds since it started, all threads (/proc/<pid>/stat), at the end of this second. */
  serverCpuS: number | null;
  /** The same for nsqd when its pid is known (started by the bench, or --nsqd-pid). */
  nsqdCpu: number | null;
  nsqdCpuS: number | null;
  generatorCpu: number | null;
}

interface Kid {
  proc: ChildProcess;
  last: ProcSample | null;
}

/** The last /proc sample of a process that may be restarted under the fleet (a new pid starts afresh). */
interface Watched {
  pid: number | null;
  last: ProcSample | null;
}

interface HolderKid extends Kid {
  joined: number;
  failed: number;
  closed: number;
  /** Connections asked of this holder so far, and the most it will be asked (its index range). */
  target: number;
  capacity: number;
  /** Called when the holder reports `target` settled, or exits. */
  onSettled: ((count: number) => void) | null;
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

export async function serverCounters(server: Pick<ServerHandle, 'httpUrl' | 'apiKey'>): Promise<ServerCounters | null> {
  try {
    const body = (await serverJson(server, '/stats')) as { shards?: ServerCounters[] };
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

export interface FleetOptions {
  /** nsqd's pid, to sample its CPU beside the server's (null: none known); asked every second, since chaos restarts nsqd. */
  nsqdPid: () => number | null;
  /** WebSocket URLs to spread the connections over (connection i: wsUrls[i % n]); default the server's. */
  wsUrls?: string[];
  /**
   * Poll the server's /stats once a second. The connections scenario doesn't:
   * each request leaves garbage, and the GCs it eventually sets off move the
   * RSS being measured by megabytes at random times.
   */
  pollStats: boolean;
}

/** chaos: holders reconnect what closes, and holders and senders record into files in `recordDir` (null: they don't). */
export interface ChaosKids {
  reconnect: boolean;
  recordDir: string | null;
}

const PLAIN: ChaosKids = { reconnect: false, recordDir: null };

/** Part i of `total` split over `parts` as evenly as whole numbers allow. */
function share(total: number, parts: number, i: number): number {
  return Math.floor(total / parts) + (i < total % parts ? 1 : 0);
}

export class Fleet {
  readonly series: Interval[] = [];
  /** Latency of every push received during the sending and drain phases. */
  readonly hist = new Histogram();
  readonly totals = { sent: 0, acked: 0, failed: 0, expected: 0, delivered: 0, other: 0 };
  readonly senderErrors = new Set<string>();
  /** Where the holders and senders write their records (chaos), once they exit. */
  readonly recordFiles: { holders: string[]; senders: string[] } = { holders: [], senders: [] };
  phase = 'start';
  private readonly holders: HolderKid[] = [];
  private readonly senders: Kid[] = [];
  private readonly tickHist = new Histogram();
  private readonly tick = { sent: 0, acked: 0, failed: 0, delivered: 0 };
  private readonly t0 = performance.now();
  /** The same moment in µs since the epoch: the clock of the children's records. */
  readonly startedUs = nowUs();
  private readonly timer: NodeJS.Timeout;
  private readonly serverProc: Watched = { pid: null, last: null };
  private readonly nsqdProc: Watched = { pid: null, last: null };
  private statsLast: ServerCounters | null = null;
  private statsNow: ServerCounters | null = null;
  private readonly nsqdPid: () => number | null;
  private readonly pollsStats: boolean;
  private closing: Promise<void> | null = null;
  private readonly wsUrls: string[];

  constructor(private readonly server: ServerHandle, private readonly label: string, o: FleetOptions) {
    this.nsqdPid = o.nsqdPid;
    this.pollsStats = o.pollStats;
    this.wsUrls = o.wsUrls ?? [server.wsUrl];
    this.watch(this.serverProc, server.pid);
    this.watch(this.nsqdProc, o.nsqdPid());
    this.timer = setInterval(() => this.onSecond(), 1000);
    if (this.pollsStats) void this.pollStats();
  }

  /** Seconds since the fleet started: the x axis of the series. */
  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /**
   * Samples `pid` into `w`; returns the sample and the one before it, or
   * null for the one before when there is none of the same process.
   */
  private watch(w: Watched, pid: number | null): { now: ProcSample | null; before: ProcSample | null } {
    const before = w.pid === pid ? w.last : null;
    const now = pid === null ? null : sampleProc(pid);
    w.pid = pid;
    w.last = now;
    return { now, before };
  }

  get conns(): number {
    return this.holders.reduce((n, h) => n + h.joined, 0);
  }

  get closed(): number {
    return this.holders.reduce((n, h) => n + h.closed, 0);
  }

  /** Forks `processes` holders that will share up to `n` connections; none is opened yet (see growTo). */
  forkHolders(n: number, processes: number, groupSize: number, apps: AppShare[], localAddresses: string[], chaos: ChaosKids = PLAIN): void {
    let first = 0;
    for (let p = 0; p < processes; p++) {
      const capacity = share(n, processes, p);
      const recordFile = chaos.recordDir === null ? null : join(chaos.recordDir, `holder-${p}.bin`);
      if (recordFile !== null) this.recordFiles.holders.push(recordFile);
      const proc = fork(HOLDER_JS, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const kid: HolderKid = { proc, last: null, joined: 0, failed: 0, closed: 0, target: 0, capacity, onSettled: null };
      proc.on('message', (msg: HolderToParent) => {
        kid.joined = msg.joined;
        kid.failed = msg.failed;
        if (msg.t === 'joined') {
          kid.onSettled?.(msg.count);
          return;
        }
        kid.closed = msg.closed;
        this.tick.delivered += msg.delivered;
        this.totals.delivered += msg.delivered;
        this.totals.other += msg.other;
        this.tickHist.addSparse(msg.hist, msg.sum, msg.max);
      });
      proc.once('exit', () => kid.onSettled?.(-1));
      proc.send({ t: 'start', urls: this.wsUrls, first, count: 0, groupSize, apps, localAddresses, concurrency: CONNECT_CONCURRENCY, reconnect: chaos.reconnect, recordFile });
      this.holders.push(kid);
      first += capacity;
    }
  }

  /**
   * Asks the holders for `total` connections in all (each its share, within
   * the n given to forkHolders); resolves when every new one joined or failed
   * for good, or the time bound passed.
   */
  async growTo(total: number): Promise<{ joined: number; failed: number; seconds: number }> {
    const started = performance.now();
    const before = this.conns;
    const waits = this.holders.map((kid, p) => {
      const target = Math.min(kid.capacity, share(total, this.holders.length, p));
      if (target === kid.target || kid.proc.exitCode !== null) return Promise.resolve();
      kid.target = target;
      const done = new Promise<void>((resolve) => {
        kid.onSettled = (count) => {
          if (count !== target && count !== -1) return;
          kid.onSettled = null;
          resolve();
        };
      });
      kid.proc.send({ t: 'grow', count: target });
      return done;
    });
    const bound = 60_000 + Math.max(0, total - before) * 5;
    const timeout = new Promise<void>((r) => setTimeout(r, bound).unref());
    await Promise.race([Promise.all(waits), timeout]);
    const asked = this.holders.reduce((k, h) => k + h.target, 0);
    const failed = this.holders.reduce((k, h) => k + h.failed, 0);
    return {
      joined: this.conns,
      // Those still connecting when the bound passed count as failed too.
      failed: Math.max(failed, asked - this.conns - this.closed),
      seconds: (performance.now() - started) / 1000,
    };
  }

  /** Forks `processes` holders sharing `n` connections; resolves when every connection joined or failed. */
  async startHolders(n: number, processes: number, groupSize: number, apps: AppShare[], localAddresses: string[], chaos: ChaosKids = PLAIN): Promise<{ joined: number; failed: number; seconds: number }> {
    this.forkHolders(n, processes, groupSize, apps, localAddresses, chaos);
    return this.growTo(n);
  }

  /**
   * Forks the senders, each with its share of rate and count; resolves with their totals when all are done.
   * `httpUrls`: sender i pushes to httpUrls[i % n] instead of base.httpUrl (the nodes of a cluster).
   */
  async runSenders(base: Omit<SenderStart, 't' | 'index' | 'rate' | 'count' | 'reconnect' | 'recordFile'>, rate: number, count: number, chaos: ChaosKids = PLAIN, httpUrls: string[] = []): Promise<void> {
    const done: Promise<void>[] = [];
    for (let i = 0; i < base.senders; i++) {
      const recordFile = chaos.recordDir === null ? null : join(chaos.recordDir, `sender-${i}.bin`);
      if (recordFile !== null) this.recordFiles.senders.push(recordFile);
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
      proc.send({
        ...base, ...(httpUrls.length > 0 ? { httpUrl: httpUrls[i % httpUrls.length]! } : {}),
        t: 'start', index: i, rate: rate === 0 ? 0 : Math.max(1, share(rate, base.senders, i)), count: count === 0 ? 0 : share(count, base.senders, i),
        reconnect: chaos.reconnect, recordFile,
      });
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

  /** Stops every child (holders send a last report first, and write their records) and the ticker; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.stopAll();
    return this.closing;
  }

  private async stopAll(): Promise<void> {
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
    this.statsNow = await serverCounters(this.server);
  }

  private onSecond(): void {
    const t = Math.round((performance.now() - this.t0) / 100) / 10;
    const h = this.tickHist;
    const ms = (us: number): number => Math.round(us) / 1000;
    let serverRssMb: number | null = null;
    let serverCpu: number | null = null;
    const srv = this.watch(this.serverProc, this.server.pid);
    if (srv.now !== null && srv.before !== null) {
      serverRssMb = Math.round(srv.now.rssBytes / 1048576);
      serverCpu = Math.round(cpuPercent(srv.before, srv.now));
    }
    const serverCpuS = srv.now?.cpuS ?? null;
    const nsq = this.watch(this.nsqdProc, this.nsqdPid());
    const nsqdCpu = nsq.now !== null && nsq.before !== null ? Math.round(cpuPercent(nsq.before, nsq.now)) : null;
    const nsqdCpuS = nsq.now?.cpuS ?? null;
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
    if (this.pollsStats) void this.pollStats();
    const iv: Interval = {
      t, phase: this.phase, ...this.tick, serverDelivered,
      p50: h.count === 0 ? null : ms(h.quantile(0.5)),
      p99: h.count === 0 ? null : ms(h.quantile(0.99)),
      max: h.count === 0 ? null : ms(h.max),
      conns: this.conns, serverRssMb, serverCpu, serverCpuS, nsqdCpu, nsqdCpuS, generatorCpu: Math.round(generatorCpu),
    };
    this.series.push(iv);
    if (this.phase === 'run' || this.phase === 'drain') this.hist.add(h);
    h.reset();
    this.tick.sent = this.tick.acked = this.tick.failed = this.tick.delivered = 0;
    const k = (v: number): string => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : `${v}`);
    process.stderr.write(`[${this.label} ${iv.phase} ${t.toFixed(0)}s] sent ${k(iv.sent)}/s acked ${k(iv.acked)}/s delivered ${k(iv.delivered)}/s`
      + (serverDelivered !== null ? ` (server ${k(serverDelivered)}/s)` : '')
      + ` p50 ${iv.p50 ?? '-'}ms p99 ${iv.p99 ?? '-'}ms max ${iv.max ?? '-'}ms conns ${iv.conns}`
      + (serverCpu !== null ? ` srv cpu ${serverCpu}% rss ${serverRssMb}MB` : '') + (nsqdCpu !== null ? ` nsqd cpu ${nsqdCpu}%` : '')
      + ` gen cpu ${iv.generatorCpu}%\n`);
  }
}
