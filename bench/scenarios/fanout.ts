// fanout: each push goes to one group of K connections; with N > K the pushes
// rotate over N/K groups, so many groups are being delivered to at once.
// Headline: frames delivered per second over the whole delivery, first push to
// last frame (received by the holders, and written as the server counts them);
// the holders' receive rate bounds the first on this machine.

import { connect, costHeadline, load, type Ctx } from './common';

export async function fanout(ctx: Ctx): Promise<Record<string, unknown>> {
  const c = await connect(ctx);
  const l = await load(ctx);
  const lat = ctx.fleet.hist.percentiles();
  return {
    framesPerS: l.overallDeliveredPerS, serverFramesPerS: l.overallServerDeliveredPerS, pushesPerS: l.sentPerS, p50Ms: lat.p50, p99Ms: lat.p99,
    maxMs: lat.max, lost: l.lost, ...costHeadline(l.cost), groups: Math.ceil(ctx.o.connections / ctx.o.groupSize), load: l, connect: c,
  };
}
