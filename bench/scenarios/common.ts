// The steps every scenario is made of: hold connections, offer pushes, wait
// for deliveries, and turn the series into headline numbers.

import { readFileSync } from 'node:fs';
import { serverCounters, type Fleet, type Interval } from '../fleet';
import type { Options } from '../options';
import type { ServerHandle } from '../server-proc';

export interface Ctx {
  o: Options;
  server: ServerHandle;
  fleet: Fleet;
}

/** Connections one holder process takes by default (well under the 20,000 open-file limit). */
const PER_HOLDER = 15_000;
/** Ephemeral ports one source address may use, leaving room for senders and the server's own sockets. */
function portBudget(): number {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Math.floor((hi! - lo! + 1) * 0.8);
  } catch {
    return 20_000;
  }
}

/** Source addresses over 127.0.0.0/8 once one address's ephemeral ports would run out. */
export function localAddresses(n: number): string[] {
  const need = Math.ceil(n / portBudget());
  return need <= 1 ? [] : Array.from({ length: need }, (_, i) => `127.0.0.${i + 1}`);
}

export interface ConnectSummary {
  joined: number;
  failed: number;
  connectSeconds: number;
  connectPerS: number;
}

export async function connect(ctx: Ctx): Promise<ConnectSummary> {
  const { o, fleet } = ctx;
  fleet.phase = 'connect';
  const processes = o.processes > 0 ? o.processes : Math.ceil(o.connections / PER_HOLDER);
  const r = await fleet.startHolders(o.connections, processes, o.groupSize, o.appMix, localAddresses(o.connections));
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

export async function load(ctx: Ctx): Promise<LoadSummary> {
  const { o, server, fleet } = ctx;
  if (o.path.startsWith('grpc') && server.grpcAddr === '') throw new Error(`--path ${o.path} needs a gRPC address (--target ...,grpc://host:port)`);
  const before = await serverCounters(server.httpUrl);
  const closedBefore = fleet.closed;
  fleet.phase = 'run';
  await fleet.runSenders({
    path: o.path, httpUrl: server.httpUrl, grpcAddr: server.grpcAddr, senders: o.senders, durationMs: o.duration * 1000,
    connections: o.connections, groupSize: o.groupSize, batch: o.batch, conns: o.senderConns, inflight: o.inflight,
  }, o.rate, o.count);
  fleet.phase = 'drain';
  // Holders flooded by a fan-out report late (their loop is busy reading): wait 10 s without progress before calling the rest lost.
  await fleet.drain(fleet.totals.expected, 10_000, 60_000);
  const after = await serverCounters(server.httpUrl);
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
  };
}
