// sustained: a fixed offered rate for minutes with N connections: latency over
// time, and every accepted push accounted for (sent = delivered).

import { connect, costHeadline, load, type Ctx } from './common';

const TARGET_P99_MS = 50;

export async function sustained(ctx: Ctx): Promise<Record<string, unknown>> {
  const c = await connect(ctx);
  const l = await load(ctx);
  const lat = ctx.fleet.hist.percentiles();
  const worstSecondP99 = Math.max(0, ...ctx.fleet.series.filter((i) => i.phase === 'run').map((i) => i.p99 ?? 0));
  return {
    deliveredPerS: l.deliveredPerS, p50Ms: lat.p50, p99Ms: lat.p99, maxMs: lat.max, lost: l.lost, worstSecondP99Ms: worstSecondP99, ...costHeadline(l.cost),
    meetsTarget: lat.p99 < TARGET_P99_MS && l.lost === 0 && l.failed === 0 && l.sentPerS >= ctx.o.rate * 0.99, load: l, connect: c,
  };
}
