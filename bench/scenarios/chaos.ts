// chaos: a fixed rate of pushes to thousands of connections while nsqd is
// restarted, a shard crashes and the server itself is restarted. The holders
// reconnect whatever closes; the sender and the holders record every push and
// every frame (chaos-log.ts); at the end the verdict (chaos-verdict.ts) checks
// that every acknowledged push reached every member connected throughout.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readColumns } from '../chaos-log';
import { chaosStats, faultFraction, inject, type FaultRecord } from '../chaos-faults';
import type { ServerHandle } from '../server-proc';
import { analyse, LATER_MS, ON_TIME_MS, STEADY_MS, THROUGHOUT_MS } from '../chaos-verdict';
import type { ChaosKids } from '../fleet';
import { connect, type Ctx } from './common';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CONSUMING_TIMEOUT_MS = 30_000;

/**
 * The server's first warm-up (queue.warmup) ends once the holders are all
 * joined and still; pushing starts after it, so that the first seconds'
 * delays are not taken for the first fault's.
 */
async function consuming(server: ServerHandle): Promise<number> {
  const started = Date.now();
  while ((await chaosStats(server))?.queue.connected !== true) {
    if (Date.now() - started > CONSUMING_TIMEOUT_MS) throw new Error(`the server is not consuming from nsqd ${CONSUMING_TIMEOUT_MS} ms after the holders joined`);
    await sleep(100);
  }
  return (Date.now() - started) / 1000;
}

export async function chaos(ctx: Ctx): Promise<Record<string, unknown>> {
  const { o, server, nsqd, fleet } = ctx;
  if (nsqd === null || server.process === null) throw new Error('chaos needs a pusher and an nsqd the bench started');
  const dir = mkdtempSync(join(tmpdir(), 'bench-chaos-'));
  let keep = false;
  try {
    const kids: ChaosKids = { reconnect: true, recordDir: dir };
    const c = await connect(ctx, kids);
    const consumingAfterS = await consuming(server);
    const shards = (await chaosStats(server))?.restarts.length;
    if (shards === undefined) throw new Error('the server does not answer /stats');
    fleet.phase = 'run';
    const runStart = fleet.elapsed();
    const sending = fleet.runSenders({
      path: o.path, httpUrl: server.httpUrl, grpcAddr: server.grpcAddr, senders: o.senders, durationMs: o.duration * 1000,
      connections: o.connections, groupSize: o.groupSize, batch: o.batch, conns: o.senderConns, inflight: o.inflight, apiKey: o.apiKey,
    }, o.rate, 0, kids);
    const faults: FaultRecord[] = [];
    for (let i = 0; i < o.faults.length; i++) {
      const kind = o.faults[i]!;
      await sleep(Math.max(0, (runStart + faultFraction(i, o.faults.length) * o.duration - fleet.elapsed()) * 1000));
      fleet.phase = `run:${kind}`;
      faults.push(await inject(kind, o, server, nsqd, fleet));
      fleet.phase = 'run';
    }
    await sending;
    fleet.phase = 'drain';
    // Nothing more is expected than what arrives: done after 3 s without a frame.
    await fleet.drain(Infinity, 3_000, 30_000);
    await fleet.close();
    const v = analyse({
      senders: fleet.recordFiles.senders.map(readColumns), holders: fleet.recordFiles.holders.map(readColumns),
      connections: o.connections, groupSize: o.groupSize, shards, faults, startedUs: fleet.startedUs, seriesT: fleet.series.map((i) => i.t),
    });
    const failed = v.failed.refused + v.failed.connectionError + v.failed.notSent + v.failed.unanswered;
    process.stderr.write(`chaos: ${v.check.missed} missed of ${v.check.checkedDeliveries} deliveries to members connected throughout `
      + `(${v.later.missed} of ${v.later.checkedDeliveries} to members that received a later push); ${v.acknowledged} acknowledged, ${failed} failed, ${v.duplicates} duplicates\n`);
    // A miss is a server bug to chase: keep the records (chaos-log.ts readColumns) for it.
    keep = o.keepRecords || v.check.missed > 0 || v.later.missed > 0;
    if (keep) process.stderr.write(`chaos: records kept in ${dir}\n`);
    const { perSecond, ...rest } = v;
    return {
      missedByConnectedMembers: v.check.missed, checkedDeliveries: v.check.checkedDeliveries,
      missedByLaterPushCheck: v.later.missed, laterPushCheckedDeliveries: v.later.checkedDeliveries, duplicates: v.duplicates,
      sent: v.sent, acknowledged: v.acknowledged, failed, acknowledgedNeverReceived: v.acknowledgedNeverReceived,
      restartBacklogNotReached: v.restartBacklog?.neither ?? null,
      ackedWhileRejoiningNeverReceived: v.restartBacklog?.ackedWhileRejoiningNeverReceived ?? null, deliveryAfterAckP99Ms: v.deliveryAfterAckMs.p99,
      recoveredAfterS: Object.fromEntries(v.recovery.map((r) => [r.kind, r.recoveredAfterS])),
      definitions: { throughoutMs: THROUGHOUT_MS, laterMs: LATER_MS, onTimeMs: ON_TIME_MS, steadyMs: STEADY_MS, shards, nsqdStop: o.nsqdStop },
      consumingAfterS, verdict: rest, faults, perSecond, connect: c, ...(keep ? { recordsDir: dir } : {}),
    };
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}
