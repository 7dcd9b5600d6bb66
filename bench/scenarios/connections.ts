// connections: what holding idle connections costs. From a settled baseline
// (100 connections already joined, so the join path's one-off allocations are
// made), opens connections in steps (--steps, default 6 even steps up to N);
// at each step waits until the server's RSS stops moving, records it, forces
// a full GC in every thread of the server and records RSS, JS heap and the
// kernel's socket memory again. The cost per connection is the least-squares
// slope over the steps, with R². Then holds them idle for --duration s: the
// idle CPU.

import { fitLine, type LineFit } from '../fit';
import { InspectorGc } from '../inspector-gc';
import { sampleKernel, SOCKET_SLABS, type KernelMem } from '../kernel-mem';
import { cpuPercent, sampleProc } from '../proc-stats';
import { localAddresses, PER_HOLDER, type Ctx } from './common';
import { formatSteps, type Step } from './connections-table';

const WARM_UP = 100;
const SAMPLE_MS = 500;
/** RSS is still when the last `window` samples lie within TOLERANCE_BYTES of each other. */
const TOLERANCE_BYTES = 512 * 1024;
const MAX_WAIT_MS = 60_000;
/**
 * Each V8 isolate (main thread, shards, processors) shrinks its heap some
 * seconds after a big GC (its memory reducer), at times the bench can't see
 * coming: measured here, RSS fell 115 → 93 MB between 9 and 18 s after
 * start-up, and by 6-11 MB up to 40 s after a step, in runs that had waited
 * for 10 s of still RSS. With the server's inspector (a server the bench
 * started) every step ends with a full GC in every isolate, and short waits
 * do. Without it (--target) the waits are long, and R² shows a late drop.
 */
const WAIT = {
  gc: { baselineMs: 10_000, stepMs: 3_000, window: 6, afterGcMs: 2_000, afterGcWindow: 4 },
  full: { baselineMs: 30_000, stepMs: 12_000, window: 20, afterGcMs: 0, afterGcWindow: 0 },
  quick: { baselineMs: 20_000, stepMs: 5_000, window: 6, afterGcMs: 0, afterGcWindow: 0 },
};
/** Below this R² the slope is printed with a warning. */
const GOOD_R2 = 0.98;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Still {
  rssBytes: number | null;
  kernel: KernelMem;
  settled: boolean;
  waitedS: number;
}

/** Samples every SAMPLE_MS until the server's RSS is still (or MAX_WAIT_MS); medians over the last `window` samples. */
async function settle(pid: number | null, minWaitMs: number, window: number): Promise<Still> {
  const started = performance.now();
  const rss: number[] = [];
  const kernel: KernelMem[] = [];
  for (;;) {
    const s = pid === null ? null : sampleProc(pid);
    if (s !== null) rss.push(s.rssBytes);
    kernel.push(sampleKernel());
    const waited = performance.now() - started;
    const w = rss.slice(-window);
    const still = pid === null || (w.length === window && Math.max(...w) - Math.min(...w) <= TOLERANCE_BYTES);
    if ((still && waited >= minWaitMs) || waited >= MAX_WAIT_MS) {
      const kw = kernel.slice(-window);
      const slab = kw[0]!.slab === null ? null : Object.fromEntries(Object.keys(kw[0]!.slab).map((c) => [c, {
        objects: median(kw.map((k) => k.slab![c]?.objects ?? 0)), bytes: median(kw.map((k) => k.slab![c]?.bytes ?? 0)),
      }]));
      return {
        rssBytes: w.length === 0 ? null : median(w),
        kernel: {
          tcpInuse: median(kw.map((k) => k.tcpInuse)), tcpBufBytes: median(kw.map((k) => k.tcpBufBytes)), slab,
          slabBytes: slab === null ? null : median(kw.map((k) => k.slabBytes!)),
        },
        settled: still, waitedS: +(waited / 1000).toFixed(1),
      };
    }
    await sleep(SAMPLE_MS);
  }
}

const round = (f: LineFit): LineFit => ({
  slope: Math.round(f.slope), intercept: Math.round(f.intercept), r2: f.r2 === null ? null : +f.r2.toFixed(4), points: f.points,
});

function fitOf(steps: Step[], pick: (s: Step) => number | null): LineFit | null {
  const ys = steps.map(pick);
  if (ys.some((y) => y === null)) return null;
  return round(fitLine(steps.map((s) => s.connections), ys as number[]));
}

export async function connections(ctx: Ctx): Promise<Record<string, unknown>> {
  const { o, server, fleet } = ctx;
  const pid = server.pid;
  const gc = server.inspectUrl === null ? null : await InspectorGc.connect(server.inspectUrl);
  try {
    const wait = gc !== null ? WAIT.gc : o.quick ? WAIT.quick : WAIT.full;
    if (gc !== null) process.stderr.write(`forcing full GCs in ${gc.isolates} isolates of the server through its inspector\n`);
    const processes = o.processes > 0 ? o.processes : Math.ceil(o.connections / PER_HOLDER);
    fleet.forkHolders(o.connections, processes, o.groupSize, o.appMix, localAddresses(o.connections));
    const steps: Step[] = [];
    let connectS = 0;
    let failed = 0;
    for (const target of [Math.min(WARM_UP, o.steps[0]!), ...o.steps]) {
      const prev = steps[steps.length - 1];
      if (prev !== undefined && target <= prev.connections) continue;
      fleet.phase = 'connect';
      const r = await fleet.growTo(target);
      if (r.joined < target) throw new Error(`only ${r.joined} of ${target} connections joined`);
      if (prev !== undefined) connectS += r.seconds;
      failed = r.failed;
      fleet.phase = prev === undefined ? 'baseline' : 'settle';
      const found = await settle(pid, prev === undefined ? wait.baselineMs : wait.stepMs, wait.window);
      let afterGc: Still | null = null;
      let jsHeapBytes: number | null = null;
      if (gc !== null) {
        fleet.phase = 'gc';
        jsHeapBytes = await gc.collect();
        afterGc = await settle(pid, wait.afterGcMs, wait.afterGcWindow);
      }
      const s: Step = {
        connections: r.joined, connectPerS: Math.round((target - (prev?.connections ?? 0)) / r.seconds),
        rssBytes: found.rssBytes, rssAfterGcBytes: afterGc?.rssBytes ?? null, jsHeapBytes,
        kernel: (afterGc ?? found).kernel, settled: found.settled && (afterGc?.settled ?? true), waitedS: found.waitedS + (afterGc?.waitedS ?? 0),
      };
      steps.push(s);
      const mb = (b: number | null): string => (b === null ? '-' : (b / 2 ** 20).toFixed(1));
      process.stderr.write(`step: ${s.connections} connections, rss ${mb(s.rssBytes)} MB` + (gc !== null ? `, after GC ${mb(s.rssAfterGcBytes)} MB` : '')
        + `, kernel slab ${mb(s.kernel.slabBytes)} MB, ${s.settled ? 'settled' : 'NOT settled'} after ${s.waitedS} s\n`);
    }
    fleet.phase = 'idle';
    const a = pid === null ? null : sampleProc(pid);
    await sleep(o.duration * 1000);
    const b = pid === null ? null : sampleProc(pid);

    const x = steps.map((s) => s.connections);
    const fits = {
      rssAfterGc: fitOf(steps, (s) => s.rssAfterGcBytes),
      rssAsFound: fitOf(steps, (s) => s.rssBytes),
      jsHeap: fitOf(steps, (s) => s.jsHeapBytes),
      kernelSlab: fitOf(steps, (s) => s.kernel.slabBytes),
      // Against every TCP socket in use on the box, not our connections: other processes' sockets opening and closing then move both axes.
      kernelSlabPerSocket: steps[0]!.kernel.slab === null ? null : round(fitLine(steps.map((s) => s.kernel.tcpInuse), steps.map((s) => s.kernel.slabBytes!))),
      tcpBuffers: fitOf(steps, (s) => s.kernel.tcpBufBytes)!,
      /** TCP sockets per connection (2: both ends on this box). */
      tcpSocketsPerConn: +fitLine(x, steps.map((s) => s.kernel.tcpInuse)).slope.toFixed(2),
      /** Objects each slab cache holds per TCP socket in use. */
      objectsPerSocket: Object.fromEntries(SOCKET_SLABS.filter((c) => (steps[0]!.kernel.slab?.[c]?.objects ?? 0) > 0)
        .map((c) => [c, +fitLine(steps.map((s) => s.kernel.tcpInuse), steps.map((s) => s.kernel.slab![c]!.objects)).slope.toFixed(2)])),
    };
    const rss = fits.rssAfterGc ?? fits.rssAsFound;
    process.stdout.write(formatSteps(steps, fits));
    const pick = (st: Step): number | null => st.rssAfterGcBytes ?? st.rssBytes;
    const fell = steps.some((st, i) => i > 0 && pick(st) !== null && pick(st)! < pick(steps[i - 1]!)!);
    if (rss !== null && (fell || (rss.r2 ?? 0) < GOOD_R2)) {
      process.stdout.write(`warning: RSS ${fell ? 'fell between steps (a GC released memory)' : 'is far from a line (it grows in lumps: heap pages, GCs)'}`
        + `, R² ${rss.r2}: the slope is uncertain; run again${o.quick ? ' without --quick' : ''}\n`);
    }
    const last = steps[steps.length - 1]!;
    // Over the steps after the warm-up; each step's own rate is in steps[].
    const connectPerS = Math.round((last.connections - steps[0]!.connections) / connectS);
    return {
      joined: last.connections, connectPerS,
      rssPerConnBytes: rss?.slope ?? null, rssFitR2: rss?.r2 ?? null, rssMeasured: fits.rssAfterGc !== null ? 'after full GC' : 'as found',
      jsHeapPerConnBytes: fits.jsHeap?.slope ?? null,
      // Both ends of every connection are sockets on this box; one socket is the server's end (see bench/README.md).
      kernelPerConnBytes: fits.kernelSlab?.slope ?? null, kernelFitR2: fits.kernelSlab?.r2 ?? null,
      kernelPerSocketBytes: fits.kernelSlabPerSocket?.slope ?? null, kernelPerSocketFitR2: fits.kernelSlabPerSocket?.r2 ?? null,
      tcpBufPerConnBytes: fits.tcpBuffers.slope,
      serverPerConnBytes: rss === null || fits.kernelSlabPerSocket === null ? null : rss.slope + fits.kernelSlabPerSocket.slope,
      idleCpuPct: a !== null && b !== null ? +cpuPercent(a, b).toFixed(2) : null,
      baselineRssMb: steps[0]!.rssBytes === null ? null : +(steps[0]!.rssBytes / 2 ** 20).toFixed(1),
      rssMb: last.rssBytes === null ? null : +(last.rssBytes / 2 ** 20).toFixed(1),
      stillHeldAfterIdle: fleet.conns, allSettled: steps.every((s) => s.settled),
      fits, steps, connect: { joined: last.connections, failed, connectSeconds: +connectS.toFixed(2), connectPerS },
    };
  } finally {
    gc?.close();
  }
}
