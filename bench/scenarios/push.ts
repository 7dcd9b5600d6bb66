// push: 11-byte content, each push to one group of one connection, over the
// chosen path (HTTP, HTTP batch, gRPC unary/batch/stream) and queue driver.

import { connect, costHeadline, load, type Ctx } from './common';

export async function push(ctx: Ctx): Promise<Record<string, unknown>> {
  const c = await connect(ctx);
  const l = await load(ctx);
  const lat = ctx.fleet.hist.percentiles();
  return { deliveredPerS: l.deliveredPerS, sentPerS: l.sentPerS, ackedPerS: l.ackedPerS, failed: l.failed, p50Ms: lat.p50, p99Ms: lat.p99, maxMs: lat.max, lost: l.lost, serverCpuPct: l.serverCpuPct, nsqdCpuPct: l.nsqdCpuPct, ...costHeadline(l.cost), load: l, connect: c };
}
