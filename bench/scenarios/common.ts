// The steps every scenario is made of: hold connections, offer pushes, wait
// for deliveries, and turn the series into headline numbers.

import { readFileSync } from 'node:fs';
import { serverCounters, type ChaosKids, type Fleet, type Interval } from '../fleet';
import type { Options } from '../options';
import type { Nsqd, ServerHandle } from '../server-proc';

export interface Ctx {
  o: Options;
  server: ServerHandle;
  /** The nsqd the bench started (--driver nsq), else null. */
  nsqd: Nsqd | null;
  fleet: Fleet;
}

/** Connections one holder process takes by default (well under the 20,000 open-file limit). */
export const PER_HOLDER = 15_000;
/** The kernel's ephemeral port range: [low, high]. */
function portRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return [lo!, hi!];
  } catch {
    return [32768, 60999];
  }
}

/** Ephemeral ports one source address may use, leaving room for senders and the server's own sockets. */
function portBudget(): number {
  const [lo, hi] = portRange();
  return Math.floor((hi - lo + 1) * 0.8);
}

/**
 * Ports of one source address that the kernel hands out quickly: it tries one
 * parity of the range first (odd at bind(), even at connect()) and walks
 * every port of it before the other half, so past half the range each new
 * connection costs a walk over ~14,000 ports (measured here: from ~2,700 to
 * ~250 connections/s).
 */
function fastPortBudget(): number {
  const [lo, hi] = portRange();
  return Math.floor((hi - lo + 1) * 0.45);
}

/** Source addresses over 127.0.0.0/8 once one address's ephemeral ports would run out (or, `fast`, leave the quick half). */
export function localAddresses(n: number, fast = false): string[] {
  const need = Math.ceil(n / (fast ? fastPortBudget() : portBudget()));
  return need <= 1 ? [] : Array.from({ length: need }, (_, i) => `127.0.0.${i + 1}`);
}

export interface ConnectSummary {
  joined: number;
  failed: number;
  connectSeconds: number;
  connectPerS: number;
}

/** `fast`: spread the source addresses so that each stays in the kernel's quick half of the port range (see fastPortBudget). */
export async function connect(ctx: Ctx, chaos?: ChaosKids, fast = false): Promise<ConnectSummary> {
  const { o, fleet } = ctx;
  fleet.phase = 'connect';
  const processes = o.processes > 0 ? o.processes : Math.ceil(o.connections / PER_HOLDER);
  const r = await fleet.startHolders(o.connections, processes, o.groupSize, o.appMix, localAddresses(o.connections, fast), chaos);
  const out = { joined: r.joined, failed: r.failed, connectSeconds: +r.seconds.toFixed(2), connectPerS: Math.round(r.joined / r.seconds) };
  process.stderr.write(`connected: ${JSON.stringify(out)}\n`);
  if (r.joined < o.connections) throw new Error(`only ${r.joined} of ${o.connections} connections joined`);
  return out;
}

export interface LoadSummary {
  sent: number;
  acked: number;
  failed: number;
  /** Frames the accepted pushes should have produced, and what arrived. */
  expected: number;
  delivered: number;
  lost: number;
  /** Mean over the sending phase without its first and last second (ramp-up, tail). */
  sentPerS: number;
  /** Pushes the server accepted per second (sent minus 503s and errors). */
  ackedPerS: number;
  deliveredPerS: number;
  serverDeliveredPerS: number | null;
  /**
   * Over the whole delivery, drain included: frames received (and, by the
   * server's counter, written) / seconds from the first push to the last
   * frame. The fair rate when delivery runs behind the pushes (fan-out).
   */
  overallDeliveredPerS: number;
  overallServerDeliveredPerS: number | null;
  peakDeliveredPerS: number;
  /** Mean % of one core over the same seconds as sentPerS (null: not sampled). */
  serverCpuPct: number | null;
  nsqdCpuPct: number | null;
  /** Server counters over the run: frames written, pushes to groups nobody was in, frames dropped to backpressure. */
  server: { delivered: number; undelivered: number; dropped: number } | null;
  connectionsClosedDuringRun: number;
  senderErrors: string[];
  cost: CpuCost;
}

/**
 * What the delivered pushes cost in CPU: user + system seconds of the server
 * (all its threads) and of nsqd, from /proc/<pid>/stat, over the delivery
 * window (the sample before the first second that sent, acknowledged or
 * received anything to the end of the last second in which frames arrived),
 * per 100,000 frames received.
 * With 1 s samples the window can hold up to ~2 s of idle server at ~1 % of a
 * core: < 0.02 CPU-s.
 */
export interface CpuCost {
  windowS: number;
  delivered: number;
  serverCpuS: number | null;
  nsqdCpuS: number | null;
  serverCpuSecPer100k: number | null;
  nsqdCpuSecPer100k: number | null;
  /** Server + nsqd (server alone with the memory driver). */
  cpuSecPer100k: number | null;
}

export function cpuCost(series: Interval[]): CpuCost {
  // Senders and holders report on their own 1 s clocks: the first frames can be counted a second before the first sent.
  const first = series.findIndex((i) => i.sent > 0 || i.acked > 0 || i.delivered > 0);
  let last = -1;
  for (let i = series.length - 1; i >= first && last < 0; i--) if (series[i]!.delivered > 0) last = i;
  const none: CpuCost = { windowS: 0, delivered: 0, serverCpuS: null, nsqdCpuS: null, serverCpuSecPer100k: null, nsqdCpuSecPer100k: null, cpuSecPer100k: null };
  // The first push interval's start is the previous sample; the connect phase always comes first.
  if (first < 1 || last < first) return none;
  const start = series[first - 1]!;
  const end = series[last]!;
  let delivered = 0;
  for (let i = first; i <= last; i++) delivered += series[i]!.delivered;
  const used = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : +(b - a).toFixed(2));
  const per100k = (cpu: number | null): number | null => (cpu === null || delivered === 0 ? null : +((cpu * 100_000) / delivered).toFixed(3));
  const serverCpuS = used(start.serverCpuS, end.serverCpuS);
  const nsqdCpuS = used(start.nsqdCpuS, end.nsqdCpuS);
  return {
    windowS: +(end.t - start.t).toFixed(1), delivered, serverCpuS, nsqdCpuS,
    serverCpuSecPer100k: per100k(serverCpuS), nsqdCpuSecPer100k: per100k(nsqdCpuS),
    cpuSecPer100k: serverCpuS === null ? null : per100k(serverCpuS + (nsqdCpuS ?? 0)),
  };
}

/** The CPU cost's headline keys, for a scenario's summary. */
export function costHeadline(c: CpuCost): Record<string, number | null> {
  return { cpuSecPer100k: c.cpuSecPer100k, serverCpuSecPer100k: c.serverCpuSecPer100k, nsqdCpuSecPer100k: c.nsqdCpuSecPer100k };
}

function steady(series: Interval[], pick: (i: Interval) => number | null): number | null {
  // Sender processes take a second or two to start (gRPC loads its proto): the run starts at the first push.
  const all = series.filter((i) => i.phase === 'run');
  const first = all.findIndex((i) => i.sent > 0);
  const run = first < 0 ? [] : all.slice(first);
  const core = run.length > 3 ? run.slice(1, -1) : run;
  const vals = core.map(pick).filter((v): v is number => v !== null);
  return vals.length === 0 ? null : Math.round(vals.reduce((a, b) => a + b, 0) / vals.length);
}

/** Seconds (1 s intervals) from the first push to the last interval in which frames arrived or were written. */
function deliverySpan(series: Interval[]): number {
  const first = series.findIndex((i) => i.sent > 0);
  if (first < 0) return 0;
  let last = first;
  for (let i = first; i < series.length; i++) if (series[i]!.delivered > 0 || (series[i]!.serverDelivered ?? 0) > 0) last = i;
  return last - first + 1;
}

/** `httpUrls`: spread the senders over these gateways (a cluster's nodes) instead of the server's. */
export async function load(ctx: Ctx, httpUrls: string[] = []): Promise<LoadSummary> {
  const { o, server, fleet } = ctx;
  if (o.path.startsWith('grpc') && server.grpcAddr === '') throw new Error(`--path ${o.path} needs a gRPC address (--target ...,grpc://host:port)`);
  const before = await serverCounters(server);
  const closedBefore = fleet.closed;
  fleet.phase = 'run';
  await fleet.runSenders({
    path: o.path, httpUrl: server.httpUrl, grpcAddr: server.grpcAddr, senders: o.senders, durationMs: o.duration * 1000,
    connections: o.connections, groupSize: o.groupSize, batch: o.batch, conns: o.senderConns, inflight: o.inflight, apiKey: o.apiKey,
  }, o.rate, o.count, undefined, httpUrls);
  fleet.phase = 'drain';
  // Holders flooded by a fan-out report late (their loop is busy reading): wait 10 s without progress before calling the rest lost.
  await fleet.drain(fleet.totals.expected, 10_000, 60_000);
  const after = await serverCounters(server);
  const t = fleet.totals;
  return {
    sent: t.sent, acked: t.acked, failed: t.failed, expected: t.expected, delivered: t.delivered, lost: t.expected - t.delivered,
    sentPerS: steady(fleet.series, (i) => i.sent) ?? 0,
    ackedPerS: steady(fleet.series, (i) => i.acked) ?? 0,
    deliveredPerS: steady(fleet.series, (i) => i.delivered) ?? 0,
    serverDeliveredPerS: steady(fleet.series, (i) => i.serverDelivered),
    overallDeliveredPerS: Math.round(t.delivered / Math.max(1, deliverySpan(fleet.series))),
    overallServerDeliveredPerS: before === null || after === null ? null : Math.round((after.delivered - before.delivered) / Math.max(1, deliverySpan(fleet.series))),
    peakDeliveredPerS: Math.max(0, ...fleet.series.map((i) => i.delivered)),
    serverCpuPct: steady(fleet.series, (i) => i.serverCpu),
    nsqdCpuPct: steady(fleet.series, (i) => i.nsqdCpu),
    server: before === null || after === null ? null : {
      delivered: after.delivered - before.delivered, undelivered: after.undelivered - before.undelivered, dropped: after.dropped - before.dropped,
    },
    connectionsClosedDuringRun: fleet.closed - closedBefore,
    senderErrors: [...fleet.senderErrors],
    cost: cpuCost(fleet.series),
  };
}
