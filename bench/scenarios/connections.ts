// connections: hold N joined idle connections; connect rate, server RSS per
// connection ((RSS after - RSS before) / N) and the server's CPU while idle.

import { cpuPercent, sampleProc, type ProcSample } from '../proc-stats';
import { connect, type Ctx } from './common';

const SETTLE_MS = 3000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Median of a few RSS samples: one sample can catch a GC mid-way. */
async function rss(pid: number): Promise<number> {
  const v: number[] = [];
  for (let i = 0; i < 5; i++) {
    v.push(sampleProc(pid)?.rssBytes ?? 0);
    await sleep(200);
  }
  return v.sort((a, b) => a - b)[2]!;
}

export async function connections(ctx: Ctx): Promise<Record<string, unknown>> {
  const { o, server, fleet } = ctx;
  const pid = server.pid;
  await sleep(SETTLE_MS);
  const before = pid === null ? 0 : await rss(pid);
  const c = await connect(ctx);
  fleet.phase = 'settle';
  await sleep(SETTLE_MS);
  const after = pid === null ? 0 : await rss(pid);
  fleet.phase = 'idle';
  const a: ProcSample | null = pid === null ? null : sampleProc(pid);
  await sleep(o.duration * 1000);
  const b: ProcSample | null = pid === null ? null : sampleProc(pid);
  const held = fleet.conns;
  return {
    joined: c.joined, connectPerS: c.connectPerS, rssPerConnBytes: pid === null ? null : Math.round((after - before) / c.joined),
    idleCpuPct: a !== null && b !== null ? +cpuPercent(a, b).toFixed(2) : null,
    rssBeforeMb: +(before / 2 ** 20).toFixed(1), rssAfterMb: +(after / 2 ** 20).toFixed(1), stillHeldAfterIdle: held, connect: c,
  };
}
