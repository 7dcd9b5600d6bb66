// The chaos scenario's faults: restart nsqd (SIGKILL, or the planned way:
// pause the channel, SIGTERM, start, unpause), crash a shard through the
// server's debug route, restart the server itself (SIGTERM, wait for it to
// exit, start it again on the same ports). Each is timed on the fleet's clock.

import { nowUs } from './content';
import type { Fleet } from './fleet';
import type { FaultKind, Options } from './options';
import { serverJson, type Nsqd, type ServerHandle } from './server-proc';

/** How long nsqd stays down: long enough for the server to notice and answer pushes 503. */
const NSQD_DOWN_MS = 2_000;
/** planned: how long to wait for the paused channel's in-flight messages to be finished before SIGTERM. */
const PAUSE_SETTLE_MS = 5_000;
const CRASHED_SHARD = 0;
const SHARD_RESTART_TIMEOUT_MS = 15_000;
const CONSUMING_TIMEOUT_MS = 30_000;
const TOPIC = 'pusher';

export interface FaultRecord {
  kind: FaultKind;
  /** What was done, for the plot and the JSON: "nsqd SIGKILL", "shard 0 crash", "pusher restart". */
  label: string;
  /** Seconds since the fleet started (the series' x axis): when the fault began, and when it was over from the bench's side. */
  at: number;
  doneAt: number;
  /** `at` in µs since the epoch (the children's record clock). */
  atUs: number;
  detail: Record<string, unknown>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function nsqdJson(nsqd: Nsqd, path: string, method = 'GET'): Promise<unknown> {
  const res = await fetch(`${nsqd.http}${path}`, { method, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`nsqd ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.headers.get('content-type')?.includes('json') === true ? res.json() : res.text();
}

interface ChannelStats {
  channel_name: string;
  in_flight_count: number;
}

async function channels(nsqd: Nsqd): Promise<ChannelStats[]> {
  const body = (await nsqdJson(nsqd, `/stats?format=json&topic=${TOPIC}`)) as { topics: { topic_name: string; channels: ChannelStats[] }[] | null };
  return (body.topics ?? []).find((t) => t.topic_name === TOPIC)?.channels ?? [];
}

async function restartNsqd(nsqd: Nsqd, how: Options['nsqdStop']): Promise<{ label: string; detail: Record<string, unknown> }> {
  if (how === 'kill') {
    const exit = await nsqd.process.kill('SIGKILL');
    await sleep(NSQD_DOWN_MS);
    await nsqd.process.start();
    return { label: 'nsqd SIGKILL', detail: { signal: 'SIGKILL', exit, downMs: NSQD_DOWN_MS } };
  }
  // The way README's "What survives nsqd going away" recommends for a planned
  // restart: with the channels paused nsqd hands out nothing, so SIGTERM can't
  // catch a message between a consumer and its in-flight list.
  const names = (await channels(nsqd)).map((c) => c.channel_name);
  for (const c of names) await nsqdJson(nsqd, `/channel/pause?topic=${TOPIC}&channel=${encodeURIComponent(c)}`, 'POST');
  const settleEnd = Date.now() + PAUSE_SETTLE_MS;
  while (Date.now() < settleEnd && (await channels(nsqd)).some((c) => c.in_flight_count > 0)) await sleep(50);
  const exit = await nsqd.process.kill('SIGTERM');
  await sleep(NSQD_DOWN_MS);
  await nsqd.process.start();
  for (const c of names) await nsqdJson(nsqd, `/channel/unpause?topic=${TOPIC}&channel=${encodeURIComponent(c)}`, 'POST');
  return { label: 'nsqd planned restart', detail: { signal: 'SIGTERM', channelsPaused: names, exit, downMs: NSQD_DOWN_MS } };
}

export interface ChaosStats {
  restarts: number[];
  shards: { clients: number }[];
  /** NSQ: producer and consumer connected; the consumer connects once the warm-up is over. */
  queue: { connected: boolean };
}

/** The server's /stats, or null while it does not answer (restarting). */
export async function chaosStats(server: ServerHandle): Promise<ChaosStats | null> {
  try {
    return (await serverJson(server, '/stats')) as ChaosStats;
  } catch {
    return null;
  }
}

async function shardRestarts(server: ServerHandle): Promise<number[] | null> {
  return (await chaosStats(server))?.restarts ?? null;
}

async function crashShard(server: ServerHandle): Promise<{ label: string; detail: Record<string, unknown> }> {
  const before = (await shardRestarts(server))?.[CRASHED_SHARD] ?? 0;
  const started = Date.now();
  const res = await fetch(`${server.httpUrl}/debug/crash?shard=${CRASHED_SHARD}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  if (!res.ok || !body.includes('"crashed":true')) throw new Error(`POST /debug/crash?shard=${CRASHED_SHARD}: HTTP ${res.status} ${body} (debug.crash_route on?)`);
  // Over once the supervisor has started the new shard.
  while (Date.now() - started < SHARD_RESTART_TIMEOUT_MS && ((await shardRestarts(server))?.[CRASHED_SHARD] ?? before) <= before) await sleep(50);
  return { label: `shard ${CRASHED_SHARD} crash`, detail: { shard: CRASHED_SHARD, restartedAfterMs: Date.now() - started } };
}

/**
 * SIGTERM, wait for the exit, start again; then, since the restarted server
 * consumes only after its warm-up (queue.warmup: until the connection count
 * has been still for 1 s, at most 5 s), when it started consuming and how
 * many clients it had then.
 */
async function restartPusher(server: ServerHandle): Promise<{ label: string; detail: Record<string, unknown> }> {
  const started = Date.now();
  const exit = await server.process!.kill('SIGTERM');
  const stopMs = Date.now() - started;
  await server.process!.start();
  const downMs = Date.now() - started;
  let s = await chaosStats(server);
  while (s?.queue.connected !== true && Date.now() - started < CONSUMING_TIMEOUT_MS) {
    await sleep(50);
    s = await chaosStats(server);
  }
  const consuming = s?.queue.connected === true;
  return {
    label: 'pusher restart',
    detail: {
      signal: 'SIGTERM', exit, stopMs, downMs, consumingAfterMs: consuming ? Date.now() - started : null,
      clientsWhenConsuming: consuming ? s!.shards.reduce((n, x) => n + x.clients, 0) : null,
    },
  };
}

export async function inject(kind: FaultKind, o: Options, server: ServerHandle, nsqd: Nsqd, fleet: Fleet): Promise<FaultRecord> {
  const at = fleet.elapsed();
  const atUs = nowUs();
  const r = kind === 'nsqd' ? await restartNsqd(nsqd, o.nsqdStop) : kind === 'shard' ? await crashShard(server) : await restartPusher(server);
  const doneAt = fleet.elapsed();
  process.stderr.write(`chaos: ${r.label} at ${at.toFixed(1)} s, over after ${(doneAt - at).toFixed(1)} s ${JSON.stringify(r.detail)}\n`);
  return { kind, label: r.label, at: +at.toFixed(2), doneAt: +doneAt.toFixed(2), atUs, detail: r.detail };
}

/** When fault i of n happens, as a fraction of the sending phase: evenly over its first 90 % (3 faults: 22.5, 45, 67.5 %). */
export function faultFraction(i: number, n: number): number {
  return ((i + 1) / (n + 1)) * 0.9;
}
